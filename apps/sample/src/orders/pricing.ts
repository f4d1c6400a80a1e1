import type { CanaryTrack } from '@nest-rollout/canary';

/** The price formulas: `v1` on stable instances, `v2` (the change being rolled out) on canary ones. */
export type PricingVersion = 'v1' | 'v2';

/** v1: one list price per unit, in cents. */
const V1_UNIT_PRICE_CENTS = 250;
/** v2: a lower unit price, in cents, and a volume discount. */
const V2_UNIT_PRICE_CENTS = 240;
const V2_VOLUME_DISCOUNT_FROM_UNITS = 10;
const V2_VOLUME_DISCOUNT_PERCENT = 5;

/** The formula an instance of `track` runs: the canary version of the code is the one with v2. */
export function pricingOf(track: CanaryTrack): PricingVersion {
  return track === 'canary' ? 'v2' : 'v1';
}

/** The price of `quantity` units, in whole cents. */
export function priceCents(version: PricingVersion, quantity: number): number {
  if (version === 'v1') return quantity * V1_UNIT_PRICE_CENTS;
  const gross = quantity * V2_UNIT_PRICE_CENTS;
  return quantity >= V2_VOLUME_DISCOUNT_FROM_UNITS ? Math.round((gross * (100 - V2_VOLUME_DISCOUNT_PERCENT)) / 100) : gross;
}
