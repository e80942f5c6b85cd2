import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { migrateToLatest } from "@eventlane/core";
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  kafkaBrokers,
  type TestDatabase,
  uniqueTopic,
  waitFor,
} from "@eventlane/test-kit";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), "../src/eventlane-relay.ts");
let database: TestDatabase;
const topic = uniqueTopic("relay-server");

beforeAll(async () => {
  database = await createTestDatabase("el_relay_server");
  const db = new Kysely<unknown>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 1 }) }),
  });
  await migrateToLatest(db);
  await db.destroy();
  await createTopics([{ topic, partitions: 1 }]);
});
afterAll(async () => {
  await deleteTopics([topic]);
  await database.drop();
});

function run(args: readonly string[], env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, ["--conditions=eventlane-source", bin, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, out: () => out, err: () => err };
}

describe("the eventlane-relay process", () => {
  it("prints its help and version, and refuses unknown arguments with exit code 2", async () => {
    const help = run(["--help"], {});
    expect(await help.exited).toBe(0);
    expect(help.out()).toContain("EVENTLANE_DATABASE_URL");
    expect(help.out()).toContain("Exit codes");
    const version = run(["--version"], {});
    expect(await version.exited).toBe(0);
    expect(version.out().trim()).toMatch(/^\d+\.\d+\.\d+/);
    const bad = run(["--nope"], {});
    expect(await bad.exited).toBe(2);
  });

  it("exits 1 naming the missing variable, without echoing secrets", async () => {
    const p = run([], { EVENTLANE_DATABASE_URL: "postgres://u:sekrit@127.0.0.1:1/x", EVENTLANE_KAFKA_BROKERS: "" });
    expect(await p.exited).toBe(1);
    expect(p.err()).toContain("EVENTLANE_KAFKA_BROKERS");
    expect(p.err()).not.toContain("sekrit");
  });

  it("serves health and metrics while it leads, and stops gracefully on SIGTERM", async () => {
    const p = run([], {
      EVENTLANE_DATABASE_URL: database.url,
      EVENTLANE_KAFKA_BROKERS: kafkaBrokers.join(","),
      EVENTLANE_RELAY_TOPICS: topic,
      EVENTLANE_HTTP_PORT: "0",
      EVENTLANE_HTTP_HOST: "127.0.0.1",
      EVENTLANE_LOG_LEVEL: "info",
    });
    try {
      // Port 0: the system picks a free one, which Fastify's "Server listening at" line names.
      let port = 0;
      await waitFor(
        "listening",
        () => {
          port = Number(/listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(p.out())?.[1] ?? 0);
          return port > 0;
        },
        30_000,
      );
      const get = (route: string) =>
        fetch(`http://127.0.0.1:${port}${route}`).then(async (r) => ({ status: r.status, body: await r.text() }));
      await waitFor(
        "ready",
        async () => (await get("/health/ready").catch(() => ({ status: 0 }))).status === 200,
        30_000,
      );
      expect((await get("/health/live")).status).toBe(200);
      await waitFor(
        "leading shard 0",
        async () => (await get("/metrics")).body.includes('eventlane_relay_leader{shard="0"} 1'),
        30_000,
      );
    } finally {
      p.child.kill("SIGTERM");
    }
    expect(await p.exited).toBe(0);
  });
});
