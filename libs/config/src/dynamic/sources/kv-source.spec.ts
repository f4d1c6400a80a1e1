import { ConfigError, ConfigSourceError } from '../../config.errors';
import { documentFromEntries, KvDocumentRules, KvUpdateGate, loadOptional, updateFromSnapshot } from './kv-source';

const entries = (record: Record<string, string>) => Object.entries(record).map(([key, value]) => ({ key, value }));
const full = (key: string) => `/config/orders/${key}`;

describe('a prefix of keys as one document', () => {
  it('puts each key at its path and parses each value as a YAML scalar or document', () => {
    const result = documentFromEntries(
      entries({
        'degrade/orders_list': 'true',
        'degrade/payments': 'false',
        'limits/rps': '250',
        'limits/burst': '1.5',
        greeting: 'hello world',
        quoted: '"007"',
        empty: '',
        'canary/rules': '{ header: { x-env: canary }, percent: 5 }',
        'canary/tags': '[a, b]',
      }),
      'yaml',
      full,
    );
    expect(result).toEqual({
      ok: true,
      value: {
        degrade: { orders_list: true, payments: false },
        limits: { rps: 250, burst: 1.5 },
        greeting: 'hello world',
        quoted: '007',
        empty: null,
        canary: { rules: { header: { 'x-env': 'canary' }, percent: 5 }, tags: ['a', 'b'] },
      },
    });
  });

  it('reads YAML 1.2 core scalars: yes and no stay strings', () => {
    expect(documentFromEntries(entries({ a: 'yes', b: 'no', c: 'null', d: '~' }), 'yaml', full)).toEqual({
      ok: true,
      value: { a: 'yes', b: 'no', c: null, d: null },
    });
  });

  it('parses values as strict JSON when the format is json', () => {
    expect(documentFromEntries(entries({ a: 'true', b: '"text"', c: '{"x":1}' }), 'json', full)).toEqual({
      ok: true,
      value: { a: true, b: 'text', c: { x: 1 } },
    });
    const result = documentFromEntries(entries({ a: 'text' }), 'json', full);
    expect(result).toEqual({ ok: false, problem: expect.stringMatching(/^"\/config\/orders\/a" is not valid JSON/) });
  });

  it('skips empty folder keys and the prefix itself', () => {
    expect(documentFromEntries(entries({ '': '', 'degrade/': '', 'degrade/orders_list': 'true' }), 'yaml', full)).toEqual({
      ok: true,
      value: { degrade: { orders_list: true } },
    });
  });

  it('rejects a key that holds a value and has keys below it, naming both keys', () => {
    const result = documentFromEntries(entries({ degrade: 'true', 'degrade/orders_list': 'false' }), 'yaml', full);
    expect(result).toEqual({
      ok: false,
      problem:
        '"/config/orders/degrade/orders_list" conflicts with "/config/orders/degrade": a key holding a value cannot have keys below it',
    });
  });

  it('does not nest keys into a mapping held by one value', () => {
    const result = documentFromEntries(entries({ degrade: '{ orders_list: true }', 'degrade/payments': 'false' }), 'yaml', full);
    expect(result.ok).toBe(false);
  });

  it('names every bad key at once, and never the text of a value', () => {
    const result = documentFromEntries(
      [
        { key: 'a//b', value: '1' },
        { key: '__proto__', value: '1' },
        { key: 'db/password', value: 'hunter2: [' },
        { key: 'db/token', value: '"s3cr3t' },
      ],
      'yaml',
      full,
    );
    expect(result.ok).toBe(false);
    const problem = (result as { problem: string }).problem;
    expect(problem).toContain('"/config/orders/a//b": has an empty path segment');
    expect(problem).toContain('"/config/orders/__proto__": "__proto__" cannot be a setting name');
    expect(problem).toMatch(/"\/config\/orders\/db\/password" is not valid YAML \(.+ at line 1, column \d+\)/);
    expect(problem).toMatch(/"\/config\/orders\/db\/token" is not valid YAML/);
    expect(problem).not.toContain('hunter2');
    expect(problem).not.toContain('s3cr3t');
  });
});

describe('updates from what a read found', () => {
  const rules = (overrides: Partial<KvDocumentRules> = {}): KvDocumentRules => ({
    kind: 'etcd',
    location: 'etcd:/config/orders/',
    mode: 'prefix',
    path: '/config/orders/',
    format: 'yaml',
    optional: false,
    keyNoun: 'etcd key',
    ...overrides,
  });

  it('reports a missing key or an empty prefix as missing, naming what to create', () => {
    const prefix = updateFromSnapshot(rules(), { entries: [] });
    expect(prefix).toEqual({ ok: false, error: expect.any(ConfigSourceError) });
    const error = (prefix as { error: ConfigSourceError }).error;
    expect([error.failure, error.code, error.source]).toEqual(['missing', 'CONFIG_SOURCE_MISSING', 'etcd:/config/orders/']);
    expect(error.message).toBe('there is no etcd key under "/config/orders/": create one, or make the source optional');
    const key = updateFromSnapshot(rules({ mode: 'key', path: '/config/orders.yaml', location: 'etcd:/config/orders.yaml' }), {
      entries: [],
    });
    expect((key as { error: ConfigSourceError }).error.message).toBe(
      'etcd key "/config/orders.yaml" does not exist: create it, or make the source optional',
    );
  });

  it('reads nothing as an empty document when the source is optional', () => {
    expect(updateFromSnapshot(rules({ optional: true }), { entries: [] })).toEqual({ ok: true, value: {} });
  });

  it('reports a document that does not parse as a parse failure', () => {
    const update = updateFromSnapshot(rules({ mode: 'key', path: '/config/orders.yaml' }), { entries: [{ key: '', value: 'a: [' }] });
    const error = (update as { error: ConfigSourceError }).error;
    expect(error.failure).toBe('parse');
    expect(error.message).toMatch(/^etcd key "\/config\/orders.yaml" is not valid YAML .*; the last good configuration stays in force/);
  });

  it('reports a key holding a list or a scalar instead of a mapping as a parse failure', () => {
    const update = updateFromSnapshot(rules({ mode: 'key', path: '/config/orders.yaml' }), { entries: [{ key: '', value: '- a\n- b\n' }] });
    const error = (update as { error: ConfigSourceError }).error;
    expect([error.failure, error.code]).toEqual(['parse', 'CONFIG_SOURCE_PARSE']);
    expect(error.message).toBe(
      'etcd key "/config/orders.yaml" must hold a mapping of settings (key: value), not a list; the last good configuration stays in force until it is fixed',
    );
  });
});

describe('the update gate', () => {
  const snapshot = (value: string) => ({ entries: [{ key: 'a', value }] });
  const unavailable = () => new ConfigSourceError('unavailable', 'etcd:/x/', 'etcd is unreachable');
  const gate = () => new KvUpdateGate((s) => ({ ok: true, value: s.entries.map((e) => e.value).join() }));

  it('hands on a read only when it differs from the last one handed on', () => {
    const g = gate();
    expect(g.current(snapshot('1'))).toEqual({ ok: true, value: '1' });
    expect(g.next(snapshot('1'))).toBeUndefined();
    expect(g.next(snapshot('2'))).toEqual({ ok: true, value: '2' });
    expect(g.next(snapshot('2'))).toBeUndefined();
  });

  it('reports an outage once, and after it the current document even if it did not change', () => {
    const g = gate();
    g.current(snapshot('1'));
    expect(g.failed(unavailable())).toEqual({ ok: false, error: expect.any(ConfigSourceError) });
    expect(g.failed(unavailable())).toBeUndefined();
    expect(g.failed(unavailable())).toBeUndefined();
    expect(g.next(snapshot('1'))).toEqual({ ok: true, value: '1' });
    expect(g.next(snapshot('1'))).toBeUndefined();
    expect(g.failed(unavailable())).toBeDefined();
  });
});

describe('optional clients', () => {
  it('fail with a stable code and the install command when the package is missing', () => {
    const missing = () => {
      throw Object.assign(new Error("Cannot find module 'etcd3'"), { code: 'MODULE_NOT_FOUND' });
    };
    let thrown: unknown;
    try {
      loadOptional('etcd3', '^1.1.0', 'etcdSource()', missing);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toMatchObject({
      code: 'CONFIG_SOURCE_CLIENT_MISSING',
      message: 'etcdSource() needs the etcd3 package, an optional peer dependency of @nest-rollout/config: npm install etcd3@"^1.1.0"',
    });
  });

  it('let other load errors through', () => {
    const broken = () => {
      throw new SyntaxError('Unexpected token');
    };
    expect(() => loadOptional('etcd3', '^1.1.0', 'etcdSource()', broken)).toThrow(SyntaxError);
  });
});
