// What every GELF transport does: encode one message's JSON for its wire, and move bytes.
// Transports know nothing of records, breakers or retries (the exporter wraps them).

/** One message ready for the wire: text (TCP frames it), a buffer, or the datagrams of a chunked message. */
export type Encoded = string | Buffer | Buffer[];

export interface Transport {
  /**
   * Largest message this transport carries, in UTF-8 bytes of its JSON. The exporter cuts
   * full_message so every message fits; encode() may then assume it does.
   */
  readonly maxMessageBytes: number;
  /** The wire form of one message's JSON (framed, compressed, chunked as the transport needs). */
  encode(json: string): Encoded;
  /**
   * Sends the messages in order. Resolves only once they count as sent: TCP/TLS once the
   * connection outlived the batch by the confirmation window, UDP once every datagram was
   * handed to the kernel, HTTP once every request was answered 2xx. Rejects otherwise, and
   * then none of them may be assumed delivered. Sends may overlap (TCP); once `signal` is
   * aborted a send that has not started writing fails without writing.
   */
  send(messages: Encoded[], signal?: AbortSignal): Promise<void>;
  /** Closes connections; a later send() reconnects. */
  close(): Promise<void>;
}

/**
 * The batch failed after some or all of it may have reached the peer (a TCP connection that
 * ended within the confirmation window, an HTTP batch of which some requests were answered
 * 2xx): it is sent again, and the receiver may see those messages twice.
 */
export class UnconfirmedError extends Error {}

/** Rejects with `message` when `promise` takes longer than `ms`; `onTimeout` cleans up. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string, onTimeout?: () => void): Promise<T> {
  if (!(ms > 0)) return promise;
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new Error(message));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
