import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { DEFAULT_DYNAMIC_CONFIG_FILE, sampleDynamicConfigSchema } from './sample.dynamic-config';

/** The file `npm start` and a pod read, as committed. */
const SHIPPED = parse(readFileSync(join(__dirname, '../../..', DEFAULT_DYNAMIC_CONFIG_FILE), 'utf8')) as unknown;

function problemsOf(document: unknown): string[] {
  const result = sampleDynamicConfigSchema.safeParse(document);
  if (result.success) throw new Error('expected the document to be rejected');
  return result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

describe('sampleDynamicConfigSchema', () => {
  it('accepts the shipped config/dynamic.yaml: every switch off, a canary section', () => {
    expect(sampleDynamicConfigSchema.parse(SHIPPED)).toEqual({
      degrade: { orders_list: false, retry_after_seconds: 30 },
      canary: { rules: { header: { 'x-env': 'canary' }, percent: 0 } },
    });
  });

  it('fills in the switches left out: off, Retry-After 30 s', () => {
    expect(sampleDynamicConfigSchema.parse({})).toEqual({ degrade: { orders_list: false, retry_after_seconds: 30 } });
  });

  it('rejects a misspelt key instead of ignoring it', () => {
    expect(problemsOf({ degrade: { 'orders-list': true } })).toEqual([expect.stringMatching(/^degrade: Unrecognized key: "orders-list"/)]);
    expect(problemsOf({ degarde: {} })).toEqual([expect.stringMatching(/^: Unrecognized key: "degarde"/)]);
  });

  it('says what the file must hold when it is not a map', () => {
    expect(problemsOf('degrade')).toEqual([': must be a map with the keys degrade and canary']);
    expect(problemsOf({ degrade: true })).toEqual(['degrade: must be a map of degrade switches']);
  });

  it('rejects a switch that is not a boolean and a Retry-After out of range', () => {
    expect(problemsOf({ degrade: { orders_list: 'yes', retry_after_seconds: 0 } })).toEqual([
      expect.stringMatching(/^degrade\.orders_list: /),
      expect.stringMatching(/^degrade\.retry_after_seconds: /),
    ]);
  });

  it('accepts any map as the canary section until the canary module brings its schema', () => {
    expect(sampleDynamicConfigSchema.parse({ canary: { anything: [1, 2] } }).canary).toEqual({ anything: [1, 2] });
    expect(problemsOf({ canary: 'on' })).toEqual(['canary: must be a map']);
  });
});
