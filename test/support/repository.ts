import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './apps';

/**
 * The files of the repository as a fresh clone has them (tracked, or new and not ignored), copied
 * into a new temporary folder: no node_modules, no build.
 */
export function cleanCopy(prefix = 'nest-rollout-clean-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter(Boolean);
  for (const file of files) {
    try {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      copyFileSync(join(ROOT, file), join(dir, file));
    } catch (error) {
      // A file deleted in the working tree but not yet in the index is not in a fresh clone either.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return dir;
}

/**
 * Gives a copy (cleanCopy) the repository's installed packages without installing them again: a
 * node_modules folder of links to this one's packages, except the workspaces (@nest-rollout/*),
 * which link to the copy's own libs as `npm ci` would, so that the copy builds and runs its own code.
 */
export function linkInstalledPackages(copy: string): void {
  const installed = join(ROOT, 'node_modules');
  mkdirSync(join(copy, 'node_modules'));
  for (const entry of readdirSync(installed)) {
    if (entry !== '@nest-rollout') symlinkSync(join(installed, entry), join(copy, 'node_modules', entry));
  }
  mkdirSync(join(copy, 'node_modules', '@nest-rollout'));
  for (const lib of readdirSync(join(copy, 'libs'))) {
    symlinkSync(join('..', '..', 'libs', lib), join(copy, 'node_modules', '@nest-rollout', lib));
  }
}

/**
 * A newcomer's shell: none of the variables that npm, Jest or an outer `npm test` put in ours
 * (undefined removes a variable from a child's environment), plus `env`.
 */
export function newcomerEnvironment(env: Readonly<Record<string, string | undefined>> = {}): Record<string, string | undefined> {
  const cleared: Record<string, string | undefined> = {};
  for (const name of Object.keys(process.env)) {
    if (/^(npm_|JEST_)/i.test(name) || ['NODE_ENV', 'INIT_CWD', 'COLOR', 'NODE', 'TS_JEST'].includes(name)) cleared[name] = undefined;
  }
  return { ...cleared, ...env };
}
