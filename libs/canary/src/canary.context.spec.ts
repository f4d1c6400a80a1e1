import 'reflect-metadata';
import { Agent, request } from 'node:http';
import { Controller, Get, INestApplication, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { requestStorage } from '@nest-rollout/lifecycle';
import { LoggingModule, TraceContext } from '@nest-rollout/logging';
import { Canary, CanaryContext, CanaryDecision, CanaryModule } from './index';
import type { CanaryDecision as Decision } from './canary.types';

@Controller('orders')
class OrdersController {
  constructor(
    private readonly canary: CanaryContext,
    private readonly traces: TraceContext,
  ) {}

  @Get(':id/quote')
  @Canary({ forward: false })
  async quote(@CanaryDecision() decision: Decision | undefined) {
    await new Promise((resolve) => setImmediate(resolve));
    const trace = this.traces.current();
    const override: Decision = { variant: 'stable', reason: 'forced_never', route: 'elsewhere' };
    return {
      decision,
      fromContext: this.canary.current() ?? null,
      // One store for the request: the decision sits beside the trace ids, no second storage entered.
      inTraceStore: trace?.canary ?? null,
      traceId: trace?.traceId ?? null,
      nested: this.traces.run(() => this.canary.current() ?? null),
      overridden: this.canary.run(override, () => ({ decision: this.canary.current(), traceId: this.traces.current()?.traceId })),
      afterOverride: this.canary.current() ?? null,
    };
  }

  @Get(':id')
  plain() {
    return { fromContext: this.canary.current() ?? null, traceId: this.traces.current()?.traceId ?? null };
  }
}

function get(agent: Agent, url: string, path: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { agent, headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.each(['express', 'fastify'] as const)('CanaryContext beside LoggingModule (%s)', (adapter) => {
  let app: INestApplication;
  let url: string;
  // One connection: a decision must not outlive its request on it.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  beforeAll(async () => {
    @Module({
      imports: [LoggingModule.forRoot({ level: 'silent' }), CanaryModule.forRoot({ rules: { header: { 'x-env': 'canary' } } })],
      controllers: [OrdersController],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });

  afterAll(async () => {
    agent.destroy();
    await app.close();
  });

  it("keeps the decision in the request's trace store, for the request's nested blocks too", async () => {
    const body = await get(agent, url, '/orders/7/quote', { 'x-env': 'canary' });
    const decision = { variant: 'canary', reason: 'header', route: '/orders/:id/quote', servedLocally: 'not_forwarded' };
    expect(body.decision).toEqual(decision);
    expect(body.fromContext).toEqual(decision);
    expect(body.inTraceStore).toEqual(decision);
    expect(body.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(body.nested).toEqual(decision);
  });

  it('scopes CanaryContext.run to its block, the trace ids kept inside it', async () => {
    const body = await get(agent, url, '/orders/7/quote', {});
    expect(body.overridden).toEqual({
      decision: { variant: 'stable', reason: 'forced_never', route: 'elsewhere' },
      traceId: body.traceId,
    });
    expect(body.afterOverride).toEqual({ variant: 'stable', reason: 'no_match', route: '/orders/:id/quote' });
  });

  it('leaves no decision behind for the next, undecorated request on the connection, which has its own trace', async () => {
    const decided = await get(agent, url, '/orders/7/quote', { 'x-env': 'canary' });
    const plain = await get(agent, url, '/orders/7');
    expect(plain.fromContext).toBeNull();
    expect(plain.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(plain.traceId).not.toBe(decided.traceId);
  });

  it('uses the one storage of nest-rollout: nothing is current outside a request', () => {
    expect(requestStorage.getStore()).toBeUndefined();
    expect(app.get(CanaryContext).current()).toBeUndefined();
  });
});
