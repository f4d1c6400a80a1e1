/**
 * The services of apps/sample/proto. grpc.health.v1 reports on them by name as well (they follow
 * readiness), so a probe or client may ask for the service it uses. Apart from sample-grpc.ts so
 * that AppModule reads them without loading @nestjs/microservices.
 */
export const SAMPLE_GRPC_SERVICES = ['orders.v1.Orders', 'demo.v1.Demo'];
