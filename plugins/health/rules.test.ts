// The health rules fed with samples as the collector's /metrics would give them: each alert
// fires once after its condition has held for its time, and resolves once when it ends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSamples } from './exposition.js';
import { HealthRules, type RuleSettings } from './rules.js';

const settings: RuleSettings = { breakerOpenFor: 1000, queueGrowingFor: 3000, storeFullRatio: 0.9, dropRatio: 0.01, dropWindow: 5000, agentSilence: 2000 };
const none = new Map<string, number>();
const names = (ts: { state: string; alert: { name: string; subject: string } }[]) => ts.map((t) => `${t.state} ${t.alert.name} ${t.alert.subject}`);

test('gelf_breaker_open fires after breaker_open_for, per exporter, and resolves when closed', () => {
  const rules = new HealthRules(settings);
  const open = parseSamples('# TYPE bitville_gelf_circuit_breaker_state gauge\nbitville_gelf_circuit_breaker_state{exporter="gelf/eu"} 1\nbitville_gelf_circuit_breaker_state{exporter="gelf"} 0\n');
  assert.deepEqual(rules.evaluate(0, open, none), []);
  assert.deepEqual(rules.evaluate(999, open, none), [], 'not before the threshold');
  assert.deepEqual(names(rules.evaluate(1000, open, none)), ['firing gelf_breaker_open gelf/eu']);
  assert.deepEqual(rules.evaluate(1500, undefined, none), [], 'a failed scrape keeps the state');
  assert.deepEqual(rules.evaluate(2000, open, none), [], 'fires once');
  const closed = parseSamples('bitville_gelf_circuit_breaker_state{exporter="gelf/eu"} 0\n');
  assert.deepEqual(names(rules.evaluate(3000, closed, none)), ['resolved gelf_breaker_open gelf/eu']);
  assert.deepEqual(rules.active(), []);
});

test('store_unwritable and store_nearly_full fire at once and resolve', () => {
  const rules = new HealthRules(settings);
  const bad = parseSamples('bitville_store_writable{store="sqlite"} 0\nbitville_store_size_bytes{store="sqlite"} 950\nbitville_store_max_size_bytes{store="sqlite"} 1000\n');
  const transitions = rules.evaluate(0, bad, none);
  assert.deepEqual(names(transitions).sort(), ['firing store_nearly_full store', 'firing store_unwritable store']);
  assert.equal(transitions.find((t) => t.alert.name === 'store_nearly_full')!.alert.value, 0.95);
  const good = parseSamples('bitville_store_writable{store="sqlite"} 1\nbitville_store_size_bytes{store="sqlite"} 100\nbitville_store_max_size_bytes{store="sqlite"} 1000\n');
  assert.deepEqual(names(rules.evaluate(1, good, none)).sort(), ['resolved store_nearly_full store', 'resolved store_unwritable store']);
});

test('records_dropped compares what was lost with what was received over drop_window', () => {
  const rules = new HealthRules(settings);
  const at = (accepted: number, refused: number, dropped: number) =>
    parseSamples(`otelcol_receiver_accepted_spans{receiver="otlp"} ${accepted}\notelcol_receiver_refused_spans{receiver="otlp"} ${refused}\nbitville_exporter_dropped_records{exporter="gelf"} ${dropped}\n`);
  assert.deepEqual(rules.evaluate(0, at(0, 0, 0), none), []);
  assert.deepEqual(rules.evaluate(1000, at(1000, 5, 0), none), [], '5 of 1005 is under 1%');
  assert.deepEqual(names(rules.evaluate(2000, at(2000, 5, 30), none)), ['firing records_dropped collector']);
  // Once the losses leave the window, it resolves.
  assert.deepEqual(rules.evaluate(6000, at(3000, 5, 30), none), []);
  assert.deepEqual(names(rules.evaluate(8000, at(4000, 5, 30), none)), ['resolved records_dropped collector']);
});

test('export_queue_growing needs a backlog that grew and never shrank for queue_growing_for', () => {
  const rules = new HealthRules(settings);
  const q = (n: number) => parseSamples(`otelcol_exporter_queue_size{exporter="gelf"} ${n}\n`);
  assert.deepEqual(rules.evaluate(0, q(10), none), []);
  assert.deepEqual(rules.evaluate(2000, q(20), none), []);
  assert.deepEqual(rules.evaluate(2500, q(5), none), [], 'shrinking starts the run again');
  assert.deepEqual(rules.evaluate(5000, q(8), none), []);
  assert.deepEqual(names(rules.evaluate(5500, q(9), none)), ['firing export_queue_growing gelf']);
  assert.deepEqual(names(rules.evaluate(6000, q(3), none)), ['resolved export_queue_growing gelf']);
});

test('agent_silent fires for an agent whose last heartbeat is older than agent_silence', () => {
  const rules = new HealthRules(settings);
  const beats = new Map([['php_agent/shop@web1', 0], ['pg_agent/shop@db1', 0]]);
  assert.deepEqual(rules.evaluate(2000, [], beats), []);
  beats.set('pg_agent/shop@db1', 1500);
  assert.deepEqual(names(rules.evaluate(2001, [], beats)), ['firing agent_silent php_agent/shop@web1']);
  beats.set('php_agent/shop@web1', 2500);
  assert.deepEqual(names(rules.evaluate(3000, [], beats)), ['resolved agent_silent php_agent/shop@web1']);
});
