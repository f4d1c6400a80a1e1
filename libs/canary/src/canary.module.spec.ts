import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CANARY_OPTIONS } from './canary.constants';
import { CanaryOptionsError, CanaryRulesError } from './canary.errors';
import { CanaryModule } from './canary.module';
import type { CanaryOptionsFactory } from './canary.module-definition';
import { resolveCanaryOptions } from './canary.options';
import type { CanaryModuleOptions, ResolvedCanaryOptions } from './canary.options';

const resolved = async (module: ReturnType<typeof CanaryModule.forRoot>) => {
  const moduleRef = await Test.createTestingModule({ imports: [module] }).compile();
  const options = moduleRef.get<ResolvedCanaryOptions>(CANARY_OPTIONS);
  await moduleRef.close();
  return options;
};

@Injectable()
class OptionsFactory implements CanaryOptionsFactory {
  createCanaryOptions(): CanaryModuleOptions {
    return { rules: { percent: 5, stickyKey: 'cookie:sid' } };
  }
}

@Module({ providers: [OptionsFactory], exports: [OptionsFactory] })
class FactoryModule {}

describe('CanaryModule', () => {
  it('forRoot() resolves every default: stable track, no rules, nobody may force', async () => {
    const previous = process.env.APP_TRACK;
    delete process.env.APP_TRACK;
    try {
      expect(await resolved(CanaryModule.forRoot())).toEqual({
        track: 'stable',
        rules: { flagKey: 'canary', header: undefined, cookie: undefined, claim: undefined, percent: undefined, stickyKey: undefined },
        trust: { force: 'none' },
        jwt: undefined,
        stickyCookie: undefined,
        stickyHeader: undefined,
      });
    } finally {
      if (previous !== undefined) process.env.APP_TRACK = previous;
    }
  });

  it('takes the track from APP_TRACK unless set', () => {
    expect(resolveCanaryOptions({}, { APP_TRACK: 'canary' }).track).toBe('canary');
    expect(resolveCanaryOptions({ track: 'stable' }, { APP_TRACK: 'canary' }).track).toBe('stable');
    expect(() => resolveCanaryOptions({}, { APP_TRACK: 'green' })).toThrow(/fix APP_TRACK/);
  });

  it.each([
    [
      'useFactory with inject',
      CanaryModule.forRootAsync({
        imports: [FactoryModule],
        useFactory: (f: OptionsFactory) => f.createCanaryOptions(),
        inject: [OptionsFactory],
      }),
    ],
    ['useClass', CanaryModule.forRootAsync({ useClass: OptionsFactory })],
    ['useExisting', CanaryModule.forRootAsync({ imports: [FactoryModule], useExisting: OptionsFactory })],
  ])('forRootAsync(%s) resolves the same options', async (_, module) => {
    expect((await resolved(module)).rules).toMatchObject({ percent: 5, stickyKey: 'cookie:sid', flagKey: 'canary' });
  });

  it('lists every problem at once without echoing a value', () => {
    const attempt = () =>
      resolveCanaryOptions(
        {
          rules: { header: { 'x.env': 'a' }, percent: 150 },
          jwt: { secret: 'short-secret-value', algorithms: ['RS256'] },
          trust: { force: { proxies: ['10.0.0.0/99'] } },
          stikyHeader: 'x',
        } as never,
        {},
      );
    expect(attempt).toThrow(CanaryOptionsError);
    try {
      attempt();
    } catch (error) {
      const message = (error as CanaryOptionsError).message;
      expect((error as CanaryOptionsError).problems.length).toBeGreaterThanOrEqual(4);
      expect(message).toContain('jwt.secret: must be a string of at least 32 characters');
      expect(message).toContain('stikyHeader: unknown option');
      expect(message).toContain('rules.header.x.env: must be a header name');
      expect(message).toContain('rules.percent: must be a number from 0 to 100');
      expect(message).not.toContain('short-secret-value');
    }
  });

  it('requires an algorithm allow-list with a key, and an explicit gateway for unverified claims', () => {
    expect(() => resolveCanaryOptions({ jwt: { secret: 'x'.repeat(32) } }, {})).toThrow(/jwt.algorithms: is required/);
    expect(() => resolveCanaryOptions({ jwt: { unverified: true } }, {})).toThrow(/jwt.verifiedBy: must be "gateway"/);
    expect(() => resolveCanaryOptions({ rules: { claim: { plan: 'beta' } } }, {})).toThrow(/claims need the jwt option/);
    expect(
      resolveCanaryOptions({ rules: { claim: { plan: 'beta' } }, jwt: { unverified: true, verifiedBy: 'gateway' } }, {}).jwt,
    ).toMatchObject({ header: 'authorization' });
  });

  it('rejects at boot a rule set flagd-core refuses, naming it', async () => {
    const boot = Test.createTestingModule({
      imports: [
        CanaryModule.forRoot({
          rules: { flag: { state: 'ENABLED', defaultVariant: 'stable', variants: { stable: 1, canary: 2 }, targeting: { nope: [] } } },
        }),
      ],
    }).compile();
    await expect(boot).rejects.toThrow(CanaryRulesError);
    await expect(
      Test.createTestingModule({ imports: [CanaryModule.forRoot({ rules: { header: { 'x-env': { regex: '[' } } } })] }).compile(),
    ).rejects.toThrow(/rules\.header\.x-env\.regex: regex does not compile/);
  });
});
