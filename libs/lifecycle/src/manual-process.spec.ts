import { ManualProcess } from './manual-process';

describe('ManualProcess', () => {
  it('delivers a signal only when the test emits it, to the handlers still registered for it', () => {
    const proc = new ManualProcess();
    const received: string[] = [];
    const onTerm = () => received.push('term');
    proc.onSignal('SIGTERM', onTerm);
    proc.onSignal('SIGHUP', () => received.push('hup'));
    expect(proc.listenerCount('SIGTERM')).toBe(1);
    expect(proc.listenerCount()).toBe(2);
    proc.emit('SIGTERM');
    proc.offSignal('SIGTERM', onTerm);
    proc.emit('SIGTERM');
    proc.emit('SIGHUP');
    expect(received).toEqual(['term', 'hup']);
    expect(proc.listenerCount()).toBe(1);
  });

  it('records exit codes instead of ending the process, with methods that work unbound', () => {
    const proc = new ManualProcess(['TCPSocketWrap']);
    const { exit, activeResources } = proc;
    exit(0);
    exit(1);
    expect(proc.exitCodes).toEqual([0, 1]);
    expect(activeResources()).toEqual(['TCPSocketWrap']);
    expect(new ManualProcess().activeResources()).toEqual([]);
  });
});
