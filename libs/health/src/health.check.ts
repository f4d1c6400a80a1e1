import type { InjectionToken, Type } from '@nestjs/common';
import type { HealthFailureKind } from './health.constants';

/** Extra facts a passing check reports in the probe body (a status code, a server version). */
export type HealthCheckDetails = Readonly<Record<string, string | number | boolean | null>>;

/** What a check receives each time it runs. */
export interface HealthCheckContext {
  /** Aborts when the check's timeout passes: stop waiting, release what was borrowed. */
  readonly signal: AbortSignal;
  /** This check's timeout, for clients that take their own. */
  readonly timeoutMs: number;
  /**
   * A provider of the application (a pool, a client) by its token. Checks borrow the application's
   * own clients and never open their own: a probe must not cost a connection.
   */
  get<T>(token: InjectionToken<T>): T;
  /** A @nestjs/terminus indicator (`TypeOrmHealthIndicator`, `GRPCHealthIndicator`, ...), resolved once and reused. */
  terminus<T>(indicator: Type<T>): Promise<T>;
}

/**
 * One readiness check. `run` resolves when the dependency is up and throws when it is down (a
 * `HealthCheckError` names the kind; any other error is classified from its code and message).
 */
export interface HealthCheckDefinition {
  /** Key of the check in the probe body and the logs: letters, digits, `_`, `-`, `.`. */
  readonly name: string;
  /**
   * What the check depends on (`postgres`, `redis`, `http`, ...), named in failure details.
   * @default 'custom'
   */
  readonly dependency?: string;
  readonly run: (context: HealthCheckContext) => Promise<HealthCheckDetails | void> | HealthCheckDetails | void;
  /**
   * A run that takes longer is reported down (kind `timeout`) and its signal aborted.
   * @default the module's `timeoutMs`
   */
  readonly timeoutMs?: number;
  /**
   * A critical check that is down makes the instance unready; a non-critical one is reported
   * (`degraded` in the body) while the instance stays ready.
   * @default true
   */
  readonly critical?: boolean;
  /** @default the module's `intervalMs` */
  readonly intervalMs?: number;
  /** @default the module's `failureThreshold` */
  readonly failureThreshold?: number;
  /** @default the module's `successThreshold` */
  readonly successThreshold?: number;
}

/** A check after its defaults are applied. */
export interface ResolvedHealthCheck {
  readonly name: string;
  readonly dependency: string;
  readonly run: HealthCheckDefinition['run'];
  readonly timeoutMs: number;
  readonly critical: boolean;
  readonly intervalMs: number;
  readonly maxAgeMs: number;
  readonly failureThreshold: number;
  readonly successThreshold: number;
}

/** The state of one check, as the probes report it. */
export interface HealthCheckReport {
  readonly name: string;
  readonly dependency: string;
  readonly critical: boolean;
  /**
   * After damping (`failureThreshold` / `successThreshold`) and the `maxAgeMs` rule: what readiness uses.
   */
  readonly status: 'up' | 'down';
  /** The latest run's own outcome, before damping. */
  readonly observed: 'up' | 'down' | 'pending';
  /** Why the check is (or last was) down. */
  readonly kind?: HealthFailureKind;
  /** Redacted failure message. */
  readonly message?: string;
  /** Epoch milliseconds when the latest run finished. */
  readonly checkedAt?: number;
  readonly durationMs?: number;
  readonly consecutiveFailures: number;
  readonly consecutiveSuccesses: number;
  readonly details?: HealthCheckDetails;
}

/** A change of the instance's readiness, as emitted by `ReadinessService.changes$`. */
export interface ReadinessChange {
  readonly ready: boolean;
  /** Epoch milliseconds. */
  readonly at: number;
  /** `lifecycle READY`, `check database down (timeout)`, ... */
  readonly reason: string;
  /** Critical checks that are down. */
  readonly failing: readonly string[];
  readonly lifecycleState: string;
}
