import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SAMPLE_ENV_VARIABLES } from '../apps/sample/src/sample.config';
import { ROOT } from './support/apps';

/** The README's section on the sample, up to the next section. */
function sampleSection(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## The sample service\n');
  expect(start).toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

describe('the README on the sample’s environment', () => {
  it.each(SAMPLE_ENV_VARIABLES)('names %s, which the sample reads, in its section on the sample', (name) => {
    expect(sampleSection()).toContain(`\`${name}\``);
  });
});
