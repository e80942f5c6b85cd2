/**
 * The two clocks a lease is timed with. Neither is enough alone: the wall clock can step back (or
 * forward) under NTP or an operator, and the monotonic clock never steps but stops while the machine
 * is suspended (a VM paused or migrated), so after a suspend it says almost no time has passed.
 */
export interface LeaseClocks {
  /** Wall clock, epoch ms (`Date.now`). */
  readonly wall: () => number;
  /** Monotonic clock, ms from an arbitrary origin (`performance.now`). */
  readonly monotonic: () => number;
}

/** The process's clocks. */
export const systemClocks: LeaseClocks = Object.freeze({
  wall: () => Date.now(),
  monotonic: () => performance.now(),
});

/** One reading of both clocks, taken at the same moment. */
export interface ClockReading {
  readonly wall: number;
  readonly monotonic: number;
}

/** Reads both clocks. */
export function readClocks(clocks: LeaseClocks): ClockReading {
  return { wall: clocks.wall(), monotonic: clocks.monotonic() };
}

/**
 * How long a lease has left, timed from one reading on both clocks: it is over as soon as either
 * clock says the lease has passed. A wall clock stepped back cannot stretch it (the monotonic clock
 * still runs out), and a suspend cannot either (the wall clock ran on); a wall clock stepped forward
 * ends it early, which is safe.
 */
export class LeaseTimer {
  readonly #clocks: LeaseClocks;
  readonly #leaseMs: number;
  #from: ClockReading;

  constructor(clocks: LeaseClocks, leaseMs: number, from: ClockReading) {
    this.#clocks = clocks;
    this.#leaseMs = leaseMs;
    this.#from = from;
  }

  /** The reading the lease runs from (the last renewal, taken before it was sent). */
  get from(): ClockReading {
    return this.#from;
  }

  /** Reads both clocks now. */
  now(): ClockReading {
    return readClocks(this.#clocks);
  }

  /** Restarts the lease from `from`, a reading taken before the renewal was sent. */
  renew(from: ClockReading): void {
    this.#from = from;
  }

  /** Ms until the lease is over by the clock that is further along; 0 or less when over. */
  remainingMs(now: ClockReading = this.now()): number {
    const byWall = this.#from.wall + this.#leaseMs - now.wall;
    const byMonotonic = this.#from.monotonic + this.#leaseMs - now.monotonic;
    return Math.min(byWall, byMonotonic);
  }
}
