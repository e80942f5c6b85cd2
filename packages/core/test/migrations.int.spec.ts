import { Kysely, PostgresDialect, sql } from "kysely";
import { Migrator } from "kysely/migration";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "@eventlane/test-kit";
import {
  assertSchemaVersion,
  createEventStore,
  eventlaneDdl,
  eventlaneMigrations,
  InvalidIdentifierError,
  InvalidOptionError,
  migrateToLatest,
  SCHEMA_VERSION,
  SchemaVersionError,
} from "../src/index.ts";
import { Booking, BookingCancelled } from "./fixtures/booking.ts";

let database: TestDatabase;
let db: Kysely<unknown>;

beforeAll(async () => {
  database = await createTestDatabase("el_migr");
  const pool = new pg.Pool({ connectionString: database.url, max: 3 });
  pool.on("error", () => undefined);
  db = new Kysely({ dialect: new PostgresDialect({ pool }) });
});
afterAll(async () => {
  await db.destroy();
  await database.drop();
});

describe("migrations", () => {
  it("refuses to run against a database without Eventlane's tables", async () => {
    const error = await assertSchemaVersion(db).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaVersionError);
    expect(error).toMatchObject({ code: "EVENTLANE_SCHEMA_VERSION", expected: SCHEMA_VERSION, actual: null });
  });

  it("migrates a custom schema and table prefix, idempotently, and writes there", async () => {
    const options = { schema: "billing_events", tablePrefix: "el_" };
    await migrateToLatest(db, options);
    await migrateToLatest(db, options);
    await assertSchemaVersion(db, options);
    const tables = await sql<{ table_name: string }>`
      SELECT table_name FROM information_schema.tables WHERE table_schema = 'billing_events' ORDER BY table_name`.execute(
      db,
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining([
        "el_events",
        "el_outbox",
        "el_streams",
        "el_key_sequences",
        "el_relay_shards",
        "el_parked_keys",
        "el_schema_info",
      ]),
    );
    const store = createEventStore(options);
    await store.enqueue(db, BookingCancelled, { bookingId: "m-1", reason: "r" });
    const n = await sql<{ n: string }>`SELECT count(*) AS n FROM billing_events.el_outbox`.execute(db);
    expect(n.rows[0]?.n).toBe("1");
    // The default schema was not touched.
    await expect(assertSchemaVersion(db)).rejects.toBeInstanceOf(SchemaVersionError);
  });

  it("keeps a partial index on pending outbox rows and autovacuum settings on the outbox", async () => {
    await migrateToLatest(db);
    const idx = await sql<{ indexdef: string }>`
      SELECT indexdef FROM pg_indexes WHERE schemaname = 'eventlane' AND indexname = 'outbox_pending_idx'`.execute(db);
    expect(idx.rows[0]?.indexdef).toMatch(/WHERE \(status = 'pending'::text\)/);
    const opts = await sql<{
      reloptions: string[];
    }>`SELECT reloptions FROM pg_class WHERE oid = 'eventlane.outbox'::regclass`.execute(db);
    expect(opts.rows[0]?.reloptions).toContain("autovacuum_vacuum_scale_factor=0");
  });

  it("exports the DDL for DBAs, with the configured names", () => {
    const ddl = eventlaneDdl({ schema: "ops", tablePrefix: "x_" });
    expect(ddl).toContain('CREATE TABLE "ops"."x_outbox"');
    expect(ddl).toContain("WHERE status = 'pending'");
    expect(ddl).not.toContain('"eventlane"');
  });

  it.each([
    [{ schema: "bad;drop table x" }, "schema"],
    [{ schema: "Upper" }, "schema"],
    [{ schema: 'q"uote' }, "schema"],
    [{ tablePrefix: "x-y" }, "tablePrefix"],
    [{ tablePrefix: "a".repeat(30) }, "tablePrefix"],
  ])("rejects identifier %j before any SQL runs", async (options, option) => {
    expect(() => createEventStore(options)).toThrow(InvalidIdentifierError);
    expect(() => eventlaneDdl(options)).toThrow(InvalidIdentifierError);
    const error = await migrateToLatest(db, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidIdentifierError);
    expect(error).toMatchObject({ code: "EVENTLANE_INVALID_IDENTIFIER", option });
  });

  it("rejects unknown or wrong-typed store options", () => {
    expect(() => createEventStore({ notfy: true } as never)).toThrow(/unknown event store option "notfy"/);
    expect(() => createEventStore({ maxPayloadBytes: 0 })).toThrow(/maxPayloadBytes/);
    expect(() => createEventStore({ notify: "yes" } as never)).toThrow(/notify must be a boolean/);
  });

  it.each([
    ["migrateToLatest", (options: object) => migrateToLatest(db, options)],
    ["assertSchemaVersion", (options: object) => assertSchemaVersion(db, options)],
    ["eventlaneDdl", async (options: object) => eventlaneDdl(options)],
    ["eventlaneMigrations", async (options: object) => eventlaneMigrations(options)],
  ])("%s refuses an unknown option, naming it, before any SQL runs", async (_name, call) => {
    const error = await call({ schema: "typo_schema", tablePefix: "x_" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect(error).toMatchObject({ code: "EVENTLANE_INVALID_OPTION", option: "tablePefix" });
    expect((error as InvalidOptionError).message).toMatch(
      /unknown schema option "tablePefix"; known: schema, tablePrefix/,
    );
    const notAnObject = await call(null as never).catch((e: unknown) => e);
    expect(notAnObject).toMatchObject({ code: "EVENTLANE_INVALID_OPTION", option: "options" });
    const schemas = await sql<{ n: string }>`
      SELECT count(*)::text AS n FROM pg_namespace WHERE nspname = 'typo_schema'`.execute(db);
    expect(schemas.rows[0]?.n).toBe("0");
  });

  it("upgrades a version-1 database: event payloads become json, kept as written from then on", async () => {
    const schema = "upgrade_v1";
    await sql.raw(`CREATE SCHEMA ${schema}`).execute(db);
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => eventlaneMigrations({ schema }) },
      migrationTableSchema: schema,
      migrationTableName: "eventlane_migration",
      migrationLockTableName: "eventlane_migration_lock",
    });
    expect((await migrator.migrateTo("0001_eventlane_initial")).error).toBeUndefined();
    await sql
      .raw(`
      INSERT INTO ${schema}.streams (stream_id, stream_type, version) VALUES ('booking-up', 'booking', 1);
      INSERT INTO ${schema}.events (stream_id, version, event_id, event_type, schema_version, payload)
      VALUES ('booking-up', 1, gen_random_uuid(), 'booking_cancelled', 1, '{"reason":"old","bookingId":"up"}')`)
      .execute(db);
    const store = createEventStore({ schema, notify: false });
    const refused = await store.readStream(db, Booking, "booking-up").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SchemaVersionError);
    expect(refused).toMatchObject({ expected: SCHEMA_VERSION, actual: 1 });

    await migrateToLatest(db, { schema });
    await assertSchemaVersion(db, { schema });
    expect(await payloadType(schema)).toBe("json");
    // The stored event survives (in jsonb's rendering, as it was stored); a new one is kept as written.
    const read = await store.readStream(db, Booking, "booking-up");
    expect(read.events[0]?.event.data).toEqual({ bookingId: "up", reason: "old" });
    await store.appendToStream(db, Booking, "booking-up", [BookingCancelled.make({ reason: "new", bookingId: "up" })]);
    const texts = await sql<{ payload: string }>`
      SELECT payload::text AS payload FROM ${sql.raw(`${schema}.events`)} WHERE stream_id = 'booking-up' ORDER BY version`.execute(
      db,
    );
    expect(texts.rows.map((r) => r.payload)).toEqual([
      '{"reason": "old", "bookingId": "up"}',
      '{"bookingId":"up","reason":"new"}',
    ]);

    // And back down: jsonb again, version 1.
    expect((await migrator.migrateTo("0001_eventlane_initial")).error).toBeUndefined();
    expect(await payloadType(schema)).toBe("jsonb");
    await expect(assertSchemaVersion(db, { schema })).rejects.toMatchObject({ actual: 1 });
  });

  it("gives DBAs DDL that, applied by hand, builds the schema at SCHEMA_VERSION", async () => {
    const schema = "by_hand";
    const ddl = eventlaneDdl({ schema });
    expect(ddl).toMatch(/-- 0001_eventlane_initial\n[\s\S]*-- 0002_eventlane_event_payload_json\n/);
    await sql.raw(ddl).execute(db);
    await assertSchemaVersion(db, { schema });
    expect(await payloadType(schema)).toBe("json");
    const store = createEventStore({ schema, notify: false });
    expect(
      (
        await store.appendToStream(db, Booking, "booking-hand", [
          BookingCancelled.make({ bookingId: "h", reason: "r" }),
        ])
      ).nextVersion,
    ).toBe(1);
  });
});

async function payloadType(schema: string): Promise<string | undefined> {
  const r = await sql<{ data_type: string }>`
    SELECT data_type FROM information_schema.columns
     WHERE table_schema = ${schema} AND table_name = 'events' AND column_name = 'payload'`.execute(db);
  return r.rows[0]?.data_type;
}
