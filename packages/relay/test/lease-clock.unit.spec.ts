import { describe, expect, it } from "vitest";
import { type LeaseClocks, LeaseTimer, readClocks } from "../src/leader/lease-clock.ts";

const LEASE_MS = 3000;

/** Two clocks the test moves by hand: `tick` advances both, `stepWall` only the wall clock. */
function fakeClocks() {
  let wall = Date.UTC(2025, 0, 1);
  let monotonic = 50_000;
  const clocks: LeaseClocks = { wall: () => wall, monotonic: () => monotonic };
  return {
    clocks,
    /** Both clocks run on by `ms`: ordinary time. */
    tick(ms: number) {
      wall += ms;
      monotonic += ms;
    },
    /** The wall clock alone moves (an NTP step, an operator, the time a suspended machine missed). */
    stepWall(ms: number) {
      wall += ms;
    },
    /** The monotonic clock alone moves (it kept running while the wall clock was set back). */
    stepMonotonic(ms: number) {
      monotonic += ms;
    },
  };
}

describe("the lease timer runs on the wall clock and the monotonic clock at once", () => {
  it("counts down on both clocks and starts again from a renewal", () => {
    const c = fakeClocks();
    const timer = new LeaseTimer(c.clocks, LEASE_MS, readClocks(c.clocks));
    expect(timer.remainingMs()).toBe(LEASE_MS);
    c.tick(1000);
    expect(timer.remainingMs()).toBe(2000);
    const renewal = timer.now();
    c.tick(200);
    timer.renew(renewal);
    // From the reading taken before the renewal was sent, not from its answer.
    expect(timer.remainingMs()).toBe(LEASE_MS - 200);
    c.tick(LEASE_MS - 200);
    expect(timer.remainingMs()).toBe(0);
  });

  it("wall clock stepped back: the monotonic clock still ends the lease on time", () => {
    const c = fakeClocks();
    const timer = new LeaseTimer(c.clocks, LEASE_MS, readClocks(c.clocks));
    c.tick(1000);
    // NTP sets the wall clock back by a minute while the process runs (or sleeps).
    c.stepWall(-60_000);
    c.stepMonotonic(LEASE_MS);
    // By the wall clock alone the lease would have more than a minute left.
    const now = timer.now();
    expect(timer.from.wall + LEASE_MS - now.wall).toBeGreaterThan(60_000);
    expect(timer.remainingMs()).toBeLessThanOrEqual(0);
    expect(timer.remainingMs()).toBe(-1000);
  });

  it("monotonic clock stalled (a suspended machine): the wall clock ends the lease", () => {
    const c = fakeClocks();
    const timer = new LeaseTimer(c.clocks, LEASE_MS, readClocks(c.clocks));
    c.tick(500);
    // The VM is suspended for 20 s: the monotonic clock does not count it, the wall clock does.
    c.stepWall(20_000);
    const now = timer.now();
    expect(timer.from.monotonic + LEASE_MS - now.monotonic).toBe(2500);
    expect(timer.remainingMs()).toBeLessThanOrEqual(0);
    expect(timer.remainingMs()).toBe(-17_500);
  });

  it("wall clock stepped forward: the lease ends early, which is safe", () => {
    const c = fakeClocks();
    const timer = new LeaseTimer(c.clocks, LEASE_MS, readClocks(c.clocks));
    c.tick(100);
    c.stepWall(2500);
    expect(timer.remainingMs()).toBe(400);
  });
});
