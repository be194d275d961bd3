// Compiles the .proto files in this folder to static protobufjs code (proto/generated/otlp.js
// and its .d.ts), then places a copy where the compiled TypeScript imports it (<out>/proto/generated,
// <out> being the first argument, dist by default).
// Generated files are build output: never edit them, change the .proto and rebuild.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const bin = (name) => join(root, 'node_modules', '.bin', name);
const out = join(here, 'generated');
mkdirSync(out, { recursive: true });

const protos = [
  'opentelemetry/proto/collector/trace/v1/trace_service.proto',
  'opentelemetry/proto/collector/logs/v1/logs_service.proto',
  'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
  'google/rpc/status.proto',
];
const js = join(out, 'otlp.js');
execFileSync(bin('pbjs'), ['-t', 'static-module', '-w', 'es6', '--no-verify', '--no-delimited',
  '--no-typeurl', '-p', here, '-o', js, ...protos.map((p) => join(here, p))], { stdio: 'inherit' });
execFileSync(bin('pbts'), ['-o', join(out, 'otlp.d.ts'), js], { stdio: 'inherit' });

const distOut = join(root, process.argv[2] ?? 'dist', 'proto', 'generated');
mkdirSync(distOut, { recursive: true });
copyFileSync(js, join(distOut, 'otlp.js'));
