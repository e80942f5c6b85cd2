// Migrates the database (Eventlane, the API's tables, each consumer's tables and inbox) and creates
// the bookings topic when it is missing. Idempotent.
import { loadConfig } from "../config.ts";
import { createDatabase } from "../database.ts";
import { ensureTopics, migrateHotel } from "../setup/setup.ts";

const config = loadConfig();
const db = createDatabase(config.databaseUrl, 2);
try {
  await migrateHotel(db);
  await ensureTopics(config.brokers, config.bookingsTopic, config.bookingsPartitions);
  process.stdout.write(`migrated; topic ${config.bookingsTopic} ready\n`);
} finally {
  await db.destroy();
}
