import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "@eventlane/test-kit";
import {
  assertSchemaVersion,
  createEventStore,
  eventlaneDdl,
  InvalidIdentifierError,
  migrateToLatest,
  SCHEMA_VERSION,
  SchemaVersionError,
} from "../src/index.ts";
import { BookingCancelled } from "./fixtures/booking.ts";

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
});
