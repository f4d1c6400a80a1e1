import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EnvValidationError } from '@nest-rollout/config';
import { sampleConfig } from '../sample.config';
import { sampleGrpcOptions, SampleProtoMissingError, sampleProtoDir } from './sample-grpc';

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    sampleConfig.parse(env);
  } catch (error) {
    expect(error).toBeInstanceOf(EnvValidationError);
    return [...(error as EnvValidationError).problems];
  }
  throw new Error('expected the environment to be rejected');
}

describe('the sample’s gRPC endpoint', () => {
  it('is off unless PORT_GRPC names a port, so that instances sharing a host never collide on a default', () => {
    expect(sampleConfig.parse({}).grpcPort).toBeUndefined();
    expect(sampleConfig.parse({ PORT_GRPC: '50051' }).grpcPort).toBe(50051);
  });

  it('refuses a PORT_GRPC that is not a port, or that the public or management port already takes', () => {
    expect(problemsOf({ PORT_GRPC: '0' })).toEqual([expect.stringMatching(/^PORT_GRPC: must be a whole number from 1 to 65535/)]);
    expect(problemsOf({ PORT: '8080', PORT_GRPC: '8080' })).toEqual([
      'PORT_GRPC: must differ from PORT and PORT_MANAGEMENT (8080 is taken); gRPC has a port of its own',
    ]);
    expect(problemsOf({ PORT_MANAGEMENT: '9464', PORT_GRPC: '9464' })).toEqual([expect.stringMatching(/^PORT_GRPC: must differ/)]);
  });

  it('listens on LISTEN_HOST, an IPv6 address in brackets, with grpc.health.v1 beside the orders', () => {
    const options = sampleGrpcOptions(50051, '::').options;
    expect(options.url).toBe('[::]:50051');
    expect(sampleGrpcOptions(50051, '0.0.0.0').options.url).toBe('0.0.0.0:50051');
    expect(options.package).toEqual(['grpc.health.v1', 'orders.v1', 'demo.v1']);
    expect((options.protoPath as string[]).every((path) => existsSync(path))).toBe(true);
  });

  it('finds apps/sample/proto from the sources and from the build', () => {
    const protoDir = join(__dirname, '..', '..', 'proto');
    expect(sampleProtoDir(__dirname)).toBe(protoDir);
    expect(sampleProtoDir(join(__dirname, '..', '..', '..', '..', 'dist', 'apps', 'sample', 'grpc'))).toBe(protoDir);
    expect(() => sampleProtoDir('/nowhere/at/all')).toThrow(SampleProtoMissingError);
    expect(() => sampleProtoDir('/nowhere/at/all')).toThrow(/apps\/sample\/proto\/orders.proto not found/);
  });
});
