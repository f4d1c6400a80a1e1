import { BehaviorSubject } from 'rxjs';
import { LifecycleState, type InstanceIdentity, type LifecycleService, type LifecycleTask } from '@nest-rollout/lifecycle';

/** The part of LifecycleService the registry uses, driven by the spec. */
export class FakeLifecycle {
  readonly states = new BehaviorSubject<LifecycleState>(LifecycleState.STARTING);
  readonly drainTasks: LifecycleTask[] = [];
  readonly identity: InstanceIdentity = { instanceId: 'host-1', version: '1.2.3', color: 'blue' };
  readonly traceId = 'trace';

  get state(): LifecycleState {
    return this.states.value;
  }
  get state$() {
    return this.states.asObservable();
  }
  isReady(): boolean {
    return this.state === LifecycleState.READY;
  }
  registerDrainTask(task: LifecycleTask): void {
    this.drainTasks.push(task);
  }
  moveTo(state: LifecycleState): void {
    this.states.next(state);
  }
  /** DRAINING, then the drain tasks, as the lifecycle runs them. */
  async drain(): Promise<unknown[]> {
    this.moveTo(LifecycleState.DRAINING);
    return Promise.allSettled(this.drainTasks.map((t) => t.run(new AbortController().signal)));
  }
  asService(): LifecycleService {
    return this as unknown as LifecycleService;
  }
}
