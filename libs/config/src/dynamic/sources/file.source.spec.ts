import { mkdir, mkdtemp, open, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigSourceError, DynamicConfigOptionsError } from '../../config.errors';
import type { ConfigSource, ConfigSourceUpdate } from './config-source';
import { fileSource, type FileSourceOptions } from './file.source';

/** Generous bound for an update that must come; a missed update fails here rather than hanging. */
const UPDATE_WITHIN_MS = 5000;
/**
 * How long a spec waits to show that nothing is delivered: many times the debounce those specs use
 * (20 ms), and short enough to keep the suite quick.
 */
const QUIET_WINDOW_MS = 300;
const QUIET_DEBOUNCE_MS = 20;

jest.setTimeout(20_000);

let folder: string;
const running: ConfigSource[] = [];

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'file-source-'));
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((source) => source.stop()));
  await rm(folder, { recursive: true, force: true });
});

/** The updates a source delivers, and a way to wait for the n-th of them. */
function recorder() {
  const received: ConfigSourceUpdate[] = [];
  const waiters: { count: number; done: () => void }[] = [];
  const onUpdate = (update: ConfigSourceUpdate): void => {
    received.push(update);
    for (const waiter of waiters.filter((w) => received.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.done();
    }
  };
  /** Resolves with the n-th update (1-based) once it has arrived, or fails after `withinMs`. */
  const nth = (count: number, withinMs = UPDATE_WITHIN_MS): Promise<ConfigSourceUpdate> =>
    new Promise((resolve, reject) => {
      if (received.length >= count) return resolve(received[count - 1]);
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`update #${count} did not arrive within ${withinMs} ms (${received.length} arrived)`));
      }, withinMs);
      const waiter = {
        count,
        done: () => {
          clearTimeout(timer);
          resolve(received[count - 1]);
        },
      };
      waiters.push(waiter);
    });
  return { received, onUpdate, nth };
}

async function started(path: string, options?: FileSourceOptions) {
  const source = fileSource(path, options);
  running.push(source);
  const updates = recorder();
  const first = await source.start(updates.onUpdate);
  return { source, updates, first };
}

let tempFiles = 0;
/** Writes a temporary file next to `path` and renames it over `path`, as atomic writers do. */
async function renameOver(path: string, content: string): Promise<void> {
  const temporary = `${path}.tmp-${++tempFiles}`;
  await writeFile(temporary, content);
  await rename(temporary, path);
}

function quiet(ms = QUIET_WINDOW_MS): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function failureOf(update: ConfigSourceUpdate): ConfigSourceError {
  if (update.ok) throw new Error(`expected a failure, got ${JSON.stringify(update.value)}`);
  return update.error;
}

/** Active handles and requests by type, after a turn of the event loop: libuv drops closed handles on its next turn. */
async function countResources(): Promise<Record<string, number>> {
  await new Promise((resolve) => setImmediate(resolve));
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

/**
 * The layout kubelet's atomic writer builds for a ConfigMap volume: the data in a timestamped
 * folder, `..data` pointing at it, and each key a symlink through `..data`.
 */
async function configMapVolume(volume: string, content: string): Promise<string> {
  const data = '..2024_01_01_12_00_00.000000001';
  await mkdir(join(volume, data));
  await writeFile(join(volume, data, 'dynamic.yaml'), content);
  await symlink(data, join(volume, '..data'));
  await symlink('..data/dynamic.yaml', join(volume, 'dynamic.yaml'));
  return data;
}

/** kubelet's update: a new timestamped folder, `..data_tmp` renamed over `..data`, the old folder removed. */
async function swapConfigMap(volume: string, previous: string, content: string): Promise<string> {
  const data = '..2024_01_01_12_05_00.000000002';
  await mkdir(join(volume, data));
  await writeFile(join(volume, data, 'dynamic.yaml'), content);
  await symlink(data, join(volume, '..data_tmp'));
  await rename(join(volume, '..data_tmp'), join(volume, '..data'));
  await rm(join(volume, previous), { recursive: true });
  return data;
}

describe('fileSource', () => {
  it('reads a YAML file at start, named by kind and location', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'degrade:\n  orders_list: true\nrateLimit: 50\n');
    const { source, first } = await started(path);
    expect(source.kind).toBe('file');
    expect(source.location).toBe(path);
    expect(first).toEqual({ ok: true, value: { degrade: { orders_list: true }, rateLimit: 50 } });
  });

  it('reads a JSON file at start, the format taken from the extension', async () => {
    const path = join(folder, 'dynamic.json');
    await writeFile(path, '{ "rateLimit": 50, "canary": { "percent": 5 } }');
    const { first } = await started(path);
    expect(first).toEqual({ ok: true, value: { rateLimit: 50, canary: { percent: 5 } } });
  });

  it('parses as the format option says, whatever the extension', async () => {
    const path = join(folder, 'dynamic.conf');
    await writeFile(path, 'rateLimit: 50\n');
    const { first } = await started(path, { format: 'json' });
    expect(failureOf(first).failure).toBe('parse');
    await writeFile(path, '{ "rateLimit": 50 }');
    expect(await fileSource(path, { format: 'yaml' }).reload()).toEqual({ ok: true, value: { rateLimit: 50 } });
  });

  it('reads an empty file, or one holding only comments, as an empty document', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, '# nothing yet\n');
    const { source, first } = await started(path);
    expect(first).toEqual({ ok: true, value: {} });
    await writeFile(path, '');
    expect(await source.reload()).toEqual({ ok: true, value: {} });
  });

  it('sees a change written by rename-over within a second', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\n');
    const { updates } = await started(path);
    await renameOver(path, 'rateLimit: 75\n');
    expect(await updates.nth(1, 1000)).toEqual({ ok: true, value: { rateLimit: 75 } });
  });

  it('sees a file truncated and written again in place', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\nnote: a longer first version\n');
    const { updates } = await started(path);
    const handle = await open(path, 'r+');
    try {
      await handle.truncate(0);
      await handle.write('rateLimit: 60\n', 0);
    } finally {
      await handle.close();
    }
    expect(await updates.nth(1)).toEqual({ ok: true, value: { rateLimit: 60 } });
  });

  it("sees an editor's save that moves the original to a backup and writes a new file", async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\n');
    const { updates } = await started(path);
    await rename(path, `${path}~`);
    await writeFile(path, 'rateLimit: 55\n');
    await unlink(`${path}~`);
    expect(await updates.nth(1)).toEqual({ ok: true, value: { rateLimit: 55 } });
  });

  it("reports a deleted file as 'missing', then reads it again once created", async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\n');
    const { updates } = await started(path);
    await unlink(path);
    const missing = failureOf(await updates.nth(1));
    expect(missing).toBeInstanceOf(ConfigSourceError);
    expect(missing).toMatchObject({ failure: 'missing', code: 'CONFIG_SOURCE_MISSING', source: path });
    expect(missing.message).toContain('optional');
    await writeFile(path, 'rateLimit: 80\n');
    expect(await updates.nth(2)).toEqual({ ok: true, value: { rateLimit: 80 } });
  });

  it('reads a missing optional file as an empty document, then the file once it exists', async () => {
    const path = join(folder, 'dynamic.yaml');
    const { updates, first } = await started(path, { optional: true });
    expect(first).toEqual({ ok: true, value: {} });
    await renameOver(path, 'rateLimit: 20\n');
    expect(await updates.nth(1)).toEqual({ ok: true, value: { rateLimit: 20 } });
  });

  it('sees a ConfigMap update, which swaps the ..data symlink and never writes the file', async () => {
    const path = join(folder, 'dynamic.yaml');
    const previous = await configMapVolume(folder, 'canary:\n  percent: 5\n');
    const { updates, first } = await started(path);
    expect(first).toEqual({ ok: true, value: { canary: { percent: 5 } } });
    await swapConfigMap(folder, previous, 'canary:\n  percent: 25\n');
    expect(await updates.nth(1)).toEqual({ ok: true, value: { canary: { percent: 25 } } });
  });

  it('applies a burst of 10 writes once, with the last content', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 0\n');
    const { updates } = await started(path); // default 100 ms debounce
    for (let i = 1; i <= 10; i++) await writeFile(path, `rateLimit: ${i}\n`);
    expect(await updates.nth(1)).toEqual({ ok: true, value: { rateLimit: 10 } });
    await quiet();
    expect(updates.received).toHaveLength(1);
  });

  it("reports broken YAML as a 'parse' failure with its line and column and none of its text, and recovers once fixed", async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\n');
    const { updates } = await started(path);
    await renameOver(path, 'rateLimit: 50\ndatabase:\n  password: "hunter2\n');
    const broken = failureOf(await updates.nth(1));
    expect(broken).toMatchObject({ failure: 'parse', code: 'CONFIG_SOURCE_PARSE' });
    expect(broken.message).toMatch(/line \d+, column \d+/);
    expect(broken.message).not.toContain('hunter2');
    await renameOver(path, 'rateLimit: 40\n');
    expect(await updates.nth(2)).toEqual({ ok: true, value: { rateLimit: 40 } });
  });

  it('reports broken JSON with its line and column and none of its text', async () => {
    const path = join(folder, 'dynamic.json');
    await writeFile(path, '{\n  "token": "s3cret-token",\n  "rateLimit": ,\n}');
    const { first } = await started(path);
    const broken = failureOf(first);
    expect(broken.failure).toBe('parse');
    expect(broken.message).toMatch(/line 3, column \d+/);
    expect(broken.message).not.toContain('s3cret');
  });

  it("reports a file holding a list or a scalar instead of a mapping as a 'parse' failure, saying what it holds", async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, '- rateLimit\n- 50\n');
    const { first, updates } = await started(path, { debounceMs: QUIET_DEBOUNCE_MS });
    expect(failureOf(first)).toMatchObject({
      failure: 'parse',
      message: `${path} must hold a mapping of settings (key: value), not a list. Fix the file; it is read again when it changes.`,
    });
    await renameOver(path, '50\n');
    expect(failureOf(await updates.nth(1)).message).toContain('must hold a mapping of settings (key: value), not a number');
  });

  it('delivers nothing for a touch or a rewrite of the same content', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\n');
    const { updates } = await started(path, { debounceMs: QUIET_DEBOUNCE_MS });
    const now = new Date();
    await utimes(path, now, now);
    await renameOver(path, 'rateLimit: 50\n');
    await quiet();
    expect(updates.received).toEqual([]);
    // The source is still watching: the next real change is the first update.
    await renameOver(path, 'rateLimit: 51\n');
    expect(await updates.nth(1)).toEqual({ ok: true, value: { rateLimit: 51 } });
  });

  it('reads again at once on reload(), and does not deliver what reload() returned', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\n');
    // A debounce far beyond the test: only reload() can see the change.
    const { source, updates } = await started(path, { debounceMs: 60_000 });
    await renameOver(path, 'rateLimit: 90\n');
    expect(await source.reload()).toEqual({ ok: true, value: { rateLimit: 90 } });
    expect(updates.received).toEqual([]);
  });

  it('keeps watching when its folder is removed and created again', async () => {
    const volume = join(folder, 'config');
    const path = join(volume, 'dynamic.yaml');
    await mkdir(volume);
    await writeFile(path, 'rateLimit: 50\n');
    const { updates } = await started(path, { pollIntervalMs: 50 });
    await rm(volume, { recursive: true });
    expect(failureOf(await updates.nth(1)).failure).toBe('missing');
    await mkdir(volume);
    await writeFile(path, 'rateLimit: 30\n');
    expect(await updates.nth(2)).toEqual({ ok: true, value: { rateLimit: 30 } });
    // Watching again, not only polling: an in-place change is seen as well.
    await renameOver(path, 'rateLimit: 31\n');
    expect(await updates.nth(3)).toEqual({ ok: true, value: { rateLimit: 31 } });
  });

  it('polls while its folder does not exist yet, and reads the file once it does', async () => {
    const path = join(folder, 'later', 'dynamic.yaml');
    const { updates, first } = await started(path, { pollIntervalMs: 50 });
    expect(failureOf(first).failure).toBe('missing');
    await mkdir(join(folder, 'later'));
    await writeFile(path, 'rateLimit: 10\n');
    expect(await updates.nth(1)).toEqual({ ok: true, value: { rateLimit: 10 } });
  });

  it('keeps delivering after a subscriber throws', async () => {
    const warnings = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const path = join(folder, 'dynamic.yaml');
      await writeFile(path, 'rateLimit: 50\n');
      const updates = recorder();
      const source = fileSource(path);
      running.push(source);
      let calls = 0;
      await source.start((update) => {
        updates.onUpdate(update);
        if (++calls === 1) throw new Error('subscriber failed');
      });
      await renameOver(path, 'rateLimit: 51\n');
      await updates.nth(1);
      await renameOver(path, 'rateLimit: 52\n');
      expect(await updates.nth(2)).toEqual({ ok: true, value: { rateLimit: 52 } });
      expect(warnings).toHaveBeenCalledWith(expect.objectContaining({ message: 'subscriber failed' }), {
        code: 'CONFIG_SOURCE_LISTENER_FAILED',
      });
    } finally {
      warnings.mockRestore();
    }
  });

  it('leaves no watcher or timer behind after stop(), and delivers nothing more', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\n');
    const before = await countResources();
    const watching = fileSource(path, { debounceMs: QUIET_DEBOUNCE_MS });
    const polling = fileSource(join(folder, 'absent', 'dynamic.yaml'), { pollIntervalMs: 50 });
    const updates = recorder();
    await watching.start(updates.onUpdate);
    await polling.start(updates.onUpdate);
    await writeFile(path, 'rateLimit: 51\n'); // leaves a debounce timer pending
    const during = await countResources();
    expect(during.FSEventWrap ?? 0).toBeGreaterThan(before.FSEventWrap ?? 0);
    expect(during.Timeout ?? 0).toBeGreaterThan(before.Timeout ?? 0);

    await Promise.all([watching.stop(), polling.stop()]);
    expect(await countResources()).toEqual(before);
    const delivered = updates.received.length;
    await writeFile(path, 'rateLimit: 52\n');
    await quiet();
    expect(updates.received).toHaveLength(delivered);
  });

  it('refuses to start twice', async () => {
    const path = join(folder, 'dynamic.yaml');
    await writeFile(path, 'rateLimit: 50\n');
    const { source } = await started(path);
    await expect(source.start(() => undefined)).rejects.toThrow('already started');
  });

  it('rejects invalid options, naming each', () => {
    let thrown: unknown;
    try {
      fileSource('dynamic.yaml', { debounceMs: -1, format: 'toml' as 'yaml', pollMs: 5 } as FileSourceOptions);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DynamicConfigOptionsError);
    expect((thrown as DynamicConfigOptionsError).problems).toEqual([
      expect.stringMatching(/^fileSource\("dynamic.yaml"\)\.debounceMs: /),
      expect.stringMatching(/^fileSource\("dynamic.yaml"\)\.format: /),
      expect.stringMatching(/^fileSource\("dynamic.yaml"\)\.pollMs: unknown option/),
    ]);
  });
});
