/**
 * Wakes idle shard loops early: a NOTIFY arrived, or the relay is stopping. Wake-ups are counted, so
 * one that arrives while a loop is busy is not lost: a loop that read its batch at generation `g`
 * and waits with `since: g` returns at once if a wake-up came in meanwhile.
 */
export class Wakeup {
  #waiters = new Set<() => void>();
  #generation = 0;

  /** How many wake-ups there have been; read it before looking for work. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Resolves after `ms`, or earlier on {@link wake}; at once when a wake-up came after generation
   * `since`. `signal` cancels the timer.
   */
  wait(ms: number, signal?: AbortSignal, since?: number): Promise<void> {
    if (since !== undefined && this.#generation !== since) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  wake(): void {
    this.#generation++;
    for (const w of [...this.#waiters]) w();
  }
}
