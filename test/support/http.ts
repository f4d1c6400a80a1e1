import { request } from 'node:http';
import { delay, ManagedProcess } from './process';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One request on a fresh connection (no agent, no keep-alive), bounded by `timeoutMs`. */
export function httpGet(url: string, timeoutMs = 2000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Polls `url` until it answers `status`, giving up after `timeoutMs`, or at once when `proc`
 * (the server being waited for) exits: a crashed boot fails fast with its own output.
 */
export async function waitForHttpStatus(
  url: string,
  options: { status?: number; timeoutMs?: number; proc?: ManagedProcess } = {},
): Promise<void> {
  const { status = 200, timeoutMs = 20_000, proc } = options;
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (proc && !proc.running) throw new Error(`${proc.name} exited while waiting for ${url} to answer ${status}\n${proc.describe()}`);
    try {
      const answer = await httpGet(url, 1000);
      if (answer.status === status) return;
      last = `status ${answer.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await delay(50);
  }
  throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms (last: ${last})${proc ? `\n${proc.describe()}` : ''}`);
}
