import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADAPTERS, AppInstance, ROOT, startSample } from './support/apps';
import { delay, logEvents } from './support/process';
import { waitUntil } from './support/wait';

/**
 * Canary routing in the built sample, as a child process: GET /orders/:id/quote is decided by the
 * `canary` rules of its dynamic configuration (a copy of config/dynamic.yaml), priced with v1 on a
 * stable instance and v2 on a canary one. The sample has no forwarder, so a canary decision on a
 * stable instance is served there. The rules change with the file, and a rule the canary module
 * would refuse is rejected with the last good one kept.
 */

/** How long a change of the file may take to show in the answers (the source debounces 100 ms). */
const APPLY_WITHIN_MS = 1000;

interface QuoteAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

async function quote(app: AppInstance, orderId: string, headers: Record<string, string> = {}): Promise<QuoteAnswer> {
  const res = await fetch(`${app.url}/orders/${orderId}/quote`, { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function createOrder(app: AppInstance, quantity: number): Promise<string> {
  const res = await fetch(`${app.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ item: 'tea', quantity }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

describe.each(ADAPTERS)('the sample on %s with canary rules in its dynamic configuration', (adapter) => {
  let dir: string;
  let file: string;
  let stable: AppInstance | undefined;
  let canary: AppInstance | undefined;
  let stableOrder: string;
  let canaryOrder: string;

  /** Replaces the file as deploy tools and editors do (write aside, rename over), so that one change is one event. */
  function writeConfig(text: string): number {
    const aside = join(dir, '.dynamic.yaml.tmp');
    writeFileSync(aside, text);
    renameSync(aside, file);
    return Date.now();
  }

  /** The shipped file with its `canary:` section replaced by `section` (YAML, indented two spaces). */
  const withCanaryRules = (section: string): string =>
    readFileSync(join(ROOT, 'config/dynamic.yaml'), 'utf8').replace(/^canary:\n(?: {2}.*\n?)*/m, `canary:\n${section}\n`);

  /** The first quote of the stable instance for `headers` that decides `variant`, polled until `withinMs` after `since`. */
  async function decidedWithin(headers: Record<string, string>, variant: string, since: number): Promise<QuoteAnswer> {
    let last: QuoteAnswer | undefined;
    while (Date.now() - since <= APPLY_WITHIN_MS) {
      last = await quote(stable!, stableOrder, headers);
      if (last.body.variant === variant) return last;
      await delay(20);
    }
    throw new Error(
      `${JSON.stringify(headers)} was not decided ${variant} within ${APPLY_WITHIN_MS} ms (last: ${JSON.stringify(last?.body)})\n${stable!.process.describe()}`,
    );
  }

  /** The sample's log lines reach stdout in batches (up to a second apart): waits for the `count`-th `event`. */
  async function eventsAfterWait(event: string, count: number): Promise<Record<string, unknown>[]> {
    await waitUntil(() => logEvents(stable!.process.stdout, event).length >= count, `${count} ${event} log line(s)`, 5000);
    return logEvents(stable!.process.stdout, event);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nest-rollout-canary-'));
    file = join(dir, 'dynamic.yaml');
    copyFileSync(join(ROOT, 'config/dynamic.yaml'), file);
    // The canary instance reads a copy of its own: the changes below are the stable instance's.
    const canaryFile = join(dir, 'canary-dynamic.yaml');
    copyFileSync(join(ROOT, 'config/dynamic.yaml'), canaryFile);
    [stable, canary] = await Promise.all([
      startSample({
        name: `sample-stable-${adapter}`,
        adapter,
        // Debug: the canary.decision line of each decision.
        env: { DYNAMIC_CONFIG_FILE: file, DRAIN_DELAY_MS: '0', LOG_LEVEL: 'debug', APP_VERSION: '2.4.0', APP_COLOR: 'green' },
      }),
      startSample({
        name: `sample-canary-${adapter}`,
        adapter,
        env: { DYNAMIC_CONFIG_FILE: canaryFile, DRAIN_DELAY_MS: '0', APP_TRACK: 'canary' },
      }),
    ]);
    [stableOrder, canaryOrder] = await Promise.all([createOrder(stable, 3), createOrder(canary, 3)]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([stable?.stop(2000), canary?.stop(2000)]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('decides stable without the header and prices with v1', async () => {
    expect(await quote(stable!, stableOrder)).toEqual({
      status: 200,
      body: { id: stableOrder, pricing: 'v1', amountCents: 750, track: 'stable', variant: 'stable', reason: 'no_match' },
    });
  });

  it('decides canary on x-env: canary and, with no forwarder, serves it on the stable instance with v1', async () => {
    expect(await quote(stable!, stableOrder, { 'x-env': 'canary' })).toEqual({
      status: 200,
      body: {
        id: stableOrder,
        pricing: 'v1',
        amountCents: 750,
        track: 'stable',
        variant: 'canary',
        reason: 'header',
        servedLocally: 'no_forwarder',
      },
    });
  });

  it("puts the variant on the request's log lines, beside the service, track, version and colour", async () => {
    const answer = await quote(stable!, stableOrder, { 'x-env': 'canary', 'x-request-id': 'variant-on-lines' });
    expect(answer.body.variant).toBe('canary');
    await waitUntil(
      () => logEvents(stable!.process.stdout, 'canary.decision').some((line) => line.request_id === 'variant-on-lines'),
      'the canary.decision line of the request',
      5000,
    );
    const line = logEvents(stable!.process.stdout, 'canary.decision').find((l) => l.request_id === 'variant-on-lines');
    expect(line).toMatchObject({
      'feature_flag.result.variant': 'canary',
      variant: 'canary',
      service: 'orders',
      track: 'stable',
      version: '2.4.0',
      color: 'green',
    });
    // Lines outside a request carry the instance's fields but no variant.
    const outside = logEvents(stable!.process.stdout, 'lifecycle.state_changed')[0];
    expect(outside).toMatchObject({ service: 'orders', track: 'stable' });
    expect(outside).not.toHaveProperty(['feature_flag.result.variant']);
  });

  it('prices with v2 on a canary instance, whatever the decision', async () => {
    expect(await quote(canary!, canaryOrder)).toEqual({
      status: 200,
      body: { id: canaryOrder, pricing: 'v2', amountCents: 720, track: 'canary', variant: 'stable', reason: 'no_match' },
    });
    expect((await quote(canary!, canaryOrder, { 'x-env': 'canary' })).body).toMatchObject({
      pricing: 'v2',
      variant: 'canary',
      servedLocally: 'on_canary',
    });
  });

  it('answers 404 for an unknown order, as GET /orders/:id does', async () => {
    expect((await quote(stable!, '999999')).status).toBe(404);
    expect((await quote(stable!, 'tea')).status).toBe(404);
  });

  it('applies a changed rule from the file within a second', async () => {
    const since = writeConfig(withCanaryRules('  header:\n    x-env: beta'));
    expect((await decidedWithin({ 'x-env': 'beta' }, 'canary', since)).body).toMatchObject({ reason: 'header', pricing: 'v1' });
    expect((await quote(stable!, stableOrder, { 'x-env': 'canary' })).body).toMatchObject({ variant: 'stable', reason: 'no_match' });
    expect(await eventsAfterWait('config.applied', 1)).toEqual([
      expect.objectContaining({ source: 'file', changedKeys: ['canary.header.x-env'] }),
    ]);
    // Once at start-up, once for the change.
    expect(await eventsAfterWait('canary.rules_applied', 2)).toHaveLength(2);
  });

  it('rejects a rule that does not compile and keeps deciding by the last good one', async () => {
    writeConfig(withCanaryRules("  header:\n    x-env:\n      regex: '(beta'"));
    expect(await eventsAfterWait('config.rejected', 1)).toEqual([
      expect.objectContaining({
        source: 'file',
        problems: ['canary.header.x-env.regex: regex does not compile as a JavaScript regular expression'],
      }),
    ]);
    expect((await quote(stable!, stableOrder, { 'x-env': 'beta' })).body).toMatchObject({ variant: 'canary', reason: 'header' });
    expect((await quote(stable!, stableOrder, { 'x-env': 'canary' })).body).toMatchObject({ variant: 'stable' });
    // Rejected by the configuration, it never reached the canary module.
    expect(logEvents(stable!.process.stdout, 'canary.rules_rejected')).toEqual([]);
    expect(stable!.process.running).toBe(true);

    // A valid rule after the bad one applies as usual.
    const since = writeConfig(withCanaryRules('  header:\n    x-env: canary'));
    await decidedWithin({ 'x-env': 'canary' }, 'canary', since);
  });
});
