// A finished query becomes one CLIENT span with the OpenTelemetry database attributes
// (db.system.name, db.namespace, db.query.text, db.operation.name, db.collection.name,
// server.address, server.port) plus what only PostgreSQL and Bitville know.
import type { AgentSpan } from '../runtime/types.js';
import { newSpanId, parseAppName, parseTraceParent, traceIdFor } from './correlation.js';
import type { QueryObservation } from './observation.js';
import { analyzeSql } from './sql-text.js';

export interface SpanContext {
  serverAddress: string;
  serverPort: number;
  redactLiterals: boolean;
  sqlcommenter: boolean;
}

/** The span for a query, or undefined when it carries neither a correlation id nor a usable traceparent. */
export function spanFor(obs: QueryObservation, ctx: SpanContext): AgentSpan | undefined {
  const sql = analyzeSql(obs.query);
  const traceParent = ctx.sqlcommenter ? parseTraceParent(sql.comment?.fields.traceparent) : undefined;
  const tag = parseAppName(obs.applicationName);
  const correlationId = tag?.correlationId ?? traceParent?.traceId;
  if (!correlationId) return undefined;
  const traceId = traceIdFor(correlationId);
  // The exact parent only when the comment belongs to the same trace as the correlation id.
  const parentSpanId = traceParent && traceParent.traceId === traceId ? traceParent.parentSpanId : '';

  const attributes: AgentSpan['attributes'] = {
    'db.system.name': 'postgresql',
    'db.query.text': ctx.redactLiterals ? sql.redacted : sql.raw,
    'server.address': ctx.serverAddress,
    'server.port': ctx.serverPort,
    'postgresql.pid': obs.pid,
    'bitville.correlation_id': correlationId,
    'bitville.db.capture': obs.source,
    'bitville.db.end_precision': obs.endPrecision,
    // How far the end may be off, in ms (the collector's join allows for it).
    'bitville.end_uncertainty_ms': Number(obs.endUncertaintyUs) / 1000,
    'bitville.db.query_truncated': obs.truncated,
  };
  if (obs.database) attributes['db.namespace'] = obs.database;
  if (sql.operation) attributes['db.operation.name'] = sql.operation;
  if (sql.collection) attributes['db.collection.name'] = sql.collection;
  if (obs.queryId) attributes['postgresql.query_id'] = obs.queryId;
  // Which connection ran it: a persistent connection outlives the request whose tag it carries.
  if (obs.clientAddress) attributes['client.address'] = obs.clientAddress;
  if (obs.clientPort) attributes['client.port'] = obs.clientPort;
  if (obs.backendStartUs !== undefined) attributes['postgresql.backend_start'] = new Date(Number(obs.backendStartUs / 1000n)).toISOString();
  // The PHP process whose tag the connection carries: on a persistent connection, the only
  // process that ever uses it, so the collector can tell which of its requests ran the statement.
  if (tag?.worker) {
    attributes['bitville.opener.pid'] = tag.worker.pid;
    attributes['bitville.opener.host_key'] = tag.worker.hostKey;
  }
  if (obs.waitEvents.length > 0) attributes['postgresql.wait_events'] = obs.waitEvents;

  const target = sql.collection ?? obs.database ?? undefined;
  const name = sql.operation ? (target ? `${sql.operation} ${target}` : sql.operation) : 'postgresql';
  return {
    traceId,
    spanId: newSpanId(),
    parentSpanId,
    name,
    kind: 'client',
    startTimeUnixNano: (obs.startUs * 1000n).toString(),
    endTimeUnixNano: (obs.endUs * 1000n).toString(),
    attributes,
    status: obs.failed ? { code: 'error', message: 'the statement failed (its transaction was left aborted)' } : { code: 'unset' },
  };
}
