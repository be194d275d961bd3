// Resource attributes are shared by every record of one OTLP resource group (the decoder
// folds one object into each), so they are changed copy-on-write, once per distinct object in a
// batch: a hash action then never hashes twice, and the cost is per resource, not per record.
import type { Attributes, FlatRecord } from '../../collector/core/api.js';

export function mapResources(records: FlatRecord[], change: (copy: Attributes) => void): void {
  let last: Attributes | undefined;
  let lastOut: Attributes | undefined;
  let seen: Map<Attributes, Attributes> | undefined;
  for (const r of records) {
    const from = r.resource;
    // Fast path: consecutive records of one group share the object.
    if (from === last) {
      r.resource = lastOut!;
      continue;
    }
    seen ??= new Map();
    let out = seen.get(from);
    if (!out) {
      out = { ...from };
      change(out);
      seen.set(from, out);
    }
    last = from;
    lastOut = out;
    r.resource = out;
  }
}
