import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { AnalysisTemplate, Rollout } from '@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1beta1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  CompilerOptions,
  createCompilerHost,
  createProgram,
  createSourceFile,
  flattenDiagnosticMessageText,
  getPreEmitDiagnostics,
  ModuleKind,
  ModuleResolutionKind,
  ScriptTarget,
} from 'typescript';
import { parseAllDocuments } from 'yaml';

/** One document of a manifest file under deploy/. */
export interface Manifest {
  /** Path from the repository root, and the document's index in its file. */
  readonly file: string;
  readonly index: number;
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly body: Record<string, unknown>;
}

interface ModelKind {
  /** Validates against the resource's schema; throws naming every problem. */
  readonly validate: (body: Record<string, unknown>) => void;
  /** The module and interface the TypeScript check types a document with. */
  readonly module: string;
  readonly type: string;
}

function validator(Model: new (data: never) => { validate(): void }) {
  return (body: Record<string, unknown>) => new Model(body as never).validate();
}

/**
 * The resources deploy/ may hold, each with its schema from @kubernetes-models (the Kubernetes
 * OpenAPI, and the CRDs of Argo Rollouts, the Prometheus Operator and Istio). A kind not listed here
 * fails the test rather than passing unchecked.
 */
export const MODEL_KINDS: Readonly<Record<string, ModelKind>> = {
  'v1/ConfigMap': { validate: validator(ConfigMap), module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  'v1/Service': { validate: validator(Service), module: 'kubernetes-models/v1/Service', type: 'IService' },
  'apps/v1/Deployment': { validate: validator(Deployment), module: 'kubernetes-models/apps/v1/Deployment', type: 'IDeployment' },
  'policy/v1/PodDisruptionBudget': {
    validate: validator(PodDisruptionBudget),
    module: 'kubernetes-models/policy/v1/PodDisruptionBudget',
    type: 'IPodDisruptionBudget',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    validate: validator(ServiceMonitor),
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor',
    type: 'IServiceMonitor',
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    validate: validator(PrometheusRule),
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule',
    type: 'IPrometheusRule',
  },
  'argoproj.io/v1alpha1/Rollout': {
    validate: validator(Rollout),
    module: '@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout',
    type: 'IRollout',
  },
  'argoproj.io/v1alpha1/AnalysisTemplate': {
    validate: validator(AnalysisTemplate),
    module: '@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate',
    type: 'IAnalysisTemplate',
  },
  'networking.istio.io/v1beta1/VirtualService': {
    validate: validator(VirtualService),
    module: '@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService',
    type: 'IVirtualService',
  },
};

/** Kustomize's own files: read by kustomize, not sent to the API server, so not a resource. */
export const KUSTOMIZATION = 'kustomization.yaml';

/** Every .yaml file under `dir`, recursively, as paths from `root`. */
export function yamlFiles(root: string, dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(root, path);
    return /\.ya?ml$/.test(entry.name) ? [path] : [];
  });
}

/** The documents of a YAML file; a syntax error or a warning of the parser throws, naming the file. */
export function parseYamlDocuments(root: string, file: string): unknown[] {
  const documents = parseAllDocuments(readFileSync(join(root, file), 'utf8'), { prettyErrors: true, uniqueKeys: true });
  return documents.map((document) => {
    const problems = [...document.errors, ...document.warnings];
    if (problems.length > 0) throw new Error(`${file}: ${problems.map((p) => p.message).join('\n')}`);
    return document.toJS() as unknown;
  });
}

/** The Kubernetes resources of the manifest files (not kustomizations, not plain Prometheus rule files). */
export function loadManifests(root: string, files: readonly string[]): Manifest[] {
  return files.flatMap((file) =>
    parseYamlDocuments(root, file).map((document, index) => {
      const body = document as Record<string, unknown>;
      const metadata = body.metadata as { name?: string } | undefined;
      return {
        file: relative(root, join(root, file)),
        index,
        apiVersion: String(body.apiVersion),
        kind: String(body.kind),
        name: String(metadata?.name),
        body,
      };
    }),
  );
}

export function kindKey(manifest: Pick<Manifest, 'apiVersion' | 'kind'>): string {
  return `${manifest.apiVersion}/${manifest.kind}`;
}

/** The runtime schema's verdict on one document: undefined when valid, else the problems. */
export function schemaProblems(manifest: Manifest): string | undefined {
  const model = MODEL_KINDS[kindKey(manifest)];
  if (!model) return `${manifest.file}#${manifest.index}: ${kindKey(manifest)} is not a kind deploy/ knows how to check`;
  try {
    model.validate(manifest.body);
    return undefined;
  } catch (error) {
    return `${manifest.file}#${manifest.index} (${manifest.kind} ${manifest.name}): ${(error as Error).message}`;
  }
}

/**
 * The schemas' JSON validation accepts fields it does not know, where the API server (strict field
 * validation) and kubectl reject them, and a misspelt `maxUnavaliable` would pass unnoticed. So each
 * document is also type-checked as a TypeScript literal of its model's interface: an unknown field
 * is an excess property, a wrong type a type error. Returns one line per problem, naming the file,
 * the document and the field.
 */
export function typeProblems(root: string, manifests: readonly Manifest[]): string[] {
  const virtualFile = join(root, 'test', '__deploy-manifests.ts');
  const lines: string[] = [];
  const owners: Manifest[] = [];
  manifests.forEach((manifest, i) => {
    const model = MODEL_KINDS[kindKey(manifest)];
    if (!model) return;
    lines.push(`import type { ${model.type} as T${i} } from '${model.module}';`);
  });
  const headerLines = lines.length;
  manifests.forEach((manifest, i) => {
    if (!MODEL_KINDS[kindKey(manifest)]) return;
    // One document per line, so that a diagnostic's line names its document.
    lines.push(`export const d${i}: T${i} = ${JSON.stringify(manifest.body)};`);
    owners.push(manifest);
  });
  const source = lines.join('\n');
  const options: CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ScriptTarget.ES2022,
    module: ModuleKind.Node16,
    moduleResolution: ModuleResolutionKind.Node16,
    types: [],
  };
  const host = createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (file) => (file === virtualFile ? source : readFile(file));
  host.fileExists = (
    (fileExists) => (file: string) =>
      file === virtualFile || fileExists(file)
  )(host.fileExists.bind(host));
  host.getSourceFile = (file, language, onError, shouldCreate) =>
    file === virtualFile ? createSourceFile(file, source, language) : getSourceFile(file, language, onError, shouldCreate);
  const program = createProgram([virtualFile], options, host);
  return getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    if (!diagnostic.file || diagnostic.start === undefined || diagnostic.file.fileName !== virtualFile) return message;
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    const owner = owners[line - headerLines];
    if (!owner) return `import of a model: ${message}`;
    const around = source.split('\n')[line].slice(Math.max(0, character - 60), character + 60);
    return `${owner.file}#${owner.index} (${owner.kind} ${owner.name}): ${message}\n  near: ${around}`;
  });
}

/** A value at a dotted path of an object (`spec.template.spec`), or undefined. */
export function at(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((current, key) => (current as Record<string, unknown> | undefined)?.[key], value);
}

/**
 * An Argo Rollouts analysis argument's `fieldRef.fieldPath` resolved on a Rollout as the controller
 * does: `metadata.*` as a Kubernetes field path (name, namespace, labels['x'], annotations['x']),
 * anything else by walking the object with `.`, `[` and `]` as separators
 * (`spec.template.spec.containers[0].image`), to a scalar.
 */
export function argoFieldRef(rollout: Record<string, unknown>, fieldPath: string, namespace: string): string | undefined {
  const metadata = rollout.metadata as { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  if (fieldPath.startsWith('metadata')) {
    if (fieldPath === 'metadata.namespace') return namespace;
    if (fieldPath === 'metadata.name') return metadata.name;
    const keyed = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(fieldPath);
    return keyed ? metadata[keyed[1] as 'labels' | 'annotations']?.[keyed[2]] : undefined;
  }
  let current: unknown = rollout;
  for (const section of fieldPath.split(/[.[\]]+/).filter(Boolean)) {
    if (Array.isArray(current)) current = /^\d+$/.test(section) ? current[Number(section)] : undefined;
    else if (current && typeof current === 'object') current = (current as Record<string, unknown>)[section];
    else return undefined;
  }
  return typeof current === 'string' || typeof current === 'number' || typeof current === 'boolean' ? String(current) : undefined;
}
