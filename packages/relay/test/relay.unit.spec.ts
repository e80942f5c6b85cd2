import { InvalidOptionError } from "@eventlane/core";
import { murmur2, positiveModulo } from "@eventlane/core/internal";
import { Duration, Effect, Redacted, Schedule } from "effect";
import { Partitioners } from "kafkajs";
import { describe, expect, it } from "vitest";
import { RelayEnvError, relayOptionsFromEnv, resolveRelayOptions, shardBackoff } from "../src/index.ts";
import { classifyKafkaJsError } from "../src/kafkajs.ts";
import { chunkBySize, estimateSingleRecordBatchBytes, toOutboundMessage } from "../src/producer/outbound-message.ts";
import type { OutboxRow } from "../src/outbox-reader/outbox-row.ts";

const base = { connectionString: "postgres://u:secret@db/x", kafka: { brokers: ["k:9092"] }, topics: ["t"] };

describe("resolveRelayOptions", () => {
  it("applies documented defaults and freezes the result; secrets are redacted", () => {
    const o = resolveRelayOptions(base);
    expect(o).toMatchObject({
      shardCount: 1,
      shards: [0],
      batchSize: 500,
      leaseMs: 10_000,
      heartbeatIntervalMs: 2500,
      maxAttempts: 3,
    });
    expect(Object.isFrozen(o)).toBe(true);
    expect(String(o.connectionString)).not.toContain("secret");
    expect(JSON.stringify(o)).not.toContain("secret");
    expect(Redacted.value(o.connectionString)).toBe(base.connectionString);
    const sasl = resolveRelayOptions({
      ...base,
      kafka: { brokers: ["k:9092"], sasl: { mechanism: "plain", username: "u", password: "pw-123" } },
    });
    expect(JSON.stringify(sasl)).not.toContain("pw-123");
  });

  it.each([
    [{ leaseMs: 10 }, "leaseMs"],
    [{ heartbeatIntervalMs: 5000, leaseMs: 10_000 }, "heartbeatIntervalMs"],
    [{ shards: [1] }, "shards"],
    [{ topics: [] }, "topics"],
    [{ topics: ["t", "t"] }, "topics[1]"],
    [{ kafka: { brokers: ["nope"] } }, "kafka.brokers"],
    [{ schema: "Bad-Schema" }, "schema"],
  ] as const)("names the option in the error: %j", (override, option) => {
    const error = (() => {
      try {
        resolveRelayOptions({ ...base, ...(override as object) });
      } catch (e) {
        return e;
      }
    })();
    expect((error as InvalidOptionError).option).toBe(option);
  });

  it("rejects a missing kafka section unless a producer is given", () => {
    expect(() => resolveRelayOptions({ connectionString: "postgres://x", topics: ["t"] })).toThrow(InvalidOptionError);
  });
});

describe("relayOptionsFromEnv", () => {
  const env = {
    EVENTLANE_DATABASE_URL: "postgres://u:pw@db/x",
    EVENTLANE_KAFKA_BROKERS: "a:9092, b:9093",
    EVENTLANE_RELAY_TOPICS: "orders:6,payments",
  };
  it("parses variables into options", () => {
    const o = relayOptionsFromEnv({
      ...env,
      EVENTLANE_RELAY_LEASE_MS: "5000",
      EVENTLANE_RELAY_NOTIFY: "false",
      EVENTLANE_RELAY_SHARDS: "0,2",
      EVENTLANE_RELAY_SHARD_COUNT: "4",
    });
    expect(o).toMatchObject({
      connectionString: env.EVENTLANE_DATABASE_URL,
      kafka: { brokers: ["a:9092", "b:9093"] },
      topics: [{ name: "orders", partitions: 6 }, { name: "payments" }],
      leaseMs: 5000,
      notify: false,
      shards: [0, 2],
      shardCount: 4,
    });
    expect(() => resolveRelayOptions(o)).not.toThrow();
  });
  it.each([
    [{ EVENTLANE_DATABASE_URL: undefined }, "EVENTLANE_DATABASE_URL"],
    [{ EVENTLANE_KAFKA_BROKERS: "a" }, "EVENTLANE_KAFKA_BROKERS"],
    [{ EVENTLANE_RELAY_TOPICS: "bad topic" }, "EVENTLANE_RELAY_TOPICS"],
    [{ EVENTLANE_RELAY_LEASE_MS: "10s" }, "EVENTLANE_RELAY_LEASE_MS"],
    [{ EVENTLANE_RELAY_NOTIFY: "maybe" }, "EVENTLANE_RELAY_NOTIFY"],
    [{ EVENTLANE_KAFKA_SASL_MECHANISM: "plain", EVENTLANE_KAFKA_SASL_USERNAME: "u" }, "EVENTLANE_KAFKA_SASL_PASSWORD"],
  ])("throws RelayEnvError naming the variable: %j", (override, variable) => {
    const error = (() => {
      try {
        relayOptionsFromEnv({ ...env, ...override });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RelayEnvError);
    expect((error as RelayEnvError).variable).toBe(variable);
    expect((error as RelayEnvError).code).toBe("EVENTLANE_RELAY_INVALID_ENV");
    expect((error as RelayEnvError).message).not.toContain("pw");
  });
});

describe("classifyKafkaJsError", () => {
  const protocol = (type: string) => Object.assign(new Error(type), { name: "KafkaJSProtocolError", type });
  it.each([
    [protocol("MESSAGE_TOO_LARGE"), "record"],
    [protocol("CORRUPT_MESSAGE"), "record"],
    [protocol("NOT_LEADER_FOR_PARTITION"), "leadership"],
    [protocol("REQUEST_TIMED_OUT"), "timeout"],
    [protocol("THROTTLING_QUOTA_EXCEEDED"), "throttling"],
    [Object.assign(new Error("x"), { name: "KafkaJSConnectionError" }), "connection"],
    [
      Object.assign(new Error("x"), {
        name: "KafkaJSNumberOfRetriesExceeded",
        cause: Object.assign(new Error("y"), { name: "KafkaJSRequestTimeoutError" }),
      }),
      "timeout",
    ],
    [new Error("something else"), "unknown"],
  ] as const)("%s -> %s", (error, reason) => {
    expect(classifyKafkaJsError(error)).toBe(reason);
  });
});

describe("the shard back-off", () => {
  it("doubles from the base, is capped, and jitters within 80..120%", async () => {
    const delays = await Effect.runPromise(
      Effect.gen(function* () {
        const step = yield* Schedule.toStep(shardBackoff(200, 30_000));
        const out: number[] = [];
        for (let i = 0; i < 12; i++) out.push(Duration.toMillis((yield* Effect.orDie(step(Date.now(), undefined)))[1]));
        return out;
      }),
    );
    const nominal = [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000, 30000];
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(nominal[i]! * 0.8 - 1);
      expect(d).toBeLessThanOrEqual(nominal[i]! * 1.2 + 1);
    });
  });
});

describe("Kafka records", () => {
  const row: OutboxRow = {
    id: "1",
    eventId: "e1",
    topic: "t",
    key: "k",
    eventType: "x.y",
    schemaVersion: 2,
    aggregateType: null,
    aggregateId: null,
    aggregateVersion: null,
    keySequence: "7",
    payload: '{"a":1}',
    headers: { traceparent: "tp" },
    attempts: 0,
    createdAtMs: Date.now(),
  };
  it("carries the invariant-6 headers", () => {
    expect(toOutboundMessage(row)).toEqual({
      key: "k",
      value: '{"a":1}',
      headers: {
        traceparent: "tp",
        "eventlane-event-id": "e1",
        "eventlane-event-type": "x.y",
        "eventlane-schema-version": "2",
        "eventlane-key-sequence": "7",
      },
    });
    expect(toOutboundMessage({ ...row, headers: { h: 1 } })).toHaveProperty("reason");
    expect(toOutboundMessage({ ...row, payload: null })).toHaveProperty("reason");
  });
  it("counts headers in the size and chunks sends under the topic limit", () => {
    const m = toOutboundMessage(row) as Exclude<ReturnType<typeof toOutboundMessage>, { reason: string }>;
    const withBigHeader = { ...m, headers: { ...m.headers, big: "h".repeat(1000) } };
    expect(estimateSingleRecordBatchBytes(withBigHeader) - estimateSingleRecordBatchBytes(m)).toBeGreaterThanOrEqual(
      1003,
    );
    const items = Array.from({ length: 10 }, () => ({ message: withBigHeader }));
    const chunks = chunkBySize(items, 3000);
    expect(chunks.flat()).toHaveLength(10);
    for (const c of chunks)
      expect(61 + c.length * estimateSingleRecordBatchBytes(withBigHeader)).toBeLessThanOrEqual(3000 + 61 * c.length);
    expect(chunks.length).toBeGreaterThan(1);
  });
});

describe("partitioning", () => {
  it("kafkajs's default partitioner is Kafka's murmur2 (the hash the relay and core use)", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    for (let i = 0; i < 500; i++) {
      const key = `key-${i}-${"é".repeat(i % 5)}`;
      for (const n of [1, 3, 12]) {
        const partitionMetadata = Array.from({ length: n }, (_, p) => ({
          partitionId: p,
          leader: 1,
          partitionErrorCode: 0,
          replicas: [1],
          isr: [1],
        }));
        const p = partitioner({ topic: "t", partitionMetadata, message: { key, value: "v" } });
        expect(p).toBe(positiveModulo(murmur2(key), n));
      }
    }
  });
});
