// The booking API: POST /bookings, POST /bookings/:id/cancel, GET /bookings/:id, GET /hotels/:id,
// plus /health/live, /health/ready, /eventlane/status and /metrics from @eventlane/fastify.
import { buildHotelApi } from "../api/app.ts";
import { loadConfig } from "../config.ts";
import { createDatabase } from "../database.ts";
import { hotelEvents } from "../domain/hotel-events.ts";

const config = loadConfig();
const db = createDatabase(config.databaseUrl, 20);
const app = await buildHotelApi({
  db,
  events: hotelEvents(config.bookingsTopic),
  logger: process.env.HOTEL_LOG === "1",
});
await app.listen({ port: config.port, host: config.host });
process.stdout.write(`api listening on http://${config.host}:${config.port}\n`);

const shutdown = async () => {
  await app.close();
  await db.destroy();
  process.exit(0);
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
