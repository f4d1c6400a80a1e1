import { execFileSync, spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative } from 'node:path';
import { Job } from 'kubernetes-models/batch/v1';
import { PodTemplate } from 'kubernetes-models/v1';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { DEFAULT_HEALTH_PATH } from '@nest-rollout/health';
import { LifecycleEvent, LifecycleState, resolveLifecycleOptions, shutdownBudgetMs } from '@nest-rollout/lifecycle';
import { DEFAULT_METRICS_PATH } from '@nest-rollout/metrics';
import { DEFAULT_DATABASE_CONNECT_TIMEOUT_MS, SAMPLE_ENV_VARIABLES, sampleConfig } from '../apps/sample/src/sample.config';
import { DEFAULT_DYNAMIC_CONFIG_FILE } from '../apps/sample/src/sample.dynamic-config';
import { SERVICE_NAME } from '../apps/sample/src/sample.constants';
import { ADAPTERS, Adapter, AppInstance, ROOT, SAMPLE_MAIN, startSample } from './support/apps';
import { EtcdServer } from './support/etcd';
import { parseExposition, Sample } from './support/exposition';
import { httpGet } from './support/http';
import {
  argoFieldRef,
  at,
  KUSTOMIZATION,
  loadManifests,
  Manifest,
  parseYamlDocuments,
  schemaProblems,
  typeProblems,
  yamlFiles,
} from './support/manifests';
import { freePort } from './support/ports';
import { logEvents } from './support/process';
import { promqlProblems } from './support/promql';
import { waitUntil } from './support/wait';

/**
 * deploy/ is checked, not decorative: every manifest validates against the Kubernetes, Argo
 * Rollouts, Prometheus Operator and Istio schemas (unknown fields included); the Deployment's
 * environment is one the sample accepts, its probes are the sample's, on the port the sample serves
 * them on, and its grace period covers the sample's shutdown; the Dockerfile runs the built sample
 * as a non-root PID-1-safe process with production dependencies only; promtool checks and unit-tests
 * the alert rules; and the sample, started with the Deployment's own environment on both adapters,
 * serves every metric, label and value the dashboard, the alerts and the analysis templates query.
 */

const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';
const RULES_FILE = 'deploy/prometheus/orders.rules.yaml';
const RULES_TEST_FILE = 'deploy/prometheus/orders.rules.test.yaml';
const DASHBOARD_FILE = 'deploy/grafana/orders-dashboard.json';
const DOCKERFILE = 'deploy/Dockerfile';

const VARIANTS = {
  rolling: 'deploy/kubernetes/rolling',
  'blue-green': 'deploy/argo-rollouts/blue-green',
  canary: 'deploy/argo-rollouts/canary',
} as const;
type Variant = keyof typeof VARIANTS;

/**
 * Labels Prometheus adds to every series it scrapes through a ServiceMonitor (the operator's
 * relabelling: namespace, service, pod, container, endpoint; Prometheus's own job and instance):
 * not in a scrape, but queries may select, group and join on them.
 */
const TARGET_LABELS = ['namespace', 'pod', 'service', 'container', 'endpoint', 'job', 'instance'];

/** What the cluster would fill in, for resolving the manifests here. */
const TEST_NAMESPACE = 'shop';
/** A pod-template-hash as Kubernetes writes them (it may start with a digit). */
const STABLE_HASH = '7c5d9f6b8';
const CANARY_HASH = '9b4f7d6c5';

/** Time after the hard deadline for the last log lines and the exit, before the kubelet's SIGKILL. */
const KILL_MARGIN_MS = 2000;

const MANIFEST_FILES = [...yamlFiles(ROOT, 'deploy/kubernetes'), ...yamlFiles(ROOT, 'deploy/argo-rollouts')].filter(
  (file) => basename(file) !== KUSTOMIZATION,
);
const MANIFESTS = loadManifests(ROOT, MANIFEST_FILES);

// --- reading the manifests ----------------------------------------------------------------------

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: unknown;
    resourceFieldRef?: unknown;
  };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  periodSeconds?: number;
  failureThreshold?: number;
  timeoutSeconds?: number;
}
interface Container {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: unknown; postStart?: unknown };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}
interface PodTemplateSpec {
  metadata: { labels: Record<string, string> };
  spec: {
    terminationGracePeriodSeconds?: number;
    securityContext?: Record<string, unknown>;
    containers: Container[];
    volumes?: { name: string; configMap?: { name: string }; emptyDir?: Record<string, unknown> }[];
  };
}

function kustomizationOf(dir: string): { resources: string[] } {
  return parseYaml(readFileSync(join(ROOT, dir, KUSTOMIZATION), 'utf8')) as { resources: string[] };
}

/** The manifest files a kustomization directory applies, following its bases. */
function filesOf(dir: string): string[] {
  return kustomizationOf(dir).resources.flatMap((resource) => {
    const path = posix.normalize(posix.join(dir, resource));
    return existsSync(join(ROOT, path, KUSTOMIZATION)) ? filesOf(path) : [path];
  });
}

/** The resources `kubectl apply -k <variant>` creates. */
function resourcesOf(variant: Variant): Manifest[] {
  const files = new Set(filesOf(VARIANTS[variant]));
  return MANIFESTS.filter((m) => files.has(m.file));
}

function the(manifests: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0];
}

function all(manifests: readonly Manifest[], kind: string): Manifest[] {
  return manifests.filter((m) => m.kind === kind);
}

function workload(variant: Variant): Manifest {
  return the(resourcesOf(variant), variant === 'rolling' ? 'Deployment' : 'Rollout');
}

function podTemplateOf(manifest: Manifest): PodTemplateSpec {
  return at(manifest.body, 'spec.template') as PodTemplateSpec;
}

const DEPLOYMENT = workload('rolling');
const TEMPLATE = podTemplateOf(DEPLOYMENT);
const CONTAINER = TEMPLATE.spec.containers[0];

function portNumber(container: Container, port: string | number): number {
  if (typeof port === 'number') return port;
  const found = container.ports?.find((p) => p.name === port);
  if (!found) throw new Error(`container ${container.name} has no port named ${port}`);
  return found.containerPort;
}

function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

/** The labels the controllers give the pods besides the template's: the ReplicaSet's hash. */
function podLabels(template: PodTemplateSpec, hash: string): Record<string, string> {
  return { ...template.metadata.labels, 'pod-template-hash': hash, 'rollouts-pod-template-hash': hash };
}

/**
 * A container's environment as the kubelet builds it: literal values with `$(NAME)` expanded from
 * the variables defined before it, downward-API fields from the pod, and optional Secrets absent (as
 * in a namespace without them). Anything else the sample could not be started with here throws.
 */
function resolveEnv(container: Container, labels: Record<string, string>, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) {
      env[variable.name] = variable.value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name?: string) =>
        name === undefined ? '$' : (env[name] ?? whole),
      );
      continue;
    }
    const from = variable.valueFrom;
    const fieldPath = from?.fieldRef?.fieldPath;
    if (fieldPath) {
      const label = /^metadata\.labels\['([^']+)'\]$/.exec(fieldPath);
      const value = label
        ? labels[label[1]]
        : fieldPath === 'metadata.name'
          ? podName
          : fieldPath === 'metadata.namespace'
            ? TEST_NAMESPACE
            : undefined;
      if (value === undefined) throw new Error(`${variable.name}: the pod has no ${fieldPath}`);
      env[variable.name] = value;
    } else if (from?.secretKeyRef?.optional) {
      continue;
    } else {
      throw new Error(`${variable.name}: ${JSON.stringify(from)} cannot be resolved here`);
    }
  }
  return env;
}

/** Names `$(NAME)` refers to in the other variables' values: helpers of the manifest, not the sample's. */
function referencedNames(container: Container): Set<string> {
  return new Set((container.env ?? []).flatMap((v) => [...(v.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)].map((m) => m[1])));
}

const DEPLOYMENT_ENV = resolveEnv(CONTAINER, podLabels(TEMPLATE, STABLE_HASH), `${SERVICE_NAME}-${STABLE_HASH}-x2k9q`);
const SAMPLE_CONFIG = sampleConfig.parse(DEPLOYMENT_ENV);
const MANAGEMENT_PORT = SAMPLE_CONFIG.managementPort;
const HTTP_PORT = SAMPLE_CONFIG.port;

/** The probes a pod answers, by the kubelet's name for them, and the sample's path for each. */
const PROBES = {
  startupProbe: `/${DEFAULT_HEALTH_PATH}/startup`,
  readinessProbe: `/${DEFAULT_HEALTH_PATH}/ready`,
  livenessProbe: `/${DEFAULT_HEALTH_PATH}/live`,
} as const;

/** The Service the ServiceMonitor scrapes through, and so the job label of every series. */
function scrapedService(manifests: readonly Manifest[]): { monitor: Manifest; service: Manifest } {
  const monitor = the(manifests, 'ServiceMonitor');
  const selector = at(monitor.body, 'spec.selector.matchLabels') as Record<string, string>;
  const services = all(manifests, 'Service').filter((s) => selects(selector, at(s.body, 'metadata.labels') as Record<string, string>));
  if (services.length !== 1)
    throw new Error(`the ServiceMonitor selects ${services.length} Services (${services.map((s) => s.name).join(', ')}), not one`);
  return { monitor, service: services[0] };
}

const METRICS_JOB = scrapedService(resourcesOf('rolling')).service.name;

// --- the queries ----------------------------------------------------------------------------------

interface Query {
  readonly source: string;
  readonly query: string;
}

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function rulesFile(): { groups: { name: string; rules: AlertRule[] }[] } {
  return parseYamlDocuments(ROOT, RULES_FILE)[0] as { groups: { name: string; rules: AlertRule[] }[] };
}

function alertRules(): AlertRule[] {
  return rulesFile().groups.flatMap((g) => g.rules.filter((r) => r.alert !== undefined));
}

interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { expr: string; refId: string; datasource?: { type: string; uid: string } }[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string; query: unknown; datasource?: unknown }[] };
}

function dashboard(): Dashboard {
  return JSON.parse(readFileSync(join(ROOT, DASHBOARD_FILE), 'utf8')) as Dashboard;
}

/** Grafana's variables as one instant of a dashboard resolves them. */
function grafanaQuery(expr: string): string {
  return expr.replace(/\$(__rate_interval|\w+)/g, (_, name: string) => {
    if (name === '__rate_interval') return '1m';
    if (name === 'namespace') return TEST_NAMESPACE;
    throw new Error(`the dashboard uses $${name}, which the check does not resolve`);
  });
}

/** An analysis template's query with the arguments a Rollout passes (the test's namespace and hash). */
function analysisQuery(query: string): string {
  return query.replace(/\{\{\s*args\.([\w-]+)\s*\}\}/g, (_, name: string) => {
    if (name === 'namespace') return TEST_NAMESPACE;
    if (name.endsWith('-hash')) return STABLE_HASH;
    throw new Error(`an analysis query uses {{args.${name}}}, which the check does not resolve`);
  });
}

interface AnalysisMetric {
  name: string;
  successCondition?: string;
  failureLimit?: number;
  provider: { prometheus?: { address: string; query: string }; job?: { spec: Record<string, unknown> } };
}

function analysisTemplates(): Manifest[] {
  return all(MANIFESTS, 'AnalysisTemplate');
}

/** Every PromQL query deploy/ holds: the dashboard's panels and variable, the alerts, the analysis templates. */
function allQueries(): Query[] {
  const queries: Query[] = [];
  for (const panel of dashboard().panels) {
    if (panel.datasource?.type !== 'prometheus') continue;
    for (const target of panel.targets ?? [])
      queries.push({ source: `dashboard "${panel.title}" ${target.refId}`, query: grafanaQuery(target.expr) });
  }
  for (const variable of dashboard().templating.list) {
    const definition = (variable.query as { query?: string } | undefined)?.query;
    const labelValues = definition && /^label_values\((.+),\s*(\w+)\)$/.exec(definition);
    if (labelValues)
      queries.push({ source: `dashboard variable ${variable.name}`, query: `count by (${labelValues[2]}) (${labelValues[1]})` });
  }
  for (const rule of alertRules()) queries.push({ source: `alert ${rule.alert}`, query: rule.expr });
  for (const template of analysisTemplates()) {
    for (const metric of at(template.body, 'spec.metrics') as AnalysisMetric[]) {
      if (metric.provider.prometheus)
        queries.push({ source: `${template.name} ${metric.name}`, query: analysisQuery(metric.provider.prometheus.query) });
    }
  }
  return queries;
}

function promtool(args: string[], cwd = ROOT): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8' });
  if (run.error) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

// --- the Dockerfile -----------------------------------------------------------------------------

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}
interface Stage {
  readonly name: string | undefined;
  readonly from: string;
  readonly instructions: Instruction[];
}

/** The Dockerfile's stages and their instructions (continuation lines joined, comments dropped). */
function dockerStages(): Stage[] {
  const logical = readFileSync(join(ROOT, DOCKERFILE), 'utf8')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    if (keyword.toUpperCase() === 'FROM') {
      const [, from, name] = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
      stages.push({ name, from, instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

function execForm(instruction: Instruction | undefined): string[] | undefined {
  if (!instruction?.args.startsWith('[')) return undefined;
  return JSON.parse(instruction.args) as string[];
}

/** Bare package names the sample's source imports (not its specs, not Node's built-ins, not the repo's libs). */
function sampleImports(): string[] {
  const names = new Set<string>();
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith('.ts') && !/\.(spec|spec-helper)\.ts$/.test(entry.name)) {
        for (const match of readFileSync(path, 'utf8').matchAll(/(?:from\s+|import\s*\(?\s*|require\(\s*)'([^'.][^']*)'/g)) {
          const specifier = match[1];
          if (specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
          const parts = specifier.split('/');
          names.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
        }
      }
    }
  };
  visit(join(ROOT, 'apps/sample/src'));
  return [...names].sort();
}

/**
 * Packages the sample loads by name at run time rather than imports: TypeORM's drivers for its two
 * databases (DATABASE_URL sqlite: or postgres://), and the registry and config drivers REGISTRY_DRIVER
 * selects (consul, etcd).
 */
const LOADED_AT_RUN_TIME = ['better-sqlite3', 'pg', 'consul', 'etcd3'];

const LIBS = readdirSync(join(ROOT, 'libs')).filter((name) =>
  statSync(join(ROOT, 'libs', name, 'package.json'), { throwIfNoEntry: false }),
);

interface PackageManifest {
  name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

function packageManifest(path: string): PackageManifest {
  return JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as PackageManifest;
}

// --- the tests ------------------------------------------------------------------------------------

describe('deploy/ manifests', () => {
  it('every document is a kind deploy/ knows and validates against its schema, embedded pod and job templates too', () => {
    expect(MANIFESTS.length).toBeGreaterThan(10);
    const problems = MANIFESTS.map(schemaProblems).filter((p): p is string => p !== undefined);
    // The schemas of Rollout and AnalysisTemplate type their pod and job templates loosely: each one
    // is checked again as the core resource the controller will create from it.
    for (const rollout of all(MANIFESTS, 'Rollout')) {
      try {
        new PodTemplate({ metadata: { name: rollout.name }, template: at(rollout.body, 'spec.template') as never }).validate();
      } catch (error) {
        problems.push(`${rollout.file}: the pod template: ${(error as Error).message}`);
      }
    }
    for (const template of analysisTemplates()) {
      for (const metric of at(template.body, 'spec.metrics') as AnalysisMetric[]) {
        if (!metric.provider.job) continue;
        try {
          new Job({ metadata: { name: metric.name }, spec: metric.provider.job.spec as never }).validate();
        } catch (error) {
          problems.push(`${template.file} ${metric.name}: the job: ${(error as Error).message}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('has no field its schema does not know and no value of the wrong type', () => {
    expect(typeProblems(ROOT, MANIFESTS)).toEqual([]);
  }, 120_000);

  it('finds a misspelt field and a wrong type, so that the two checks above can fail', () => {
    const broken: Manifest = {
      ...DEPLOYMENT,
      body: {
        ...DEPLOYMENT.body,
        spec: {
          ...(DEPLOYMENT.body.spec as object),
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavaliable: 0 } },
          replicas: 'three',
        },
      },
    };
    expect(schemaProblems(broken)).toMatch(/replicas/);
    const typed = typeProblems(ROOT, [broken]).join('\n');
    expect(typed).toMatch(/maxUnavaliable/);
    expect(typed).toMatch(/replicas|"three"/);
  }, 120_000);

  it('each kustomization lists exactly the files beside it, and every manifest belongs to one', () => {
    const kustomizations = yamlFiles(ROOT, 'deploy').filter((file) => basename(file) === KUSTOMIZATION);
    const listed = new Set<string>();
    for (const file of kustomizations) {
      const dir = dirname(file);
      const resources = kustomizationOf(dir).resources;
      const local = resources.filter((r) => !r.startsWith('..')).map((r) => posix.join(dir, r));
      const beside = readdirSync(join(ROOT, dir))
        .filter((name) => /\.ya?ml$/.test(name) && name !== KUSTOMIZATION)
        .map((name) => posix.join(dir, name));
      expect({ dir, files: [...local].sort() }).toEqual({ dir, files: [...beside].sort() });
      for (const base of resources.filter((r) => r.startsWith('..'))) {
        expect({ base: posix.join(dir, base), kustomization: existsSync(join(ROOT, dir, base, KUSTOMIZATION)) }).toEqual({
          base: posix.join(dir, base),
          kustomization: true,
        });
      }
      local.forEach((f) => listed.add(f));
    }
    expect(MANIFEST_FILES.filter((file) => !listed.has(file))).toEqual([]);
    for (const variant of Object.keys(VARIANTS) as Variant[]) {
      const names = resourcesOf(variant).map((m) => `${m.kind}/${m.name}`);
      expect({ variant, duplicates: names.filter((n, i) => names.indexOf(n) !== i) }).toEqual({ variant, duplicates: [] });
    }
  });

  it.each(Object.keys(VARIANTS) as Variant[])(
    '%s: its Services, disruption budget and ServiceMonitor select its pods by ports that exist',
    (variant) => {
      const resources = resourcesOf(variant);
      const template = podTemplateOf(workload(variant));
      const container = template.spec.containers[0];
      const selector = at(workload(variant).body, 'spec.selector.matchLabels') as Record<string, string>;
      expect(selects(selector, template.metadata.labels)).toBe(true);
      for (const service of all(resources, 'Service')) {
        expect({
          service: service.name,
          selects: selects(at(service.body, 'spec.selector') as Record<string, string>, template.metadata.labels),
        }).toEqual({
          service: service.name,
          selects: true,
        });
        for (const port of at(service.body, 'spec.ports') as { targetPort: string | number }[]) {
          expect(() => portNumber(container, port.targetPort)).not.toThrow();
        }
      }
      const pdb = the(resources, 'PodDisruptionBudget');
      expect(selects(at(pdb.body, 'spec.selector.matchLabels') as Record<string, string>, template.metadata.labels)).toBe(true);
      const { monitor, service } = scrapedService(resources);
      const endpoints = at(monitor.body, 'spec.endpoints') as { port: string; path: string }[];
      const servicePorts = at(service.body, 'spec.ports') as { name: string; targetPort: string | number }[];
      for (const endpoint of endpoints) {
        const servicePort = servicePorts.find((p) => p.name === endpoint.port);
        expect(servicePort).toBeDefined();
        expect(portNumber(container, servicePort!.targetPort)).toBe(MANAGEMENT_PORT);
        expect(endpoint.path).toBe(`/${DEFAULT_METRICS_PATH}`);
      }
      expect(service.name).toBe(METRICS_JOB);
      // Pods behind two Services at once (active and preview, stable and canary) are scraped once.
      expect(at(service.body, 'spec.publishNotReadyAddresses')).toBe(true);
    },
  );

  it('the Deployment and both Rollouts run one pod template, each reading its own ReplicaSet hash', () => {
    const normalised = (variant: Variant) =>
      JSON.stringify(podTemplateOf(workload(variant))).replace(/rollouts-pod-template-hash/g, 'pod-template-hash');
    expect(normalised('blue-green')).toBe(normalised('rolling'));
    expect(normalised('canary')).toBe(normalised('rolling'));
    expect(JSON.stringify(podTemplateOf(workload('canary')))).toContain("metadata.labels['rollouts-pod-template-hash']");
    for (const variant of Object.keys(VARIANTS) as Variant[]) {
      expect(at(workload(variant).body, 'spec.replicas')).toBe(at(DEPLOYMENT.body, 'spec.replicas'));
    }
  });

  it('rolls one new pod in before an old one goes: RollingUpdate, maxSurge 1, maxUnavailable 0', () => {
    expect(at(DEPLOYMENT.body, 'spec.strategy')).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  });

  it("sets only the sample's own variables, which its validation accepts", () => {
    const helpers = referencedNames(CONTAINER);
    const unknown = (CONTAINER.env ?? [])
      .map((v) => v.name)
      .filter((name) => !(SAMPLE_ENV_VARIABLES as readonly string[]).includes(name) && !helpers.has(name));
    expect(unknown).toEqual([]);
    expect(() => sampleConfig.parse(DEPLOYMENT_ENV)).not.toThrow();
    expect(SAMPLE_CONFIG.color).toBe(`rs-${STABLE_HASH}`);
    expect(SAMPLE_CONFIG.version).toBe(TEMPLATE.metadata.labels['app.kubernetes.io/version']);
    expect(CONTAINER.image.endsWith(`:${SAMPLE_CONFIG.version}`)).toBe(true);
    expect(SAMPLE_CONFIG.registry.driver).toBe('none');
    // The container's ports are the ones the sample listens on.
    expect(portNumber(CONTAINER, 'http')).toBe(HTTP_PORT);
    expect(MANAGEMENT_PORT).toBeDefined();
    expect(portNumber(CONTAINER, 'management')).toBe(MANAGEMENT_PORT);
    expect(CONTAINER.ports?.map((p) => p.containerPort)).toEqual([HTTP_PORT, MANAGEMENT_PORT]);
  });

  it('probes the three endpoints the sample serves, on the management port', () => {
    for (const [probe, path] of Object.entries(PROBES) as [keyof typeof PROBES, string][]) {
      const httpProbe = CONTAINER[probe]?.httpGet;
      expect({ probe, path: httpProbe?.path }).toEqual({ probe, path });
      expect({ probe, port: portNumber(CONTAINER, httpProbe!.port) }).toEqual({ probe, port: MANAGEMENT_PORT });
    }
  });

  it('gives the startup probe more time than the sample gives its database, so the sample exits first, saying why', () => {
    const startup = CONTAINER.startupProbe!;
    const budgetMs = startup.periodSeconds! * startup.failureThreshold! * 1000;
    const lifecycle = resolveLifecycleOptions({ minReadyDelayMs: SAMPLE_CONFIG.minReadyDelayMs });
    expect(SAMPLE_CONFIG.databaseConnectTimeoutMs).toBe(DEFAULT_DATABASE_CONNECT_TIMEOUT_MS);
    expect(budgetMs).toBeGreaterThan(SAMPLE_CONFIG.databaseConnectTimeoutMs + SAMPLE_CONFIG.warmupDelayMs + lifecycle.minReadyDelayMs);
  });

  it("grants a grace period that covers the app's drain delay, shutdown timeout, hook budget and a margin, with no preStop sleep on top", () => {
    const grace = TEMPLATE.spec.terminationGracePeriodSeconds!;
    expect(grace).toBeDefined();
    // The choice deploy/README.md documents: the app drains by itself (DRAIN_DELAY_MS), so a preStop
    // sleep would spend the same seconds twice out of one grace period.
    for (const container of TEMPLATE.spec.containers)
      expect({ container: container.name, preStop: container.lifecycle?.preStop }).toEqual({
        container: container.name,
        preStop: undefined,
      });
    expect(DEPLOYMENT_ENV.DRAIN_DELAY_MS).toBeDefined();
    expect(DEPLOYMENT_ENV.SHUTDOWN_TIMEOUT_MS).toBeDefined();
    // The lifecycle's options as the sample builds them (app.module.ts), with the pod's grace period:
    // resolving them throws if the hard deadline does not end before it.
    const options = resolveLifecycleOptions({
      drainDelayMs: SAMPLE_CONFIG.drainDelayMs,
      shutdownTimeoutMs: SAMPLE_CONFIG.shutdownTimeoutMs,
      minReadyDelayMs: SAMPLE_CONFIG.minReadyDelayMs,
      hardDeadlineMs: SAMPLE_CONFIG.hardDeadlineMs,
      color: SAMPLE_CONFIG.color,
      version: SAMPLE_CONFIG.version,
      terminationGracePeriodSeconds: grace,
    });
    const budgetMs = shutdownBudgetMs(options);
    expect(budgetMs).toBe(Math.max(options.drainDelayMs, options.drainTaskTimeoutMs) + options.shutdownTimeoutMs + options.hookTimeoutMs);
    expect(options.hardDeadlineMs).toBeGreaterThanOrEqual(budgetMs);
    expect(grace * 1000).toBeGreaterThanOrEqual(options.hardDeadlineMs + KILL_MARGIN_MS);
    // And the check bites: the default grace period of 30 s would be too short for a 10 s drain delay.
    expect(() =>
      resolveLifecycleOptions({ drainDelayMs: 10_000, shutdownTimeoutMs: options.shutdownTimeoutMs, terminationGracePeriodSeconds: 30 }),
    ).toThrow(/terminationGracePeriodSeconds/);
  });

  it('runs as a non-root user on a read-only root filesystem, writing only to emptyDir volumes, with resources set', () => {
    expect(TEMPLATE.spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(TEMPLATE.spec.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(CONTAINER.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    const volumes = new Map((TEMPLATE.spec.volumes ?? []).map((v) => [v.name, v]));
    const writable = (CONTAINER.volumeMounts ?? []).filter((m) => !m.readOnly);
    expect(writable.map((m) => m.mountPath)).toEqual(['/tmp']);
    for (const mount of writable) expect(volumes.get(mount.name)?.emptyDir).toBeDefined();
    expect(CONTAINER.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(CONTAINER.resources?.limits).toMatchObject({ memory: expect.any(String) });
  });

  it('mounts the ConfigMap holding config/dynamic.yaml word for word as a folder, and DYNAMIC_CONFIG_FILE names the file in it', () => {
    const file = SAMPLE_CONFIG.dynamicConfigFile;
    expect(file).not.toBe(DEFAULT_DYNAMIC_CONFIG_FILE);
    const mount = (CONTAINER.volumeMounts ?? []).find((m) => m.mountPath === dirname(file));
    expect(mount).toBeDefined();
    // A subPath mount never sees the kubelet's updates: the folder is mounted.
    expect(mount!.subPath).toBeUndefined();
    const volume = TEMPLATE.spec.volumes?.find((v) => v.name === mount!.name);
    const configMap = the(MANIFESTS, 'ConfigMap', volume?.configMap?.name);
    const data = at(configMap.body, 'data') as Record<string, string>;
    expect(Object.keys(data)).toEqual([basename(file)]);
    expect(data[basename(file)]).toBe(readFileSync(join(ROOT, DEFAULT_DYNAMIC_CONFIG_FILE), 'utf8'));
  });

  it('blue-green: active and preview Services, and a pre-promotion analysis whose arguments all resolve', () => {
    const resources = resourcesOf('blue-green');
    const rollout = workload('blue-green');
    const strategy = at(rollout.body, 'spec.strategy.blueGreen') as {
      activeService: string;
      previewService: string;
      prePromotionAnalysis: { templates: { templateName: string }[]; args?: AnalysisArg[] };
    };
    expect(the(resources, 'Service', strategy.activeService).name).toBe(SERVICE_NAME);
    expect(the(resources, 'Service', strategy.previewService)).toBeDefined();
    expect(analysisProblems(rollout, resources, strategy.prePromotionAnalysis)).toEqual([]);
    const template = the(resources, 'AnalysisTemplate', strategy.prePromotionAnalysis.templates[0].templateName);
    const metrics = at(template.body, 'spec.metrics') as AnalysisMetric[];
    // The preview colour's error ratio and p99 on the service's own histogram, and the smoke traffic to judge.
    expect(metrics.map((m) => m.name).sort()).toEqual(['preview-error-ratio', 'preview-latency-p99', 'preview-traffic', 'smoke-traffic']);
    const previewUrl = (at(template.body, 'spec.args') as AnalysisArg[]).find((a) => a.name === 'preview-url')?.value;
    expect(previewUrl).toBe(`http://${strategy.previewService}`);
  });

  it("canary: stable and canary Services, weights with analysis, and a header route matching the sample's canary rule", () => {
    const resources = resourcesOf('canary');
    const rollout = workload('canary');
    const canary = at(rollout.body, 'spec.strategy.canary') as {
      stableService: string;
      canaryService: string;
      trafficRouting: { managedRoutes: { name: string }[]; istio: { virtualService: { name: string; routes: string[] } } };
      steps: Record<string, unknown>[];
    };
    the(resources, 'Service', canary.stableService);
    the(resources, 'Service', canary.canaryService);
    const weights = canary.steps.filter((s) => 'setWeight' in s).map((s) => s.setWeight as number);
    expect(weights.length).toBeGreaterThan(0);
    expect(weights).toEqual([...weights].sort((a, b) => a - b));
    // Every weight is followed by a pause and an analysis before the next one.
    canary.steps.forEach((step, i) => {
      if ('setWeight' in step) expect(Object.keys(canary.steps[i + 1] ?? {})).toEqual(['pause']);
      if ('setWeight' in step) expect(Object.keys(canary.steps[i + 2] ?? {})).toEqual(['analysis']);
    });
    for (const step of canary.steps.filter((s) => 'analysis' in s)) {
      expect(
        analysisProblems(rollout, resources, step.analysis as { templates: { templateName: string }[]; args?: AnalysisArg[] }),
      ).toEqual([]);
    }

    // The header route: the same header and value as the sample's own canary rule.
    const rules = (
      parseYaml(readFileSync(join(ROOT, DEFAULT_DYNAMIC_CONFIG_FILE), 'utf8')) as { canary: { header: Record<string, string> } }
    ).canary.header;
    const route = canary.steps.find((s) => 'setHeaderRoute' in s)?.setHeaderRoute as {
      name: string;
      match: { headerName: string; headerValue: { exact: string } }[];
    };
    expect(route.match.map((m) => [m.headerName, m.headerValue.exact])).toEqual(Object.entries(rules));
    expect(canary.trafficRouting.managedRoutes.map((r) => r.name)).toContain(route.name);
    // A pod exists for it before any weight: the canary scale is set first.
    expect(Object.keys(canary.steps[0])).toEqual(['setCanaryScale']);

    // The VirtualService Argo drives: the named route, its destinations the stable and canary Services.
    const virtualService = the(resources, 'VirtualService', canary.trafficRouting.istio.virtualService.name);
    const http = at(virtualService.body, 'spec.http') as {
      name: string;
      route: { destination: { host: string; port: { number: number } } }[];
    }[];
    for (const name of canary.trafficRouting.istio.virtualService.routes) {
      const hosts = http.find((h) => h.name === name)?.route.map((r) => r.destination.host);
      expect(hosts?.sort()).toEqual([canary.canaryService, canary.stableService].sort());
    }
    expect(at(virtualService.body, 'spec.hosts')).toEqual([the(resources, 'Service', SERVICE_NAME).name]);
  });
});

interface AnalysisArg {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; podTemplateHashValue?: string };
}

/** What keeps a Rollout's analysis from running: a template missing, an argument unset or unresolvable. */
function analysisProblems(
  rollout: Manifest,
  resources: readonly Manifest[],
  analysis: { templates: { templateName: string }[]; args?: AnalysisArg[] },
): string[] {
  const problems: string[] = [];
  const passed = new Map((analysis.args ?? []).map((a) => [a.name, a]));
  for (const arg of analysis.args ?? []) {
    const fieldPath = arg.valueFrom?.fieldRef?.fieldPath;
    if (fieldPath && argoFieldRef(rollout.body, fieldPath, TEST_NAMESPACE) === undefined)
      problems.push(`${arg.name}: ${fieldPath} resolves to nothing on the Rollout`);
    const hash = arg.valueFrom?.podTemplateHashValue;
    if (hash !== undefined && !['Stable', 'Latest'].includes(hash)) problems.push(`${arg.name}: podTemplateHashValue ${hash}`);
  }
  for (const { templateName } of analysis.templates) {
    const templates = resources.filter((m) => m.kind === 'AnalysisTemplate' && m.name === templateName);
    if (templates.length !== 1) {
      problems.push(`AnalysisTemplate ${templateName}: ${templates.length} in the variant`);
      continue;
    }
    const declared = at(templates[0].body, 'spec.args') as AnalysisArg[];
    for (const arg of declared) {
      if (arg.value === undefined && arg.valueFrom === undefined && !passed.has(arg.name))
        problems.push(`${templateName}: argument ${arg.name} has no value`);
    }
    for (const name of passed.keys()) {
      if (!declared.some((a) => a.name === name))
        problems.push(`${templateName}: the Rollout passes ${name}, which the template does not declare`);
    }
    const text = JSON.stringify(templates[0].body.spec);
    for (const [, name] of text.matchAll(/\{\{\s*args\.([\w-]+)\s*\}\}/g)) {
      if (!declared.some((a) => a.name === name)) problems.push(`${templateName}: {{args.${name}}} is not declared`);
    }
    for (const metric of at(templates[0].body, 'spec.metrics') as AnalysisMetric[]) {
      if (metric.provider.prometheus && !metric.successCondition) problems.push(`${templateName} ${metric.name}: no successCondition`);
    }
  }
  return problems;
}

describe('deploy/Dockerfile', () => {
  const stages = dockerStages();
  const runtime = stages.at(-1)!;
  const instruction = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);

  it('builds in stages and runs the built sample as a numeric non-root user, under an init that forwards signals to Node', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    const user = instruction(runtime, 'USER').at(-1)?.args;
    expect(user).toMatch(/^\d+(:\d+)?$/);
    const uid = Number(user!.split(':')[0]);
    expect(uid).toBeGreaterThan(0);
    expect(uid).toBe(TEMPLATE.spec.securityContext?.runAsUser);
    // Exec form only: a shell form would make /bin/sh PID 1, and SIGTERM would never reach Node.
    const entrypoint = execForm(instruction(runtime, 'ENTRYPOINT').at(-1));
    const cmd = execForm(instruction(runtime, 'CMD').at(-1));
    expect(entrypoint).toBeDefined();
    expect(cmd).toBeDefined();
    const argv = [...entrypoint!, ...cmd!];
    expect(argv.slice(0, 2)).toEqual(['/usr/bin/tini', '--']);
    expect(instruction(runtime, 'RUN').some((run) => /apt-get install .*\btini\b/.test(run.args))).toBe(true);
    expect(argv.slice(2)).toEqual(['node', relative(ROOT, SAMPLE_MAIN).split('\\').join('/')]);
    const byNumber = (a: number, b: number) => a - b;
    expect(
      instruction(runtime, 'EXPOSE')
        .flatMap((e) => e.args.split(/\s+/).map(Number))
        .sort(byNumber),
    ).toEqual(CONTAINER.ports!.map((p) => p.containerPort).sort(byNumber));
    expect(instruction(runtime, 'WORKDIR').at(-1)?.args).toBe('/app');
    expect(SAMPLE_CONFIG.dynamicConfigFile.startsWith('/')).toBe(true);
  });

  it('installs production dependencies only, from the lock file, and copies nothing else into the runtime image', () => {
    const productionStage = stages.find((stage) => instruction(stage, 'RUN').some((run) => /\bnpm ci\b.*--omit=dev/.test(run.args)));
    expect(productionStage?.name).toBeDefined();
    const copiesFrom = instruction(runtime, 'COPY').map((copy) => /--from=(\S+)/.exec(copy.args)?.[1]);
    expect(copiesFrom).toContain(productionStage!.name);
    // node_modules reaches the runtime only from the production install, and no npm runs there.
    const buildStages = stages.filter((s) => s !== productionStage && s !== runtime).map((s) => s.name);
    for (const copy of instruction(runtime, 'COPY')) {
      const from = /--from=(\S+)/.exec(copy.args)?.[1];
      if (buildStages.includes(from)) expect(copy.args).not.toMatch(/node_modules|\/app\s/);
      if (from === undefined)
        expect(
          copy.args
            .split(/\s+/)
            .slice(0, -1)
            .every((source) => existsSync(join(ROOT, source)) && !/^(libs|apps|\.)\/?$/.test(source)),
        ).toBe(true);
    }
    expect(instruction(runtime, 'RUN').some((run) => /\bnpm\b/.test(run.args))).toBe(false);
    // The .proto files the gRPC servers load at run time travel with the compiled code.
    const staged = stages.flatMap((stage) => instruction(stage, 'RUN').map((run) => run.args)).join('\n');
    const protoDirs = [...LIBS.map((lib) => `libs/${lib}/proto`), 'apps/sample/proto'].filter((dir) => existsSync(join(ROOT, dir)));
    for (const dir of protoDirs)
      expect({ dir, staged: staged.includes(dir) || staged.includes(dir.replace(/^libs\/[^/]+/, 'libs/*')) }).toEqual({
        dir,
        staged: true,
      });
    for (const stage of stages.filter((s) => instruction(s, 'RUN').some((run) => /\bnpm ci\b/.test(run.args)))) {
      // Every workspace's manifest before the install, or npm would not link that lib.
      const copied = instruction(stage, 'COPY').flatMap((copy) => copy.args.split(/\s+/).slice(0, -1));
      expect({ stage: stage.name, libs: LIBS.filter((lib) => !copied.includes(`libs/${lib}/package.json`)) }).toEqual({
        stage: stage.name,
        libs: [],
      });
      expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json']));
    }
  });

  it('declares as production dependencies what the sample imports or loads, and npm installs them without dev tools', () => {
    const root = packageManifest('package.json');
    const dependencies = Object.keys(root.dependencies ?? {});
    const imported = sampleImports();
    const libs = LIBS.map((lib) => packageManifest(`libs/${lib}/package.json`));
    const usedLibs = libs.filter((m) => imported.includes(m.name));
    expect(imported.filter((name) => name.startsWith('@nest-rollout/') && !usedLibs.some((m) => m.name === name))).toEqual([]);
    const needed = [...new Set([...imported.filter((name) => !name.startsWith('@nest-rollout/')), ...LOADED_AT_RUN_TIME])];
    // Nest's gRPC transport loads the proto loader by name.
    if (imported.includes('@nestjs/microservices')) needed.push('@grpc/grpc-js', '@grpc/proto-loader');
    expect(needed.filter((name) => !dependencies.includes(name))).toEqual([]);
    // Each lib's required peers come from the root's dependencies (or are libs themselves).
    const peers = (m: PackageManifest, optional: boolean) =>
      Object.keys(m.peerDependencies ?? {}).filter(
        (peer) => !peer.startsWith('@nest-rollout/') && !!m.peerDependenciesMeta?.[peer]?.optional === optional,
      );
    for (const m of usedLibs)
      expect({ lib: m.name, missing: peers(m, false).filter((peer) => !dependencies.includes(peer)) }).toEqual({
        lib: m.name,
        missing: [],
      });
    // Nothing else: a dependency is needed, or an optional peer of a lib the sample uses (a transport
    // or driver an environment variable may turn on); never a build or test tool.
    const optionalPeers = new Set(usedLibs.flatMap((m) => peers(m, true)));
    expect(dependencies.filter((name) => !needed.includes(name) && !optionalPeers.has(name))).toEqual([]);
    // npm's own view of the lock: what `npm ci --omit=dev` installs.
    const production = new Set(
      execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .split('\n')
        .filter((line) => line.includes('node_modules'))
        .map((line) => line.slice(line.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    );
    expect(needed.filter((name) => !production.has(name))).toEqual([]);
    expect(['typescript', 'jest', 'eslint', '@nestjs/cli', 'kubernetes-models'].filter((tool) => production.has(tool))).toEqual([]);
  }, 60_000);

  it('keeps the build context to the sources: no node_modules, build output or repository metadata', () => {
    const ignored = readFileSync(join(ROOT, `${DOCKERFILE}.dockerignore`), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['**/node_modules', '**/dist', '.git']));
    // Nothing the Dockerfile copies from the context is ignored.
    const sources = stages.flatMap((stage) =>
      instruction(stage, 'COPY')
        .filter((c) => !c.args.includes('--from='))
        .flatMap((c) => c.args.split(/\s+/).slice(0, -1)),
    );
    for (const source of sources)
      expect({ source, ignored: ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)) }).toEqual({
        source,
        ignored: false,
      });
  });
});

describe('deploy/prometheus and deploy/grafana', () => {
  it('promtool check rules accepts the alert rules', () => {
    const run = promtool(['check', 'rules', RULES_FILE]);
    expect(run.output).toMatch(/SUCCESS/);
    expect(run.status).toBe(0);
  });

  it('promtool test rules passes, with a case where each alert fires and one where it stays silent', () => {
    const run = promtool(['test', 'rules', RULES_TEST_FILE]);
    expect(run.output).toMatch(/SUCCESS/);
    expect(run.status).toBe(0);
    const tests = (
      parseYamlDocuments(ROOT, RULES_TEST_FILE)[0] as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] }
    ).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    const alerts = alertRules().map((r) => r.alert!);
    expect(alerts.length).toBeGreaterThan(0);
    for (const alert of alerts) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect({ alert, fires: mine.some((c) => c.exp_alerts.length > 0), silent: mine.some((c) => c.exp_alerts.length === 0) }).toEqual({
        alert,
        fires: true,
        silent: true,
      });
    }
  });

  it('the unit tests catch a missing alert: without any one of them, promtool test rules fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nest-rollout-rules-'));
    try {
      writeFileSync(join(dir, basename(RULES_TEST_FILE)), readFileSync(join(ROOT, RULES_TEST_FILE)));
      for (const alert of alertRules().map((r) => r.alert!)) {
        const rules = rulesFile();
        for (const group of rules.groups) group.rules = group.rules.filter((r) => r.alert !== alert);
        writeFileSync(join(dir, basename(RULES_FILE)), stringifyYaml(rules));
        expect({ alert, status: promtool(['test', 'rules', basename(RULES_TEST_FILE)], dir).status }).toEqual({ alert, status: 1 });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("the PrometheusRule carries the rule file's groups word for word", () => {
    expect(at(the(MANIFESTS, 'PrometheusRule').body, 'spec.groups')).toEqual(rulesFile().groups);
  });

  it('every query of the dashboard, the alerts and the analysis templates is PromQL that Prometheus parses', () => {
    const queries = allQueries();
    expect(queries.length).toBeGreaterThan(25);
    const dir = mkdtempSync(join(tmpdir(), 'nest-rollout-queries-'));
    try {
      const rules = {
        groups: [{ name: 'deploy-queries', rules: queries.map((q, i) => ({ record: `deploy_query_${i}`, expr: q.query })) }],
      };
      writeFileSync(join(dir, 'queries.yaml'), stringifyYaml(rules));
      const run = promtool(['check', 'rules', 'queries.yaml'], dir);
      expect(run.output).toMatch(/SUCCESS/);
      expect(run.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the dashboard has unique panel ids, whole grid positions, and datasources from its variables', () => {
    const board = dashboard();
    const ids = board.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const variables = new Map(board.templating.list.map((v) => [v.name, v]));
    for (const panel of board.panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w).toBeLessThanOrEqual(24);
      expect([x, y, w, h].every((n) => Number.isInteger(n) && n >= 0)).toBe(true);
      if (panel.type === 'row') continue;
      expect(panel.targets?.length).toBeGreaterThan(0);
      const uid = /^\$\{(\w+)\}$/.exec(panel.datasource!.uid)?.[1];
      expect({ panel: panel.title, variable: uid && variables.get(uid)?.type }).toEqual({ panel: panel.title, variable: 'datasource' });
    }
    // The sections the dashboard promises.
    expect(board.panels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual([
      'Traffic by colour and track',
      'Releases and readiness',
      'Shutdown',
      'Canary',
      'Dynamic configuration',
      'Service registry',
    ]);
    // The log panel reads the lifecycle's own event, from the container the manifests name.
    const logs = board.panels.find((p) => p.type === 'logs')!;
    expect(logs.targets![0].expr).toContain(`container="${CONTAINER.name}"`);
    expect(logs.targets![0].expr).toContain(`event="${LifecycleEvent.REQUESTS_CUT}"`);
  });

  it('the query check finds a metric, a label and a value that are not there, so that the live check can fail', () => {
    const samples: Sample[] = [{ name: 'app_info', labels: { color: 'rs-a', track: 'stable' }, value: 1 }];
    const scope = { samples, targetLabels: TARGET_LABELS, targetValues: { job: METRICS_JOB } };
    expect(promqlProblems('sum by (color) (app_info)', scope)).toEqual([]);
    expect(promqlProblems('sum by (colour) (app_info)', scope).join()).toMatch(/colour/);
    expect(promqlProblems('app_info{track="canary"}', scope).join()).toMatch(/canary/);
    expect(promqlProblems('rate(http_requests_total[5m])', scope).join()).toMatch(/http_requests_total/);
    expect(
      promqlProblems('rate(x[5m]) * on (pod) group_left (version) app_info', {
        ...scope,
        samples: [...samples, { name: 'x', labels: {}, value: 1 }],
      }).join(),
    ).toMatch(/version/);
    expect(promqlProblems(`app_info{job="orders"}`, scope).join()).toMatch(/job/);
  });
});

// --- the live check -------------------------------------------------------------------------------

/** Scrapes `url` and parses it as Prometheus would. */
async function scrape(url: string): Promise<Sample[]> {
  const answer = await httpGet(url, 3000);
  if (answer.status !== 200) throw new Error(`GET ${url}: ${answer.status}`);
  return parseExposition(answer.body);
}

function has(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): boolean {
  return samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

interface LiveInstance {
  readonly app: AppInstance;
  readonly managementPort: number;
  readonly configFile: string;
  readonly metricsUrl: string;
}

describe.each(ADAPTERS)('the sample started as the Deployment says, on %s', (adapter: Adapter) => {
  let etcd: EtcdServer | undefined;
  let configDir: string | undefined;
  let stable: LiveInstance | undefined;
  let canary: LiveInstance | undefined;
  const samples: Sample[] = [];

  /**
   * One instance with the Deployment container's environment (ports moved to free ones, the
   * ConfigMap's file in a folder of its own), plus `overrides`, each stated where it is passed.
   */
  async function startLive(name: string, hash: string, overrides: Record<string, string>): Promise<LiveInstance> {
    const [httpPort, managementPort] = [await freePort(), await freePort()];
    const folder = join(configDir!, name);
    execFileSync('mkdir', ['-p', folder]);
    const configFile = join(folder, basename(SAMPLE_CONFIG.dynamicConfigFile));
    writeFileSync(configFile, (at(the(MANIFESTS, 'ConfigMap').body, 'data') as Record<string, string>)[basename(configFile)]);
    const env = {
      ...resolveEnv(CONTAINER, podLabels(TEMPLATE, hash), `${SERVICE_NAME}-${hash}-${name}`),
      PORT_MANAGEMENT: String(managementPort),
      DYNAMIC_CONFIG_FILE: configFile,
      ...overrides,
    };
    const app = await startSample({
      name: `deploy-${name}-${adapter}`,
      adapter,
      port: httpPort,
      env,
      readyUrl: `http://127.0.0.1:${managementPort}${PROBES.readinessProbe}`,
    });
    return { app, managementPort, configFile, metricsUrl: `http://127.0.0.1:${managementPort}/${DEFAULT_METRICS_PATH}` };
  }

  beforeAll(async () => {
    configDir = mkdtempSync(join(tmpdir(), 'nest-rollout-deploy-'));
    etcd = await EtcdServer.start();
    // A registry, so that the registry panels and alerts have series to find (in Kubernetes the
    // manifests set REGISTRY_DRIVER=none), and the stable instance finds the canary through it.
    const registry = { REGISTRY_DRIVER: 'etcd', ETCD_ENDPOINTS: etcd.url };
    // The canary track, so that the alerts comparing tracks have both; short drain and shutdown
    // timeouts, so that its shutdown cuts a slow request in a second rather than in 20.
    canary = await startLive('canary', CANARY_HASH, {
      ...registry,
      APP_TRACK: 'canary',
      DRAIN_DELAY_MS: '200',
      SHUTDOWN_TIMEOUT_MS: '300',
    });
    stable = await startLive('stable', STABLE_HASH, registry);
  }, 90_000);

  afterAll(async () => {
    await stable?.app.stop(1000);
    await canary?.app.stop(1000);
    await etcd?.destroy();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  it("answers the probes on the manifests' paths and port, not on the public port, and /metrics where the ServiceMonitor scrapes", async () => {
    for (const [probe, path] of Object.entries(PROBES) as [keyof typeof PROBES, string][]) {
      expect({
        probe,
        status: (await httpGet(`http://127.0.0.1:${stable!.managementPort}${CONTAINER[probe]!.httpGet!.path}`)).status,
      }).toEqual({ probe, status: 200 });
      expect({ probe, status: (await httpGet(`${stable!.app.url}${path}`)).status }).toEqual({ probe, status: 404 });
    }
    const endpoint = (at(the(MANIFESTS, 'ServiceMonitor').body, 'spec.endpoints') as { path: string }[])[0];
    const metrics = await httpGet(`http://127.0.0.1:${stable!.managementPort}${endpoint.path}`);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^# HELP app_info /m);
    expect(parseExposition(metrics.body).find((s) => s.name === 'app_info')?.labels).toMatchObject({
      color: `rs-${STABLE_HASH}`,
      track: 'stable',
      version: TEMPLATE.metadata.labels['app.kubernetes.io/version'],
    });
  });

  it("the blue-green smoke job's script drives traffic that the preview answers", () => {
    const template = the(MANIFESTS, 'AnalysisTemplate', 'orders-preview');
    const job = (at(template.body, 'spec.metrics') as AnalysisMetric[]).find((m) => m.provider.job)!.provider.job!.spec;
    const container = (at(job, 'template.spec.containers') as { command: string[]; env: EnvVar[] }[])[0];
    expect(container.command.slice(0, 2)).toEqual(['node', '-e']);
    const run = spawnSync(process.execPath, ['-e', container.command[2]], {
      env: { ...process.env, TARGET_URL: stable!.app.url, DURATION_SECONDS: '1' },
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(run.status).toBe(0);
    const done = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { event: string; answered: number; unreachable: number };
    expect(done.event).toBe('smoke.done');
    expect(done.answered).toBeGreaterThan(2);
    expect(done.unreachable).toBe(0);
    expect(container.env.map((e) => e.name).sort()).toEqual(['DURATION_SECONDS', 'TARGET_URL']);
  }, 30_000);

  it('serves every metric, label and value the dashboard, the alerts and the analysis templates query', async () => {
    const app = stable!.app;
    // Orders: created, read, quoted with and without the canary header (forwarded to the canary).
    const created = await fetch(`${app.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ item: 'tea' }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: number };
    expect((await httpGet(`${app.url}/orders`)).status).toBe(200);
    expect((await fetch(`${app.url}/orders/${id}/quote`)).status).toBe(200);
    await waitUntil(
      async () => has(await scrape(stable!.metricsUrl), 'registry_discovery_instances', { service: SERVICE_NAME }),
      'discovery of orders',
      10_000,
      100,
    );
    const quote = await fetch(`${app.url}/orders/${id}/quote`, { headers: { 'x-env': 'canary' } });
    expect(quote.status === 200 || quote.status === 404).toBe(true);

    // A degrade switch through the dynamic configuration: GET /orders answers 503 (a 5xx to count).
    const config = readFileSync(stable!.configFile, 'utf8');
    writeFileSync(stable!.configFile, config.replace('orders_list: false', 'orders_list: true'));
    await waitUntil(async () => (await httpGet(`${app.url}/orders`)).status === 503, 'the degrade switch', 10_000, 100);
    // A change that does not validate: rejected, the last good version kept.
    writeFileSync(stable!.configFile, config.replace('orders_list: false', 'orders_list: maybe'));
    await waitUntil(
      async () => has(await scrape(stable!.metricsUrl), 'config_reloads_total', { result: 'rejected' }),
      'the rejected change',
      10_000,
      100,
    );
    writeFileSync(stable!.configFile, config);

    // The registry loses every entry (restarted without its data): the instances restore theirs.
    await etcd!.stop({ wipe: true });
    await etcd!.start();
    await waitUntil(
      async () => has(await scrape(stable!.metricsUrl), 'registry_registrations_lost_total'),
      'a lost registration',
      20_000,
      200,
    );

    samples.push(...(await scrape(stable!.metricsUrl)), ...(await scrape(canary!.metricsUrl)));

    // The stable instance drains: readiness false, the shutdown under way, deregistered. The
    // management port serves /metrics until the very end, so Prometheus sees all of it.
    app.process.signal('SIGTERM');
    let draining: Sample[] = [];
    await waitUntil(
      async () => {
        draining = await scrape(stable!.metricsUrl);
        return (
          has(draining, 'registry_deregistration_duration_seconds') && has(draining, 'health_readiness_changes_total', { ready: 'false' })
        );
      },
      'the drain to show',
      Number(DEPLOYMENT_ENV.DRAIN_DELAY_MS),
      100,
    );
    expect(draining.find((s) => s.name === 'lifecycle_state' && s.labels.state === LifecycleState.DRAINING)?.value).toBe(1);
    expect(draining.find((s) => s.name === 'lifecycle_shutdown_duration_seconds')?.value).toBeGreaterThan(0);
    samples.push(...draining);
    const exit = await app.process.waitForExit(Number(DEPLOYMENT_ENV.DRAIN_DELAY_MS) + 10_000);
    expect(exit.code).toBe(0);

    const scope = { samples, targetLabels: TARGET_LABELS, targetValues: { job: METRICS_JOB } };
    const problems = allQueries().flatMap(({ source, query }) => promqlProblems(query, scope).map((problem) => `${source}: ${problem}`));
    expect(problems).toEqual([]);
  }, 90_000);

  it("logs the requests a shutdown cuts as one JSON line with the lifecycle's event, which the dashboard's log panel reads", async () => {
    const app = canary!.app;
    const slow = httpGet(`${app.url}/demo/slow?ms=5000`, 10_000).catch((error: Error) => error);
    await waitUntil(
      async () => (await scrape(canary!.metricsUrl)).some((s) => s.name === 'http_requests_in_flight' && s.value >= 1),
      'the slow request in flight',
      5000,
      50,
    );
    app.process.signal('SIGTERM');
    expect((await app.process.waitForExit(15_000)).code).toBe(0);
    await slow;
    const cut = app.process.stdout
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.event === LifecycleEvent.REQUESTS_CUT);
    // A top-level `event`, as `| json | event="lifecycle.requests_cut"` in the log panel needs.
    expect(cut).toBeDefined();
    expect(cut!.count).toBe(1);
    expect(logEvents(app.process.stdout, LifecycleEvent.REQUESTS_CUT)).toHaveLength(1);
  }, 30_000);
});
