import { z } from 'zod';
import { DynamicConfigOptionsError } from '../config.errors';
import { MemorySource } from '../testing/memory-source.spec-helper';
import { DEFAULT_DYNAMIC_CONFIG_OPTIONS, DynamicConfigModuleOptions, resolveDynamicConfigOptions } from './dynamic-config.options';

const schema = z.object({ rps: z.number() });

function problems(input: unknown): readonly string[] {
  try {
    resolveDynamicConfigOptions(input as DynamicConfigModuleOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(DynamicConfigOptionsError);
    expect((error as DynamicConfigOptionsError).code).toBe('CONFIG_INVALID_OPTIONS');
    return (error as DynamicConfigOptionsError).problems;
  }
  return [];
}

describe('resolveDynamicConfigOptions', () => {
  it('resolves the documented defaults: no secret keys, SIGHUP reloads', () => {
    const resolved = resolveDynamicConfigOptions({ schema, file: 'config/dynamic.yaml' });
    expect(resolved).toEqual({ schema, file: 'config/dynamic.yaml', sources: [], secretKeys: [], reloadSignal: 'SIGHUP' });
    expect(resolved.reloadSignal).toBe(DEFAULT_DYNAMIC_CONFIG_OPTIONS.reloadSignal);
    expect(Object.keys(resolved).sort()).toEqual(['file', 'reloadSignal', 'schema', 'secretKeys', 'sources']);
    expect(Object.isFrozen(resolved)).toBe(true);
  });

  it('resolves custom options, keeping the schema and the sources themselves', () => {
    const a = new MemorySource({});
    const b = new MemorySource({}, { kind: 'etcd', location: 'etcd:/config/orders/' });
    const resolved = resolveDynamicConfigOptions({
      schema,
      sources: [a, b],
      secretKeys: ['db.password', 'upstreams.*.token'],
      reloadSignal: false,
    });
    expect(resolved.schema).toBe(schema);
    expect(resolved.sources[0]).toBe(a);
    expect(resolved.sources[1]).toBe(b);
    expect(resolved).toMatchObject({ file: undefined, secretKeys: ['db.password', 'upstreams.*.token'], reloadSignal: false });
  });

  it('takes any Standard Schema, not only zod: a plain object with ~standard, or a function (as arktype builds them)', () => {
    const standard = { '~standard': { version: 1 as const, vendor: 'hand', validate: (value: unknown) => ({ value }) } };
    expect(resolveDynamicConfigOptions({ schema: standard, file: 'a.yaml' }).schema).toBe(standard);
    const callable = Object.assign(() => undefined, standard);
    expect(resolveDynamicConfigOptions({ schema: callable, file: 'a.yaml' }).schema).toBe(callable);
  });

  it('names every problem at once, never echoing a value', () => {
    const source = new MemorySource({});
    const found = problems({
      schema: { parse: () => undefined },
      sources: [source, { kind: 'file' }, source],
      secretKeys: ['db..password', 'ok'],
      reloadSignal: 'SIGTERM',
      fiel: 'config.yaml',
    });
    expect(found.join('\n')).not.toMatch(/db\.\.password|SIGTERM|config\.yaml/);
    expect(
      problems({
        schema: { parse: () => undefined },
        sources: [source, { kind: 'file' }, source],
        secretKeys: ['db..password', 'ok'],
        reloadSignal: 'SIGTERM',
        fiel: 'config.yaml',
      }),
    ).toEqual([
      expect.stringMatching(/^schema: must be a Standard Schema v1/),
      expect.stringMatching(/^sources\[1\]: must be a ConfigSource/),
      'sources[2]: is listed twice',
      'secretKeys[0]: must be a dot path such as "db.password" or "upstreams.*.token"',
      'reloadSignal: must be "SIGHUP" or "SIGUSR2", or false for no reload signal',
      'fiel: unknown option; known options: schema, sources, file, secretKeys, reloadSignal',
    ]);
  });

  it('requires a schema, and a file or at least one source', () => {
    expect(problems({})).toEqual([
      expect.stringMatching(/^schema: must be a Standard Schema v1/),
      'sources: is empty and no file is given: set file (a YAML or JSON path) or list at least one source',
    ]);
    expect(problems({ schema, sources: [], file: '  ' })).toEqual(['file: must be a file path']);
    expect(problems(null)).toEqual(['options must be an object']);
  });
});
