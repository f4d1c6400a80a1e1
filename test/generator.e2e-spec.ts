import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { planService, ServiceExistsError } from '../tools/new-service/new-service';
import { serviceNameProblems, serviceNames } from '../tools/new-service/service-name';
import { renameAppPath, renameAppText, renameDeployPath, renameDeployText } from '../tools/new-service/substitutions';
import { ConsulTestServer } from './support/consul-test-server';
import { waitForHttpStatus } from './support/http';
import { KUSTOMIZATION, loadManifests, schemaProblems, yamlFiles } from './support/manifests';
import { freePorts } from './support/ports';
import { logEvents, startProcess } from './support/process';
import { cleanCopy, linkInstalledPackages, newcomerEnvironment } from './support/repository';
import { waitUntil } from './support/wait';

/**
 * `npm run new:service -- <name>` in a scratch copy of the repository, followed by exactly what a
 * user runs next: the build, the new service's tests, and the service itself. Refused names write
 * nothing. The rules that rename are also held to the sample's own words here, in-process.
 */

const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';
const NAME = 'payment-gateway';
const APP = `apps/${NAME}`;
const SPEC = `test/services/${NAME}.e2e-spec.ts`;

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Every file under `dir`, as paths from `root`. */
function filesUnder(root: string, dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(root, path) : [path];
  });
}

describe('service names', () => {
  it('accepts DNS labels that start with a letter, up to 55 characters', () => {
    for (const name of ['payments', 'payment-gateway', 'a', 'orders-v2', 'x'.repeat(55)])
      expect({ name, problems: serviceNameProblems(name) }).toEqual({ name, problems: [] });
  });

  it('refuses upper case, other characters, edge hyphens, a leading digit, emptiness and length, naming each problem', () => {
    expect(serviceNameProblems('Orders_2')).toEqual([
      'it has upper-case letters (DNS labels are lower-case)',
      'it has characters other than letters, digits and hyphens: "_"',
    ]);
    expect(serviceNameProblems('orders.v2')).toEqual(['it has characters other than letters, digits and hyphens: "."']);
    expect(serviceNameProblems('-orders')).toEqual(['it starts or ends with a hyphen']);
    expect(serviceNameProblems('orders-')).toEqual(['it starts or ends with a hyphen']);
    expect(serviceNameProblems('2fa')).toEqual([expect.stringMatching(/^it starts with a digit/)]);
    expect(serviceNameProblems('')).toEqual(['it is empty']);
    expect(serviceNameProblems('x'.repeat(56))).toEqual([expect.stringMatching(/^it is 56 characters long; at most 55/)]);
  });

  it('spells a name as identifiers, constants and prose need it', () => {
    expect(serviceNames('payment-gateway')).toEqual({
      kebab: 'payment-gateway',
      camel: 'paymentGateway',
      pascal: 'PaymentGateway',
      constant: 'PAYMENT_GATEWAY',
      snake: 'payment_gateway',
      noun: 'payment-gateway service',
      article: 'a',
    });
    expect(serviceNames('billing-service').noun).toBe('billing-service');
    expect(serviceNames('orders').article).toBe('an');
  });
});

describe('the renaming rules', () => {
  const names = serviceNames(NAME);
  const sample = serviceNames('orders');

  it("rename the sample's identifiers, files, paths and prose, and its registry name, and keep the orders domain", () => {
    const source = [
      "import { sampleConfig, type SampleConfig } from './sample.config';",
      "export const SERVICE_NAME = 'orders';",
      "const code = 'SAMPLE_GRPC_PROTO_MISSING'; const event = 'sample.start_failed'; const app = 'nest-rollout-sample';",
      "join(from, '..', 'apps', 'sample', 'proto'); /apps\\/sample\\/proto/; dist/apps/sample/main.js",
      "// The sample's settings, the sample’s endpoint, of the sample. @Controller('orders') OrdersModule ORDERS_SCHEMA_PHASE",
      "expect(asked).toEqual([{ service: 'orders' }]); const samples = 1;",
    ].join('\n');
    expect(renameAppText(source, names, 'orders').split('\n')).toEqual([
      "import { paymentGatewayConfig, type PaymentGatewayConfig } from './payment-gateway.config';",
      "export const SERVICE_NAME = 'payment-gateway';",
      "const code = 'PAYMENT_GATEWAY_GRPC_PROTO_MISSING'; const event = 'payment-gateway.start_failed'; const app = 'nest-rollout-payment-gateway';",
      "join(from, '..', 'apps', 'payment-gateway', 'proto'); /apps\\/payment-gateway\\/proto/; dist/apps/payment-gateway/main.js",
      "// The payment-gateway service's settings, the payment-gateway service’s endpoint, of the payment-gateway service. @Controller('orders') OrdersModule ORDERS_SCHEMA_PHASE",
      "expect(asked).toEqual([{ service: 'payment-gateway' }]); const samples = 1;",
    ]);
  });

  it('rename the service in deployment files and keep its routes, its switches and the passages to keep', () => {
    const manifest = [
      '# The sample orders service. See deploy/README.md; kubectl apply -k deploy/kubernetes/rolling',
      'name: orders-metrics; image: registry.example.com/nest-rollout/orders:0.1.0; /etc/orders/dynamic.yaml',
      'alert: OrdersHighErrorRatio; summary: An orders instance; job="orders-metrics"',
      "paths = ['/orders', '/orders/1/quote']; route=\"/orders\"; GET /orders; orders_list: false",
      '    # The sample reads this word for word',
    ].join('\n');
    expect(renameDeployText(manifest, names, sample, ['    # The sample reads this word for word']).split('\n')).toEqual([
      '# The payment-gateway service. See deploy/README.md; kubectl apply -k apps/payment-gateway/deploy/kubernetes/rolling',
      'name: payment-gateway-metrics; image: registry.example.com/nest-rollout/payment-gateway:0.1.0; /etc/payment-gateway/dynamic.yaml',
      'alert: PaymentGatewayHighErrorRatio; summary: A payment-gateway instance; job="payment-gateway-metrics"',
      "paths = ['/orders', '/orders/1/quote']; route=\"/orders\"; GET /orders; orders_list: false",
      '    # The sample reads this word for word',
    ]);
  });

  it('rename paths without taking a folder for prose', () => {
    expect(renameAppPath('apps/sample/tsconfig.app.json', names)).toBe('apps/payment-gateway/tsconfig.app.json');
    expect(renameAppPath('src/grpc/sample-grpc.constants.ts', names)).toBe('src/grpc/payment-gateway-grpc.constants.ts');
    expect(renameDeployPath('prometheus/orders.rules.test.yaml', names, sample)).toBe('prometheus/payment-gateway.rules.test.yaml');
    expect(renameDeployPath('sample/orders', names, sample)).toBe('payment-gateway/payment-gateway');
  });

  it('rename a name that contains the old ones once', () => {
    expect(renameAppText('sampleConfig apps/sample', serviceNames('sample-b'), 'orders')).toBe('sampleBConfig apps/sample-b');
    expect(renameDeployText('name: orders-metrics', serviceNames('orders-v2'), sample)).toBe('name: orders-v2-metrics');
  });
});

describe('npm run new:service in a scratch copy of the repository', () => {
  let copy: string;

  /** A command as a user types it in the copy, with none of the test runner's npm or Jest variables. */
  function run(command: string, args: readonly string[], timeoutMs: number): Run {
    const result = spawnSync(command, args, {
      cwd: copy,
      env: { ...process.env, ...newcomerEnvironment() } as NodeJS.ProcessEnv,
      encoding: 'utf8',
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** What git sees changed in the copy since its one commit (untracked files one by one, ignored ones not). */
  function changes(): string[] {
    return execFileSync('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: copy, encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
  }

  beforeAll(() => {
    copy = cleanCopy('nest-rollout-generator-');
    linkInstalledPackages(copy);
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.com', ...args], { cwd: copy, stdio: 'pipe' });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-q', '-m', 'the repository before the generator runs');
  }, 60_000);

  afterAll(() => {
    if (copy) rmSync(copy, { recursive: true, force: true });
  });

  it('refuses a name that is not a DNS label, saying why, and writes nothing', () => {
    const refused = run('npm', ['run', 'new:service', '--', 'Orders_2'], 60_000);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('"Orders_2" cannot name a service: it has upper-case letters');
    expect(refused.stderr).toContain('Nothing was written.');
    expect(changes()).toEqual([]);
    expect(existsSync(join(copy, 'apps/Orders_2'))).toBe(false);
  }, 60_000);

  it('refuses a name that exists, as an app or as a lib, and writes nothing', async () => {
    const app = run('npm', ['run', 'new:service', '--', 'sample'], 60_000);
    expect(app.status).toBe(1);
    expect(app.stderr).toContain(
      '"sample" is taken: nest-cli.json has a project "sample" (the application in apps/sample); apps/sample exists',
    );
    expect(app.stderr).toContain('Nothing was written.');
    await expect(planService(copy, 'lifecycle')).rejects.toThrow(
      new ServiceExistsError('lifecycle', ['nest-cli.json has a project "lifecycle" (the library in libs/lifecycle)']),
    );
    expect(changes()).toEqual([]);
  }, 60_000);

  it(`generates ${APP} from the sample, its deployment files and its spec, and adds it to nest-cli.json and tsconfig.build.json`, () => {
    const generated = run('npm', ['run', 'new:service', '--', NAME], 60_000);
    expect(generated.stderr).not.toMatch(/error/i);
    expect(generated.status).toBe(0);

    const sampleFiles = filesUnder(copy, 'apps/sample').map((file) => relative('apps/sample', file));
    const deployFiles = filesUnder(copy, 'deploy').filter((file) => file !== 'deploy/README.md');
    const appFiles = filesUnder(copy, APP);
    expect(appFiles.filter((file) => !file.startsWith(`${APP}/deploy/`))).toHaveLength(sampleFiles.length);
    expect(appFiles.filter((file) => file.startsWith(`${APP}/deploy/`))).toHaveLength(deployFiles.length);
    expect(changes().sort()).toEqual(
      [' M nest-cli.json', ' M tsconfig.build.json', ...appFiles.map((file) => `?? ${file}`), `?? ${SPEC}`].sort(),
    );

    const cli = JSON.parse(readFileSync(join(copy, 'nest-cli.json'), 'utf8')) as { projects: Record<string, unknown> };
    expect(cli.projects[NAME]).toEqual({
      type: 'application',
      root: APP,
      entryFile: 'main',
      sourceRoot: `${APP}/src`,
      compilerOptions: { tsConfigPath: `${APP}/tsconfig.app.json` },
    });
    const build = JSON.parse(readFileSync(join(copy, 'tsconfig.build.json'), 'utf8')) as { references: { path: string }[] };
    expect(build.references).toContainEqual({ path: `${APP}/tsconfig.app.json` });

    // Named as itself; the orders domain, the example to replace, as the sample has it.
    expect(readFileSync(join(copy, APP, `src/${NAME}.constants.ts`), 'utf8')).toContain(`export const SERVICE_NAME = '${NAME}';`);
    const domain = sampleFiles.filter((file) => /^(src\/orders|src\/database\/migrations|proto)\//.test(file));
    expect(domain.length).toBeGreaterThan(5);
    for (const file of domain) expect(existsSync(join(copy, APP, file))).toBe(true);
    expect(readFileSync(join(copy, APP, 'src/orders/orders.controller.ts'), 'utf8')).toContain("@Controller('orders')");
    expect(readFileSync(join(copy, APP, 'proto/orders.proto'), 'utf8')).toContain('package orders.v1;');
  }, 60_000);

  it('leaves no name of the sample in the new service, except in the dynamic configuration its ConfigMap carries word for word', () => {
    const dynamicConfig = readFileSync(join(copy, 'config/dynamic.yaml'), 'utf8');
    const configMap = parseYaml(readFileSync(join(copy, APP, 'deploy/kubernetes/base/configmap.yaml'), 'utf8')) as {
      data: Record<string, string>;
    };
    expect(configMap.data['dynamic.yaml']).toBe(dynamicConfig);
    const indented = dynamicConfig
      .split('\n')
      .map((line) => (line ? `    ${line}` : line))
      .join('\n');
    const leftovers = filesUnder(copy, APP).flatMap((file) =>
      readFileSync(join(copy, file), 'utf8')
        .replace(indented, '')
        .split('\n')
        .filter((line) => /sample/i.test(line.replace(/sampl(ed|er|es|ing)/gi, '')))
        .map((line) => `${file}: ${line.trim()}`),
    );
    expect(leftovers).toEqual([]);
    const service = filesUnder(copy, `${APP}/deploy`).flatMap((file) =>
      readFileSync(join(copy, file), 'utf8')
        .split('\n')
        .filter((line) => /job=\\?"orders-metrics|name: orders\b|\/etc\/orders|nest-rollout\/orders|\bOrders[A-Z]/.test(line))
        .map((line) => `${file}: ${line.trim()}`),
    );
    expect(service).toEqual([]);
  });

  it('gives it deployment files that validate against the Kubernetes, Argo Rollouts, Prometheus Operator and Istio schemas, under its own name', () => {
    const files = [...yamlFiles(copy, `${APP}/deploy/kubernetes`), ...yamlFiles(copy, `${APP}/deploy/argo-rollouts`)].filter(
      (file) => !file.endsWith(KUSTOMIZATION),
    );
    const manifests = loadManifests(copy, files);
    expect(manifests.length).toBeGreaterThan(10);
    expect(manifests.map(schemaProblems).filter(Boolean)).toEqual([]);
    for (const manifest of manifests) {
      expect({ file: manifest.file, name: manifest.name }).toEqual({
        file: manifest.file,
        name: expect.stringMatching(new RegExp(`^${NAME}(-|$)`)),
      });
      const labels = (manifest.body.metadata as { labels?: Record<string, string> }).labels ?? {};
      expect({ file: manifest.file, label: labels['app.kubernetes.io/name'] }).toEqual({ file: manifest.file, label: NAME });
    }
    const prometheusRule = manifests.find((m) => m.kind === 'PrometheusRule')!;
    const rules = parseYaml(readFileSync(join(copy, APP, `deploy/prometheus/${NAME}.rules.yaml`), 'utf8')) as { groups: unknown };
    expect((prometheusRule.body.spec as { groups: unknown }).groups).toEqual(rules.groups);

    const dockerfile = readFileSync(join(copy, APP, 'deploy/Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(new RegExp(`^CMD \\["node", "dist/apps/${NAME}/main\\.js"\\]$`, 'm'));
    expect(dockerfile).toContain(`cp -r --parents dist/apps/${NAME} libs/*/dist /out/`);
    expect(dockerfile).toContain(`apps/${NAME}/proto`);
    const dashboard = JSON.parse(readFileSync(join(copy, APP, `deploy/grafana/${NAME}-dashboard.json`), 'utf8')) as {
      uid: string;
      title: string;
    };
    expect(dashboard).toMatchObject({ uid: `nest-rollout-${NAME}`, title: `${NAME} (nest-rollout)` });
  });

  it('gives it alert rules that promtool checks, and unit tests of them that pass', () => {
    const promtool = (...args: string[]) => spawnSync(PROMTOOL, args, { cwd: join(copy, APP, 'deploy/prometheus'), encoding: 'utf8' });
    const check = promtool('check', 'rules', `${NAME}.rules.yaml`);
    expect(check.stdout + check.stderr).toMatch(/SUCCESS/);
    expect(check.status).toBe(0);
    const test = promtool('test', 'rules', `${NAME}.rules.test.yaml`);
    expect(test.stdout + test.stderr).toMatch(/SUCCESS/);
    expect(test.status).toBe(0);
  });

  it('builds with npm run build', () => {
    const build = run('npm', ['run', 'build'], 240_000);
    expect(build.stdout + build.stderr).not.toMatch(/error TS/);
    expect(build.status).toBe(0);
    expect(statSync(join(copy, 'dist', APP, 'main.js')).isFile()).toBe(true);
  }, 240_000);

  it("passes its tests: the sample's unit specs, renamed, and its end-to-end spec on both adapters", () => {
    const tests = run('npx', ['jest', APP, SPEC, '--runInBand'], 240_000);
    const summary = /^Tests:\s+(.*)$/m.exec(tests.stderr)?.[1];
    expect(summary).toMatch(/^\d+ passed, \d+ total$/);
    expect(tests.status).toBe(0);
    const suites = /^Test Suites:\s+(\d+) passed, (\d+) total$/m.exec(tests.stderr);
    const sampleSpecs = filesUnder(copy, 'apps/sample').filter((file) => file.endsWith('.spec.ts')).length;
    expect(Number(suites?.[1])).toBe(sampleSpecs + 1);
    expect(tests.stderr).toContain(`PASS e2e ${SPEC}`);
  }, 240_000);

  it('starts with node dist/apps/<name>/main.js: ready, registered and logging under its own name, gRPC on, and exits 0 on SIGTERM', async () => {
    const consul = await ConsulTestServer.start();
    const [port, grpcPort] = await freePorts(2);
    const proc = startProcess({
      name: NAME,
      command: process.execPath,
      args: [`dist/${APP}/main.js`],
      cwd: copy,
      env: newcomerEnvironment({
        PORT: String(port),
        PORT_GRPC: String(grpcPort),
        LISTEN_HOST: '127.0.0.1',
        MIN_READY_DELAY_MS: '100',
        DRAIN_DELAY_MS: '300',
        REGISTRY_DRIVER: 'consul',
        CONSUL_URL: consul.url,
      }),
    });
    try {
      await waitForHttpStatus(`http://127.0.0.1:${port}/health/ready`, { status: 200, timeoutMs: 30_000, proc });
      await waitUntil(() => Object.keys(consul.agentServices()).length > 0, 'the service registered in Consul', 10_000);
      expect(Object.values(consul.agentServices()).map((service) => service.Service)).toEqual([NAME]);

      proc.signal('SIGTERM');
      const exit = await proc.waitForExit(20_000);
      expect(exit.code).toBe(0);
      expect(consul.agentServices()).toEqual({});
      const lines = logEvents(proc.stdout);
      expect(lines.filter((line) => line.event === 'grpc.listening')).toHaveLength(1);
      expect(lines.filter((line) => line.event === 'lifecycle.exit')).toEqual([expect.objectContaining({ code: 0 })]);
      expect(lines.filter((line) => line.service !== NAME)).toEqual([]);
    } finally {
      await proc.stop('SIGKILL');
      await consul.destroy();
    }
  }, 60_000);
});
