// Runs every benchmark in bench/ (`*.bench.js` once compiled), or those whose name contains
// one of the arguments: `npm run bench -- ingest`. Arguments starting with `--` are options
// for the benchmarks themselves (`npm run bench -- accuracy --long`).
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

for (const file of files) {
  console.log(`\n=== ${file.replace(/\.bench\.js$/, '')} ===`);
  const mod = await import(pathToFileURL(`${here}/${file}`).href);
  await mod.default();
}
