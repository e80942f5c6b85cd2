import type { RelayEventName, RelayEvents } from "@eventlane/core/internal";

/**
 * Typed lifecycle events of a relay: name -> payload. The payloads are the relay's contract with the
 * code that watches it (the Fastify plugin), defined once in `@eventlane/core/internal`.
 */
export type { RelayEventName, RelayEvents };
export type RelayListener<K extends RelayEventName> = (payload: RelayEvents[K]) => void;

/** A small synchronous typed emitter. A throwing listener is reported as an `error` event. */
export class RelayEventEmitter {
  readonly #listeners = new Map<RelayEventName, Set<(payload: never) => void>>();

  on<K extends RelayEventName>(event: K, listener: RelayListener<K>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as (payload: never) => void);
    return () => {
      set.delete(listener as (payload: never) => void);
    };
  }

  emit<K extends RelayEventName>(event: K, payload: RelayEvents[K]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as RelayListener<K>)(payload);
      } catch (error) {
        if (event !== "error") this.emit("error", { error });
      }
    }
  }
}
