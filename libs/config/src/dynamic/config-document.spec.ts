import { canonicalJson, compareSnapshots, configVersion, deepFreeze, mergeLayers } from './config-document';

describe('mergeLayers', () => {
  it('merges plain objects key by key at every depth, later layers overriding earlier ones', () => {
    const merged = mergeLayers([
      { limits: { rps: 100, burst: 20 }, degrade: { orders_list: false }, name: 'base' },
      { limits: { rps: 50 }, degrade: { search: true } },
      { name: 'override' },
    ]);
    expect(merged).toEqual({ limits: { rps: 50, burst: 20 }, degrade: { orders_list: false, search: true }, name: 'override' });
  });

  it('replaces arrays whole instead of merging them element by element', () => {
    expect(mergeLayers([{ rules: [{ header: 'a' }, { header: 'b' }] }, { rules: [{ header: 'c' }] }])).toEqual({
      rules: [{ header: 'c' }],
    });
  });

  it('lets a scalar or null replace an object and an object replace a scalar', () => {
    expect(
      mergeLayers([
        { a: { b: 1 }, c: 1 },
        { a: null, c: { d: 2 } },
      ]),
    ).toEqual({ a: null, c: { d: 2 } });
  });

  it('skips layers without a document and keys set to undefined; no document at all is {}', () => {
    expect(mergeLayers([undefined, { a: 1 }, undefined, { a: undefined, b: 2 }])).toEqual({ a: 1, b: 2 });
    expect(mergeLayers([])).toEqual({});
    expect(mergeLayers([undefined])).toEqual({});
  });

  it('returns a copy: the layers are never changed or shared with the result', () => {
    const base = { limits: { rps: 100 }, rules: [{ header: 'a' }] };
    const merged = mergeLayers([base, { limits: { burst: 5 } }]) as typeof base & { limits: { burst?: number } };
    deepFreeze(merged);
    expect(base).toEqual({ limits: { rps: 100 }, rules: [{ header: 'a' }] });
    expect(Object.isFrozen(base.rules)).toBe(false);
    expect(merged.rules).not.toBe(base.rules);
  });

  it('keeps a "__proto__" key as data instead of changing the prototype of the result', () => {
    const merged = mergeLayers([{ a: 1 }, JSON.parse('{"__proto__": {"polluted": true}}')]) as Record<string, unknown>;
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(merged)).toEqual(['a', '__proto__']);
  });
});

describe('canonicalJson and configVersion', () => {
  it('gives the same text and version whatever the order of the keys', () => {
    const a = { b: { y: 1, x: [2, 1] }, a: 'text', n: null };
    const b = { n: null, a: 'text', b: { x: [2, 1], y: 1 } };
    expect(canonicalJson(a)).toBe('{"a":"text","b":{"x":[2,1],"y":1},"n":null}');
    expect(canonicalJson(b)).toBe(canonicalJson(a));
    expect(configVersion(a)).toBe(configVersion(b));
    expect(configVersion(a)).toMatch(/^[0-9a-f]{12}$/);
  });

  it('tells apart values that differ anywhere, array order included', () => {
    expect(configVersion({ x: [1, 2] })).not.toBe(configVersion({ x: [2, 1] }));
    expect(configVersion({ x: 1 })).not.toBe(configVersion({ x: '1' }));
  });

  it('follows JSON for undefined, non-finite numbers, toJSON; writes bigints as strings', () => {
    expect(canonicalJson({ a: undefined, b: [undefined], c: Number.NaN, d: new Date(0), e: 10n })).toBe(
      '{"b":[null],"c":null,"d":"1970-01-01T00:00:00.000Z","e":"10"}',
    );
  });
});

describe('compareSnapshots', () => {
  it('names the deepest changed keys as sorted dot paths, counting added and removed keys', () => {
    const { changedKeys } = compareSnapshots(
      { degrade: { orders_list: false, search: false }, limits: { rps: 100 }, old: 1 },
      { degrade: { orders_list: true, search: false }, limits: { rps: 100 }, added: { x: 1 } },
    );
    expect(changedKeys).toEqual(['added', 'degrade.orders_list', 'old']);
  });

  it('compares arrays as a whole', () => {
    expect(compareSnapshots({ rules: [{ a: 1 }] }, { rules: [{ a: 2 }] }).changedKeys).toEqual(['rules']);
    expect(compareSnapshots({ rules: [{ a: 1 }] }, { rules: [{ a: 1 }] }).changedKeys).toEqual([]);
  });

  it('keeps the identity of every unchanged part, and of the whole when nothing changed', () => {
    const previous = deepFreeze({ limits: { rps: 100 }, degrade: { search: false }, rules: [1] });
    const changed = compareSnapshots(previous, { limits: { rps: 50 }, degrade: { search: false }, rules: [1] });
    const value = changed.value as typeof previous;
    expect(value).toEqual({ limits: { rps: 50 }, degrade: { search: false }, rules: [1] });
    expect(value.degrade).toBe(previous.degrade);
    expect(value.rules).toBe(previous.rules);
    expect(value.limits).not.toBe(previous.limits);

    const same = compareSnapshots(previous, { rules: [1], degrade: { search: false }, limits: { rps: 100 } });
    expect(same).toEqual({ value: previous, changedKeys: [] });
    expect(same.value).toBe(previous);
  });

  it('treats a key set to undefined as a missing key, as JSON does', () => {
    expect(compareSnapshots({ a: 1 }, { a: 1, b: undefined }).changedKeys).toEqual([]);
    expect(compareSnapshots({ a: 1, b: 2 }, { a: 1, b: undefined }).changedKeys).toEqual(['b']);
  });
});

describe('deepFreeze', () => {
  it('freezes every level, also below an object frozen one level deep', () => {
    const value = deepFreeze(Object.freeze({ a: { b: [{ c: 1 }] } }));
    expect(Object.isFrozen(value.a)).toBe(true);
    expect(Object.isFrozen(value.a.b)).toBe(true);
    expect(Object.isFrozen(value.a.b[0])).toBe(true);
  });
});
