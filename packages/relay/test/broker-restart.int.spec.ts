import { createTopics, type PrivateBroker, startPrivateBroker, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRelay, type Relay, type RelayEvents } from "../src/index.ts";
import {
  assertCompleteInOrder,
  countByStatus,
  readAllEvents,
  type RelayTestDb,
  setupDatabase,
  startWriters,
  testEvent,
  testRelayOptions,
} from "./support.ts";

describe("the broker stopped and started under load (a private broker)", () => {
  let t: RelayTestDb;
  let broker: PrivateBroker;
  let relay: Relay | undefined;
  const topic = uniqueTopic("relay.outage");

  beforeAll(async () => {
    t = await setupDatabase("el_relay_outage");
    broker = await startPrivateBroker();
    await createTopics([{ topic, partitions: 3 }], broker.brokers);
  }, 180_000);
  afterAll(async () => {
    await relay?.stop();
    await broker?.destroy();
    await t?.close();
  }, 180_000);

  it("backs off during the outage, dead-letters nothing, loses nothing, keeps per-key order", async () => {
    relay = createRelay(
      testRelayOptions(t.db.url, [topic], {
        kafka: { brokers: broker.brokers, requestTimeoutMs: 3000, connectionTimeoutMs: 1000 },
        maxAttempts: 1,
      }),
    );
    const failures: RelayEvents["publish:failed"][] = [];
    const recordFailures: RelayEvents["record:failed"][] = [];
    relay.on("publish:failed", (e) => failures.push(e));
    relay.on("record:failed", (e) => recordFailures.push(e));
    await relay.start();
    const writers = startWriters(t, testEvent(topic), { writers: 2, keys: 10, prefix: "o", pauseMs: 3 });
    await waitFor("publishing", async () => ((await countByStatus(t.pool)).published ?? 0) > 100, 15_000);
    const stoppedAt = Date.now();
    await broker.stop();
    await waitFor("the shard backs off", () => failures.length >= 2, 30_000);
    await new Promise((r) => setTimeout(r, 3000));
    await broker.start();
    const restartedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    const total = await writers.stop();
    await waitFor("outbox drained", async () => (await countByStatus(t.pool)).pending === undefined, 90_000);
    const recoveredMs = Date.now() - restartedAt;
    const counts = await countByStatus(t.pool);
    expect(counts).toEqual({ published: total });
    expect(recordFailures).toEqual([]);
    const attempts = await t.pool.query("SELECT 1 FROM eventlane.outbox WHERE attempts > 0");
    expect(attempts.rowCount).toBe(0);
    expect(failures.every((f) => f.reason !== "record")).toBe(true);
    // Back-off grows (exponential) while the outage lasts, and is capped.
    const delays = failures.map((f) => f.backoffMs);
    expect(Math.max(...delays)).toBeLessThanOrEqual(2000 * 1.2);
    const messages = await readAllEvents(topic, total, 60_000, broker.brokers);
    const duplicates = assertCompleteInOrder(messages, total);
    console.log(
      `[fault] broker stopped ${restartedAt - stoppedAt} ms: ${failures.length} shard back-offs (${[...new Set(failures.map((f) => f.reason))].join(", ")}), drained ${recoveredMs} ms after restart, ${total} events, ${duplicates} duplicates, 0 dead letters`,
    );
  }, 180_000);
});
