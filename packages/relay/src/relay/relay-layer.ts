import { Context, Effect, Layer } from "effect";
import type { RelayOptions } from "../options.ts";
import { createRelay, type Relay } from "./create-relay.ts";

/** The relay as an Effect service: a started {@link Relay}. */
export class RelayService extends Context.Service<RelayService, Relay>()("@eventlane/relay/Relay") {}

/**
 * A Layer that creates and starts a relay, and stops it gracefully when the layer's scope closes.
 * Start-up failures (typed errors such as `TopicMissingError`) fail the layer.
 */
export function relayLayer(options: RelayOptions): Layer.Layer<RelayService, unknown> {
  return Layer.effect(
    RelayService,
    Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const relay = createRelay(options);
          await relay.start();
          return relay;
        },
        catch: (e) => e,
      }),
      (relay) => Effect.promise(() => relay.stop()),
    ),
  );
}
