import { priceCents, pricingOf } from './pricing';

describe('pricing', () => {
  it('runs v1 on a stable instance and v2 on a canary one', () => {
    expect(pricingOf('stable')).toBe('v1');
    expect(pricingOf('canary')).toBe('v2');
  });

  it('prices v1 at 250 cents a unit, whatever the quantity', () => {
    expect([1, 3, 10].map((quantity) => priceCents('v1', quantity))).toEqual([250, 750, 2500]);
  });

  it('prices v2 at 240 cents a unit, 5 % off from 10 units on', () => {
    expect([1, 3, 9, 10, 11].map((quantity) => priceCents('v2', quantity))).toEqual([240, 720, 2160, 2280, 2508]);
  });
});
