import path from "node:path";
import { createEventStore, defineEvent } from "@eventlane/core";
import { Schema } from "effect";
import Fastify, { type FastifyInstance } from "fastify";
import { type Kysely, sql } from "kysely";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { eventlane, type EventlaneStatus } from "../src/index.ts";
import { migratedDatabase, parseSamples, promtool, RULES_FILE, type Sample, tempFiles } from "./support.ts";

const InvoiceIssued = defineEvent({
  type: "invoice_issued",
  schema: Schema.Struct({ invoiceId: Schema.String }),
  route: { topic: "billing.invoices", key: (d) => d.invoiceId },
});

let db: Kysely<unknown>;
let closeDb: () => Promise<void>;
let app: FastifyInstance;

beforeAll(async () => {
  ({ db, close: closeDb } = await migratedDatabase());
});
afterAll(() => closeDb());
beforeEach(() => {
  app = Fastify();
});
afterEach(() => app.close());

/** Prometheus's humanizeDuration for whole seconds of a minute or more. */
function humanizeDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  if (d > 0) return `${d}d ${h}h ${m}m ${s}s`;
  if (h > 0) return `${h}h ${m}m ${s}s`;
  return `${m}m ${s}s`;
}

/**
 * A promtool rule test whose input is what this instance's /metrics reported, held for 10 minutes
 * as if every scrape returned it (nothing is published meanwhile, so the lag would only grow).
 */
function ruleTest(lag: readonly Sample[], expectFiring: boolean): string {
  const series = lag
    .map(
      (s) =>
        `      - series: 'eventlane_outbox_lag_seconds{job="api", instance="api-1:3000", shard="${s.labels.shard}"}'\n        values: "${Math.floor(s.value)}x10"`,
    )
    .join("\n");
  const alerts = expectFiring
    ? lag
        .map(
          (s) => `          - exp_labels: { severity: warning, shard: "${s.labels.shard}" }
            exp_annotations:
              summary: "Eventlane outbox shard ${s.labels.shard} lags ${humanizeDuration(Math.floor(s.value))}"
              description: "The oldest pending outbox row of shard ${s.labels.shard} has waited more than 60 s for 2 minutes. Events are being written faster than they are published, or the relay is stuck (check eventlane_relay_publish_errors_total and the shard's leader)."`,
        )
        .join("\n")
    : "";
  return `rule_files:
  - ${JSON.stringify(RULES_FILE)}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
${series}
    alert_rule_test:
      - eval_time: 5m
        alertname: EventlaneOutboxLagHigh
        exp_alerts:${expectFiring ? `\n${alerts}` : " []"}
`;
}

async function runRuleTest(content: string): Promise<{ code: number; output: string }> {
  const { dir, cleanup } = await tempFiles({ "lag.test.yml": content });
  try {
    return await promtool(["test", "rules", path.join(dir, "lag.test.yml")]);
  } finally {
    await cleanup();
  }
}

describe("outbox lag over the threshold", () => {
  it("fires the lag alert from the real /metrics output while readiness stays 200 and the status route reports it", async () => {
    const store = createEventStore();
    // A live leader, so lag is the only condition.
    await sql`INSERT INTO eventlane.relay_shards (shard, epoch, owner, heartbeat_at) VALUES (0, 1, 'relay-a', now())`.execute(
      db,
    );
    await store.enqueue(db, InvoiceIssued, { invoiceId: "inv-1" });
    await app.register(eventlane, { db, backlog: { cacheTtlMs: 0 } });

    // Fresh row: no lag, no alert.
    const fresh = parseSamples((await app.inject({ method: "GET", url: "/metrics" })).body).filter(
      (s) => s.name === "eventlane_outbox_lag_seconds",
    );
    expect(fresh).toHaveLength(1);
    expect(fresh[0]?.value).toBeLessThan(60);
    const quiet = await runRuleTest(ruleTest(fresh, false));
    expect(quiet.output).toContain("SUCCESS");
    expect(quiet.code).toBe(0);

    // The relay stalls: the row waits ten minutes.
    await sql`UPDATE eventlane.outbox SET created_at = clock_timestamp() - interval '10 minutes'`.execute(db);
    const lagging = parseSamples((await app.inject({ method: "GET", url: "/metrics" })).body).filter(
      (s) => s.name === "eventlane_outbox_lag_seconds",
    );
    expect(lagging[0]?.value).toBeGreaterThanOrEqual(600);
    const firing = await runRuleTest(ruleTest(lagging, true));
    expect(firing.output).toContain("SUCCESS");
    expect(firing.code).toBe(0);
    // The same input against a "not firing" expectation fails: the test above is not vacuous.
    expect((await runRuleTest(ruleTest(lagging, false))).code).not.toBe(0);

    // Readiness is about this instance only: still 200.
    const ready = await app.inject({ method: "GET", url: "/health/ready" });
    expect(ready.statusCode).toBe(200);

    const res = await app.inject({ method: "GET", url: "/eventlane/status" });
    expect(res.statusCode).toBe(200);
    const status = res.json<EventlaneStatus>();
    expect(status.status).toBe("degraded");
    const lag = status.conditions.find((c) => c.name === "outbox_lag");
    expect(lag).toMatchObject({ firing: true, threshold: 60, shards: [0] });
    expect(lag?.value).toBeGreaterThanOrEqual(600);
    expect(status.conditions.filter((c) => c.firing).map((c) => c.name)).toEqual(["outbox_lag"]);
    expect(status.backlog).toMatchObject({ available: true, pendingRows: 1, shardsWithoutLeader: 0 });
    expect(res.body).not.toContain("inv-1");
    expect(app.eventlane.status).toBeTypeOf("function");
  });
});
