import { resolve } from 'node:path';
import { NewServiceError, planService, SERVICE_SPECS_DIR, writeService } from './new-service';

/** `npm run new:service -- <name>`: a new service in apps/<name>, generated from apps/sample. */

/** The repository this generator belongs to (it runs from dist/tools/new-service). */
const ROOT = resolve(__dirname, '..', '..', '..');

const USAGE = `Usage: npm run new:service -- <name>

Generates apps/<name> from the sample (apps/sample): the service renamed, its unit specs, its
deployment files in apps/<name>/deploy, an end-to-end spec in ${SERVICE_SPECS_DIR}/<name>.e2e-spec.ts,
and its project in nest-cli.json and tsconfig.build.json. <name> is a DNS label that starts with a
letter (lower-case letters, digits, hyphens), e.g. payment-gateway.`;

async function main(args: readonly string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.length !== 1) {
    const problem = args.length === 0 ? 'no name given' : `one name expected, got ${args.length}: ${args.join(' ')}`;
    process.stderr.write(`new:service: ${problem}.\n\n${USAGE}\n`);
    return 2;
  }
  try {
    const plan = await planService(ROOT, args[0]);
    writeService(ROOT, plan);
    const { kebab } = plan.names;
    const deployFiles = plan.files.filter((file) => file.path.startsWith(`${plan.appDir}/deploy/`)).length;
    const appFiles = plan.files.filter((file) => file.path.startsWith(`${plan.appDir}/`)).length - deployFiles;
    process.stdout.write(
      [
        `Generated ${kebab} from the sample:`,
        `  ${plan.appDir}  ${appFiles} files: the sample's code with the service named ${kebab} (registry, logs, metrics)`,
        `  ${plan.appDir}/deploy  ${deployFiles} files: Kubernetes, Argo Rollouts, Prometheus, Grafana, Dockerfile`,
        `  ${SERVICE_SPECS_DIR}/${kebab}.e2e-spec.ts  starts it on both adapters`,
        `  nest-cli.json, tsconfig.build.json  its project`,
        '',
        'Next:',
        '  npm run build',
        `  npx jest ${plan.appDir} ${SERVICE_SPECS_DIR}/${kebab}.e2e-spec.ts --runInBand`,
        `  node dist/${plan.appDir}/main.js`,
        '',
      ].join('\n'),
    );
    return 0;
  } catch (error) {
    if (!(error instanceof NewServiceError)) throw error;
    process.stderr.write(`new:service: ${error.message}\nNothing was written.\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`new:service: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
