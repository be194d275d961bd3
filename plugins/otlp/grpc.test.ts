// The gRPC side of the otlp receiver on a real socket, with the pipeline held in the test's hand:
// the reply waits for the commit, and past the in-flight bound calls get RESOURCE_EXHAUSTED
// with a RetryInfo, then the receiver recovers. TLS is served when configured.
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { schemaHelpers, z } from '../../collector/core/api.js';
import type { FlatRecord, ReceiverContext, Signal } from '../../collector/core/api.js';
import { Telemetry } from '../../collector/core/telemetry.js';
import { opentelemetry } from '../../proto/generated/otlp.js';
import { tempDir } from '../../test/env.js';
import { grpcCall, grpcError, retryDelayMs } from '../../test/grpc.fixture.js';
import { factory } from './index.js';

const TRACES = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const body = Buffer.from(
  opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.encode({
    resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'held', startTimeUnixNano: 1, endTimeUnixNano: 2 }] }] }],
  }).finish(),
);

/** A receiver whose consume() resolves only when the test says the commit is done. */
async function receiverWithHeldCommits(t: TestContext, grpcConfig: Record<string, unknown>) {
  const commits: { records: FlatRecord[]; done: () => void }[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const logged: Record<string, any>[] = [];
  const ctx: ReceiverContext = {
    id: 'otlp',
    logger: pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line)) }),
    metrics: new Telemetry(pino({ level: 'silent' })).forComponent('receiver', 'otlp'),
    dataDir: tempDir(t),
    signals: ['traces'],
    state: { get: async () => undefined, set: async () => {}, onChange: () => () => {} },
    consumer: {
      consume: (_signal: Signal, records: FlatRecord[]) =>
        new Promise<void>((done) => {
          commits.push({ records, done });
          for (const w of waiters.filter((w) => commits.length >= w.n)) waiters.splice(waiters.indexOf(w), 1), w.resolve();
        }),
    },
  };
  const parsed = await factory.configSchema(z, schemaHelpers)['~standard'].validate({ protocols: { grpc: { endpoint: '127.0.0.1:0', ...grpcConfig } } });
  if ('issues' in parsed && parsed.issues) assert.fail(JSON.stringify(parsed.issues));
  const receiver = factory.create((parsed as { value: Parameters<typeof factory.create>[0] }).value, ctx);
  await receiver.start(new AbortController().signal);
  t.after(() => receiver.shutdown(AbortSignal.timeout(1000)));
  const port = logged.find((l) => l.msg === 'OTLP/gRPC receiver listening')!.port as number;
  /** Resolves once n calls have reached the commit. */
  const committing = (n: number) => (commits.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })));
  return { address: `127.0.0.1:${port}`, commits, committing };
}

test('the gRPC reply follows the commit; past the in-flight bound RESOURCE_EXHAUSTED with RetryInfo, then recovery', async (t) => {
  const r = await receiverWithHeldCommits(t, { max_concurrent_requests: 1, retry_after: '2s' });
  let replied = false;
  const first = grpcCall(r.address, TRACES, body, {}).then((reply) => ((replied = true), reply));
  await r.committing(1);
  assert.equal(r.commits[0]!.records.length, 1);

  const refused = await grpcError(r.address, TRACES, body, {});
  assert.equal(refused.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(retryDelayMs(refused), 2000);
  assert.equal(replied, false, 'no reply while the commit is pending');

  r.commits[0]!.done();
  assert.equal((await first).length, 0, 'an empty ExportTraceServiceResponse: everything accepted');
  const second = grpcCall(r.address, TRACES, body, {});
  await r.committing(2);
  r.commits[1]!.done();
  await second;
});

test('with TLS configured the gRPC receiver serves TLS only', async (t) => {
  const dir = tempDir(t);
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const r = await receiverWithHeldCommits(t, { tls: { cert_file: cert, key_file: key } });
  const call = grpcCall(r.address, TRACES, body, {}, grpc.credentials.createSsl(readFileSync(cert)));
  await r.committing(1);
  r.commits[0]!.done();
  await call;
  const plain = await grpcError(r.address, TRACES, body, {});
  assert.equal(plain.code, grpc.status.UNAVAILABLE, 'a plaintext client cannot talk to the TLS port');
});

test('protocols are enabled by naming them, as in the OpenTelemetry Collector; none named means HTTP', () => {
  const parse = (value: unknown) => {
    const result = factory.configSchema(z, schemaHelpers)['~standard'].validate(value) as { value?: any; issues?: unknown };
    assert.equal(result.issues, undefined, JSON.stringify(result.issues));
    return result.value.protocols;
  };
  const httpOnly = parse({});
  assert.equal(httpOnly.http.endpoint, '0.0.0.0:4318');
  assert.equal(httpOnly.grpc, undefined);
  const grpcOnly = parse({ protocols: { grpc: null } }); // `grpc:` with nothing under it, as YAML gives it
  assert.equal(grpcOnly.http, undefined);
  assert.equal(grpcOnly.grpc.endpoint, '0.0.0.0:4317');
  assert.equal(grpcOnly.grpc.max_recv_msg_size_mib, undefined, 'defaults to the HTTP body limit');
  const both = parse({ protocols: { http: null, grpc: { endpoint: '127.0.0.1:14317' } } });
  assert.deepEqual([both.http.endpoint, both.grpc.endpoint], ['0.0.0.0:4318', '127.0.0.1:14317']);
  const refused = factory.configSchema(z, schemaHelpers)['~standard'].validate({ protocols: { grpc: { keepalive: {} } } }) as { issues?: { path: PropertyKey[] }[] };
  assert.deepEqual(refused.issues?.[0]?.path, ['protocols', 'grpc']);
});
