// The gelf exporter: serializes a batch (on the encoder thread for TCP/TLS, inline otherwise),
// sends it through the breaker-wrapped transport and reports exactly what was sent. The
// collector marks `forwarded_to_graylog` from that report. It takes batches as stored texts
// (exportTexts), so what the store reads is parsed only where it is serialized.
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { textOf, type ExportResult, type Exporter, type ExporterContext, type StoredRecord, type StoredText } from '../../collector/core/api.js';
import { BrokenCircuitError, PersistedBreaker, SameIncidentError, STATE_VALUES } from './breaker.js';
import { compressionOf, parseEndpoint, type GelfConfig } from './config.js';
import { HttpTransport } from './http.js';
import { encodeBatch } from './batch-encoder.js';
import { EncoderThread } from './encoder-thread.js';
import type { SerializerOptions } from './serializer.js';
import { TcpTransport } from './tcp.js';
import { tlsOptions } from './tls-options.js';
import { UnconfirmedError, type Encoded, type Transport } from './transport.js';
import { UdpTransport } from './udp.js';

/** Builds the transport the endpoint names. */
export function createTransport(config: GelfConfig): Transport {
  const endpoint = parseEndpoint(config.endpoint);
  const { host, port } = endpoint;
  switch (endpoint.scheme) {
    case 'tcp':
    case 'tls':
      return new TcpTransport({
        host,
        port,
        tls: endpoint.scheme === 'tls' ? tlsOptions(config.tls, host) : undefined,
        connectTimeoutMs: config.connect_timeout,
        writeTimeoutMs: config.write_timeout,
        keepaliveMs: config.keepalive,
        confirmWindowMs: config.confirm_window,
      });
    case 'udp':
      return new UdpTransport({ host, port, chunkSize: config.udp.chunk_size, compression: compressionOf(config) });
    case 'http':
    case 'https':
      return new HttpTransport({
        host,
        port,
        path: endpoint.path,
        tls: endpoint.scheme === 'https' ? tlsOptions(config.tls, host) : undefined,
        gzip: compressionOf(config) === 'gzip',
        bulk: config.http.bulk,
        maxBodyBytes: config.http.max_body_size,
        headers: config.http.headers,
        maxInFlight: config.http.max_in_flight,
        connectTimeoutMs: config.connect_timeout,
        requestTimeoutMs: config.write_timeout,
        keepaliveMs: config.keepalive,
      });
  }
}

/** TCP or TLS: the transports whose wire form is the JSON text joined into one frame. */
function isStream(config: GelfConfig): boolean {
  const scheme = parseEndpoint(config.endpoint).scheme;
  return scheme === 'tcp' || scheme === 'tls';
}

/** A batch encoded for the wire; `wire` is dropped once handed to the transport. */
interface Outgoing {
  wire: Encoded[] | undefined;
  count: number;
  bytes: number;
  rejected: { id: number; reason: string }[];
  ids: number[];
}

/** How long the start-up reachability check waits for a TCP connection. */
const STARTUP_CHECK_TIMEOUT_MS = 2000;
/** Window over which the throughput gauge is measured. */
const THROUGHPUT_WINDOW_MS = 10_000;

/** Ids remembered as possibly delivered; past this the oldest are forgotten (only the metric suffers). */
const MAX_POSSIBLY_DELIVERED = 100_000;

export class GelfExporter implements Exporter {
  readonly batchSize: number;
  /** TCP/TLS: batches whose confirmation windows run at once (see tcp.ts); others send one at a time. */
  readonly maxBatchesInFlight: number;
  private transport: Transport | undefined;
  /** TCP/TLS: the thread that serializes batches (see encoder-thread.ts); others serialize inline. */
  private encoder: EncoderThread | undefined;
  private breaker: PersistedBreaker | undefined;
  private readonly serializerOptions: SerializerOptions;
  private readonly inFlight = new Set<Promise<ExportResult>>();
  /** Aborted at each counted send failure: the batches in flight behind it then fail with it, uncounted. */
  private incident = new AbortController();
  private stopping = false;
  /** Recent sends as [time, records], for the throughput gauge. */
  private recent: [number, number][] = [];
  /** Records of batches that failed after they may have reached the receiver: a re-send may duplicate them. */
  private readonly possiblyDelivered = new Set<number>();
  private readonly metrics;

  constructor(
    private readonly config: GelfConfig,
    private readonly context: ExporterContext,
  ) {
    this.batchSize = config.batch_size;
    this.maxBatchesInFlight = isStream(config) ? config.max_batches_in_flight : 1;
    this.serializerOptions = {
      defaultHost: hostname(),
      maxFieldBytes: config.max_field_bytes,
      maxFullMessageBytes: config.max_full_message_bytes,
    };
    const m = context.metrics;
    this.metrics = {
      sentBytes: m.counter('bitville_gelf_sent_bytes', 'Bytes of GELF messages handed to the transport and confirmed sent.'),
      resent: m.counter(
        'bitville_gelf_resent_records',
        'Records sent again after a send that may have reached the receiver failed (TCP connection ended within the confirmation window, HTTP batch partly acknowledged): possible duplicates, spotted by _record_id.',
      ),
      failedSends: m.counter('bitville_gelf_send_failures', 'Batches whose send failed (each counts toward opening the breaker).'),
      rejected: m.counter('bitville_gelf_serialization_failures', 'Records that cannot be written as valid GELF; logged and dropped.'),
      transitions: m.counter('bitville_gelf_circuit_breaker_transitions', 'Circuit breaker state changes.'),
      sendDuration: m.histogram('bitville_gelf_batch_send_duration_seconds', 'Time to send one batch.', [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]),
    };
    m.gauge('bitville_gelf_circuit_breaker_state', 'Circuit breaker state: 0 closed, 1 open, 2 half-open.', () =>
      this.breaker ? STATE_VALUES[this.breaker.state] : 0,
    );
    m.gauge('bitville_gelf_throughput_records_per_second', `Records sent per second over the last ${THROUGHPUT_WINDOW_MS / 1000} s (replay speed during a replay).`, () =>
      this.throughput(),
    );
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.transport = createTransport(this.config);
    if (isStream(this.config)) {
      this.encoder = new EncoderThread({ options: this.serializerOptions, maxMessageBytes: this.transport.maxMessageBytes });
    }
    this.breaker = await PersistedBreaker.create({
      state: this.context.state,
      failureThreshold: this.config.circuit_breaker.failure_threshold,
      resetTimeoutMs: this.config.circuit_breaker.reset_timeout,
      logger: this.context.logger,
      onTransition: () => this.metrics.transitions.inc(),
    });
    if (this.config.startup_check && this.breaker.state === 'closed') void this.checkReachable();
  }

  /** One TCP connection, opened and closed at once: is anything listening at the endpoint? */
  private async checkReachable(): Promise<void> {
    const { scheme, host, port } = parseEndpoint(this.config.endpoint);
    const endpoint = this.config.endpoint;
    if (scheme === 'udp') {
      this.context.logger.info({ endpoint }, 'GELF over UDP: nothing answers, so reachability cannot be checked');
      return;
    }
    const error = await new Promise<Error | undefined>((resolve) => {
      const socket = connect({ host, port, timeout: STARTUP_CHECK_TIMEOUT_MS });
      socket.once('connect', () => (socket.destroy(), resolve(undefined)));
      socket.once('timeout', () => (socket.destroy(), resolve(new Error(`no answer within ${STARTUP_CHECK_TIMEOUT_MS} ms`))));
      socket.once('error', (err) => resolve(err));
    });
    if (this.stopping) return;
    if (error) this.context.logger.warn({ endpoint, err: error.message }, 'GELF endpoint unreachable: records wait in the store until it answers');
    else this.context.logger.info({ endpoint }, 'GELF endpoint reachable');
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    // The batches in flight either finish (and are reported) or fail by their write timeout
    // or confirmation window; nothing is reported as sent that was not.
    await Promise.allSettled([...this.inFlight]);
    await this.breaker?.close(); // the last transition is saved before the store closes
    await this.transport?.close();
    await this.encoder?.close();
    this.transport = undefined;
    this.encoder = undefined;
    this.breaker = undefined;
  }

  export(batch: StoredRecord[]): Promise<ExportResult> {
    return this.exportTexts(batch.map(textOf));
  }

  exportTexts(batch: StoredText[]): Promise<ExportResult> {
    const run = this.exportBatch(batch);
    this.inFlight.add(run);
    return run.finally(() => this.inFlight.delete(run));
  }

  /**
   * Not async: the batch is encoded here (or handed to the encoder thread) and only its ids go
   * on to the send. A suspended async function keeps its arguments alive, and batches held
   * through their confirmation windows filled the heap.
   */
  private exportBatch(batch: StoredText[]): Promise<ExportResult> {
    const transport = this.transport;
    const breaker = this.breaker;
    if (this.stopping || !transport || !breaker) {
      return Promise.resolve({ kind: 'retryable', error: new Error('the gelf exporter is not running') });
    }
    const incident = this.incident.signal;
    // While open: no send attempt at all; the batch waits in the store.
    const wait = breaker.msUntilHalfOpen();
    if (wait > 0) return Promise.resolve({ kind: 'retryable', error: new BrokenCircuitError(), retryAfterMs: wait });

    const ids = batch.map((r) => r.id);
    let encoding: Promise<Outgoing>;
    if (this.encoder) {
      encoding = this.encoder.encode(batch).then(({ frame, count, bytes, rejected }) => ({
        // The batch's frames as one buffer: TCP writes a buffer as it is.
        wire: count > 0 ? [Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)] : [],
        count,
        bytes,
        rejected,
        ids,
      }));
    } else {
      const { messages, bytes, rejected } = encodeBatch(batch, this.serializerOptions, transport.maxMessageBytes);
      encoding = Promise.resolve({ wire: messages.map((json) => transport.encode(json)), count: messages.length, bytes, rejected, ids });
    }
    return this.sendEncoded(transport, breaker, encoding, incident);
  }

  private async sendEncoded(transport: Transport, breaker: PersistedBreaker, encoding: Promise<Outgoing>, incident: AbortSignal): Promise<ExportResult> {
    let encoded: Outgoing;
    try {
      encoded = await encoding;
    } catch (err) {
      return { kind: 'retryable', error: err as Error };
    }
    const { count, bytes, ids } = encoded;
    const rejected: { id: number; reason: string }[] = [];
    for (const { id, reason } of encoded.rejected) this.reject(rejected, id, reason);
    if (count === 0) return { kind: 'success', rejected };
    let resent = 0;
    for (const id of ids) if (this.possiblyDelivered.has(id)) resent++;
    const started = performance.now();
    try {
      await breaker.execute(() => {
        const wire = encoded.wire!;
        encoded.wire = undefined; // the transport holds what it still needs
        return this.send(transport, wire, incident);
      });
    } catch (thrown) {
      const err = thrown instanceof SameIncidentError ? (thrown.cause as Error) : (thrown as Error);
      if (!(thrown instanceof BrokenCircuitError) && !(thrown instanceof SameIncidentError)) this.metrics.failedSends.inc();
      if (err instanceof UnconfirmedError) this.notePossiblyDelivered(ids);
      const untilProbe = breaker.msUntilHalfOpen();
      return {
        kind: 'retryable',
        error: err,
        retryAfterMs: untilProbe > 0 ? untilProbe : this.config.retry_delay,
      };
    }
    this.metrics.sendDuration.observe((performance.now() - started) / 1000);
    this.metrics.sentBytes.inc(bytes);
    if (resent > 0) {
      this.metrics.resent.inc(resent);
      for (const id of ids) this.possiblyDelivered.delete(id);
    }
    this.noteSent(count);
    return rejected.length > 0 ? { kind: 'success', rejected } : { kind: 'success' };
  }

  /** One send; its failure is counted by the breaker unless an earlier batch in flight already failed. */
  private async send(transport: Transport, wire: Encoded[], incident: AbortSignal): Promise<void> {
    try {
      await transport.send(wire, incident);
    } catch (err) {
      // Half-open lets one probe through; its failure always counts (and an uncounted error
      // there would close the breaker).
      if (incident.aborted && this.breaker?.state !== 'half-open') throw new SameIncidentError(err);
      // Its own reason, so that batches stopped before writing are not taken as possibly delivered.
      this.incident.abort(new Error(`an earlier batch in flight failed: ${(err as Error).message}`));
      this.incident = new AbortController();
      throw err;
    }
  }

  /** Logs, counts and reports a record that can never be sent. */
  private reject(rejected: { id: number; reason: string }[], id: number, reason: string): void {
    rejected.push({ id, reason });
    this.metrics.rejected.inc();
    this.context.logger.warn({ record_id: id, reason }, 'record cannot be sent as GELF; dropped');
  }

  private notePossiblyDelivered(ids: number[]): void {
    if (this.possiblyDelivered.size + ids.length > MAX_POSSIBLY_DELIVERED) this.possiblyDelivered.clear();
    for (const id of ids) this.possiblyDelivered.add(id);
  }

  private noteSent(records: number): void {
    const now = Date.now();
    this.recent.push([now, records]);
    while (this.recent.length > 0 && this.recent[0]![0] < now - THROUGHPUT_WINDOW_MS) this.recent.shift();
  }

  private throughput(): number {
    const since = Date.now() - THROUGHPUT_WINDOW_MS;
    let records = 0;
    for (const [t, n] of this.recent) if (t >= since) records += n;
    return records / (THROUGHPUT_WINDOW_MS / 1000);
  }
}
