// What every GELF transport does: encode one message's JSON for its wire, and move bytes.
// Transports know nothing of records, breakers or retries (the exporter wraps them).

/** One message ready for the wire: text (TCP frames it), a buffer, or the datagrams of a chunked message. */
export type Encoded = string | Buffer | Buffer[];

export interface Transport {
  /**
   * The wire form of one message's JSON (compressed, chunked as the transport needs), or null
   * when the message is too large for this transport even so (the caller shrinks it and asks again).
   */
  encode(json: string): Encoded | null | Promise<Encoded | null>;
  /**
   * Sends the messages in order. Resolves only once every byte has been handed to the
   * operating system (TCP, UDP) or accepted with a 2xx (HTTP); rejects otherwise, and then
   * none of them may be assumed delivered.
   */
  send(messages: Encoded[]): Promise<void>;
  /** Closes connections; a later send() reconnects. */
  close(): Promise<void>;
}

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
