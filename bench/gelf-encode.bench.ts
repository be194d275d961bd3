// The GELF encoder's hot path on its own, one thread: stored texts in, one TCP frame buffer per
// 500-record batch out (parse, map, serialize, frame), as the encoder thread runs it (encodeFrame). Beside it,
// in the same run: JSON.parse of the same texts alone (the least any encoder does), and the
// framing the encoder used before (messages joined, then TextEncoder), to keep that choice
// measured. Per record CPU, medians of several passes.
import { fileURLToPath } from 'node:url';
import type { StoredText } from '../collector/core/model.js';
import { encodeBatch, encodeFrame } from '../plugins/gelf/batch-encoder.js';
import { TCP_MAX_MESSAGE_BYTES } from '../plugins/gelf/tcp.js';
import { record } from './gelf-replay.bench.js';
import { median } from './util.js';

const RECORDS = 50_000;
const BATCH = 500;
const PASSES = 9;

export default async function gelfEncodeBench(): Promise<void> {
  const texts: StoredText[] = Array.from({ length: RECORDS }, (_, i) => ({ id: i + 1, receivedAtMs: 1_764_064_800_000 + i, kind: 'span', json: JSON.stringify(record(i)) }));
  const options = { defaultHost: 'bench', maxFieldBytes: 32_000, maxFullMessageBytes: 256 * 1024 };
  const batches = Array.from({ length: RECORDS / BATCH }, (_, b) => texts.slice(b * BATCH, (b + 1) * BATCH));
  /** µs of CPU per record for one pass of `work` over every batch. */
  const perRecord = (work: (batch: StoredText[]) => unknown) => {
    const cpu0 = process.cpuUsage();
    for (const batch of batches) work(batch);
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / RECORDS;
  };
  const encoder = new TextEncoder();
  const parse: number[] = [];
  const encode: number[] = [];
  const joined: number[] = [];
  let bytes = 0;
  for (let pass = 0; pass < PASSES; pass++) {
    parse.push(perRecord((batch) => batch.map((t) => JSON.parse(t.json))));
    encode.push(perRecord((batch) => (bytes = encodeFrame(batch, options, TCP_MAX_MESSAGE_BYTES).frame.length)));
    joined.push(perRecord((batch) => encoder.encode(encodeBatch(batch, options, TCP_MAX_MESSAGE_BYTES).messages.join('\0') + '\0')));
  }
  const p = median(parse);
  const e = median(encode);
  const j = median(joined);
  console.log(`gelf-encode: ${RECORDS.toLocaleString('en-US')} stored texts (${Math.round(texts[0]!.json.length)} B each, ${Math.round(bytes / BATCH)} B per framed message), batches of ${BATCH}, medians of ${PASSES} passes, CPU per record`);
  console.log(`  encode (parse + map + serialize, each message written into one buffer as it is made): ${e.toFixed(2)} µs  (${Math.round(1e6 / e).toLocaleString('en-US')} records/s on one core)`);
  console.log(`  JSON.parse alone: ${p.toFixed(2)} µs  (encode is ${(e / p).toFixed(1)}x)`);
  console.log(`  the same, framed by join + TextEncoder: ${j.toFixed(2)} µs  (${(j / e).toFixed(2)}x the framing into one buffer)`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await gelfEncodeBench();
