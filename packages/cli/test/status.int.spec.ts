import { SCHEMA_VERSION } from "@eventlane/core";
import { createRelay, type Relay } from "@eventlane/relay";
import { createTopics, deleteTopics, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusReport } from "../src/index.ts";
import { eventlane, itemEvent, type OutboxDb, relayOptions, setupOutboxDb } from "./support.ts";

describe("eventlane migrate and status", () => {
  let fresh: OutboxDb;
  let live: OutboxDb;
  const topic = uniqueTopic("cli.status");
  const Item = itemEvent(topic);

  beforeAll(async () => {
    [fresh, live] = await Promise.all([
      setupOutboxDb("el_cli_status_fresh", { migrate: false }),
      setupOutboxDb("el_cli_status_live"),
    ]);
    await createTopics([{ topic, partitions: 2 }]);
  });
  afterAll(async () => {
    await deleteTopics([topic]);
    await Promise.all([fresh?.close(), live?.close()]);
  });

  it("refuses a database Eventlane did not create with exit 3, then migrate makes it work", async () => {
    // Someone else's database: tables of its own, none of Eventlane's.
    await sql`CREATE TABLE public.orders (id int PRIMARY KEY)`.execute(fresh.db);
    const commands = [
      ["status"],
      ["dead-letters", "list"],
      ["replay", "--stream", "s-1", "--to-topic", topic],
      ["verify", "--topic", topic],
    ];
    const [consumer, ...refused] = await Promise.all([
      eventlane(["dead-letters", "list", "--consumer", "inbox", "--name", "g"], fresh.env),
      ...commands.map((args) => eventlane(args, fresh.env)),
    ]);
    refused.forEach((r, i) => {
      expect(r.code, `${commands[i]!.join(" ")}: ${r.stderr}`).toBe(3);
      expect(r.stderr).toContain('no Eventlane tables in schema "eventlane"');
      expect(r.stderr).toContain("eventlane migrate");
    });
    expect(consumer!.code).toBe(3);
    expect(consumer!.stderr).toContain("eventlane migrate --consumer inbox");

    const migrated = await eventlane(["migrate", "--json"], fresh.env);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.json()).toEqual({
      schemas: [{ kind: "core", schema: "eventlane", from: null, to: SCHEMA_VERSION }],
    });
    const again = await eventlane(["migrate"], fresh.env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`at version ${SCHEMA_VERSION}, nothing to do`);
    const both = await eventlane(["migrate", "--core", "--consumer", "inbox", "--json"], fresh.env);
    expect(both.json<{ schemas: unknown[] }>().schemas).toEqual([
      { kind: "core", schema: "eventlane", from: SCHEMA_VERSION, to: SCHEMA_VERSION },
      { kind: "consumer", schema: "inbox", from: null, to: expect.any(Number) },
    ]);
    const orders = await sql<{ n: number }>`SELECT count(*)::int AS n FROM public.orders`.execute(fresh.db);
    expect(orders.rows[0]!.n).toBe(0);

    const [status, ddl] = await Promise.all([
      eventlane(["status"], fresh.env),
      eventlane(["migrate", "--print", "--schema", "ops_audit"], {}),
    ]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain("1 shard (no relay has started on this database yet)");
    expect(status.stdout).toMatch(/shard +leader +epoch +heartbeat +pending +lag\n +0 +none +- +- +0 +-/);
    expect(status.stdout).toContain("Dead letters: 0");

    expect(ddl.code).toBe(0);
    expect(ddl.stdout).toContain('CREATE TABLE "ops_audit"."outbox"');
  });

  it("status --json reports each shard's leader, epoch, heartbeat, pending rows and lag", async () => {
    const instanceId = `cli-status-${topic}`;
    const relay: Relay = createRelay(relayOptions(live.database.url, [topic], { instanceId, shardCount: 2 }));
    await relay.start();
    try {
      await waitFor("both shards led", () => relay.status().shards.every((s) => s.leader), 10_000);
      const led = await eventlane(["status", "--json"], live.env);
      expect(led.code, led.stderr).toBe(0);
      const r = led.json<StatusReport>();
      expect(r).toMatchObject({ schema: "eventlane", shardCount: 2, shardCountRecorded: true, pendingRows: 0 });
      expect(r.shards).toHaveLength(2);
      for (const s of r.shards) {
        expect(s.leader).toBe(instanceId);
        expect(s.lockHeld).toBe(true);
        expect(s.epoch).toBeGreaterThanOrEqual(1);
        expect(s.heartbeatAgeSeconds).toBeLessThan(3);
      }
      const text = await eventlane(["status"], live.env);
      expect(text.stdout).toContain(instanceId);
    } finally {
      await relay.stop();
    }

    // No leader now: the lock is free, the row still names the last owner; the backlog waits.
    for (let n = 1; n <= 3; n++) await live.store.enqueue(live.db, Item, { key: `k-${n}`, n });
    await new Promise((r) => setTimeout(r, 300));
    const idle = (await eventlane(["status", "--json"], live.env)).json<StatusReport>();
    expect(idle.pendingRows).toBe(3);
    expect(idle.maxLagSeconds).toBeGreaterThan(0.2);
    expect(idle.shards.reduce((sum, s) => sum + s.pendingRows, 0)).toBe(3);
    for (const s of idle.shards) {
      expect(s).toMatchObject({ leader: null, lockHeld: false, lastOwner: instanceId });
    }
    const text = await eventlane(["status"], live.env);
    expect(text.stdout).toContain(`none (last: ${instanceId.slice(0, 30)}`);
  });
});
