import { Controller, Get, Global, INestApplication, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import type { MetricsPublisher } from '@nest-rollout/lifecycle';
import { exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { Subject } from 'rxjs';
import { CANARY_FORWARDER, CANARY_RULES_SOURCE } from './canary.constants';
import { CanaryContext } from './canary.context';
import { Canary, CanaryDecision } from './canary.decorator';
import { CanaryModule } from './canary.module';
import type { CanaryModuleOptions } from './canary.options';
import { canaryForceSignature } from './canary.trust';
import type { CanaryForwarder, CanaryRulesSource } from './canary.types';

const SECRET = 'a-test-secret-that-is-long-enough-123456';

@Controller('orders')
class OrdersController {
  constructor(private readonly context: CanaryContext) {}

  @Get(':id/quote')
  @Canary()
  quote(@CanaryDecision() decision: CanaryDecision | undefined) {
    return { decision, fromContext: this.context.current() ?? null };
  }

  @Get(':id')
  plain(@CanaryDecision() decision: CanaryDecision | undefined) {
    return { decision: decision ?? null, fromContext: this.context.current() ?? null };
  }
}

interface Counted {
  name: string;
  labels: Readonly<Record<string, string>>;
}

interface Setup {
  options?: CanaryModuleOptions;
  forwarder?: CanaryForwarder;
  source?: CanaryRulesSource;
}

async function start(adapter: 'express' | 'fastify', setup: Setup) {
  const counted: Counted[] = [];
  const metrics: MetricsPublisher = {
    increment: (name, labels) => counted.push({ name, labels }),
    set: () => undefined,
    observe: () => () => undefined,
  };
  @Module({
    providers: [
      { provide: METRICS_PUBLISHER, useValue: metrics },
      ...(setup.forwarder ? [{ provide: CANARY_FORWARDER, useValue: setup.forwarder }] : []),
      ...(setup.source ? [{ provide: CANARY_RULES_SOURCE, useValue: setup.source }] : []),
    ],
    exports: [METRICS_PUBLISHER, ...(setup.forwarder ? [CANARY_FORWARDER] : []), ...(setup.source ? [CANARY_RULES_SOURCE] : [])],
  })
  // As MetricsModule, a forwarder module or a config module would be.
  @Global()
  class Providers {}
  @Module({ imports: [Providers, CanaryModule.forRoot(setup.options ?? {})], controllers: [OrdersController] })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app: INestApplication = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
    logger: false,
  });
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url.replace('[::1]', '127.0.0.1')}${path}`, { headers });
    return {
      status: response.status,
      headers: response.headers,
      body: (await response.json()) as { decision: CanaryDecision | null; fromContext: CanaryDecision | null },
    };
  };
  return { app, get, counted };
}

describe.each(['express', 'fastify'] as const)('@Canary() over HTTP (%s)', (adapter) => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });
  const boot = async (setup: Setup) => {
    const started = await start(adapter, setup);
    app = started.app;
    return started;
  };
  const decisionOf = async (get: Awaited<ReturnType<typeof start>>['get'], headers: Record<string, string> = {}) => {
    const { status, body } = await get('/orders/1/quote', headers);
    expect(status).toBe(200);
    return { variant: body.decision?.variant, reason: body.decision?.reason };
  };

  it('routes by header: exact value, list and regex', async () => {
    const { get } = await boot({
      options: { rules: { header: { 'X-Env': 'canary', 'x-team': ['a', 'b'], 'x-build': { regex: '^rc-\\d+$' } } } },
    });
    expect(await decisionOf(get, { 'x-env': 'canary' })).toEqual({ variant: 'canary', reason: 'header' });
    expect(await decisionOf(get, { 'x-team': 'b' })).toEqual({ variant: 'canary', reason: 'header' });
    expect(await decisionOf(get, { 'x-build': 'rc-12' })).toEqual({ variant: 'canary', reason: 'header' });
    expect(await decisionOf(get, { 'x-build': 'v-12', 'x-env': 'prod' })).toEqual({ variant: 'stable', reason: 'no_match' });
  });

  it('routes by cookie, and ignores a malformed cookie header', async () => {
    const { get } = await boot({ options: { rules: { cookie: { cohort: 'beta' } } } });
    expect(await decisionOf(get, { cookie: 'a=1; cohort=beta' })).toEqual({ variant: 'canary', reason: 'cookie' });
    expect(await decisionOf(get, { cookie: 'cohort=%E0%A4%A; ;=;;' })).toEqual({ variant: 'stable', reason: 'no_match' });
  });

  it('exposes the decision to the handler and in CanaryContext; an undecorated route has none', async () => {
    const { get, counted } = await boot({ options: { rules: { header: { 'x-env': 'canary' } } } });
    const decorated = await get('/orders/1/quote', { 'x-env': 'canary' });
    expect(decorated.body.fromContext).toEqual(decorated.body.decision);
    expect(decorated.body.decision).toMatchObject({ route: '/orders/:id/quote', servedLocally: 'no_forwarder' });
    const plain = await get('/orders/1', { 'x-env': 'canary' });
    expect(plain.body).toEqual({ decision: null, fromContext: null });
    expect(counted).toEqual([
      { name: 'canary_decisions_total', labels: { route: '/orders/:id/quote', variant: 'canary', reason: 'header' } },
    ]);
  });

  it('keeps each user on one side with a 20 % sticky percentage, and sets the sticky header and cookie', async () => {
    const { get } = await boot({
      options: { rules: { percent: 20, stickyKey: 'header:x-user' }, stickyHeader: 'x-canary-variant', stickyCookie: 'canary_variant' },
    });
    const seen: string[] = [];
    for (let i = 0; i < 200; i++) seen.push((await decisionOf(get, { 'x-user': `u${i}` })).variant as string);
    const share = seen.filter((v) => v === 'canary').length / seen.length;
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThan(0.3);
    for (let i = 0; i < 20; i++) expect((await decisionOf(get, { 'x-user': `u${i}` })).variant).toBe(seen[i]);
    const response = await get('/orders/1/quote', { 'x-user': 'u0' });
    expect(response.headers.get('x-canary-variant')).toBe(seen[0]);
    expect(response.headers.get('set-cookie')).toContain(`canary_variant=${seen[0]}`);
    expect(await decisionOf(get)).toEqual({ variant: 'stable', reason: 'no_sticky_key' });
  });

  describe('JWT claims', () => {
    const claimRules = { claim: { plan: 'beta' } };

    it('routes by a claim of an HS256 token, and refuses forged, expired, alg none and wrong-algorithm tokens', async () => {
      const { get } = await boot({ options: { rules: claimRules, jwt: { secret: SECRET, algorithms: ['HS256'] } } });
      const sign = (secret: string, alg = 'HS256', exp = '5m') =>
        new SignJWT({ plan: 'beta' })
          .setProtectedHeader({ alg })
          .setIssuedAt()
          .setExpirationTime(exp)
          .sign(new TextEncoder().encode(secret));
      const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
      expect(await decisionOf(get, bearer(await sign(SECRET)))).toEqual({ variant: 'canary', reason: 'claim' });
      expect(await decisionOf(get, bearer(await sign('another-secret-that-is-long-enough-99999')))).toEqual({
        variant: 'stable',
        reason: 'token_invalid',
      });
      expect(await decisionOf(get, bearer(await sign(SECRET, 'HS256', '-1m')))).toEqual({ variant: 'stable', reason: 'token_invalid' });
      expect(await decisionOf(get, bearer(await sign(SECRET, 'HS512')))).toEqual({ variant: 'stable', reason: 'token_invalid' });
      const none = new UnsecuredJWT({ plan: 'beta' }).setExpirationTime('5m').encode();
      expect(await decisionOf(get, bearer(none))).toEqual({ variant: 'stable', reason: 'token_invalid' });
      expect(await decisionOf(get, bearer('not.a.token'))).toEqual({ variant: 'stable', reason: 'token_invalid' });
      expect(await decisionOf(get, bearer(`${'a'.repeat(9000)}.b.c`))).toEqual({ variant: 'stable', reason: 'token_invalid' });
      expect(await decisionOf(get)).toEqual({ variant: 'stable', reason: 'no_match' });
    });

    it('routes by a claim of an RS256 token read from a cookie', async () => {
      const { publicKey, privateKey } = await generateKeyPair('RS256');
      const { get } = await boot({
        options: { rules: claimRules, jwt: { publicKey: await exportSPKI(publicKey), algorithms: ['RS256'], cookie: 'session' } },
      });
      const token = await new SignJWT({ plan: 'beta' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(privateKey);
      expect(await decisionOf(get, { cookie: `session=${token}` })).toEqual({ variant: 'canary', reason: 'claim' });
      expect(await decisionOf(get, { cookie: 'session=%%%' })).toEqual({ variant: 'stable', reason: 'token_invalid' });
    });
  });

  describe('trust', () => {
    const rules = { header: { 'x-env': 'canary' } };

    it('ignores x-canary from anyone under force none', async () => {
      const { get } = await boot({ options: { rules } });
      expect(await decisionOf(get, { 'x-canary': 'always' })).toEqual({ variant: 'stable', reason: 'no_match' });
      expect(await decisionOf(get, { 'x-canary': 'never', 'x-env': 'canary' })).toEqual({ variant: 'canary', reason: 'header' });
    });

    it('lets an opt-out win over a force and over rules when trusted (force any)', async () => {
      const { get } = await boot({ options: { rules, trust: { force: 'any' } } });
      expect(await decisionOf(get, { 'x-canary': 'always' })).toEqual({ variant: 'canary', reason: 'forced_always' });
      expect(await decisionOf(get, { 'x-canary': 'never', 'x-env': 'canary' })).toEqual({ variant: 'stable', reason: 'forced_never' });
      expect(await decisionOf(get, { cookie: 'x-canary=never', 'x-canary': 'always' })).toEqual({
        variant: 'canary',
        reason: 'forced_always',
      });
      expect(await decisionOf(get, { cookie: 'x-canary=always' })).toEqual({ variant: 'canary', reason: 'forced_always' });
    });

    it('trusts only peers within the proxy CIDRs', async () => {
      const trusted = await boot({ options: { rules, trust: { force: { proxies: ['127.0.0.0/8'] } } } });
      expect(await decisionOf(trusted.get, { 'x-canary': 'always' })).toEqual({ variant: 'canary', reason: 'forced_always' });
      await app?.close();
      const untrusted = await boot({ options: { rules, trust: { force: { proxies: ['10.0.0.0/8'] } } } });
      expect(await decisionOf(untrusted.get, { 'x-canary': 'always' })).toEqual({ variant: 'stable', reason: 'no_match' });
    });

    it('trusts only a valid, fresh HMAC signature from the gateway', async () => {
      const { get } = await boot({ options: { rules, trust: { force: { hmacHeader: 'x-canary-sig', secret: SECRET } } } });
      const now = Math.floor(Date.now() / 1000);
      expect(await decisionOf(get, { 'x-canary': 'always', 'x-canary-sig': canaryForceSignature(SECRET, now, 'always') })).toEqual({
        variant: 'canary',
        reason: 'forced_always',
      });
      expect(await decisionOf(get, { 'x-canary': 'always', 'x-canary-sig': canaryForceSignature(SECRET, now, 'never') })).toEqual({
        variant: 'stable',
        reason: 'no_match',
      });
      expect(await decisionOf(get, { 'x-canary': 'always', 'x-canary-sig': canaryForceSignature(SECRET, now - 3600, 'always') })).toEqual({
        variant: 'stable',
        reason: 'no_match',
      });
    });
  });

  it('hands canary decisions to the forwarder, and serves locally when it declines', async () => {
    const calls: string[] = [];
    const forwarder: CanaryForwarder = {
      forward: async (req, res, decision) => {
        calls.push(decision.reason);
        if (req.headers['x-decline']) return { servedLocally: 'no_healthy_canary' };
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ decision: { ...decision, forwarded: true }, fromContext: null }));
        return 'forwarded';
      },
    };
    const { get } = await boot({ options: { rules: { header: { 'x-env': 'canary' } } }, forwarder });
    expect((await get('/orders/1/quote', { 'x-env': 'canary' })).body.decision).toMatchObject({ forwarded: true });
    expect((await get('/orders/1/quote', { 'x-env': 'canary', 'x-decline': '1' })).body.decision).toMatchObject({
      servedLocally: 'no_healthy_canary',
    });
    expect(await decisionOf(get)).toEqual({ variant: 'stable', reason: 'no_match' });
    expect(calls).toEqual(['header', 'header']);
  });

  it('hands every decision to onDecision, and serves the request when it throws', async () => {
    const seen: string[] = [];
    const { get } = await boot({
      options: {
        rules: { header: { 'x-env': 'canary' } },
        onDecision: (decision) => {
          seen.push(`${decision.variant}:${decision.reason}`);
          if (seen.length === 2) throw new Error('a broken hook');
        },
      },
    });
    expect(await decisionOf(get, { 'x-env': 'canary' })).toEqual({ variant: 'canary', reason: 'header' });
    expect(await decisionOf(get)).toEqual({ variant: 'stable', reason: 'no_match' });
    expect(seen).toEqual(['canary:header', 'stable:no_match']);
  });

  it('serves canary decisions locally on a canary instance', async () => {
    const forwarder: CanaryForwarder = { forward: () => Promise.reject(new Error('must not be called')) };
    const { get } = await boot({ options: { track: 'canary', rules: { header: { 'x-env': 'canary' } } }, forwarder });
    expect((await get('/orders/1/quote', { 'x-env': 'canary' })).body.decision).toMatchObject({
      variant: 'canary',
      servedLocally: 'on_canary',
    });
  });

  it('applies live rules, and keeps the last good ones when an update is invalid', async () => {
    const updates = new Subject<unknown>();
    const { get } = await boot({
      options: { rules: { header: { 'x-env': 'canary' } } },
      source: { subscribe: (listener) => updates.subscribe(listener) },
    });
    updates.next({ header: { 'x-env': 'next' } });
    expect(await decisionOf(get, { 'x-env': 'next' })).toEqual({ variant: 'canary', reason: 'header' });
    updates.next({ header: { 'x-env': { regex: '(' } } });
    updates.next({ flag: { state: 'BROKEN' } });
    expect(await decisionOf(get, { 'x-env': 'next' })).toEqual({ variant: 'canary', reason: 'header' });
  });
});
