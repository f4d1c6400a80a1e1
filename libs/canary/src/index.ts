export {
  CANARY_FORCE_HEADER,
  CANARY_FORWARDER,
  CANARY_GRPC_FORWARDER,
  CANARY_OPTIONS,
  CANARY_RULES_SOURCE,
  CanaryEvent,
  CanaryMetric,
  DEFAULT_CANARY_FLAG_KEY,
} from './canary.constants';
export { CanaryContext } from './canary.context';
export { Canary, CanaryDecision } from './canary.decorator';
export { CanaryError, CanaryOptionsError, CanaryRulesError } from './canary.errors';
export { CanaryInterceptor } from './canary.interceptor';
export { CANARY_MODULE_OPTIONS } from './canary.module-definition';
export type { CanaryModuleExtras, CanaryOptionsFactory } from './canary.module-definition';
export { CanaryModule } from './canary.module';
export { DEFAULT_CANARY_OPTIONS, canaryRulesSchema, parseCanaryRules, resolveCanaryOptions } from './canary.options';
export type {
  CanaryJwtOptions,
  CanaryMatcher,
  CanaryModuleOptions,
  CanaryRules,
  CanaryTrustOptions,
  ResolvedCanaryOptions,
} from './canary.options';
export { CompiledCanaryRules } from './canary.rules';
export type { CanaryEvaluationContext, CanaryFlagSet } from './canary.rules';
export { CanaryService } from './canary.service';
export { canaryForceSignature } from './canary.trust';
export type {
  CanaryForwardHooks,
  CanaryForwardResult,
  CanaryForwarder,
  CanaryRawRequest,
  CanaryRawResponse,
  CanaryReason,
  CanaryRequestView,
  CanaryRouteOptions,
  CanaryRulesSource,
  CanaryTrack,
  CanaryVariant,
} from './canary.types';
export { DEFAULT_CANARY_FORWARDING_OPTIONS, resolveCanaryForwardingOptions } from './forwarding/canary-forwarder.options';
export type { CanaryForwardingOptions, ResolvedCanaryForwardingOptions } from './forwarding/canary-forwarder.options';
export { registryCanaryTargets, staticCanaryTargets } from './forwarding/canary-targets';
export type { CanaryInstanceSource, CanaryTarget, CanaryTargets, RegistryCanaryTargetsOptions } from './forwarding/canary-targets';
export { CANARY_HOP_HEADER, ForwardFailure, ForwardingEvent, ForwardLocalReason } from './forwarding/forwarding.constants';
export { HttpCanaryForwarder } from './forwarding/http-canary.forwarder';
export { mergeBaggage, readBaggageValue } from './propagation/baggage';
export type { BaggageHeaderValue } from './propagation/baggage';
export {
  applyCanaryMetadata,
  canaryHeaders,
  canaryPropagationInterceptor,
  forceHeaderValue,
  withCanaryHeaders,
} from './propagation/canary-propagation';
export type {
  CanaryDecisionSource,
  CanaryMetadataCarrier,
  CanaryPropagationHeaders,
  PropagatedDecision,
} from './propagation/canary-propagation';
export { BAGGAGE_HEADER, BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, CANARY_BAGGAGE_KEY } from './propagation/propagation.constants';
export type {
  CanaryGrpcCall,
  CanaryGrpcForwarder,
  CanaryGrpcForwardResult,
  CanaryGrpcMetadata,
  CanaryGrpcServerCall,
} from './rpc/canary-grpc.types';
export { DEFAULT_GRPC_CANARY_FORWARDING_OPTIONS, resolveGrpcCanaryForwardingOptions } from './rpc/grpc-canary-forwarder.options';
export type {
  GrpcCanaryForwardingOptions,
  GrpcPackageDefinition,
  ResolvedGrpcCanaryForwardingOptions,
} from './rpc/grpc-canary-forwarder.options';
export { CanaryPackageMissingError, GrpcCanaryForwarder } from './rpc/grpc-canary.forwarder';
export { GrpcForwardLocalReason } from './rpc/grpc-forwarding.constants';
