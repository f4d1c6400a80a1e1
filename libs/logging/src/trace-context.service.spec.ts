import { Test, type TestingModule } from '@nestjs/testing';
import { LifecycleModule, LifecycleService } from '@nest-rollout/lifecycle';
import type { Logger as Pino } from 'pino';
import { LOGGING_PINO_LOGGER } from './logging.constants';
import { LoggingModule } from './logging.module';
import { TraceContext } from './trace-context.service';
import { CapturedLines } from '../testing/logging-test-app';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

describe('TraceContext', () => {
  let moduleRef: TestingModule;
  let traces: TraceContext;
  let logs: CapturedLines;

  beforeEach(async () => {
    logs = new CapturedLines();
    moduleRef = await Test.createTestingModule({
      imports: [LoggingModule.forRoot({ destination: logs }), LifecycleModule.forRoot({ exitOnShutdown: false })],
    }).compile();
    traces = moduleRef.get(TraceContext);
  });

  afterEach(async () => {
    await moduleRef.close();
  });

  it('has no current ids and no traceparent outside a request', () => {
    expect(traces.current()).toBeUndefined();
    expect(traces.traceparent()).toBeUndefined();
  });

  it('reports the lifecycle’s trace id outside a request', () => {
    expect(traces.traceId()).toBe(moduleRef.get(LifecycleService).traceId);
  });

  it('gives a run block new ids that hold across awaits and end with it', async () => {
    const seen = await traces.run(async () => {
      const before = traces.current();
      await new Promise((resolve) => setImmediate(resolve));
      return { before, after: traces.current(), traceparent: traces.traceparent() };
    });

    expect(seen.before).toEqual({
      traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
      spanId: expect.stringMatching(/^[0-9a-f]{16}$/),
      parentSpanId: undefined,
      traceFlags: '01',
      requestId: seen.before?.traceId,
      // A block, not a request; outside any decided request, no canary decision to keep.
      request: false,
      canary: undefined,
    });
    expect(seen.after).toBe(seen.before);
    expect(seen.traceparent).toBe(`00-${seen.before?.traceId}-${seen.before?.spanId}-01`);
    expect(traces.current()).toBeUndefined();
  });

  it('continues a valid traceparent in a run block, as a child of its span', () => {
    const ids = traces.run(() => traces.current(), `00-${TRACE_ID}-${PARENT_ID}-00`);

    expect(ids).toMatchObject({ traceId: TRACE_ID, parentSpanId: PARENT_ID, traceFlags: '00' });
    expect(ids?.spanId).not.toBe(PARENT_ID);
  });

  it('starts a new trace when the traceparent given to run is malformed', () => {
    const ids = traces.run(() => traces.current(), 'garbage');

    expect(ids?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(ids?.parentSpanId).toBeUndefined();
  });

  it('puts the ids of a run block on the lines logged inside it', () => {
    const pino = moduleRef.get<Pino>(LOGGING_PINO_LOGGER);
    const ids = traces.run(() => {
      pino.info({ event: 'job.step' });
      return traces.current();
    });

    expect(logs.one('job.step')).toMatchObject({ trace_id: ids?.traceId, span_id: ids?.spanId });
  });

  it('adds annotations to the further lines of a run block only, never over the ids', async () => {
    const pino = moduleRef.get<Pino>(LOGGING_PINO_LOGGER);
    traces.annotate({ 'feature_flag.result.variant': 'outside' });
    const ids = await traces.run(async () => {
      pino.info({ event: 'job.before' });
      traces.annotate({ 'feature_flag.result.variant': 'stable', trace_id: 'forged' });
      traces.annotate({ 'feature_flag.result.variant': 'canary', attempt: 2 });
      await new Promise((resolve) => setImmediate(resolve));
      pino.info({ event: 'job.after' });
      return traces.current();
    });
    pino.info({ event: 'job.done' });

    expect(logs.one('job.before')).not.toHaveProperty(['feature_flag.result.variant']);
    expect(logs.one('job.after')).toMatchObject({ 'feature_flag.result.variant': 'canary', attempt: 2, trace_id: ids?.traceId });
    expect(logs.one('job.done')).not.toHaveProperty(['feature_flag.result.variant']);
  });
});
