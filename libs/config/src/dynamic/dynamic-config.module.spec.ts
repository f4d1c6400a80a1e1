import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable, Logger, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LIFECYCLE_PROCESS, ManualProcess } from '@nest-rollout/lifecycle';
import { z } from 'zod';
import { DYNAMIC_CONFIG_OPTIONS, DYNAMIC_CONFIG_SOURCES } from '../config.constants';
import { DynamicConfigOptionsError } from '../config.errors';
import { MemorySource } from '../testing/memory-source.spec-helper';
import { DynamicConfigModule } from './dynamic-config.module';
import type { DynamicConfigOptionsFactory } from './dynamic-config.module-definition';
import { DynamicConfigModuleOptions, ResolvedDynamicConfigOptions, resolveDynamicConfigOptions } from './dynamic-config.options';
import { DynamicConfigService } from './dynamic-config.service';
import type { ConfigSource } from './sources/config-source';

const schema = z.object({ limits: z.object({ rps: z.number() }) });
const source = new MemorySource({ limits: { rps: 100 } });
const CUSTOM: DynamicConfigModuleOptions = { schema, sources: [source], secretKeys: ['db.password'], reloadSignal: false };
const CUSTOM_RESOLVED = resolveDynamicConfigOptions(CUSTOM);

@Injectable()
class ConfigOptions implements DynamicConfigOptionsFactory {
  createDynamicConfigOptions(): DynamicConfigModuleOptions {
    return CUSTOM;
  }
}
const SECRET_KEYS = 'TEST:SECRET_KEYS';
@Module({ providers: [ConfigOptions, { provide: SECRET_KEYS, useValue: ['db.password'] }], exports: [ConfigOptions, SECRET_KEYS] })
class OptionsModule {}

async function resolvedOptions(dynamicConfig: ReturnType<typeof DynamicConfigModule.forRoot>): Promise<ResolvedDynamicConfigOptions> {
  const moduleRef = await Test.createTestingModule({ imports: [dynamicConfig] }).compile();
  try {
    return moduleRef.get<ResolvedDynamicConfigOptions>(DYNAMIC_CONFIG_OPTIONS);
  } finally {
    await moduleRef.close();
  }
}

beforeEach(() => {
  for (const level of ['log', 'warn', 'error'] as const) jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined);
});
afterEach(() => jest.restoreAllMocks());

describe('DynamicConfigModule', () => {
  it('forRoot({ schema, sources }) resolves the defaults and provides DynamicConfigService', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [DynamicConfigModule.forRoot({ schema, sources: [source] })] })
      .overrideProvider(LIFECYCLE_PROCESS)
      .useValue(new ManualProcess())
      .compile();
    await moduleRef.init();
    expect(moduleRef.get(DYNAMIC_CONFIG_OPTIONS)).toEqual(resolveDynamicConfigOptions({ schema, sources: [source] }));
    expect(moduleRef.get(DYNAMIC_CONFIG_OPTIONS)).toMatchObject({ secretKeys: [], reloadSignal: 'SIGHUP', file: undefined });
    expect(moduleRef.get(DynamicConfigService).get()).toEqual({ limits: { rps: 100 } });
    await moduleRef.close();
  });

  it('forRoot(options) resolves custom options', async () => {
    expect(await resolvedOptions(DynamicConfigModule.forRoot(CUSTOM))).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useFactory, inject }) resolves options built from injected providers', async () => {
    const dynamicConfig = DynamicConfigModule.forRootAsync({
      imports: [OptionsModule],
      inject: [SECRET_KEYS],
      useFactory: (secretKeys: string[]) => ({ schema, sources: [source], secretKeys, reloadSignal: false as const }),
    });
    expect(await resolvedOptions(dynamicConfig)).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useClass }) resolves the options of the factory class', async () => {
    expect(await resolvedOptions(DynamicConfigModule.forRootAsync({ useClass: ConfigOptions }))).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useExisting }) resolves the options of an existing provider', async () => {
    expect(await resolvedOptions(DynamicConfigModule.forRootAsync({ imports: [OptionsModule], useExisting: ConfigOptions }))).toEqual(
      CUSTOM_RESOLVED,
    );
  });

  it('fails at boot with every problem named, also through forRootAsync', async () => {
    const dynamicConfig = DynamicConfigModule.forRootAsync({
      useFactory: () => ({ schema: {}, secretKeys: [''] }) as unknown as DynamicConfigModuleOptions,
    });
    const compiling = Test.createTestingModule({ imports: [dynamicConfig] }).compile();
    await expect(compiling).rejects.toBeInstanceOf(DynamicConfigOptionsError);
    await expect(compiling).rejects.toMatchObject({
      code: 'CONFIG_INVALID_OPTIONS',
      problems: [
        expect.stringMatching(/^schema: must be a Standard Schema v1/),
        expect.stringMatching(/^secretKeys\[0\]: must be a dot path/),
        expect.stringMatching(/^sources: is empty and no file is given/),
      ],
    });
  });

  it('is global by default, so that every module can inject DynamicConfigService', () => {
    expect(DynamicConfigModule.forRoot({ schema, sources: [source] }).global).toBe(true);
    expect(DynamicConfigModule.forRoot({ schema, sources: [source], isGlobal: false }).global).toBe(false);
  });

  describe('with the file shorthand', () => {
    let folder: string;
    beforeEach(() => (folder = mkdtempSync(join(tmpdir(), 'dynamic-config-'))));
    afterEach(() => rmSync(folder, { recursive: true, force: true }));

    it('reads the file as the first layer, before the sources', async () => {
      const file = join(folder, 'dynamic.yaml');
      writeFileSync(file, 'limits:\n  rps: 100\nname: from-file\n');
      const override = new MemorySource({ limits: { rps: 7 } });
      const moduleRef = await Test.createTestingModule({
        imports: [
          DynamicConfigModule.forRoot({ schema: schema.extend({ name: z.string() }), file, sources: [override], reloadSignal: false }),
        ],
      }).compile();
      try {
        const layers = moduleRef.get<readonly ConfigSource[]>(DYNAMIC_CONFIG_SOURCES);
        expect(layers.map((layer) => layer.kind)).toEqual(['file', 'memory']);
        expect(layers[0].location).toContain('dynamic.yaml');
        await moduleRef.init();
        expect(moduleRef.get(DynamicConfigService).get()).toEqual({ limits: { rps: 7 }, name: 'from-file' });
      } finally {
        await moduleRef.close();
      }
    });
  });
});
