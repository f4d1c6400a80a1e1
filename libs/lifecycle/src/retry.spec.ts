import { ManualClock } from './manual-clock';
import { optionGroup, parseModuleOptions } from './module-options';
import { backoffDelayMs, backoffOptions, bounded, DEFAULT_BACKOFF_POLICY } from './retry';

const policy = { initialDelayMs: 500, maxDelayMs: 30_000, multiplier: 2, jitter: 0.5 };

describe('backoffDelayMs', () => {
  it('doubles from the initial delay up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map((n) => backoffDelayMs(policy, n, () => 0))).toEqual([
      500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  it('takes up to the jitter share off each delay, so a fleet does not retry in lockstep', () => {
    expect(backoffDelayMs(policy, 1, () => 1)).toBe(250);
    expect(backoffDelayMs(policy, 3, () => 0.999999)).toBe(1000);
    expect(backoffDelayMs(policy, 3, () => 0.5)).toBe(1500);
    expect(backoffDelayMs({ ...policy, jitter: 0 }, 3, () => 0.9)).toBe(2000);
  });

  it('never waits less than 1 ms, whatever the random source returns', () => {
    expect(backoffDelayMs({ ...policy, initialDelayMs: 1, jitter: 1 }, 1, () => 1)).toBe(1);
    expect(backoffDelayMs(policy, 1, () => 7)).toBe(250);
    expect(backoffDelayMs(policy, 1, () => -3)).toBe(500);
  });
});

describe('backoffOptions', () => {
  const schema = optionGroup({ retry: backoffOptions.prefault({}) });
  const parse = (input: unknown) =>
    parseModuleOptions(schema, input, (problems) => Object.assign(new Error(problems.join('\n')), { problems }));
  const problems = (input: unknown): string[] => {
    try {
      parse(input);
    } catch (error) {
      return (error as { problems: string[] }).problems;
    }
    throw new Error('expected the options to be rejected');
  };

  it('defaults to 500 ms doubling up to 30 s with jitter 0.5, frozen', () => {
    const { retry } = parse({});
    expect(retry).toEqual(DEFAULT_BACKOFF_POLICY);
    expect(Object.isFrozen(retry)).toBe(true);
    expect(parse({ retry: { maxDelayMs: 5000 } }).retry).toEqual({ ...DEFAULT_BACKOFF_POLICY, maxDelayMs: 5000 });
  });

  it('names every problem at once, including a cap below the initial delay and an unknown key', () => {
    expect(problems({ retry: { initialDelayMs: 2000, maxDelayMs: 1000, multiplier: 0.5, jitter: 2, maxDelay: 1 } })).toEqual([
      'retry.multiplier: must be a number >= 1',
      'retry.jitter: must be a number from 0 to 1',
      'retry.maxDelay: unknown option; known options: initialDelayMs, maxDelayMs, multiplier, jitter',
      'retry.maxDelayMs: must be at least retry.initialDelayMs',
    ]);
    expect(problems({ retry: { initialDelayMs: 0.5 } })).toEqual([
      'retry.initialDelayMs: must be a whole number of milliseconds from 1 to 2147483647',
    ]);
    expect(problems({ retry: [] })).toEqual(['retry: must be an object']);
  });
});

describe('bounded', () => {
  const errors = (what: string, timeoutMs: number) => ({
    timedOut: () => new Error(`${what} did not answer within ${timeoutMs} ms`),
    aborted: () => new Error(`${what}: stopped`),
  });

  it('rejects at the bound even if the call never settles, and aborts the signal the call was given', async () => {
    const clock = new ManualClock();
    let given: AbortSignal | undefined;
    const call = bounded(
      clock,
      1000,
      (signal) => {
        given = signal;
        return new Promise<never>(() => undefined);
      },
      errors('read "/x"', 1000),
    );
    const outcome = call.then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    await clock.advance(999);
    expect(given?.aborted).toBe(false);
    await clock.advance(1);
    expect(await outcome).toBe('read "/x" did not answer within 1000 ms');
    expect(given?.aborted).toBe(true);
  });

  it('rejects at once when the caller gives up, or has already', async () => {
    const abort = new AbortController();
    const call = bounded(new ManualClock(), 1000, () => new Promise<never>(() => undefined), {
      signal: abort.signal,
      ...errors('read', 1000),
    });
    abort.abort();
    await expect(call).rejects.toThrow('read: stopped');
    const late = bounded(new ManualClock(), 1000, () => Promise.resolve(1), { signal: abort.signal, ...errors('write', 1000) });
    await expect(late).rejects.toThrow('write: stopped');
  });

  it("settles with the call's own result or error, and cancels its timer", async () => {
    const clock = new ManualClock();
    await expect(bounded(clock, 1000, () => Promise.resolve('value'), errors('read', 1000))).resolves.toBe('value');
    await expect(bounded(clock, 1000, () => Promise.reject(new Error('refused')), errors('read', 1000))).rejects.toThrow('refused');
    await expect(
      bounded(
        clock,
        1000,
        () => {
          throw new Error('thrown at once');
        },
        errors('read', 1000),
      ),
    ).rejects.toThrow('thrown at once');
    expect(clock.pendingTimers()).toEqual([]);
  });
});
