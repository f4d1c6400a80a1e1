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
  it('accepts the shipped config/dynamic.yaml: every switch off, the x-env: canary header rule', () => {
    expect(sampleDynamicConfigSchema.parse(SHIPPED)).toEqual({
      degrade: { orders_list: false, retry_after_seconds: 30 },
      canary: { header: { 'x-env': 'canary' }, flagKey: 'canary' },
    });
  });

  it('fills in what is left out: switches off, Retry-After 30 s, no canary rule', () => {
    expect(sampleDynamicConfigSchema.parse({})).toEqual({
      degrade: { orders_list: false, retry_after_seconds: 30 },
      canary: { flagKey: 'canary' },
    });
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

  it('holds the canary rules, checked as the canary module checks them', () => {
    const rules = {
      header: { 'x-env': ['canary', 'beta'] },
      cookie: { tier: { regex: '^gold' } },
      percent: 2.5,
      stickyKey: 'header:x-user-id',
    };
    expect(sampleDynamicConfigSchema.parse({ canary: rules }).canary).toEqual({ ...rules, flagKey: 'canary' });
    expect(problemsOf({ canary: 'on' })).toEqual(['canary: must be shorthand rules or { flag }']);
    expect(problemsOf({ canary: { rules: { header: { 'x-env': 'canary' } } } })).toEqual([
      expect.stringMatching(/^canary\.rules: unknown option/),
    ]);
  });

  it('rejects a regex that does not compile and a percentage without a sticky key', () => {
    expect(problemsOf({ canary: { header: { 'x-env': { regex: '(' } } } })).toEqual([
      'canary.header.x-env.regex: regex does not compile as a JavaScript regular expression',
    ]);
    expect(problemsOf({ canary: { percent: 5 } })).toEqual(['canary.stickyKey: is required with percent: it keeps each user on one side']);
  });

  it("rejects what the sample's canary module would refuse: claims without a jwt option, a flag flagd-core cannot load", () => {
    expect(problemsOf({ canary: { claim: { plan: 'beta' } } })).toEqual([expect.stringMatching(/^canary: claims need the jwt option/)]);
    expect(problemsOf({ canary: { flag: { state: 'ENABLED', variants: { on: true }, defaultVariant: 'on' } } })).toEqual([
      expect.stringMatching(/^canary\.flag: variants must be "stable" and "canary"/),
    ]);
  });
});
