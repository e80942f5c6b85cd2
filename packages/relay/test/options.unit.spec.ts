import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { RELAY_DEFAULTS, resolveRelayOptions } from "../src/index.ts";

const base = { connectionString: "postgres://nowhere/x", kafka: { brokers: ["h:9092"] }, topics: ["t"] };
const codeOf = (options: unknown) => {
  try {
    resolveRelayOptions(options as never);
  } catch (error) {
    return { code: (error as { code?: unknown }).code, option: (error as { option?: unknown }).option };
  }
  throw new Error("expected a throw");
};

describe("relay options", () => {
  it.each([
    [{ batchsize: 10 }, "batchsize"],
    [{ shardcount: 4 }, "shardcount"],
    [{ kafka: { brokers: ["h:9092"], acks: 1 } }, "kafka.acks"],
    [{ kafka: { brokers: ["h:9092"], maxInFlightRequests: 5 } }, "kafka.maxInFlightRequests"],
    [{ kafka: { brokers: ["h:9092"], clientid: "x" } }, "kafka.clientid"],
  ])("refuses %o naming %s", (patch, option) => {
    expect(codeOf({ ...base, ...patch })).toEqual({ code: "EVENTLANE_INVALID_OPTION", option });
  });

  it("says why a setting the guarantees depend on cannot be set", () => {
    expect(() => resolveRelayOptions({ ...base, kafka: { brokers: ["h:9092"], acks: 1 } } as never)).toThrow(
      /acks=all/,
    );
  });

  it("resolves the defaults of RELAY_DEFAULTS", () => {
    const r = resolveRelayOptions(base);
    expect(r).toMatchObject({
      shardCount: RELAY_DEFAULTS.shardCount,
      batchSize: RELAY_DEFAULTS.batchSize,
      leaseMs: RELAY_DEFAULTS.leaseMs,
      publishedRows: RELAY_DEFAULTS.publishedRows,
    });
    expect(r.kafka).toMatchObject({ clientId: RELAY_DEFAULTS.kafka.clientId, mode: RELAY_DEFAULTS.kafka.mode });
  });

  it("has a README option table that gives every default as RELAY_DEFAULTS has it", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const rows = new Map(
      [...readme.matchAll(/^\| `([\w.]+)` +\| ([^|]+?) +\|/gm)].map((m) => [m[1] as string, (m[2] as string).trim()]),
    );
    const expected = (value: unknown) => (typeof value === "string" ? `\`"${value}"\`` : String(value));
    const check = (name: string, value: unknown) => {
      const cell = rows.get(name);
      expect(cell, `README row for ${name}`).toBeDefined();
      // A cell may explain the default after it ("86400000 (one day; 0 = off)").
      expect(cell?.startsWith(expected(value)) || cell?.startsWith(`\`${String(value)}\``), `${name}: ${cell}`).toBe(
        true,
      );
    };
    for (const [key, value] of Object.entries(RELAY_DEFAULTS)) {
      if (key === "kafka") continue;
      check(key, value);
    }
    for (const [key, value] of Object.entries(RELAY_DEFAULTS.kafka)) check(`kafka.${key}`, value);
  });
});
