import { migrateToLatest, SCHEMA_VERSION } from "@eventlane/core";
import { createTestDatabase, type TestDatabase } from "@eventlane/test-kit";
import Fastify, { type FastifyInstance } from "fastify";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { eventlane, type ReadinessReport } from "../src/index.ts";

// A database of this file's own that nobody migrates before the tests do: what an instance meets when
// it is deployed before its migrations ran.
let tdb: TestDatabase;
let db: Kysely<unknown>;
let app: FastifyInstance;
/** Every statement `db` ran, so a test can count the schema-version reads. */
const statements: string[] = [];
const versionReads = () => statements.filter((s) => s.includes("to_regclass")).length;

beforeAll(async () => {
  tdb = await createTestDatabase("el_fastify_schema");
  const pool = new pg.Pool({ connectionString: tdb.url, max: 4 });
  pool.on("error", () => {});
  db = new Kysely<unknown>({
    dialect: new PostgresDialect({ pool }),
    log: (event) => {
      statements.push(event.query.sql);
    },
  });
});
afterAll(async () => {
  await db.destroy();
  await tdb.drop();
});
beforeEach(() => {
  app = Fastify();
});
afterEach(() => app.close());

async function ready() {
  const res = await app.inject({ method: "GET", url: "/health/ready" });
  return { res, body: res.json<ReadinessReport>() };
}

describe("readiness and the schema version", () => {
  it("is 503 naming the schema on an unmigrated database, re-checks each probe, and turns 200 once migrated", async () => {
    // A schema of this test's own, so no other test's migration reaches it.
    const schema = "not_migrated";
    await app.register(eventlane, { db, schema });

    const before = versionReads();
    const down = await ready();
    expect(down.res.statusCode).toBe(503);
    expect(down.res.headers["cache-control"]).toBe("no-store");
    expect(down.body).toMatchObject({
      status: "not_ready",
      failed: ["schema"],
      checks: {
        database: { status: "ok" },
        schema: {
          status: "fail",
          reason: "version",
          code: "EVENTLANE_SCHEMA_VERSION",
          expected: SCHEMA_VERSION,
          actual: null,
        },
      },
    });
    expect(down.body.checks.schema?.message).toContain(`"${schema}"`);
    expect(down.body.checks.schema?.message).toContain("migrateToLatest()");
    // The body names the schema, never the database, a host or a user.
    for (const secret of [tdb.name, "127.0.0.1", "postgres"]) expect(down.res.body).not.toContain(secret);
    console.log(`readiness 503 body: ${down.res.body}`);

    // A failure is not cached: the next probe reads the version again.
    expect((await ready()).res.statusCode).toBe(503);
    expect(versionReads() - before).toBe(2);

    await migrateToLatest(db, { schema });
    const up = await ready();
    expect(up.res.statusCode).toBe(200);
    expect(up.body).toMatchObject({
      status: "ready",
      failed: [],
      checks: { database: { status: "ok" }, schema: { status: "ok" } },
    });

    // Success is cached: later probes only ping.
    const afterMigration = versionReads();
    for (let i = 0; i < 3; i++) expect((await ready()).res.statusCode).toBe(200);
    expect(versionReads()).toBe(afterMigration);
  });

  it("is 503 with both versions while the schema is at another version, and 200 once it is at this one", async () => {
    const schema = "other_version";
    await migrateToLatest(db, { schema });
    const other = SCHEMA_VERSION - 1;
    await sql`UPDATE ${sql.id(schema, "schema_info")} SET version = ${other}`.execute(db);
    await app.register(eventlane, { db, schema });
    const down = await ready();
    expect(down.res.statusCode).toBe(503);
    expect(down.body.failed).toEqual(["schema"]);
    expect(down.body.checks.schema).toMatchObject({
      status: "fail",
      code: "EVENTLANE_SCHEMA_VERSION",
      expected: SCHEMA_VERSION,
      actual: other,
    });
    expect(down.body.checks.schema?.message).toContain(`version ${other}`);

    await sql`UPDATE ${sql.id(schema, "schema_info")} SET version = ${SCHEMA_VERSION}`.execute(db);
    expect((await ready()).res.statusCode).toBe(200);
  });
});
