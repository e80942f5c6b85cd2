/** Thrown when a check or query does not settle within its bound. */
export class BoundExceededError extends Error {
  readonly code = "EVENTLANE_TIMEOUT" as const;
  readonly what: string;
  readonly timeoutMs: number;
  constructor(what: string, timeoutMs: number) {
    super(`${what} did not answer within ${timeoutMs} ms`);
    this.name = "BoundExceededError";
    this.what = what;
    this.timeoutMs = timeoutMs;
  }
}

/** Thrown instead of starting another attempt while earlier, abandoned ones still hold connections. */
export class TooManyPendingError extends Error {
  readonly code = "EVENTLANE_PENDING" as const;
  readonly what: string;
  readonly pending: number;
  constructor(what: string, pending: number) {
    super(`${what}: ${pending} earlier attempts have not answered yet`);
    this.name = "TooManyPendingError";
    this.what = what;
    this.pending = pending;
  }
}

/**
 * Settles with `promise` or rejects with {@link BoundExceededError} after `timeoutMs`, whichever
 * comes first. The timer is unref'ed and cleared as soon as `promise` settles.
 */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new BoundExceededError(what, timeoutMs)), timeoutMs);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * One attempt in flight, shared by every caller that arrives while it runs (so N probes or scrapes
 * cost one query). An attempt older than `maxAgeMs` is abandoned rather than joined: a query on a
 * blackholed connection never answers, and joining it would keep the check failing after the
 * network heals. An abandoned attempt keeps its pool connection until the driver gives up, so at
 * most `maxAbandoned` recent ones may be outstanding; past that, callers fail fast with
 * {@link TooManyPendingError} instead of taking yet another connection. Abandoned attempts older
 * than `forgetAfterMs` stop counting, so a check can never stay failed for good because of
 * connections that a partition left hanging.
 */
export class SharedAttempt<T> {
  readonly #run: () => Promise<T>;
  readonly #what: string;
  readonly #maxAgeMs: number;
  readonly #maxAbandoned: number;
  readonly #forgetAfterMs: number;
  #current: Attempt<T> | undefined;
  readonly #abandoned = new Set<Attempt<T>>();

  constructor(
    what: string,
    run: () => Promise<T>,
    options: { readonly maxAgeMs: number; readonly maxAbandoned?: number; readonly forgetAfterMs?: number },
  ) {
    this.#what = what;
    this.#run = run;
    this.#maxAgeMs = options.maxAgeMs;
    this.#maxAbandoned = options.maxAbandoned ?? 3;
    // 30 s, or 10 attempts' worth for long timeouts.
    this.#forgetAfterMs = options.forgetAfterMs ?? Math.max(30_000, 10 * options.maxAgeMs);
  }

  /** Abandoned attempts that have not settled and still count toward `maxAbandoned`. */
  get abandoned(): number {
    const now = performance.now();
    let n = 0;
    for (const a of this.#abandoned) if (now - a.startedAt < this.#forgetAfterMs) n++;
    return n;
  }

  run(): Promise<T> {
    const now = performance.now();
    const current = this.#current;
    if (current !== undefined) {
      if (now - current.startedAt < this.#maxAgeMs) return current.promise;
      this.#current = undefined;
      this.#abandoned.add(current);
    }
    const abandoned = this.abandoned;
    if (abandoned >= this.#maxAbandoned) return Promise.reject(new TooManyPendingError(this.#what, abandoned));
    let promise: Promise<T>;
    try {
      promise = this.#run();
    } catch (error) {
      promise = Promise.reject(error);
    }
    const entry: Attempt<T> = { promise, startedAt: now };
    this.#current = entry;
    const settle = () => {
      if (this.#current === entry) this.#current = undefined;
      this.#abandoned.delete(entry);
    };
    // Nobody may be awaiting an abandoned attempt: handle its rejection here so it never surfaces
    // as an unhandled rejection (which would end the process).
    promise.then(settle, settle);
    return promise;
  }
}

interface Attempt<T> {
  readonly promise: Promise<T>;
  readonly startedAt: number;
}
