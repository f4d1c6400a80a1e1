import { isLegalTransition, LIFECYCLE_STATE_ORDER, LIFECYCLE_TRANSITIONS, LifecycleState } from './lifecycle.state';

const { STARTING, WARMING_UP, READY, DRAINING, STOPPING, STOPPED } = LifecycleState;
const ALL_STATES = [STARTING, WARMING_UP, READY, DRAINING, STOPPING, STOPPED];

/** The edges DESIGN.md's lifecycle allows, written out by hand rather than read from the table. */
const LEGAL_EDGES: ReadonlyArray<[LifecycleState, LifecycleState, string]> = [
  [STARTING, WARMING_UP, 'the server listens'],
  [STARTING, DRAINING, 'a signal arrives before the server listens'],
  [STARTING, STOPPING, 'app.close() before the server listens'],
  [WARMING_UP, READY, 'warm-up and the settle delay are over'],
  [WARMING_UP, DRAINING, 'a signal arrives during warm-up, or a critical warm-up task fails'],
  [WARMING_UP, STOPPING, 'app.close() during warm-up'],
  [READY, DRAINING, 'a signal arrives'],
  [READY, STOPPING, 'app.close() is called directly'],
  [DRAINING, STOPPING, 'the drain is over'],
  [STOPPING, STOPPED, 'the application has closed'],
];

const isListedEdge = (from: LifecycleState, to: LifecycleState) => LEGAL_EDGES.some(([f, t]) => f === from && t === to);
const ILLEGAL_EDGES = ALL_STATES.flatMap((from) => ALL_STATES.filter((to) => !isListedEdge(from, to)).map((to) => [from, to] as const));

describe('lifecycle transitions', () => {
  it.each(LEGAL_EDGES)('allows %s -> %s (%s)', (from, to) => {
    expect(isLegalTransition(from, to)).toBe(true);
  });

  it.each(ILLEGAL_EDGES)('forbids %s -> %s', (from, to) => {
    expect(isLegalTransition(from, to)).toBe(false);
  });

  it('covers all 36 pairs of states between the legal and illegal lists', () => {
    expect(LEGAL_EDGES.length + ILLEGAL_EDGES.length).toBe(36);
    expect(Object.keys(LIFECYCLE_TRANSITIONS).sort()).toEqual([...ALL_STATES].sort());
  });

  it('never leaves STOPPED and never stays in place', () => {
    expect(LIFECYCLE_TRANSITIONS[STOPPED]).toEqual([]);
    for (const state of ALL_STATES) expect(isLegalTransition(state, state)).toBe(false);
  });

  it('never goes back to an earlier state', () => {
    for (const from of ALL_STATES) {
      for (const to of LIFECYCLE_TRANSITIONS[from]) {
        expect(LIFECYCLE_STATE_ORDER[to]).toBeGreaterThan(LIFECYCLE_STATE_ORDER[from]);
      }
    }
  });

  it('orders the states along the happy path STARTING -> ... -> STOPPED', () => {
    expect([...ALL_STATES].sort((a, b) => LIFECYCLE_STATE_ORDER[a] - LIFECYCLE_STATE_ORDER[b])).toEqual(ALL_STATES);
    expect(ALL_STATES.map((s) => LIFECYCLE_STATE_ORDER[s])).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('reaches STOPPED from every state', () => {
    const reachesStopped = (state: LifecycleState): boolean => state === STOPPED || LIFECYCLE_TRANSITIONS[state].some(reachesStopped);
    for (const state of ALL_STATES) expect(reachesStopped(state)).toBe(true);
  });
});
