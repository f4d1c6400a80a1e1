import { parser } from '@prometheus-io/lezer-promql';
import type { Sample } from './exposition';

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

/**
 * Checks a PromQL query against what a scrape really holds: every metric it selects exists, every
 * label it matches, groups by or joins on exists where it is used, and every value it matches with
 * `=` or `=~` occurs. Labels are followed through the query as Prometheus computes them
 * (aggregations keep their `by` labels, `group_left` adds the named labels of the right side,
 * `histogram_quantile` drops `le`, ...), so that `sum by (colour) (...)` or a join on a label the
 * other side lacks is found, not only a misspelt metric name.
 *
 * The labels a scraper adds to every series (the target labels: namespace, pod, job, ...) are not in
 * a scrape; they are given as `targetLabels`, present on every series, with values unchecked except
 * those `targetValues` pins (e.g. the job a ServiceMonitor's Service gives).
 */
export interface PromqlScope {
  readonly samples: readonly Sample[];
  readonly targetLabels: readonly string[];
  readonly targetValues?: Readonly<Record<string, string>>;
}

interface Inferred {
  /** Labels the result may carry. */
  readonly labels: ReadonlySet<string>;
  /** A number rather than a vector (a literal, `scalar()`, `time()`). */
  readonly scalar: boolean;
}

const SCALAR: Inferred = { labels: new Set(), scalar: true };
const SET_OPS = new Set(['and', 'or', 'unless']);
const COMPARISONS = new Set(['==', '!=', '>', '<', '>=', '<=']);
/** Functions whose result is a number, or a vector without labels. */
const LABELLESS_FUNCTIONS = new Set(['time', 'vector', 'scalar', 'pi']);

/** The problems of `query` against `scope`; empty when every metric, label and value is there. */
export function promqlProblems(query: string, scope: PromqlScope): string[] {
  const problems: string[] = [];
  const tree = parser.parse(query);
  tree.iterate({
    enter(node) {
      if (node.type.isError) problems.push(`syntax error at ${node.from}: "${query.slice(Math.max(0, node.from - 20), node.to + 20)}"`);
    },
  });
  if (problems.length > 0) return problems;
  const top = tree.topNode.firstChild;
  if (!top) return ['empty query'];
  new LabelInference(query, scope, problems).infer(top);
  return problems;
}

/** The metric names `query` selects. */
export function selectedMetrics(query: string): string[] {
  const names = new Set<string>();
  parser.parse(query).iterate({
    enter(node) {
      if (node.name === 'VectorSelector') {
        const identifier = node.node.getChild('Identifier');
        if (identifier) names.add(query.slice(identifier.from, identifier.to));
      }
    },
  });
  return [...names];
}

class LabelInference {
  private readonly targetLabels: ReadonlySet<string>;

  constructor(
    private readonly query: string,
    private readonly scope: PromqlScope,
    private readonly problems: string[],
  ) {
    this.targetLabels = new Set(scope.targetLabels);
  }

  infer(node: SyntaxNode): Inferred {
    switch (node.name) {
      case 'NumberDurationLiteral':
      case 'StringLiteral':
        return SCALAR;
      case 'ParenExpr':
      case 'OffsetExpr':
      case 'StepInvariantExpr':
      case 'SubqueryExpr':
      case 'MatrixSelector':
        return this.infer(this.expressions(node)[0]);
      case 'UnaryExpr':
        return this.infer(this.expressions(node)[0]);
      case 'VectorSelector':
        return this.selector(node);
      case 'FunctionCall':
        return this.functionCall(node);
      case 'AggregateExpr':
        return this.aggregate(node);
      case 'BinaryExpr':
        return this.binary(node);
      default:
        throw new Error(`promql.ts does not follow labels through ${node.name} yet: "${this.text(node)}"`);
    }
  }

  private selector(node: SyntaxNode): Inferred {
    const identifier = node.getChild('Identifier');
    if (!identifier) throw new Error(`a selector without a metric name is not supported: "${this.text(node)}"`);
    const metric = this.text(identifier);
    const samples = this.scope.samples.filter((s) => s.name === metric);
    if (samples.length === 0) {
      this.problems.push(`metric ${metric} is not in the scrape`);
      return { labels: new Set(this.targetLabels), scalar: false };
    }
    const labels = new Set([...samples.flatMap((s) => Object.keys(s.labels)), ...this.targetLabels]);
    const matchers = node.getChild('LabelMatchers');
    for (let matcher = matchers?.firstChild ?? null; matcher; matcher = matcher.nextSibling) {
      if (matcher.name !== 'UnquotedLabelMatcher') throw new Error(`promql.ts does not read ${matcher.name} yet: "${this.text(node)}"`);
      const label = this.text(matcher.getChild('LabelName')!);
      const op = this.text(matcher.getChild('MatchOp')!);
      const value = JSON.parse(this.text(matcher.getChild('StringLiteral')!)) as string;
      if (this.targetLabels.has(label)) {
        const pinned = this.scope.targetValues?.[label];
        if (pinned !== undefined && op === '=' && value !== pinned)
          this.problems.push(`${metric}{${label}="${value}"}: the scrape target's ${label} is "${pinned}"`);
        continue;
      }
      if (!labels.has(label)) {
        this.problems.push(`${metric} has no label ${label} (it has ${[...labels].sort().join(', ')})`);
        continue;
      }
      const values = new Set(samples.map((s) => s.labels[label]).filter((v): v is string => v !== undefined));
      if (op === '=' && !values.has(value))
        this.problems.push(`${metric}{${label}="${value}"} matches no series (values: ${[...values].join(', ')})`);
      if (op === '=~') {
        const pattern = new RegExp(`^(?:${value})$`);
        if (![...values].some((v) => pattern.test(v)))
          this.problems.push(`${metric}{${label}=~"${value}"} matches no series (values: ${[...values].join(', ')})`);
      }
    }
    return { labels, scalar: false };
  }

  private functionCall(node: SyntaxNode): Inferred {
    const name = this.text(node.getChild('FunctionIdentifier')!);
    const args = this.expressions(node.getChild('FunctionCallBody')!).map((arg) => this.infer(arg));
    if (LABELLESS_FUNCTIONS.has(name)) return name === 'vector' ? { labels: new Set(), scalar: false } : SCALAR;
    if (name.startsWith('label_')) throw new Error(`promql.ts does not follow labels through ${name} yet`);
    const vector = args.find((arg) => !arg.scalar);
    if (!vector) return SCALAR;
    if (name === 'histogram_quantile') {
      if (!vector.labels.has('le')) this.problems.push(`histogram_quantile over a vector without le: "${this.text(node)}"`);
      return { labels: new Set([...vector.labels].filter((l) => l !== 'le')), scalar: false };
    }
    return vector;
  }

  private aggregate(node: SyntaxNode): Inferred {
    const body = this.expressions(node.getChild('FunctionCallBody')!).map((arg) => this.infer(arg));
    const inner = body[body.length - 1];
    const modifier = node.getChild('AggregateModifier');
    if (!modifier) return { labels: new Set(), scalar: false };
    const grouping = this.labelList(modifier.getChild('GroupingLabels'));
    if (modifier.getChild('Without')) return { labels: new Set([...inner.labels].filter((l) => !grouping.includes(l))), scalar: false };
    for (const label of grouping) {
      if (!inner.labels.has(label))
        this.problems.push(`${this.aggregation(node)} by (${label}) over a vector without ${label}: "${this.text(node)}"`);
    }
    return { labels: new Set(grouping), scalar: false };
  }

  private binary(node: SyntaxNode): Inferred {
    const [leftNode, rightNode] = this.expressions(node);
    const left = this.infer(leftNode);
    const right = this.infer(rightNode);
    const op = this.operator(node);
    if (left.scalar && right.scalar) return SCALAR;
    if (left.scalar) return right;
    if (right.scalar) return left;
    const clause = node.getChild('MatchingModifierClause');
    const groupings = clause?.getChildren('GroupingLabels') ?? [];
    const on = clause?.getChild('On') ? this.labelList(groupings[0]) : undefined;
    const ignoring = clause?.getChild('Ignoring') ? this.labelList(groupings[0]) : undefined;
    const groupLeft = clause?.getChild('GroupLeft') ? this.labelList(groupings[1]) : undefined;
    const groupRight = clause?.getChild('GroupRight') ? this.labelList(groupings[1]) : undefined;
    for (const label of on ?? []) {
      for (const [side, inferred] of [
        ['left', left],
        ['right', right],
      ] as const) {
        if (!inferred.labels.has(label)) this.problems.push(`on (${label}) but the ${side} side has no ${label}: "${this.text(node)}"`);
      }
    }
    for (const label of groupLeft ?? []) {
      if (!right.labels.has(label)) this.problems.push(`group_left (${label}) but the right side has no ${label}: "${this.text(node)}"`);
    }
    for (const label of groupRight ?? []) {
      if (!left.labels.has(label)) this.problems.push(`group_right (${label}) but the left side has no ${label}: "${this.text(node)}"`);
    }
    if (op === 'or') return { labels: new Set([...left.labels, ...right.labels]), scalar: false };
    if (SET_OPS.has(op) || (COMPARISONS.has(op) && !node.getChild('BoolModifier'))) return left;
    if (groupLeft) return { labels: new Set([...left.labels, ...groupLeft]), scalar: false };
    if (groupRight) return { labels: new Set([...right.labels, ...groupRight]), scalar: false };
    if (on) return { labels: new Set(on), scalar: false };
    if (ignoring) return { labels: new Set([...left.labels].filter((l) => !ignoring.includes(l))), scalar: false };
    return left;
  }

  /** The child nodes that are expressions (not keywords, modifiers or punctuation). */
  private expressions(node: SyntaxNode): SyntaxNode[] {
    const found: SyntaxNode[] = [];
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (EXPRESSION_NODES.has(child.name)) found.push(child);
    }
    return found;
  }

  private operator(node: SyntaxNode): string {
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (!EXPRESSION_NODES.has(child.name) && child.name !== 'MatchingModifierClause' && child.name !== 'BoolModifier') {
        return this.text(child).toLowerCase();
      }
    }
    throw new Error(`no operator in "${this.text(node)}"`);
  }

  private aggregation(node: SyntaxNode): string {
    return this.text(node.getChild('AggregateOp')!);
  }

  private labelList(node: SyntaxNode | null | undefined): string[] {
    return (node?.getChildren('LabelName') ?? []).map((label) => this.text(label));
  }

  private text(node: SyntaxNode): string {
    return this.query.slice(node.from, node.to);
  }
}

const EXPRESSION_NODES = new Set([
  'AggregateExpr',
  'BinaryExpr',
  'FunctionCall',
  'MatrixSelector',
  'NumberDurationLiteral',
  'OffsetExpr',
  'ParenExpr',
  'StepInvariantExpr',
  'StringLiteral',
  'SubqueryExpr',
  'UnaryExpr',
  'VectorSelector',
]);
