/**
 * The longest name a service may have: its Services are `<name>-preview` and `<name>-metrics`
 * (deploy/), and a Service name is an RFC 1035 label of at most 63 characters.
 */
export const MAX_SERVICE_NAME_LENGTH = 63 - '-preview'.length;

/** A lower-case RFC 1123 label: letters, digits and hyphens, starting and ending with a letter or digit. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The name of a service as each kind of place spells it: `payment-gateway` becomes these. */
export interface ServiceNames {
  /** `payment-gateway`: the registry, logs, folders, file names, Kubernetes objects. */
  readonly kebab: string;
  /** `paymentGateway`: variables and functions. */
  readonly camel: string;
  /** `PaymentGateway`: classes, types, alert names. */
  readonly pascal: string;
  /** `PAYMENT_GATEWAY`: constants and error codes. */
  readonly constant: string;
  /** `payment_gateway` */
  readonly snake: string;
  /** `payment-gateway service`: what prose calls it where the sample's says `sample`. */
  readonly noun: string;
  /** `a` or `an`, as English puts it before the name. */
  readonly article: 'a' | 'an';
}

/**
 * Why `name` cannot name a service, one sentence per problem; empty when it can. The name goes
 * into Kubernetes object names, DNS, the registry and TypeScript identifiers, so it must be a DNS
 * label (RFC 1123) that also starts with a letter (a Service name is an RFC 1035 label, and an
 * identifier cannot start with a digit).
 */
export function serviceNameProblems(name: string): string[] {
  if (name === '') return ['it is empty'];
  const problems: string[] = [];
  if (/[A-Z]/.test(name)) problems.push('it has upper-case letters (DNS labels are lower-case)');
  if (/[^A-Za-z0-9-]/.test(name)) {
    const others = [...new Set(name.replace(/[A-Za-z0-9-]/g, ''))].map((c) => JSON.stringify(c)).join(', ');
    problems.push(`it has characters other than letters, digits and hyphens: ${others}`);
  }
  if (name.startsWith('-') || name.endsWith('-')) problems.push('it starts or ends with a hyphen');
  if (/^[0-9]/.test(name))
    problems.push('it starts with a digit (Kubernetes Service names and TypeScript identifiers start with a letter)');
  if (name.length > MAX_SERVICE_NAME_LENGTH) {
    problems.push(
      `it is ${name.length} characters long; at most ${MAX_SERVICE_NAME_LENGTH}, so that <name>-preview and <name>-metrics stay valid Service names (63)`,
    );
  }
  // Every rule above is a part of DNS_LABEL; this catches whatever they missed.
  if (problems.length === 0 && !DNS_LABEL.test(name)) problems.push('it is not a DNS label (RFC 1123)');
  return problems;
}

/** The spellings of a valid name (see serviceNameProblems). */
export function serviceNames(kebab: string): ServiceNames {
  const words = kebab.split('-').filter(Boolean);
  const capitalised = words.map((word) => word[0].toUpperCase() + word.slice(1));
  return {
    kebab,
    camel: words[0] + capitalised.slice(1).join(''),
    pascal: capitalised.join(''),
    constant: words.join('_').toUpperCase(),
    snake: words.join('_'),
    noun: /(^|-)service$/.test(kebab) ? kebab : `${kebab} service`,
    article: /^[aeiou]/.test(kebab) ? 'an' : 'a',
  };
}
