import { systemClock, systemProcess } from './lifecycle.runtime';

describe('systemClock', () => {
  beforeEach(() => jest.useFakeTimers({ now: Date.UTC(2030, 0, 1) }));
  afterEach(() => jest.useRealTimers());

  it('tells the wall-clock time', () => {
    expect(systemClock.now()).toBe(Date.UTC(2030, 0, 1));
  });

  it('sleeps for the given time', async () => {
    let woke = false;
    const sleeping = systemClock.sleep(1_000).then(() => (woke = true));
    await jest.advanceTimersByTimeAsync(999);
    expect(woke).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    await sleeping;
    expect(woke).toBe(true);
  });

  it('wakes early when the signal aborts, and leaves no timer behind', async () => {
    const abort = new AbortController();
    let woke = false;
    const sleeping = systemClock.sleep(60_000, abort.signal).then(() => (woke = true));
    await jest.advanceTimersByTimeAsync(10);
    expect(woke).toBe(false);
    abort.abort();
    await sleeping;
    expect(woke).toBe(true);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('returns at once for an aborted signal or a delay of 0', async () => {
    const abort = new AbortController();
    abort.abort();
    await systemClock.sleep(60_000, abort.signal);
    await systemClock.sleep(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('runs a timer unless it is cancelled', () => {
    const fired: string[] = [];
    systemClock.setTimer(100, () => fired.push('kept'));
    const cancel = systemClock.setTimer(100, () => fired.push('cancelled'));
    cancel();
    jest.advanceTimersByTime(100);
    expect(fired).toEqual(['kept']);
  });
});

describe('systemClock timers', () => {
  it('do not keep the process alive', () => {
    const spy = jest.spyOn(global, 'setTimeout');
    const cancel = systemClock.setTimer(60_000, () => undefined);
    try {
      const timer = spy.mock.results[0].value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(false);
    } finally {
      cancel();
      spy.mockRestore();
    }
  });
});

describe('systemProcess', () => {
  it('adds and removes signal handlers on the real process', () => {
    const handler = () => undefined;
    const before = process.listenerCount('SIGUSR2');
    systemProcess.onSignal('SIGUSR2', handler);
    expect(process.listeners('SIGUSR2')).toContain(handler);
    systemProcess.offSignal('SIGUSR2', handler);
    expect(process.listenerCount('SIGUSR2')).toBe(before);
  });

  it('exits through process.exit with the given code', () => {
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      systemProcess.exit(3);
      expect(exit).toHaveBeenCalledWith(3);
    } finally {
      exit.mockRestore();
    }
  });

  it('lists what holds the event loop open', () => {
    const timer = setInterval(() => undefined, 60_000);
    try {
      expect(systemProcess.activeResources()).toContain('Timeout');
    } finally {
      clearInterval(timer);
    }
  });
});
