import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MAX_SERVICE_NAME_LENGTH, serviceNameProblems, serviceNames, type ServiceNames } from './service-name';
import { smokeSpec } from './smoke-spec';
import { renameAppPath, renameAppText, renameDeployPath, renameDeployText } from './substitutions';

/** The sample: its Nest CLI project, its folder and its deployment files. */
export const SAMPLE_PROJECT = 'sample';
export const SAMPLE_DIR = 'apps/sample';
export const SAMPLE_DEPLOY_DIR = 'deploy';
/** The guide to every service's deployment files: the generated files point to it rather than copy it. */
const DEPLOY_GUIDE = 'README.md';
/** The sample's dynamic configuration, which its ConfigMap carries word for word (so does the new service's). */
const DYNAMIC_CONFIG_FILE = 'config/dynamic.yaml';
/** Where a generated service's end-to-end spec goes: apart from the repository's own specs, so that no name collides with one. */
export const SERVICE_SPECS_DIR = 'test/services';
/** Grafana refuses a dashboard uid longer than this. */
const GRAFANA_UID_MAX_LENGTH = 40;

/** Why a service was not generated; nothing was written. */
export class NewServiceError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The name is not one a service can have (see serviceNameProblems). */
export class ServiceNameError extends NewServiceError {
  constructor(name: string, problems: readonly string[]) {
    super(
      'SERVICE_NAME_INVALID',
      `${JSON.stringify(name)} cannot name a service: ${problems.join('; ')}. ` +
        `A service name is a DNS label (RFC 1123) that starts with a letter: lower-case letters, digits and hyphens, ` +
        `at most ${MAX_SERVICE_NAME_LENGTH} characters, e.g. payment-gateway.`,
    );
  }
}

/** Something of that name is there already: an app, a Nest CLI project, a spec. */
export class ServiceExistsError extends NewServiceError {
  constructor(name: string, found: readonly string[]) {
    super('SERVICE_EXISTS', `${JSON.stringify(name)} is taken: ${found.join('; ')}. Choose another name, or remove what is there first.`);
  }
}

/** The sample changed in a way the generator's rules do not cover: the generator needs updating. */
export class SampleNotTemplatableError extends NewServiceError {
  constructor(problem: string) {
    super('SAMPLE_NOT_TEMPLATABLE', `the sample cannot be used as a template: ${problem}. Update tools/new-service to match the sample.`);
  }
}

export interface PlannedFile {
  /** From the repository root, with forward slashes. */
  readonly path: string;
  readonly content: string | Buffer;
}

/** Everything a generation writes, computed before anything is written. */
export interface ServicePlan {
  readonly names: ServiceNames;
  /** `apps/<name>` */
  readonly appDir: string;
  /** New files only; none of them exists. */
  readonly files: readonly PlannedFile[];
  /** Existing files given new content: nest-cli.json, tsconfig.build.json. */
  readonly updates: readonly PlannedFile[];
}

interface NestCliProject {
  type: 'application' | 'library';
  root: string;
  sourceRoot?: string;
  compilerOptions?: { tsConfigPath?: string };
}

interface NestCliConfig {
  projects: Record<string, NestCliProject>;
}

interface BuildConfig {
  references: { path: string }[];
}

/** Every file under `dir` (from `root`), sorted, without build output or installed packages. */
function filesUnder(root: string, dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'dist' ? [] : filesUnder(root, path);
      return entry.isFile() && !entry.name.endsWith('.tsbuildinfo') ? [path] : [];
    });
}

/** Text is renamed; anything with a NUL byte is copied as it is. */
function readSource(root: string, path: string): string | Buffer {
  const bytes = readFileSync(join(root, path));
  return bytes.includes(0) ? bytes : bytes.toString('utf8');
}

function readJson<T>(root: string, path: string): T {
  return JSON.parse(readFileSync(join(root, path), 'utf8')) as T;
}

const toJson = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** The sample's registry name: the one `export const SERVICE_NAME = '...'` of apps/sample/src. */
function sampleServiceName(root: string, sources: readonly string[]): string {
  const found = sources.flatMap((path) => {
    const text = readSource(root, path);
    if (typeof text !== 'string') return [];
    return [...text.matchAll(/\bexport const SERVICE_NAME = (['"])([^'"]+)\1/g)].map((match) => ({ path, value: match[2] }));
  });
  if (found.length !== 1) {
    throw new SampleNotTemplatableError(
      `${SAMPLE_DIR}/src defines \`export const SERVICE_NAME = '<name>'\` ${found.length} times (${found.map((f) => f.path).join(', ') || 'nowhere'}), ` +
        'and the generator needs exactly one to tell the service name from the orders domain',
    );
  }
  return found[0].value;
}

/** A uid Grafana takes: the renamed one, or when too long its start and a hash of it. */
function grafanaUid(uid: string): string {
  if (uid.length <= GRAFANA_UID_MAX_LENGTH) return uid;
  const hash = createHash('sha256').update(uid).digest('hex').slice(0, 8);
  return `${uid.slice(0, GRAFANA_UID_MAX_LENGTH - hash.length - 1).replace(/-+$/, '')}-${hash}`;
}

/** config/dynamic.yaml as a YAML block scalar holds it (each line indented), for each indentation a manifest may use. */
function indentedCopies(text: string): string[] {
  return [2, 4, 6, 8].map((width) =>
    text
      .split('\n')
      .map((line) => (line === '' ? line : ' '.repeat(width) + line))
      .join('\n'),
  );
}

async function formatTypeScript(root: string, files: PlannedFile[]): Promise<PlannedFile[]> {
  // The renamed identifiers change line lengths; the repository's Prettier settings lay them out again.
  const prettier = await import('prettier');
  return Promise.all(
    files.map(async (file) => {
      if (!file.path.endsWith('.ts') || typeof file.content !== 'string') return file;
      const filepath = join(root, file.path);
      const options = (await prettier.resolveConfig(filepath)) ?? {};
      return { path: file.path, content: await prettier.format(file.content, { ...options, filepath }) };
    }),
  );
}

/**
 * What generating `name` from the sample would write, with every check done: the name, nothing of
 * that name already there, the sample still one the rules can rename. Throws a NewServiceError
 * otherwise; reads only.
 */
export async function planService(root: string, name: string): Promise<ServicePlan> {
  const problems = serviceNameProblems(name);
  if (problems.length > 0) throw new ServiceNameError(name, problems);
  const names = serviceNames(name);
  const appDir = `apps/${name}`;
  const specPath = `${SERVICE_SPECS_DIR}/${name}.e2e-spec.ts`;

  const nestCli = readJson<NestCliConfig>(root, 'nest-cli.json');
  const buildConfig = readJson<BuildConfig>(root, 'tsconfig.build.json');
  const sampleProject = nestCli.projects[SAMPLE_PROJECT];
  if (!sampleProject || sampleProject.root !== SAMPLE_DIR) {
    throw new SampleNotTemplatableError(`nest-cli.json has no project "${SAMPLE_PROJECT}" with root ${SAMPLE_DIR}`);
  }
  const sampleTsConfig = sampleProject.compilerOptions?.tsConfigPath;
  if (!sampleTsConfig || !buildConfig.references.some((reference) => reference.path === sampleTsConfig)) {
    throw new SampleNotTemplatableError(`tsconfig.build.json does not build the sample's project (${sampleTsConfig ?? 'no tsConfigPath'})`);
  }

  const taken: string[] = [];
  const existing = nestCli.projects[name];
  if (existing) taken.push(`nest-cli.json has a project "${name}" (the ${existing.type} in ${existing.root})`);
  if (existsSync(join(root, appDir))) taken.push(`${appDir} exists`);
  if (existsSync(join(root, specPath))) taken.push(`${specPath} exists`);
  const tsConfigPath = renameAppPath(sampleTsConfig, names);
  if (buildConfig.references.some((reference) => reference.path === tsConfigPath))
    taken.push(`tsconfig.build.json builds ${tsConfigPath} already`);
  if (taken.length > 0) throw new ServiceExistsError(name, taken);

  const appSources = filesUnder(root, SAMPLE_DIR);
  const sampleService = sampleServiceName(
    root,
    appSources.filter((path) => path.endsWith('.ts')),
  );
  const sample = serviceNames(sampleService);
  const appFiles = appSources.map((path) => {
    const content = readSource(root, path);
    return {
      path: `${appDir}/${renameAppPath(path.slice(SAMPLE_DIR.length + 1), names)}`,
      content: typeof content === 'string' ? renameAppText(content, names, sampleService) : content,
    };
  });

  const keep = indentedCopies(readFileSync(join(root, DYNAMIC_CONFIG_FILE), 'utf8'));
  const deployFiles = filesUnder(root, SAMPLE_DEPLOY_DIR)
    .filter((path) => path !== `${SAMPLE_DEPLOY_DIR}/${DEPLOY_GUIDE}`)
    .map((path) => {
      const content = readSource(root, path);
      const renamed = typeof content === 'string' ? renameDeployText(content, names, sample, keep) : content;
      return {
        path: `${appDir}/deploy/${renameDeployPath(path.slice(SAMPLE_DEPLOY_DIR.length + 1), names, sample)}`,
        content:
          typeof renamed === 'string' && path.endsWith('.json')
            ? renamed.replace(/("uid":\s*")([^"$]+)"/g, (_match, key: string, uid: string) => `${key}${grafanaUid(uid)}"`)
            : renamed,
      };
    });

  const files = await formatTypeScript(root, [...appFiles, ...deployFiles, { path: specPath, content: smokeSpec(names) }]);
  const paths = files.map((file) => file.path);
  const twice = paths.filter((path, index) => paths.indexOf(path) !== index);
  if (twice.length > 0) throw new SampleNotTemplatableError(`two of its files become ${[...new Set(twice)].join(', ')}`);

  // The new project next to the sample in both files, so that `npm run build` and the Nest CLI know it.
  const project = JSON.parse(JSON.stringify(sampleProject), (_key, value: unknown) =>
    typeof value === 'string' ? renameAppPath(value, names) : value,
  ) as NestCliProject;
  const projects = Object.entries(nestCli.projects);
  const lastApp = projects.map(([, p]) => p.type).lastIndexOf('application');
  projects.splice(lastApp + 1, 0, [name, project]);
  const lastAppReference = buildConfig.references.map((reference) => reference.path.startsWith('apps/')).lastIndexOf(true);
  const references = [...buildConfig.references];
  references.splice(lastAppReference + 1, 0, { path: tsConfigPath });

  return {
    names,
    appDir,
    files,
    updates: [
      { path: 'nest-cli.json', content: toJson({ ...nestCli, projects: Object.fromEntries(projects) }) },
      { path: 'tsconfig.build.json', content: toJson({ ...buildConfig, references }) },
    ],
  };
}

/**
 * Writes a plan. New files are created exclusively (an existing one is never overwritten); if any
 * write fails, what was written is removed and the updated files get their content back.
 */
export function writeService(root: string, plan: ServicePlan): void {
  const createdDirs = [plan.appDir, SERVICE_SPECS_DIR].filter((dir) => !existsSync(join(root, dir)));
  const created: string[] = [];
  const previous: PlannedFile[] = [];
  try {
    for (const file of plan.files) {
      const path = join(root, file.path);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, file.content, { flag: 'wx' });
      created.push(path);
    }
    for (const update of plan.updates) {
      const path = join(root, update.path);
      previous.push({ path, content: readFileSync(path) });
      writeFileSync(path, update.content);
    }
  } catch (error) {
    for (const file of previous) writeFileSync(file.path, file.content);
    for (const path of created) rmSync(path, { force: true });
    for (const dir of createdDirs) rmSync(join(root, dir), { recursive: true, force: true });
    throw error;
  }
}
