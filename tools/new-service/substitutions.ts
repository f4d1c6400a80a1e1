import type { ServiceNames } from './service-name';

/**
 * How the sample's files become a new service's: the rules that rename, applied to the sample's
 * own files at generation time (there are no template copies to drift from it).
 *
 * Renamed: what names the service, i.e. the registry, log and metrics name (`SERVICE_NAME`), the
 * app folder and its build output, the sample's own identifiers and files (`sampleConfig`,
 * `SampleEvent`, `sample.config.ts`, the `sample.start_failed` event, `SAMPLE_*` error codes), and in
 * the deployment files every Kubernetes name, label, image, Prometheus job and alert name built from
 * the service name. Kept: the orders domain (OrdersModule, the `/orders` routes, orders.proto, the
 * orders table and its migrations, `ORDERS_SCHEMA_PHASE`, the `orders_list` degrade switch), which is
 * the example the team replaces with its own.
 */

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Stand-ins for the new names while the rules run, expanded at the end: a rule never sees a name
 * another rule put in, so a service called `orders-v2` or `sample-b` is renamed once, not twice.
 */
const SLOT_KEYS = ['kebab', 'camel', 'pascal', 'constant', 'snake', 'noun'] as const;
const SLOT = Object.fromEntries(SLOT_KEYS.map((key, index) => [key, String.fromCharCode(0xe000 + index)])) as Record<
  (typeof SLOT_KEYS)[number],
  string
>;

function fill(text: string, names: ServiceNames): string {
  return text.replace(/[\uE000-\uE005]/g, (slot) => names[SLOT_KEYS[slot.charCodeAt(0) - 0xe000]]);
}

/** `sample` as a word of prose ("the sample's settings", "of the sample."), not a path or an identifier. */
const PROSE_SAMPLE = /(?<=^|[\s(])sample(?=(?:['’]s)?(?:[\s,;:)!?]|\.(?:\s|$)|$))/gm;

/** The sample's own name wherever it appears in a text (or, without prose, in a path), spelt as each place spells it. */
function renameSample(text: string, prose = true): string {
  return (
    text
      // Paths: apps/sample/proto, dist/apps/sample, a regex's apps\/sample, join(..., 'apps', 'sample', 'proto').
      .replace(/apps(\\?\/)sample\b/g, `apps$1${SLOT.kebab}`)
      .replace(/(['"])apps\1(\s*,\s*)(['"])sample\3/g, `$1apps$1$2$3${SLOT.kebab}$3`)
      .replace(PROSE_SAMPLE, prose ? SLOT.noun : SLOT.kebab)
      .replace(/(?<![A-Za-z0-9])SAMPLE(?![a-z])/g, SLOT.constant)
      .replace(/Sample(?![a-z])/g, SLOT.pascal)
      .replace(/(?<![A-Za-z0-9])sample(?=[A-Z])/g, SLOT.camel)
      .replace(/(?<![A-Za-z0-9_])sample(?=_)/g, SLOT.snake)
      // What is left is a file name, an import path or a string: sample.config.ts, 'nest-rollout-sample'.
      .replace(/(?<![A-Za-z0-9])sample(?![A-Za-z0-9])/g, SLOT.kebab)
  );
}

/**
 * A file of apps/sample, for the new service. `sampleService` is the sample's SERVICE_NAME
 * (`orders`), which is also its domain: only the constant itself and the registry name a spec
 * expects (`service: 'orders'`) change; every other `orders` is the domain and stays.
 */
export function renameAppText(text: string, names: ServiceNames, sampleService: string): string {
  const quoted = escapeRegExp(sampleService);
  const renamed = renameSample(
    text
      .replace(new RegExp(`(\\bSERVICE_NAME = )(['"])${quoted}\\2`, 'g'), `$1$2${SLOT.kebab}$2`)
      .replace(new RegExp(`(\\bservice: )(['"])${quoted}\\2`, 'g'), `$1$2${SLOT.kebab}$2`),
  );
  return fill(renamed, names);
}

/** A path: `src/sample.config.ts` becomes `src/payments.config.ts`, `apps/sample/src` becomes `apps/payments/src`. */
export function renameAppPath(path: string, names: ServiceNames): string {
  return path
    .split('/')
    .map((segment) => fill(renameSample(segment, false), names))
    .join('/');
}

/**
 * A deployment file of the sample (deploy/), for the new service's apps/<name>/deploy/. The service
 * name (`orders`) is replaced wherever it names the service: object names and labels, the container,
 * the image, /etc/orders, the Prometheus job, the alert names (`OrdersHighErrorRatio`), the
 * dashboard's title and uid, and prose about the service. It stays where it is the domain: a URL
 * path (`/orders`, `"/orders/:id/quote"`), the `orders_list` switch. `keep` are passages copied word
 * for word from elsewhere (the dynamic configuration a ConfigMap carries), left as they are.
 */
export function renameDeployText(text: string, names: ServiceNames, sample: ServiceNames, keep: readonly string[] = []): string {
  const kept: string[] = [];
  let protectedText = text;
  for (const passage of keep) {
    if (passage === '' || !protectedText.includes(passage)) continue;
    protectedText = protectedText.split(passage).join(`\uE010${kept.length}\uE011`);
    kept.push(passage);
  }
  const article = (a: string) => (a === 'A' ? names.article[0].toUpperCase() + names.article.slice(1) : names.article);
  const renamed = renameService(protectedText, sample, true).replace(
    new RegExp(`\\b([Aa])n (?=${SLOT.kebab})`, 'g'),
    (_match, a: string) => `${article(a)} `,
  );
  return fill(renamed, names).replace(/\uE010(\d+)\uE011/g, (_match, index: string) => kept[Number(index)]);
}

/** A path under deploy/, relative to it: `prometheus/orders.rules.yaml` becomes `prometheus/payments.rules.yaml`. */
export function renameDeployPath(path: string, names: ServiceNames, sample: ServiceNames): string {
  return path
    .split('/')
    .map((segment) => fill(renameService(segment, sample, false), names))
    .join('/');
}

/** The service name of the sample's deployment files, and the sample's own name, in slots. */
function renameService(text: string, sample: ServiceNames, prose: boolean): string {
  const service = escapeRegExp(sample.kebab);
  return (
    renameSample(
      text
        // deploy/... now lives in apps/<name>/deploy/...; the guide stays the one deploy/README.md.
        .replace(/(?<![\w./-])deploy\/(?!README\.md)/g, `apps/${SLOT.kebab}/deploy/`)
        .replace(new RegExp(`\\bsample ${service} service\\b`, 'g'), prose ? SLOT.noun : SLOT.kebab),
      prose,
    )
      .replace(new RegExp(`(?<![A-Za-z0-9])${escapeRegExp(sample.pascal)}(?=[A-Z])`, 'g'), SLOT.pascal)
      // Not inside a word (orders_list), and not a URL path: "/orders" and GET /orders are routes,
      // while /etc/orders and nest-rollout/orders are the service.
      .replace(new RegExp(`(?<!\\w)(?<!(?<!\\w)/)${service}(?!\\w)`, 'g'), SLOT.kebab)
  );
}
