/** Log event names of the sample; one event per line. */
export const SampleEvent = {
  /** The process could not start (invalid environment, options, a port in use); it exits 1. */
  START_FAILED: 'sample.start_failed',
  DATABASE_CONNECTED: 'database.connected',
  /** One failed attempt at start-up; the next one follows after the backoff delay. */
  DATABASE_CONNECT_FAILED: 'database.connect_failed',
  /** Start-up (or the migration job) ran migrations of the orders schema change; their names. */
  DATABASE_MIGRATED: 'database.migrated',
  /** The migration job (database/migrate.ts) failed; it exits 1. */
  DATABASE_MIGRATION_FAILED: 'database.migration_failed',
  /** The gRPC server (PORT_GRPC) listens. */
  GRPC_LISTENING: 'grpc.listening',
  /** The gRPC server is down after the drain; `forced` when calls were still open at the deadline. */
  GRPC_STOPPED: 'grpc.stopped',
  /** A message of TypeORM's own (a warning, a slow query, a migration step). */
  DATABASE_TYPEORM_MESSAGE: 'database.typeorm_message',
} as const;

/** The service's name in the registry: stable and canary instances register under it. */
export const SERVICE_NAME = 'orders';
