import { Inject, Injectable } from '@nestjs/common';
import { ConfigModule, ConfigService, type ConfigType } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { z } from 'zod';
import { EnvValidationError } from '../config.errors';
import { EnvConfigError, envConfig } from './env-config';

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .refine(
      (raw) => Number.isInteger(Number(raw)) && Number(raw) >= min && Number(raw) <= max,
      `must be a whole number from ${min} to ${max}`,
    )
    .transform(Number);

const ordersSchema = z.object({
  SPEC_ORDERS_PORT: wholeNumber(0, 65535).default(3000),
  SPEC_ORDERS_MODE: z.enum(['fast', 'safe'], { error: 'must be "fast" or "safe"' }).default('safe'),
  SPEC_ORDERS_DATABASE_URL: z
    .string()
    .refine((raw) => /^postgres:\/\/[^/]+\/\w+$/.test(raw), 'must be postgres://user:password@host/database')
    .optional(),
});

const ordersConfig = envConfig('orders', ordersSchema, (env) => ({
  port: env.SPEC_ORDERS_PORT,
  mode: env.SPEC_ORDERS_MODE,
  databaseUrl: env.SPEC_ORDERS_DATABASE_URL,
}));

function problemsOf(parse: () => unknown): readonly string[] {
  try {
    parse();
  } catch (error) {
    expect(error).toBeInstanceOf(EnvValidationError);
    expect((error as EnvValidationError).code).toBe('CONFIG_INVALID_ENV');
    return (error as EnvValidationError).problems;
  }
  throw new Error('expected the environment to be rejected');
}

/**
 * A Standard Schema written by hand, as a library other than zod would hand it over: no JSON
 * Schema, and messages that quote the rejected value (valibot's "Received ...", arktype's "(was ...)").
 */
function handWrittenSchema(): StandardSchemaV1<Record<string, string | undefined>, { LEVEL: string; TOKEN: string }> {
  return {
    '~standard': {
      version: 1,
      vendor: 'spec',
      validate: (value) => {
        const env = value as Record<string, string | undefined>;
        const issues: StandardSchemaV1.Issue[] = [];
        const level = env.SPEC_LEVEL ?? 'info';
        if (!['info', 'debug'].includes(level))
          issues.push({ message: `expected "info" or "debug", received "${level}"`, path: ['SPEC_LEVEL'] });
        if (env.SPEC_TOKEN === undefined) issues.push({ message: 'is required', path: [{ key: 'SPEC_TOKEN' }] });
        else if (env.SPEC_TOKEN.length < 12)
          issues.push({ message: `must be 12 characters or more, was ${env.SPEC_TOKEN}`, path: ['SPEC_TOKEN'] });
        return issues.length > 0 ? { issues } : { value: { LEVEL: level, TOKEN: env.SPEC_TOKEN! } };
      },
    },
  };
}

describe('envConfig', () => {
  it('maps the validated variables to typed values, with the schema defaults', () => {
    expect(ordersConfig.parse({})).toEqual({ port: 3000, mode: 'safe', databaseUrl: undefined });
    expect(ordersConfig.parse({ SPEC_ORDERS_PORT: '8080', SPEC_ORDERS_MODE: 'fast' })).toEqual({
      port: 8080,
      mode: 'fast',
      databaseUrl: undefined,
    });
  });

  it('takes the variables from a zod schema and reads nothing else', () => {
    expect(ordersConfig.variables).toEqual(['SPEC_ORDERS_PORT', 'SPEC_ORDERS_MODE', 'SPEC_ORDERS_DATABASE_URL']);
    const seen: string[] = [];
    const env = new Proxy({} as Record<string, string | undefined>, {
      get: (_, name) => {
        seen.push(String(name));
        return undefined;
      },
    });
    ordersConfig.parse(env);
    expect(seen.sort()).toEqual([...ordersConfig.variables].sort());
  });

  it('names every invalid variable in one error, and never shows a value', () => {
    const problems = problemsOf(() =>
      ordersConfig.parse({
        SPEC_ORDERS_PORT: '70000',
        SPEC_ORDERS_MODE: 'reckless',
        SPEC_ORDERS_DATABASE_URL: 'mysql://root:hunter22@db/orders',
      }),
    );
    expect(problems).toEqual([
      'SPEC_ORDERS_PORT: must be a whole number from 0 to 65535',
      'SPEC_ORDERS_MODE: must be "fast" or "safe"',
      'SPEC_ORDERS_DATABASE_URL: must be postgres://user:password@host/database',
    ]);
    expect(problems.join('\n')).not.toMatch(/hunter22|reckless|70000/);
  });

  it('puts every problem in the message, one line each', () => {
    try {
      ordersConfig.parse({ SPEC_ORDERS_PORT: 'x', SPEC_ORDERS_MODE: 'y' });
      throw new Error('expected the environment to be rejected');
    } catch (error) {
      expect((error as Error).message).toBe(
        [
          'Invalid environment (fix each and restart):',
          '  - SPEC_ORDERS_PORT: must be a whole number from 0 to 65535',
          '  - SPEC_ORDERS_MODE: must be "fast" or "safe"',
        ].join('\n'),
      );
    }
  });

  it('treats an empty variable as unset, unless told otherwise', () => {
    expect(ordersConfig.parse({ SPEC_ORDERS_PORT: '', SPEC_ORDERS_MODE: '' })).toMatchObject({ port: 3000, mode: 'safe' });
    const strict = envConfig('strict', ordersSchema, (env) => ({ mode: env.SPEC_ORDERS_MODE }), { emptyAsUnset: false });
    expect(problemsOf(() => strict.parse({ SPEC_ORDERS_MODE: '' }))).toEqual(['SPEC_ORDERS_MODE: must be "fast" or "safe"']);
  });

  it('shows no value in a problem that names no variable', () => {
    const pair = envConfig(
      'pair',
      z.object({ SPEC_USER: z.string(), SPEC_PASSWORD: z.string() }).refine((env) => env.SPEC_USER !== env.SPEC_PASSWORD, {
        error: (issue) => `the user may not be the password (${JSON.stringify(issue.input)})`,
      }),
      (env) => env,
    );
    expect(problemsOf(() => pair.parse({ SPEC_USER: 'pw-same-1234', SPEC_PASSWORD: 'pw-same-1234' }))).toEqual([
      expect.not.stringContaining('pw-same-1234'),
    ]);
  });

  describe('with any Standard Schema', () => {
    const tokenConfig = envConfig('token', handWrittenSchema(), (env) => ({ level: env.LEVEL, token: env.TOKEN }), {
      variables: ['SPEC_LEVEL', 'SPEC_TOKEN'],
    });

    it('validates and maps through the standard interface alone', () => {
      expect(tokenConfig.parse({ SPEC_TOKEN: 'a-long-enough-token' })).toEqual({ level: 'info', token: 'a-long-enough-token' });
      expect(tokenConfig.variables).toEqual(['SPEC_LEVEL', 'SPEC_TOKEN']);
    });

    it('takes the variable from a path given as a segment object', () => {
      expect(problemsOf(() => tokenConfig.parse({}))).toEqual(['SPEC_TOKEN: is required']);
    });

    it('removes the value where a message of the schema quotes or repeats it', () => {
      const problems = problemsOf(() => tokenConfig.parse({ SPEC_LEVEL: 'loud', SPEC_TOKEN: 'pw-12345' }));
      expect(problems).toEqual([
        'SPEC_LEVEL: expected "info" or "debug", received (value hidden)',
        'SPEC_TOKEN: must be 12 characters or more, was (value hidden)',
      ]);
    });

    it('asks for the variables when the schema cannot list them', () => {
      expect(() => envConfig('token', handWrittenSchema(), (env) => env)).toThrow(
        expect.objectContaining({
          code: 'CONFIG_ENV_VARIABLES_UNKNOWN',
          message: expect.stringMatching(/pass them as options\.variables/),
        }),
      );
    });

    it('refuses a schema that validates asynchronously: the boot is synchronous', () => {
      const asyncSchema = z.object({ SPEC_SLOW: z.string().refine(async () => true) });
      const slow = envConfig('slow', asyncSchema, (env) => env);
      expect(() => slow.parse({ SPEC_SLOW: 'x' })).toThrow(EnvConfigError);
      expect(() => slow.parse({ SPEC_SLOW: 'x' })).toThrow(expect.objectContaining({ code: 'CONFIG_ENV_SCHEMA_ASYNC' }));
    });
  });

  describe('on @nestjs/config', () => {
    const variables = ['SPEC_ORDERS_PORT', 'SPEC_ORDERS_MODE', 'SPEC_ORDERS_DATABASE_URL'];
    const saved = Object.fromEntries(variables.map((name) => [name, process.env[name]]));

    afterEach(() => {
      for (const name of variables) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    });

    @Injectable()
    class OrdersServer {
      constructor(@Inject(ordersConfig.KEY) readonly config: ConfigType<typeof ordersConfig>) {}
    }

    async function compile() {
      return Test.createTestingModule({
        imports: [ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, load: [ordersConfig], validate: ordersConfig.validate })],
        providers: [OrdersServer],
      }).compile();
    }

    it('injects the typed namespace with @Inject(config.KEY)', async () => {
      process.env.SPEC_ORDERS_PORT = '8080';
      const moduleRef = await compile();
      expect(moduleRef.get(OrdersServer).config).toEqual({ port: 8080, mode: 'safe', databaseUrl: undefined });
      expect(moduleRef.get(ConfigService).get('orders.port')).toBe(8080);
      await moduleRef.close();
    });

    it('writes no default into process.env', async () => {
      const moduleRef = await compile();
      expect(process.env.SPEC_ORDERS_PORT).toBeUndefined();
      expect(process.env.SPEC_ORDERS_MODE).toBeUndefined();
      await moduleRef.close();
    });

    it('fails the module set-up, before any provider is built, naming every bad variable', async () => {
      process.env.SPEC_ORDERS_PORT = 'eighty';
      process.env.SPEC_ORDERS_DATABASE_URL = 'mysql://root:hunter22@db/orders';
      const built = jest.fn();
      const failure = Test.createTestingModule({
        imports: [ConfigModule.forRoot({ ignoreEnvFile: true, load: [ordersConfig], validate: ordersConfig.validate })],
        providers: [{ provide: 'BUILT', useFactory: built }],
      }).compile();
      await expect(failure).rejects.toThrow(EnvValidationError);
      await expect(failure).rejects.toMatchObject({
        problems: [
          'SPEC_ORDERS_PORT: must be a whole number from 0 to 65535',
          'SPEC_ORDERS_DATABASE_URL: must be postgres://user:password@host/database',
        ],
      });
      expect(built).not.toHaveBeenCalled();
    });

    it('still validates without the validate option, when the namespace is built', async () => {
      process.env.SPEC_ORDERS_MODE = 'reckless';
      const failure = Test.createTestingModule({
        imports: [ConfigModule.forRoot({ ignoreEnvFile: true, load: [ordersConfig] })],
      }).compile();
      await expect(failure).rejects.toMatchObject({ problems: ['SPEC_ORDERS_MODE: must be "fast" or "safe"'] });
    });

    it('hands the namespace to a module factory with asProvider(), as forRootAsync takes it', async () => {
      process.env.SPEC_ORDERS_MODE = 'fast';
      const { imports, useFactory, inject } = ordersConfig.asProvider();
      class FeatureModule {}
      const moduleRef = await Test.createTestingModule({
        imports: [{ module: FeatureModule, imports, providers: [{ provide: 'ORDERS', useFactory, inject }], exports: ['ORDERS'] }],
      }).compile();
      expect(moduleRef.get('ORDERS')).toMatchObject({ mode: 'fast' });
      await moduleRef.close();
    });
  });
});
