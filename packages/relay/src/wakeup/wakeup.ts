/** Wakes idle shard loops early: a NOTIFY arrived, or the relay is stopping. */
export class Wakeup {
  #waiters = new Set<() => void>();

  /** Resolves after `ms`, or earlier on {@link wake}; `signal` cancels the timer. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
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
    for (const w of [...this.#waiters]) w();
  }
}
