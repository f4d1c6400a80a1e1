import { join } from 'node:path';
import { Controller, Get, Injectable, OnApplicationBootstrap, OnModuleInit, Param } from '@nestjs/common';
import { ClientProxy, ClientProxyFactory, GrpcMethod, MessagePattern, RpcException, Transport } from '@nestjs/microservices';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { firstValueFrom } from 'rxjs';
import { MetricName } from './metrics.constants';
import { connectMicroserviceWithMetrics } from './rpc-metrics.connect';
import { RpcMetricsInterceptor } from './rpc-metrics.interceptor';
import { freePort } from '../testing/free-port';
import { ADAPTERS, bootstrapMetricsApp, MetricsTestApp, parseExposition, samplesOf, valueOf } from '../testing/metrics-app';
import { promtoolCheckMetrics } from '../testing/promtool';

const PROTO = join(__dirname, '../testing/echo.proto');
const RPC = MetricName.RPC_SERVER_DURATION_SECONDS;
const HTTP = MetricName.HTTP_REQUEST_DURATION_SECONDS;

@Controller('orders')
class OrdersController {
  @Get(':id')
  get(@Param('id') id: string) {
    return { id };
  }

  @MessagePattern('orders.get')
  rpcGet(data: { id: string }) {
    return { id: data.id };
  }

  @MessagePattern('orders.fail')
  rpcFail() {
    throw new RpcException('no such order');
  }

  @GrpcMethod('Echo', 'Say')
  say(request: { message: string }) {
    return { message: request.message };
  }

  @GrpcMethod('Echo', 'Fail')
  sayFail() {
    throw new RpcException({ code: grpc.status.NOT_FOUND, message: 'nothing to echo' });
  }
}

@Injectable()
class HookCounter implements OnModuleInit, OnApplicationBootstrap {
  calls: string[] = [];
  onModuleInit() {
    this.calls.push('init');
  }
  onApplicationBootstrap() {
    this.calls.push('bootstrap');
  }
}

type EchoClient = grpc.Client & {
  Say(request: { message: string }, callback: (error: grpc.ServiceError | null, reply?: { message: string }) => void): void;
  Fail(request: { message: string }, callback: (error: grpc.ServiceError | null, reply?: { message: string }) => void): void;
};

function call(client: EchoClient, method: 'Say' | 'Fail', message: string): Promise<{ code: number; reply?: { message: string } }> {
  return new Promise((resolve) => client[method]({ message }, (error, reply) => resolve({ code: error?.code ?? grpc.status.OK, reply })));
}

describe.each(ADAPTERS)('RPC metrics in a hybrid application on %s', (adapter) => {
  let t: MetricsTestApp | undefined;
  let tcp: ClientProxy | undefined;
  let echo: EchoClient | undefined;
  afterEach(async () => {
    echo?.close();
    await tcp?.close();
    await t?.close();
    t = tcp = echo = undefined;
  });

  it('counts gRPC and TCP handlers under rpc_server_duration_seconds and never in the HTTP histogram', async () => {
    const [tcpPort, grpcPort] = [await freePort(), await freePort()];
    t = await bootstrapMetricsApp(adapter, {
      controllers: [OrdersController],
      providers: [HookCounter],
      beforeListen: async (app) => {
        connectMicroserviceWithMetrics(app, { transport: Transport.TCP, options: { host: '127.0.0.1', port: tcpPort } });
        connectMicroserviceWithMetrics(app, {
          transport: Transport.GRPC,
          options: { package: 'echo', protoPath: PROTO, url: `127.0.0.1:${grpcPort}` },
        });
        await app.startAllMicroservices();
      },
    });
    tcp = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port: tcpPort } });
    const definition = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO)) as unknown as {
      echo: { Echo: new (url: string, credentials: grpc.ChannelCredentials) => EchoClient };
    };
    echo = new definition.echo.Echo(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());

    expect(await firstValueFrom(tcp.send('orders.get', { id: '1' }))).toEqual({ id: '1' });
    expect(await firstValueFrom(tcp.send('orders.get', { id: '2' }))).toEqual({ id: '2' });
    await expect(firstValueFrom(tcp.send('orders.fail', {}))).rejects.toMatchObject({ message: 'no such order' });
    expect(await call(echo, 'Say', 'hi')).toEqual({ code: grpc.status.OK, reply: { message: 'hi' } });
    expect((await call(echo, 'Fail', 'hi')).code).toBe(grpc.status.NOT_FOUND);
    expect((await t.request('GET', '/orders/1')).status).toBe(200);

    const scrape = await t.scrape();
    const samples = parseExposition(scrape.text);
    expect(valueOf(samples, `${RPC}_count`, { transport: 'tcp', method: 'orders.get', code: 'OK' })).toBe(2);
    expect(valueOf(samples, `${RPC}_count`, { transport: 'tcp', method: 'orders.fail', code: 'ERROR' })).toBe(1);
    expect(valueOf(samples, `${RPC}_count`, { transport: 'grpc', method: 'Echo/Say', code: 'OK' })).toBe(1);
    expect(valueOf(samples, `${RPC}_count`, { transport: 'grpc', method: 'Echo/Fail', code: 'NOT_FOUND' })).toBe(1);
    // The HTTP histogram holds the one HTTP request, nothing of the RPC traffic.
    expect(samplesOf(samples, `${HTTP}_count`).map((s) => [s.labels.route, s.value])).toEqual([['/orders/:id', 1]]);
    expect(promtoolCheckMetrics(scrape.text)).toEqual({ status: 0, output: '' });
    // Connecting the microservices did not run the application's hooks again.
    expect(t.app.get(HookCounter).calls).toEqual(['init', 'bootstrap']);
  });

  it('adds nothing to HTTP requests when applied as a global interceptor of the HTTP application', async () => {
    t = await bootstrapMetricsApp(adapter, {
      controllers: [OrdersController],
      beforeListen: (app) => void app.useGlobalInterceptors(app.get(RpcMetricsInterceptor)),
    });
    expect((await t.request('GET', '/orders/5')).status).toBe(200);
    const scrape = await t.scrape();
    expect(scrape.text).not.toContain(RPC);
    expect(valueOf(parseExposition(scrape.text), `${HTTP}_count`, { route: '/orders/:id' })).toBe(1);
  });
});
