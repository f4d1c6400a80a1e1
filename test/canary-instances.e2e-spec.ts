import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlagdCore } from '@openfeature/flagd-core';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { CompiledCanaryRules, resolveCanaryOptions } from '@nest-rollout/canary';
import type { CanaryModuleOptions } from '@nest-rollout/canary';
import { ADAPTERS, AppInstance, ensureFixturesBuilt, ROOT, startApp, startSample } from './support/apps';
import { EtcdServer } from './support/etcd';
import { describeFailures, runLoad } from './support/load';
import { delay } from './support/process';
import type { ProcessExit } from './support/process';

/**
 * Canary routing between real instances. Per adapter: a real etcd, a canary instance of the built
 * sample (APP_TRACK=canary) and a stable one, both registered there (REGISTRY_DRIVER=etcd); the
 * stable instance forwards canary decisions to the instance registered with track=canary (no
 * CANARY_URL). Both read the canary rules from one dynamic configuration file, as two pods read
 * one ConfigMap. Every request goes to the stable instance; `track` in the answer says which
 * instance served it, `pricing` which formula priced it (v2 on the canary).
 *
 * The POST part runs on the canary fixture app (test/fixtures/canary-app.ts), built on the lib
 * alone: proving that a body streams needs the canary to say when its first bytes arrive, which is
 * test instrumentation rather than a feature of the sample.
 */

const JWT_SECRET = 'canary-instances-e2e-secret-0123456789';
/** How long a change of the file may take to show in the decisions (the file source debounces 100 ms). */
const APPLY_WITHIN_MS = 1000;
/** Distinct users of the percentage tests (the sticky key is their `x-user-id`). */
const USERS = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
/** Requests in flight at a time, from the percentage tests and the load. */
const CONCURRENCY = 8;
/** The canary fixture app, built by test/tsconfig.fixtures.json. */
const CANARY_APP_MAIN = join(ROOT, 'dist/test/fixtures/canary-app.js');

type Rules = NonNullable<CanaryModuleOptions['rules']>;

const rulesAt = (percent: number): Rules => ({
  header: { 'x-env': 'canary' },
  cookie: { beta: 'yes' },
  claim: { plan: 'beta' },
  percent,
  stickyKey: 'header:x-user-id',
});

interface Quote {
  readonly status: number;
  readonly body: {
    readonly pricing?: string;
    readonly track?: string;
    readonly variant?: string;
    readonly reason?: string;
    readonly servedLocally?: string;
  };
}

const base64url = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const hs256 = (claims: Record<string, unknown>, secret: string, expiresAt: number): Promise<string> =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(expiresAt).sign(new TextEncoder().encode(secret));
const inSeconds = (seconds: number): number => Math.floor(Date.now() / 1000) + seconds;

/** `fn` over `items` with at most `limit` calls in flight; results in the order of `items`. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

/** The variant flagd-core gives `user` for the flag set the sample compiles from `rules`, as an edge would compute it. */
function flagdCohort(rules: Rules): (user: string) => string {
  const compiled = CompiledCanaryRules.compile(resolveCanaryOptions({ rules, jwt: { secret: JWT_SECRET, algorithms: ['HS256'] } }).rules);
  const core = new FlagdCore();
  core.setConfigurations(JSON.stringify(compiled.flagSet));
  return (user) =>
    core.resolveStringEvaluation(compiled.flagKey, 'stable', { targetingKey: user, headers: {}, cookies: {}, claims: {} }).value;
}

describe.each(ADAPTERS)('a stable and a canary instance of the sample on %s, found through etcd', (adapter) => {
  let etcd: EtcdServer | undefined;
  let dir: string;
  let file: string;
  let stable: AppInstance | undefined;
  let canary: AppInstance | undefined;
  let order: string;
  /** The track that served each of USERS at 20 %, asked once and shared by the tests that need it. */
  let tracksAt20: string[] | undefined;

  /** Replaces the file as deploy tools do (write aside, rename over); returns when. */
  function writeRules(rules: Rules): number {
    const aside = join(dir, '.dynamic.yaml.tmp');
    writeFileSync(aside, stringify({ canary: rules }));
    renameSync(aside, file);
    return Date.now();
  }

  async function quote(headers: Record<string, string> = {}): Promise<Quote> {
    const res = await fetch(`${stable!.url}/orders/${order}/quote`, { headers });
    return { status: res.status, body: (await res.json()) as Quote['body'] };
  }

  /** The track that served each user's request (sticky key header). */
  const tracksOf = (users: readonly string[]): Promise<string[]> =>
    mapLimit(users, CONCURRENCY, async (user) => {
      const answer = await quote({ 'x-user-id': user });
      if (answer.status !== 200) throw new Error(`${user}: ${answer.status} ${JSON.stringify(answer.body)}`);
      return answer.body.track ?? 'none';
    });

  /** Polls until `headers` are served by `track`, failing past `withinMs` after `since`; returns how long it took. */
  async function servedWithin(headers: Record<string, string>, track: string, since: number, withinMs: number): Promise<number> {
    let last: Quote | undefined;
    while (Date.now() - since <= withinMs) {
      last = await quote(headers);
      if (last.body.track === track) return Date.now() - since;
      await delay(20);
    }
    throw new Error(`${JSON.stringify(headers)} not served by ${track} within ${withinMs} ms (last: ${JSON.stringify(last?.body)})`);
  }

  beforeAll(async () => {
    // An etcd of its own: the canary killed below stays registered until its lease runs out.
    etcd = await EtcdServer.start();
    dir = mkdtempSync(join(tmpdir(), 'nest-rollout-canary-instances-'));
    file = join(dir, 'dynamic.yaml');
    writeRules(rulesAt(20));
    const env = {
      REGISTRY_DRIVER: 'etcd',
      ETCD_ENDPOINTS: etcd.url,
      DYNAMIC_CONFIG_FILE: file,
      CANARY_JWT_SECRET: JWT_SECRET,
      CANARY_FORCE_TRUST: 'none',
      DRAIN_DELAY_MS: '0',
    };
    [canary, stable] = await Promise.all([
      startSample({ name: `canary-${adapter}`, adapter, env: { ...env, APP_TRACK: 'canary' } }),
      startSample({ name: `stable-${adapter}`, adapter, env }),
    ]);
    // Each instance has its own in-memory database: the same first order on both.
    const orders = await Promise.all(
      [stable, canary].map(async (app) => {
        const res = await fetch(`${app.url}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ item: 'tea', quantity: 3 }),
        });
        return ((await res.json()) as { id: string }).id;
      }),
    );
    expect(orders[1]).toBe(orders[0]);
    order = orders[0];
    // The stable instance learns of the canary from its registry watch once the canary is ready.
    await servedWithin({ 'x-env': 'canary' }, 'canary', Date.now(), 15_000);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([stable?.stop(2000), canary?.stop(2000)]);
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves a request no rule picks on the stable instance with v1', async () => {
    expect(await quote()).toEqual({
      status: 200,
      body: { id: order, pricing: 'v1', amountCents: 750, track: 'stable', variant: 'stable', reason: 'no_sticky_key' },
    });
  });

  it('forwards x-env: canary to the canary instance, which prices with v2', async () => {
    expect(await quote({ 'x-env': 'canary' })).toEqual({
      status: 200,
      body: {
        id: order,
        pricing: 'v2',
        amountCents: 720,
        track: 'canary',
        variant: 'canary',
        reason: 'header',
        servedLocally: 'on_canary',
      },
    });
  });

  it('forwards a request with the beta cookie to the canary', async () => {
    expect((await quote({ cookie: 'theme=dark; beta=yes' })).body).toMatchObject({ track: 'canary', pricing: 'v2', reason: 'cookie' });
    expect((await quote({ cookie: 'beta=no' })).body).toMatchObject({ track: 'stable', pricing: 'v1' });
  });

  it('forwards a request whose verified token has the plan: beta claim to the canary', async () => {
    const token = await hs256({ sub: 'alice', plan: 'beta' }, JWT_SECRET, inSeconds(300));
    expect((await quote({ authorization: `Bearer ${token}` })).body).toMatchObject({ track: 'canary', pricing: 'v2', reason: 'claim' });
    const other = await hs256({ sub: 'bob', plan: 'basic' }, JWT_SECRET, inSeconds(300));
    expect((await quote({ authorization: `Bearer ${other}` })).body).toMatchObject({ track: 'stable', reason: 'no_sticky_key' });
  });

  it('keeps forged, expired and alg none tokens claiming plan: beta on stable', async () => {
    const forged = await hs256({ sub: 'mallory', plan: 'beta' }, 'another-secret-of-at-least-32-characters', inSeconds(300));
    const expired = await hs256({ sub: 'alice', plan: 'beta' }, JWT_SECRET, inSeconds(-60));
    const unsigned = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub: 'mallory', plan: 'beta', exp: inSeconds(300) })}.`;
    for (const token of [forged, expired, unsigned]) {
      const answer = await quote({ authorization: `Bearer ${token}` });
      expect(answer).toEqual({ status: 200, body: expect.objectContaining({ track: 'stable', pricing: 'v1', reason: 'token_invalid' }) });
    }
  });

  it('does not let an untrusted client force a side with x-canary (CANARY_FORCE_TRUST=none)', async () => {
    expect((await quote({ 'x-canary': 'always' })).body).toMatchObject({ track: 'stable', variant: 'stable' });
    expect((await quote({ cookie: 'x-canary=always' })).body).toMatchObject({ track: 'stable', variant: 'stable' });
    // Nor opt out: the rule still sends x-env: canary to the canary.
    expect((await quote({ 'x-env': 'canary', 'x-canary': 'never' })).body).toMatchObject({ track: 'canary', reason: 'header' });
  });

  it('serves a request carrying the hop header on the stable instance instead of forwarding it again', async () => {
    expect((await quote({ 'x-env': 'canary', 'x-canary-hop': '1' })).body).toMatchObject({
      track: 'stable',
      pricing: 'v1',
      variant: 'canary',
      servedLocally: 'loop',
    });
  });

  it('sends 17-23 % of 2,000 users to the canary at 20 %, each user to the same side every time', async () => {
    tracksAt20 ??= await tracksOf(USERS);
    const share = tracksAt20.filter((track) => track === 'canary').length / USERS.length;
    expect(share).toBeGreaterThanOrEqual(0.17);
    expect(share).toBeLessThanOrEqual(0.23);
    expect(new Set(tracksAt20)).toEqual(new Set(['stable', 'canary']));
    const again = await tracksOf(USERS);
    expect(USERS.filter((_, i) => again[i] !== tracksAt20![i])).toEqual([]);
  }, 120_000);

  it('decides each user as flagd-core does for the same flag definition', async () => {
    tracksAt20 ??= await tracksOf(USERS);
    const edge = flagdCohort(rulesAt(20));
    expect(USERS.filter((user, i) => edge(user) !== tracksAt20![i])).toEqual([]);
  }, 120_000);

  it('keeps every canary user on the canary when 20 % is raised to 30 % in the file, within a second', async () => {
    tracksAt20 ??= await tracksOf(USERS);
    const edge = flagdCohort(rulesAt(30));
    // A user the new share adds: served by the canary once the change applies.
    const added = USERS.find((user, i) => tracksAt20![i] === 'stable' && edge(user) === 'canary');
    expect(added).toBeDefined();
    const since = writeRules(rulesAt(30));
    await servedWithin({ 'x-user-id': added! }, 'canary', since, APPLY_WITHIN_MS);

    const at30 = await tracksOf(USERS);
    expect(USERS.filter((_, i) => tracksAt20![i] === 'canary' && at30[i] !== 'canary')).toEqual([]);
    const share = at30.filter((track) => track === 'canary').length / USERS.length;
    expect(share).toBeGreaterThanOrEqual(0.27);
    expect(share).toBeLessThanOrEqual(0.33);
    expect(USERS.filter((user, i) => edge(user) !== at30[i])).toEqual([]);
  }, 120_000);

  it('applies a changed header rule from the file within a second', async () => {
    const since = writeRules({ ...rulesAt(30), header: { 'x-env': 'beta' } });
    await servedWithin({ 'x-env': 'beta' }, 'canary', since, APPLY_WITHIN_MS);
    expect((await quote({ 'x-env': 'canary' })).body).toMatchObject({ track: 'stable', variant: 'stable' });
  });

  it('answers every request with 200 from the stable instance once the canary is killed under load', async () => {
    await servedWithin({ 'x-env': 'canary' }, 'canary', writeRules(rulesAt(20)), 5000);
    let killed: Promise<ProcessExit> | undefined;
    let servedByCanary = 0;
    const result = await runLoad({
      url: stable!.url,
      path: `/orders/${order}/quote`,
      headers: { 'x-env': 'canary' },
      connections: CONCURRENCY,
      maxRequests: 600,
      durationMs: 30_000,
      serverFromBody: (body) => {
        const answer = JSON.parse(body) as Quote['body'];
        return `${answer.track}/${answer.servedLocally}`;
      },
      onRecord: (record) => {
        if (record.server === 'canary/on_canary') servedByCanary++;
        if (servedByCanary === 100 && killed === undefined) killed = canary!.process.stop('SIGKILL', 0);
      },
    });
    expect((await killed)?.signal).toBe('SIGKILL');
    expect({ sent: result.sent, failed: result.failed, failures: describeFailures(result) }).toEqual({
      sent: 600,
      failed: 0,
      failures: '-',
    });
    // Before the kill, the canary; in flight at the kill, or after it, stable (the canary may have
    // had the request: `canary_failed`; the registry still lists the dead canary: `connect_failed`).
    const servedBy = Object.keys(result.byServer).sort();
    expect(servedBy).toEqual(expect.arrayContaining(['canary/on_canary', 'stable/connect_failed']));
    expect(
      servedBy.filter((s) => !['canary/on_canary', 'stable/connect_failed', 'stable/canary_failed', 'stable/no_canary_target'].includes(s)),
    ).toEqual([]);
    expect(result.records.filter((r) => r.server?.startsWith('stable/')).length).toBeGreaterThan(300);
  }, 60_000);
});

describe.each(ADAPTERS)('a POST forwarded between a stable and a canary instance of the canary fixture app on %s', (adapter) => {
  let canary: AppInstance | undefined;
  let stable: AppInstance | undefined;

  beforeAll(async () => {
    ensureFixturesBuilt();
    canary = await startApp({
      name: `fixture-canary-${adapter}`,
      script: CANARY_APP_MAIN,
      readyPath: '/ping',
      env: { ADAPTER: adapter, APP_TRACK: 'canary' },
    });
    stable = await startApp({
      name: `fixture-stable-${adapter}`,
      script: CANARY_APP_MAIN,
      readyPath: '/ping',
      env: { ADAPTER: adapter, APP_TRACK: 'stable', CANARY_URL: canary.url },
    });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([stable?.stop(2000), canary?.stop(2000)]);
  });

  interface Upload {
    readonly status: number;
    readonly body: { track?: string; variant?: string; bytes?: number; sha256?: string };
  }

  /** POSTs to the stable instance; `write` drives the body. */
  function upload(headers: Record<string, string>, write: (req: import('node:http').ClientRequest) => void): Promise<Upload> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${stable!.url}/uploads`,
        { method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream', ...headers } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Upload['body'] }));
          res.on('error', reject);
        },
      );
      req.setTimeout(20_000, () => req.destroy(new Error('no answer to the upload within 20 s')));
      req.on('error', reject);
      write(req);
    });
  }

  const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

  it('forwards a body larger than 1 MiB intact to the canary, and serves a stable one locally', async () => {
    const body = randomBytes(1536 * 1024 + 7);
    const headers = { 'content-length': String(body.length) };
    expect(await upload({ ...headers, 'x-env': 'canary' }, (req) => req.end(body))).toEqual({
      status: 200,
      body: expect.objectContaining({ track: 'canary', bytes: body.length, sha256: sha256(body) }),
    });
    expect(await upload(headers, (req) => req.end(body))).toEqual({
      status: 200,
      body: expect.objectContaining({ track: 'stable', variant: 'stable', bytes: body.length, sha256: sha256(body) }),
    });
  });

  it('streams the body: the canary sees its first bytes before the client has sent the last', async () => {
    const id = `upload-${adapter}-${Date.now()}`;
    const first = randomBytes(64 * 1024);
    const rest = randomBytes(1536 * 1024);
    let firstSeenAt = 0;
    let lastSentAt = 0;
    const answer = await upload({ 'x-env': 'canary', 'x-upload-id': id, 'transfer-encoding': 'chunked' }, (req) => {
      req.write(first);
      // The rest only once the canary said it has the beginning: a stable instance that buffered
      // the body would leave the canary waiting, and this line would never come.
      void canary!.process
        .waitForLine((line) => line.includes(`"upload":"${id}"`), 10_000)
        .then(
          () => {
            firstSeenAt = Date.now();
            req.end(rest, () => (lastSentAt = Date.now()));
          },
          (error: Error) => req.destroy(error),
        );
    });
    expect(answer).toEqual({
      status: 200,
      body: expect.objectContaining({ track: 'canary', bytes: first.length + rest.length, sha256: sha256(Buffer.concat([first, rest])) }),
    });
    expect(firstSeenAt).toBeGreaterThan(0);
    expect(lastSentAt).toBeGreaterThanOrEqual(firstSeenAt);
  });
});
