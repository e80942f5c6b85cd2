// A relay process: publishes the outbox to Kafka with @eventlane/relay's createRelay.
//
// HOTEL_RELAY_CRASH_AFTER_ROWS=N (used by the demo's --kill-relay) makes the process SIGKILL itself
// right after Kafka acknowledged the batch that takes it past N published rows, and before that
// batch is marked published in PostgreSQL: the worst moment to die, so the next relay sends the
// batch again and the consumers must skip it.
import {
  createRelay,
  type OutboundMessage,
  type ProducerHooks,
  type ProducerPort,
  resolveRelayOptions,
  type SendDeadline,
} from "@eventlane/relay";
import { KafkaJsProducer } from "@eventlane/relay/kafkajs";
import { loadConfig } from "../config.ts";

const config = loadConfig();
const crashAfterRows = Number(process.env.HOTEL_RELAY_CRASH_AFTER_ROWS ?? 0);
const base = {
  connectionString: config.databaseUrl,
  kafka: { brokers: config.brokers, clientId: "hotel-relay" },
  topics: [config.bookingsTopic],
  instanceId: process.env.HOTEL_RELAY_INSTANCE ?? `hotel-relay-${process.pid}`,
  batchSize: 20,
};

function crashingProducer(inner: ProducerPort, afterRows: number): ProducerPort {
  let sent = 0;
  return {
    connect: (hooks: ProducerHooks) => inner.connect(hooks),
    async send(topic: string, messages: readonly OutboundMessage[], deadline?: SendDeadline) {
      await inner.send(topic, messages, deadline);
      sent += messages.length;
      if (sent >= afterRows) {
        process.stdout.write(
          `relay: SIGKILL after Kafka acked ${messages.length} row(s), before marking them published\n`,
        );
        process.kill(process.pid, "SIGKILL");
      }
    },
    reset: () => inner.reset(),
    describeTopics: (topics: readonly string[]) => inner.describeTopics(topics),
    disconnect: () => inner.disconnect(),
    get connected() {
      return inner.connected;
    },
  };
}

const relay = createRelay(
  crashAfterRows > 0
    ? { ...base, producer: crashingProducer(new KafkaJsProducer(resolveRelayOptions(base).kafka!), crashAfterRows) }
    : base,
);
relay.on("leader:acquired", ({ shard, epoch }) =>
  process.stdout.write(`relay: leader of shard ${shard}, epoch ${epoch}\n`),
);
relay.on("error", ({ error }) =>
  process.stderr.write(`relay error: ${error instanceof Error ? error.message : String(error)}\n`),
);
await relay.start();
process.stdout.write("relay started\n");

const shutdown = async () => {
  await relay.stop();
  process.exit(0);
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
