// The filter processor: golden cases, the condition language's rules, and config errors that
// name the key and the column.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildProcessor, log, runGolden, span } from '../../test/processors.fixture.js';
import { compileCondition, ConditionError } from './condition.js';

test('filter: spans, span events and logs (golden)', (t) => runGolden(t, join('plugins', 'filter', 'testdata', 'filter.golden.yaml')));

test('conditions follow OTTL: nil, mixed types, precedence, escapes', () => {
  const s = span({ name: 'a "b"', spanKind: 2, attributes: { n: 5, s: '10', flag: true } });
  const cases: [string, boolean][] = [
    ['attributes["missing"] == nil', true],
    ['attributes["n"] != nil', true],
    ['attributes["s"] == 10', false], // a string is never equal to a number
    ['attributes["s"] > 9', false], // nor ordered against one
    ['attributes["n"] >= 5 and attributes["n"] <= 5.0', true],
    ['attributes["flag"] == true', true],
    ['true or false and false', true], // and binds tighter than or
    ['(true or false) and false', false],
    ['not not true', true],
    ['name == "a \\"b\\""', true],
    ['kind == SPAN_KIND_SERVER', true],
    ['IsMatch(attributes["n"], "^5$")', true],
    ['duration_ms > -1', true],
  ];
  for (const [text, want] of cases) assert.equal(compileCondition(text, 'span')({ record: s }), want, text);
  assert.equal(compileCondition('severity_number >= SEVERITY_NUMBER_ERROR', 'log_record')({ record: log({ severityNumber: 17 }) }), true);
});

test('parse errors give the column', () => {
  const cases: [string, RegExp][] = [
    ['name == ', /^column 9: expected a path, a value or a function, found the end/],
    ['attributes[http.route] == "x"', /^column 12: an attribute key is a string in quotes/],
    ['duration == 5', /^column 1: unknown path "duration" in the span context/],
    ['name = "x"', /^column 6: unexpected character "="/],
    ['name == "x" "y"', /^column 13: unexpected "y"/],
    ['name =~ "("', /^column 9: not a valid regular expression/],
    ['Len(name) > 3', /^column 1: unknown function "Len"/],
    ['name', /^column 5: expected a comparison/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => compileCondition(text, 'span'), (e: unknown) => e instanceof ConditionError && message.test(e.message), text);
  }
});

test('config errors name the key path and the column; metrics is refused clearly', async (t) => {
  const err = await buildProcessor(
    t,
    { filter: { traces: { span: ['name == "ok"', 'kind === 2'] }, logs: { log_record: ['body =~ 5'] }, metrics: { metric: ['true'] } } },
    'filter',
  ).then(
    () => assert.fail('should not load'),
    (e: Error) => e.message,
  );
  assert.match(err, /processors\.filter\.traces\.span\[1\]: column 8: unexpected character "=" in 'kind === 2'/);
  assert.match(err, /processors\.filter\.logs\.log_record\[0\]: column 9: =~ needs a regular expression in quotes/);
  assert.match(err, /processors\.filter\.metrics: this collector has no metrics pipeline/);
});

test('drops are counted', async (t) => {
  const h = await buildProcessor(t, { filter: { traces: { span: ['name == "x"'] } } }, 'filter');
  const out = await h.processor.process([span({ name: 'x' }), span({ name: 'y' }), span({ name: 'x' })], 'traces');
  assert.deepEqual(out.map((r) => (r as { name: string }).name), ['y']);
  assert.equal(await h.metric('bitville_filter_dropped_total'), 2);
});
