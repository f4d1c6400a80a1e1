import { Logger } from '@nestjs/common';
import { type LifecycleService, LifecycleState, ManualClock, settle } from '@nest-rollout/lifecycle';
import { BehaviorSubject } from 'rxjs';
import { type DrainableGrpcServer, GrpcDrain } from './grpc-drain';

/** A grpc-js server as the drain sees it: `tryShutdown` finishes when the test says the calls are done. */
class FakeServer implements DrainableGrpcServer {
  tryShutdowns = 0;
  forceShutdowns = 0;
  private callback: ((error?: Error) => void) | undefined;

  tryShutdown(callback: (error?: Error) => void): void {
    this.tryShutdowns++;
    this.callback = callback;
  }

  forceShutdown(): void {
    this.forceShutdowns++;
  }

  /** The last call in flight has finished. */
  callsDone(): void {
    this.callback?.();
  }
}

function setup(shutdownTimeoutMs = 1000) {
  const state = new BehaviorSubject(LifecycleState.READY);
  const lifecycle = { state$: state.asObservable(), options: { shutdownTimeoutMs } } as unknown as LifecycleService;
  const clock = new ManualClock();
  const drain = new GrpcDrain(lifecycle, clock);
  const server = new FakeServer();
  return { state, clock, drain, server };
}

/** Whether `promise` has settled, without waiting for it. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await settle();
  return done;
}

describe('GrpcDrain', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(true));

  it('keeps serving while DRAINING and shuts the server down gracefully at STOPPING, done when the calls are', async () => {
    const { state, drain, server } = setup();
    drain.serve(server);

    state.next(LifecycleState.DRAINING);
    expect(server.tryShutdowns).toBe(0);

    state.next(LifecycleState.STOPPING);
    expect(server.tryShutdowns).toBe(1);
    const stopped = drain.beforeApplicationShutdown();
    expect(await settled(stopped)).toBe(false);

    server.callsDone();
    expect(await settled(stopped)).toBe(true);
    expect(server.forceShutdowns).toBe(0);
  });

  it('forces the server down once the shutdown timeout has passed with a call still open', async () => {
    const { state, clock, drain, server } = setup(1500);
    drain.serve(server);
    state.next(LifecycleState.STOPPING);
    const stopped = drain.stop();

    await clock.advance(1499);
    expect(server.forceShutdowns).toBe(0);
    expect(await settled(stopped)).toBe(false);

    await clock.advance(1);
    expect(server.forceShutdowns).toBe(1);
    expect(await settled(stopped)).toBe(true);
    // The graceful shutdown's own end, after it was forced, changes nothing.
    server.callsDone();
    expect(server.forceShutdowns).toBe(1);
  });

  it('drains once when the application is closed directly, without a signal', async () => {
    const { drain, server } = setup();
    drain.serve(server);

    const first = drain.beforeApplicationShutdown();
    const second = drain.stop();
    expect(second).toBe(first);
    expect(server.tryShutdowns).toBe(1);
    server.callsDone();
    await first;
  });

  it('has nothing to drain before the server listens', async () => {
    const { drain } = setup();
    expect(await settled(drain.beforeApplicationShutdown())).toBe(true);
  });
});
