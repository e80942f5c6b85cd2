// One consumer process: `consumer.ts email|inventory|analytics`.
// HOTEL_GROUP_SUFFIX appends to the consumer group (fresh groups per demo run).
import { loadConfig } from "../config.ts";
import { CONSUMER_NAMES, type ConsumerName, createHotelConsumer } from "../consumers/hotel-consumers.ts";
import { createDatabase } from "../database.ts";
import { hotelEvents } from "../domain/hotel-events.ts";

const name = process.argv[2] as ConsumerName;
if (!CONSUMER_NAMES.includes(name)) {
  process.stderr.write(`usage: consumer.ts ${CONSUMER_NAMES.join("|")}\n`);
  process.exit(2);
}
const config = loadConfig();
const db = createDatabase(config.databaseUrl, 3);
const consumer = createHotelConsumer(name, {
  kafka: { brokers: config.brokers, clientId: `hotel-${name}` },
  db,
  events: hotelEvents(config.bookingsTopic),
  groupSuffix: process.env.HOTEL_GROUP_SUFFIX ?? "",
  sessionTimeoutMs: 10_000,
});
consumer.on("event:dead_lettered", (e) =>
  process.stderr.write(`${name}: dead-lettered ${e.eventType} (${e.reason}): ${e.detail}\n`),
);
consumer.on("gap:detected", (g) =>
  process.stderr.write(`${name}: gap on ${g.key}: expected ${g.expected}, got ${g.actual}\n`),
);
consumer.on("error", (e) =>
  process.stderr.write(`${name}: ${e.stage} error: ${e.error instanceof Error ? e.error.message : String(e.error)}\n`),
);
await consumer.start();
process.stdout.write(`${name} consumer started\n`);

const shutdown = async () => {
  await consumer.stop();
  const s = consumer.stats();
  process.stdout.write(`${name}: received ${s.received}, applied ${s.applied}, duplicates skipped ${s.duplicates}\n`);
  await db.destroy();
  process.exit(0);
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
