#!/usr/bin/env node
// The `bitville` command as installed (package.json "bin"). It lives outside dist/ so it keeps
// its execute bit whatever the build does, and says plainly when dist/ is not there yet.
try {
  await import('../../dist/collector/app/cli.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('/dist/')) throw err;
  process.stderr.write('bitville: the compiled code (dist/) is missing or incomplete: run `npm run build` (or wait for the build in progress) and try again\n');
  process.exitCode = 1;
}
