import { z } from 'zod';
import { optionGroup, parseModuleOptions, withoutDefault } from '@nest-rollout/lifecycle';
import { CanaryOptionsError } from '../canary.errors';
import { CANARY_HOP_HEADER } from '../forwarding/forwarding.constants';

export const DEFAULT_GRPC_CANARY_FORWARDING_OPTIONS = {
  connectTimeoutMs: 1_000,
  maxReconnectBackoffMs: 5_000,
  hopHeader: CANARY_HOP_HEADER,
} as const;

/**
 * @grpc/proto-loader's `PackageDefinition`, the one the server loads (`protoLoader.loadSync(protoPath,
 * options)`, or Nest's `packageDefinition` option): each method's path and (de)serializers. Typed
 * loosely so that the package stays an optional peer; checked when the forwarder is built.
 */
export type GrpcPackageDefinition = Readonly<Record<string, object>>;

/** A method of a package definition, as much of it as forwarding uses. */
export interface GrpcMethodDefinition {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

function isMethodDefinition(value: unknown): value is GrpcMethodDefinition {
  const method = value as Partial<GrpcMethodDefinition> | null;
  return (
    typeof method === 'object' &&
    method !== null &&
    typeof method.path === 'string' &&
    typeof method.requestSerialize === 'function' &&
    typeof method.responseDeserialize === 'function'
  );
}

/** Every method of every service in a package definition (messages and enums are skipped). */
export function methodsOf(definition: GrpcPackageDefinition): GrpcMethodDefinition[] {
  const methods: GrpcMethodDefinition[] = [];
  for (const entry of Object.values(definition)) {
    if (typeof entry !== 'object' || entry === null) continue;
    for (const method of Object.values(entry)) if (isMethodDefinition(method)) methods.push(method);
  }
  return methods;
}

const PACKAGE_DEFINITION =
  'must be the package definition the server loads, with at least one service: protoLoader.loadSync(protoPath, options) of @grpc/proto-loader';
const MILLISECONDS = 'must be a whole number of milliseconds > 0';
const milliseconds = z.int({ error: MILLISECONDS }).positive({ error: MILLISECONDS });
const HEADER_NAME = 'must be a lower-case metadata key such as "x-canary-hop"';

const grpcCanaryForwardingOptionsSchema = optionGroup({
  /** The proto package definition the server serves (see GrpcPackageDefinition). */
  packageDefinition: z.custom<GrpcPackageDefinition>(
    (value) => typeof value === 'object' && value !== null && methodsOf(value as GrpcPackageDefinition).length > 0,
    { error: PACKAGE_DEFINITION },
  ),
  /**
   * Time for the channel to a canary instance to become ready. A channel that fails within it (or
   * is failing already) has sent nothing, so the call is served locally (`connect_failed`).
   * @default 1000
   */
  connectTimeoutMs: milliseconds.default(DEFAULT_GRPC_CANARY_FORWARDING_OPTIONS.connectTimeoutMs),
  /**
   * Longest wait between two attempts to reconnect a failing canary channel (grpc-js's
   * `grpc.max_reconnect_backoff_ms`, 120 s by default), so that a canary that comes back is used
   * again within seconds. Meanwhile its calls are served locally.
   * @default 5000
   */
  maxReconnectBackoffMs: milliseconds.default(DEFAULT_GRPC_CANARY_FORWARDING_OPTIONS.maxReconnectBackoffMs),
  /**
   * Metadata key that marks a forwarded call (value `1`); a call carrying it is served locally.
   * @default 'x-canary-hop'
   */
  hopHeader: z
    .string({ error: HEADER_NAME })
    .regex(/^[a-z0-9_.-]+$/, { error: HEADER_NAME })
    .refine((name) => !name.endsWith('-bin') && !name.startsWith('grpc-'), { error: HEADER_NAME })
    .default(DEFAULT_GRPC_CANARY_FORWARDING_OPTIONS.hopHeader),
  /**
   * Channel credentials of @grpc/grpc-js (`grpc.credentials.createSsl(...)`).
   * @default grpc.credentials.createInsecure()
   */
  credentials: withoutDefault(
    z.custom<object>((value) => typeof value === 'object' && value !== null, {
      error: 'must be ChannelCredentials of @grpc/grpc-js, such as grpc.credentials.createSsl()',
    }),
  ),
  /** Further grpc-js channel options (`grpc.keepalive_time_ms`, ...), applied to every canary channel. */
  channelOptions: withoutDefault(
    z.record(z.string(), z.union([z.string(), z.number()]), { error: 'must be an object of channel option → string or number' }),
  ),
});

/** Options of GrpcCanaryForwarder as given; `packageDefinition` is required. */
export type GrpcCanaryForwardingOptions = z.input<typeof grpcCanaryForwardingOptionsSchema>;
/** Options of GrpcCanaryForwarder after defaults. */
export type ResolvedGrpcCanaryForwardingOptions = z.output<typeof grpcCanaryForwardingOptionsSchema>;

/**
 * Validates GrpcCanaryForwarder options and applies the defaults; every problem is reported at once
 * in a CanaryOptionsError, each named `grpcForwarding.<option>`.
 */
export function resolveGrpcCanaryForwardingOptions(options: GrpcCanaryForwardingOptions): ResolvedGrpcCanaryForwardingOptions {
  return parseModuleOptions(
    grpcCanaryForwardingOptionsSchema,
    options,
    (problems) =>
      new CanaryOptionsError(
        problems.map((problem) => (problem.startsWith('options ') ? `grpcForwarding ${problem.slice(8)}` : `grpcForwarding.${problem}`)),
      ),
  );
}
