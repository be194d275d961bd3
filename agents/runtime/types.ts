// The contract between an agent's capture code and the shared agent runtime
// (buffering, batching, OTLP export, circuit breaker, metrics), which the PHP agent and the
// Postgres agent both use. Capture code produces AgentSpan and AgentLog values and hands
// them to the runtime; it never deals with transport.

export type AgentAttributeValue = string | number | boolean | string[] | number[];

export interface AgentSpan {
  /** 32 lowercase hex. */
  traceId: string;
  /** 16 lowercase hex. */
  spanId: string;
  /** 16 lowercase hex, or '' for a root span. */
  parentSpanId: string;
  name: string;
  kind: 'server' | 'client' | 'internal';
  /** Nanoseconds since the epoch as a decimal string. */
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Record<string, AgentAttributeValue>;
  status?: { code: 'unset' | 'ok' | 'error'; message?: string };
  /** Resource attributes particular to this event (merged over the runtime's resource). */
  resource?: Record<string, AgentAttributeValue>;
}

export interface AgentLog {
  /** Nanoseconds since the epoch as a decimal string. */
  timeUnixNano: string;
  /** OTLP severity number (9 = INFO). */
  severityNumber: number;
  severityText: string;
  body: string;
  attributes: Record<string, AgentAttributeValue>;
  traceId?: string;
  spanId?: string;
  resource?: Record<string, AgentAttributeValue>;
  /** OTLP LogRecord event name (`bitville.heartbeat`). */
  eventName?: string;
}

export type AgentEvent = { type: 'span'; span: AgentSpan } | { type: 'log'; log: AgentLog };

/** What capture code sees of the runtime. */
export interface AgentSink {
  /** Never blocks and never throws: the event is buffered (memory, then disk) or, when both are full, the oldest is dropped and counted. */
  submit(event: AgentEvent): void;
}
