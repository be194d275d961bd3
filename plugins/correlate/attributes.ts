// The attribute names of a request summary, defined once: the join writes them, the lookups,
// the web page and the GELF mapping read them.
export const SUMMARY = {
  correlationId: 'bitville.correlation_id',
  requestSpanId: 'bitville.request_span_id',
  dbTimeMs: 'bitville.db_time_ms',
  /** The application's statements inside the request's window (housekeeping and unattributed ones excluded). */
  dbQueryCount: 'bitville.db_query_count',
  /** Driver and pooler statements (DEALLOCATE, RESET ALL, DISCARD, SET application_name) inside the window. */
  dbHousekeepingCount: 'bitville.db_housekeeping_count',
  /** DB spans carrying this request's id but outside its time window (a stale persistent-connection tag): not this request's. */
  dbUnattributedCount: 'bitville.db_unattributed_count',
  /**
   * Of the counted statements, those that carry another request's id (a persistent connection
   * still tagged by an earlier request of the same PHP worker) but ran on this request's worker
   * while it was running there.
   */
  dbWorkerAttributedCount: 'bitville.db_worker_attributed_count',
  slowestQueries: 'bitville.slowest_queries',
  nPlusOne: 'bitville.n_plus_one',
  nPlusOneQuery: 'bitville.n_plus_one_query',
  nPlusOneCount: 'bitville.n_plus_one_count',
  repeatedQueries: 'bitville.repeated_queries',
  id: 'bitville.summary.id',
  revision: 'bitville.summary.revision',
  lastRecordId: 'bitville.summary.last_record_id',
  supersedes: 'bitville.summary.supersedes',
} as const;

/** The request's own attributes (OpenTelemetry semantic conventions) a summary carries over. */
export const HTTP = {
  method: 'http.request.method',
  urlFull: 'url.full',
  urlPath: 'url.path',
  statusCode: 'http.response.status_code',
  errorType: 'error.type',
  route: 'http.route',
} as const;
