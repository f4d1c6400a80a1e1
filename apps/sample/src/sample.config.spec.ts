import { EnvValidationError } from '@nest-rollout/config';
import { SAMPLE_ENV_VARIABLES, sampleConfig, sampleEnvSchema, SQLITE_IN_MEMORY } from './sample.config';
import { sampleHealthOptions } from './health/sample-health';

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    sampleConfig.parse(env);
  } catch (error) {
    expect(error).toBeInstanceOf(EnvValidationError);
    return [...(error as EnvValidationError).problems];
  }
  throw new Error('expected the environment to be rejected');
}

describe('sampleConfig', () => {
  it('runs with no environment at all: embedded SQLite in memory, no cache, probes on the public port', () => {
    expect(sampleConfig.parse({})).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      adapter: 'express',
      database: { kind: 'sqlite', file: SQLITE_IN_MEMORY },
      redisUrl: undefined,
      managementPort: undefined,
      health: { intervalMs: undefined, timeoutMs: undefined, failureThreshold: undefined, successThreshold: undefined },
    });
  });

  it('reads PostgreSQL, Redis, the management port and the health settings', () => {
    const config = sampleConfig.parse({
      DATABASE_URL: 'postgres://orders:pw-1234@db:5432/orders',
      REDIS_URL: 'redis://:pw-5678@cache:6379/0',
      PORT_MANAGEMENT: '9464',
      HEALTH_INTERVAL_MS: '2000',
      HEALTH_TIMEOUT_MS: '500',
      HEALTH_FAILURE_THRESHOLD: '3',
      HEALTH_SUCCESS_THRESHOLD: '2',
    });
    expect(config).toMatchObject({
      database: { kind: 'postgres', url: 'postgres://orders:pw-1234@db:5432/orders' },
      redisUrl: 'redis://:pw-5678@cache:6379/0',
      managementPort: 9464,
      health: { intervalMs: 2000, timeoutMs: 500, failureThreshold: 3, successThreshold: 2 },
    });
  });

  it('takes a SQLite file from DATABASE_URL', () => {
    expect(sampleConfig.parse({ DATABASE_URL: 'sqlite:./data/orders.db' }).database).toEqual({ kind: 'sqlite', file: './data/orders.db' });
  });

  it('waits 30 s for the database at start-up by default, or as long as DATABASE_CONNECT_TIMEOUT_MS says', () => {
    expect(sampleConfig.parse({}).databaseConnectTimeoutMs).toBe(30_000);
    expect(sampleConfig.parse({ DATABASE_CONNECT_TIMEOUT_MS: '120000' }).databaseConnectTimeoutMs).toBe(120_000);
    expect(problemsOf({ DATABASE_CONNECT_TIMEOUT_MS: '0' })).toEqual([
      expect.stringMatching(/^DATABASE_CONNECT_TIMEOUT_MS: must be a whole number from 100 to 3600000/),
    ]);
  });

  it('names every invalid variable, and never echoes a connection string', () => {
    const problems = problemsOf({
      DATABASE_URL: 'mysql://root:hunter22@db/orders',
      REDIS_URL: 'memcached://hunter22@cache',
      PORT_MANAGEMENT: 'x',
      HEALTH_INTERVAL_MS: '1',
    });
    expect(problems).toEqual([
      expect.stringMatching(/^DATABASE_URL: must start with postgres:\/\//),
      expect.stringMatching(/^REDIS_URL: must be a redis:\/\//),
      expect.stringMatching(/^PORT_MANAGEMENT: must be a whole number from 0 to 65535/),
      expect.stringMatching(/^HEALTH_INTERVAL_MS: must be a whole number from 10/),
    ]);
    expect(problems.join('\n')).not.toContain('hunter22');
  });

  it('ignores what npm, Node, shells and Kubernetes set in every environment', () => {
    const config = sampleConfig.parse({
      COLOR: '0',
      HOST: 'workstation.local',
      HOSTNAME: 'orders-7d9f-abcde',
      TRACK: 'nightly',
      NODE_ENV: 'production',
      npm_package_version: '9.9.9',
      MANAGEMENT_PORT: 'tcp://10.96.0.12:9464',
      ORDERS_PORT: 'tcp://10.96.0.10:80',
      ORDERS_SERVICE_HOST: '10.96.0.10',
    });
    expect(config).toMatchObject({ host: '0.0.0.0', color: undefined, managementPort: undefined, registry: { track: 'stable' } });
  });

  // What other software sets: npm in every script it runs (npm_*, COLOR, NODE, INIT_CWD, EDITOR,
  // PREFIX), Node's own variables (NODE_*), shells and container runtimes, and Kubernetes' service
  // links for every Service in the namespace (<NAME>_PORT, <NAME>_PORT_<port>_<proto>[_ADDR|_PORT|_PROTO],
  // <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT[_<port name>]).
  const SET_BY_OTHERS = [
    /^npm_/i,
    /^(COLOR|NODE|INIT_CWD|EDITOR|PREFIX)$/,
    /^NODE_/,
    /^(HOST|HOSTNAME|HOSTTYPE|HOME|PATH|PWD|OLDPWD|SHELL|SHLVL|USER|LOGNAME|TERM|LANG|TZ|UID|EUID|PPID|OSTYPE|MACHTYPE|VENDOR|CPUTYPE|COLUMNS|LINES|_)$/,
    /_PORT$/,
    /_PORT_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?$/,
    /_SERVICE_(HOST|PORT)(_.+)?$/,
  ];

  it.each(SAMPLE_ENV_VARIABLES)('reads %s, which no other software sets', (name) => {
    expect(SET_BY_OTHERS.filter((pattern) => pattern.test(name))).toEqual([]);
  });

  it('names each invalid canary variable', () => {
    expect(problemsOf({ CANARY_URL: 'ftp://x', CANARY_JWT_SECRET: 'short', CANARY_FORCE_TRUST: '10.0.0.0/33' })).toEqual([
      expect.stringContaining('CANARY_URL'),
      expect.stringContaining('CANARY_JWT_SECRET'),
      expect.stringContaining('CANARY_FORCE_TRUST'),
    ]);
    expect(
      problemsOf({ CANARY_JWT_SECRET: 'a-secret-of-at-least-thirty-two-characters', CANARY_JWKS_URL: 'https://id.example.com/jwks.json' }),
    ).toEqual([expect.stringContaining('CANARY_JWKS_URL: set CANARY_JWT_SECRET or CANARY_JWKS_URL, not both')]);
  });

  it('rejects a management port equal to the public one', () => {
    expect(problemsOf({ PORT: '8080', PORT_MANAGEMENT: '8080' })).toEqual([
      expect.stringMatching(/^PORT_MANAGEMENT: must differ from PORT/),
    ]);
  });

  it('reports the ports rule along with the problems of other variables', () => {
    expect(problemsOf({ PORT: '8080', PORT_MANAGEMENT: '8080', ADAPTER: 'koa' })).toEqual([
      'ADAPTER: must be "express" or "fastify"',
      expect.stringMatching(/^PORT_MANAGEMENT: must differ from PORT/),
    ]);
  });

  it('reads the dynamic configuration from config/dynamic.yaml unless DYNAMIC_CONFIG_FILE names another file', () => {
    expect(sampleConfig.parse({}).dynamicConfigFile).toBe('config/dynamic.yaml');
    expect(sampleConfig.parse({ DYNAMIC_CONFIG_FILE: '/etc/orders/dynamic.yaml' }).dynamicConfigFile).toBe('/etc/orders/dynamic.yaml');
  });

  it('reads exactly the variables its schema names', () => {
    expect(SAMPLE_ENV_VARIABLES).toEqual(Object.keys(sampleEnvSchema.shape));
    expect(SAMPLE_ENV_VARIABLES).toEqual(expect.arrayContaining(['PORT', 'LISTEN_HOST', 'DATABASE_URL', 'PORT_MANAGEMENT', 'APP_TRACK']));
  });
});

describe('sampleHealthOptions', () => {
  const dataSource = { query: async () => [], options: { type: 'postgres' } } as never;

  it('checks the database and, with REDIS_URL, the cache; masks both passwords', () => {
    const config = sampleConfig.parse({
      DATABASE_URL: 'postgres://orders:pw-1234@db/orders',
      REDIS_URL: 'redis://:pw-5678@cache:6379',
      PORT_MANAGEMENT: '9464',
      LISTEN_HOST: '127.0.0.1',
    });
    const options = sampleHealthOptions(config, dataSource, { ping: async () => 'PONG', status: 'ready' } as never);
    expect(options.readiness!.map((c) => [c.name, c.dependency])).toEqual([
      ['database', 'postgres'],
      ['cache', 'redis'],
    ]);
    expect(options.redact).toEqual(['pw-1234', 'pw-5678']);
    expect(options.management).toEqual({ port: 9464, host: '127.0.0.1' });
  });

  it('checks only the embedded database by default, with the probes on the public port', () => {
    const options = sampleHealthOptions(sampleConfig.parse({}), dataSource, null);
    expect(options.readiness!.map((c) => [c.name, c.dependency])).toEqual([['database', 'sqlite']]);
    expect(options.management).toBeUndefined();
  });
});
