// One catalogue of coded errors. Every code is documented in docs/errors.md (a test keeps the
// two in step). Each error is permanent or retryable, decided here once.

export const ErrorCodes = {
  BV_CONFIG_READ: { retryable: false, summary: 'The config file cannot be read or is not valid YAML.' },
  BV_CONFIG_INVALID: { retryable: false, summary: 'The config has one or more problems; each names file, key path and problem.' },
  BV_PLUGIN_LOAD: { retryable: false, summary: 'An outside plugin named in `plugins:` cannot be loaded or exports no valid factory.' },
  BV_START_FAILED: { retryable: false, summary: 'A component could not start (a port in use, a file it cannot open); the collector undoes what started and exits 1.' },
  BV_BAD_DATA: { retryable: false, summary: 'A payload is malformed (bad protobuf or JSON, an invalid id); the sender gets 400.' },
  BV_DECODER_FAILED: { retryable: false, summary: 'The OTLP decoder failed unexpectedly on a request (a bug, logged with its stack); the sender gets 400, since the same bytes would fail again.' },
  BV_REQUEST_TIMEOUT: { retryable: false, summary: 'A request\'s headers or body did not arrive within the receiver\'s read timeouts; the sender gets 408 and the connection is closed.' },
  BV_UNSUPPORTED_MEDIA_TYPE: { retryable: false, summary: 'The request content type or encoding is not supported; the sender gets 415.' },
  BV_PAYLOAD_TOO_LARGE: { retryable: false, summary: 'A body exceeds the size limit, compressed or decompressed; the sender gets 413.' },
  BV_UNAUTHORIZED: { retryable: false, summary: 'A bearer token is missing or wrong; the sender gets 401.' },
  BV_OVERLOADED: { retryable: true, summary: 'In-flight work is at its bound; the sender gets 503 with Retry-After.' },
  BV_STORE_FAILED: { retryable: true, summary: 'The store could not commit (disk full, locked); the sender gets 503 with Retry-After.' },
  BV_NO_PIPELINE: { retryable: false, summary: 'A signal arrived at a receiver that no pipeline of that signal uses; the sender gets 404.' },
  BV_PG_PRIVILEGES: { retryable: false, summary: 'The pg-agent role cannot see what it must (other sessions\' queries, the log settings); the message names the missing grant and the GRANT that fixes it.' },
  BV_PG_LOG_SOURCE: { retryable: false, summary: 'The pg-agent log source cannot be used as configured (no jsonlog/csvlog in log_destination, log directory unreadable).' },
  BV_BAD_FILTER: { retryable: false, summary: 'A request lookup filter (CLI option or query parameter) is invalid; the API answers 400.' },
  BV_STORE_MISSING: { retryable: false, summary: 'A lookup command finds no store at the configured storage path.' },
  BV_SHUTTING_DOWN: { retryable: true, summary: 'The collector is draining for shutdown; the sender gets 503 with Retry-After.' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class BitvilleError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BitvilleError';
    this.code = code;
    this.retryable = ErrorCodes[code].retryable;
  }
}

/**
 * What a Consumer rejects with. Receivers map it to their protocol's status in one place
 * (for OTLP/HTTP: permanent -> 400, retryable -> 503 with Retry-After).
 */
export class ConsumerError extends BitvilleError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ConsumerError';
  }
}
