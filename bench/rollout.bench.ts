/**
 * `npm run bench:rollout`: every release under load, through HAProxy (http and tcp) and nginx (with
 * and without a controller), for the sample and its peers, and the sample's canary release. The
 * harness is bench/rollout/; its options are read from the environment (see bench/rollout/main.ts).
 */
import './rollout/main';
