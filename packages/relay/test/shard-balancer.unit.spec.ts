import { InvalidOptionError } from "@eventlane/core";
import { describe, expect, it } from "vitest";
import { decideBalance, type ShardHolders } from "../src/leader/shard-balancer.ts";
import { nodeSupportsPlatformatic, relayOptionsFromEnv, resolveRelayOptions } from "../src/index.ts";

const holders = (held: Record<string, number[]>, extra: string[] = []): ShardHolders => ({
  balancing: new Set([...Object.keys(held), ...extra]),
  held: new Map(Object.entries(held)),
  pinned: 0,
});

describe("the shard balancing rule", () => {
  it("lets a lone instance take every shard", () => {
    expect(decideBalance({ shardCount: 4, me: "a", holders: holders({ a: [0, 1] }) })).toMatchObject({
      mayAcquire: true,
      release: undefined,
    });
  });
  it("makes the instance above its ceiling hand one shard over", () => {
    const d = decideBalance({ shardCount: 4, me: "a", holders: holders({ a: [0, 1, 2, 3] }, ["b"]) });
    expect(d).toEqual({ mayAcquire: false, release: 3, target: [2, 2] });
  });
  it("with 4 shards over 3 instances, only the richest (smallest tag on ties) gives one to the starving one", () => {
    const h = holders({ a: [0, 1], b: [2, 3] }, ["c"]);
    expect(decideBalance({ shardCount: 4, me: "a", holders: h }).release).toBe(1);
    expect(decideBalance({ shardCount: 4, me: "b", holders: h })).toMatchObject({
      release: undefined,
      mayAcquire: false,
    });
    expect(decideBalance({ shardCount: 4, me: "c", holders: h }).mayAcquire).toBe(true);
    // Settled at 1 + 2 + 1: nobody moves.
    const settled = holders({ a: [0], b: [2, 3], c: [1] });
    for (const me of ["a", "b", "c"])
      expect(decideBalance({ shardCount: 4, me, holders: settled }).release).toBeUndefined();
  });
});

describe("kafka.client, kafka.mode and their variables", () => {
  const base = { connectionString: "postgres://x", topics: ["t"] };
  it("defaults to kafkajs, idempotent", () => {
    const k = resolveRelayOptions({ ...base, kafka: { brokers: ["b:9092"] } }).kafka!;
    expect(k).toMatchObject({ client: "kafkajs", mode: "idempotent", transactionalIdPrefix: "eventlane-relay" });
  });
  it("names kafka.client for an unknown client and for a Node.js too old for @platformatic/kafka", () => {
    expect(() =>
      resolveRelayOptions({ ...base, kafka: { brokers: ["b:9092"], client: "rdkafka" as "kafkajs" } }),
    ).toThrow(InvalidOptionError);
    const e = (() => {
      try {
        resolveRelayOptions({ ...base, kafka: { brokers: ["b:9092"], client: "platformatic" } }, "22.12.0");
      } catch (error) {
        return error as InvalidOptionError;
      }
    })();
    expect(e?.option).toBe("kafka.client");
    expect(e?.message).toContain("22.22");
    expect(["22.22.0", "24.6.0", "25.0.0"].map(nodeSupportsPlatformatic)).toEqual([true, true, true]);
    expect(["20.19.0", "22.21.9", "24.5.0"].map(nodeSupportsPlatformatic)).toEqual([false, false, false]);
  });
  it("reads EVENTLANE_KAFKA_CLIENT and EVENTLANE_KAFKA_MODE", () => {
    const env = {
      EVENTLANE_DATABASE_URL: "postgres://x",
      EVENTLANE_KAFKA_BROKERS: "b:9092",
      EVENTLANE_RELAY_TOPICS: "t",
      EVENTLANE_KAFKA_CLIENT: "platformatic",
      EVENTLANE_KAFKA_MODE: "transactional",
    };
    expect(relayOptionsFromEnv(env).kafka).toMatchObject({ client: "platformatic", mode: "transactional" });
    expect(() => relayOptionsFromEnv({ ...env, EVENTLANE_KAFKA_MODE: "exactly-once" })).toThrow(/EVENTLANE_KAFKA_MODE/);
  });
});
