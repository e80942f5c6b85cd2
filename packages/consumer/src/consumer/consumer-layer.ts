import type { EventDefinition } from "@eventlane/core";
import { Context, Effect, Layer } from "effect";
import type { ConsumerOptions } from "../options.ts";
import { type Consumer, createConsumer } from "./create-consumer.ts";

/** The consumer as an Effect service: a started {@link Consumer}. */
export class ConsumerService extends Context.Service<ConsumerService, Consumer<unknown, readonly EventDefinition[]>>()(
  "@eventlane/consumer/Consumer",
) {}

/**
 * A Layer that creates and starts a consumer, and stops it gracefully (chunks in flight finish,
 * the group is left) when the layer's scope closes. Start-up failures fail the layer with their
 * typed errors (`DatabaseUnreachableError`, `SchemaVersionError`, `InvalidOptionError`).
 */
export function consumerLayer<DB, const Defs extends readonly EventDefinition[]>(
  options: ConsumerOptions<DB, Defs>,
): Layer.Layer<ConsumerService, unknown> {
  return Layer.effect(
    ConsumerService,
    Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const consumer = createConsumer(options);
          await consumer.start();
          return consumer as unknown as Consumer<unknown, readonly EventDefinition[]>;
        },
        catch: (e) => e,
      }),
      (consumer) => Effect.promise(() => consumer.stop()),
    ),
  );
}
