/**
 * `npm run bench:overhead`: what the whole stack costs per request. GET /orders/:id (a small
 * object) on Express and Fastify, one app per variant, each in a child process of its own: `bare`
 * (no module of ours); `als` (bare with an AsyncLocalStorage in use, which any per-request context
 * pays for, and whose price depends on the Node version); each module alone (`lifecycle`, `health`, `metrics`, `logging`,
 * `logging+access`, `canary`); `stack` (lifecycle + health + metrics + logging + @Canary() on the
 * route) and `stack+access` (with one access line per request); and `peer`, the hand-wired
 * equivalent (nestjs-pino with its access line, a prom-client histogram in an interceptor,
 * @nestjs/terminus). The variants are described in bench/overhead/apps.ts.
 *
 * Per adapter, one server per variant, started one after the other (each boot has the CPU to
 * itself), pinned to the last CPU with `taskset -c` when taskset exists and there are at least 2
 * CPUs (wrk gets the others). Each reports, itself, the time from fork to READY (its clock and the
 * parent's are both the wall clock at process start plus the monotonic clock since): with
 * HealthModule, when ReadinessService turns ready (/health/ready answers 200 from then on); with
 * LifecycleModule alone, when LifecycleService reaches READY (after `minReadyDelayMs`, 500 ms by
 * default); otherwise when `app.listen()` resolved; and its RSS at that moment. Each is checked
 * and warmed up by wrk for 1 s. Then rounds of one measured run per server (`wrk -t1 -c64
 * --latency`), in an order rotated each round: requests/s and latency from wrk, the server's CPU
 * time per request (process.cpuUsage over the run / requests), its RSS after the run. The servers
 * stay up through the rounds: this kind of machine changes speed in bursts of seconds, which many
 * short interleaved runs cancel out in the medians. A non-2xx answer or a socket error fails the
 * run. Log lines go to the server's standard output, which is /dev/null.
 *
 * Every ratio is the median over rounds of the ratio to `bare` of the same adapter in the same
 * round. Then each module's share of the CPU per request, and the goals (met or MISSED).
 *
 *   npm run bench:overhead
 *   BENCH_ROUNDS=1 BENCH_DURATION_MS=2000 BENCH_ADAPTERS=fastify BENCH_VARIANTS=stack,peer npm run bench:overhead
 *
 * Needs wrk (on Debian/Ubuntu: `apt-get install wrk`; WRK names another binary). Env:
 * BENCH_ROUNDS (15), BENCH_DURATION_MS (1000 per measured run; wrk counts whole seconds),
 * BENCH_CONNECTIONS (64), BENCH_ADAPTERS and BENCH_VARIANTS (comma-separated subsets; `bare`
 * always runs), BENCH_NODE (the Node binary the servers run on, e.g. one from
 * `npx -y -p node@24 which node`; default: the one running the bench). Loopback only; every server is stopped when its measurement ends.
 */
import './overhead/main';
