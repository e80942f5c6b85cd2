import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { PACKAGE_DIR, promtool, RULES_FILE } from "./support.ts";

describe("shipped alert rules", () => {
  it("pass promtool check rules", async () => {
    const r = await promtool(["check", "rules", RULES_FILE]);
    expect(r.output).toContain("SUCCESS: 11 rules found");
    expect(r.code).toBe(0);
  });

  it("fire as their unit tests expect (promtool test rules)", async () => {
    const r = await promtool(["test", "rules", path.join(PACKAGE_DIR, "alerts", "eventlane.rules.test.yml")]);
    expect(r.output).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  it("cover lag, no leader, dead letters, parked keys, relay down, the NOTIFY queue and consumer lag", async () => {
    const rules = await readFile(RULES_FILE, "utf8");
    for (const alert of [
      "EventlaneOutboxLagHigh",
      "EventlaneShardWithoutLeader",
      "EventlaneDeadLetters",
      "EventlaneParkedKeys",
      "EventlaneRelayDown",
      "EventlaneNotifyQueueFilling",
      "EventlaneConsumerLagHigh",
    ]) {
      expect(rules).toContain(`alert: ${alert}`);
    }
  });
});

describe("shipped Grafana dashboard", () => {
  it("is valid JSON whose queries use only metrics the plugin exports", async () => {
    const dashboard = JSON.parse(await readFile(path.join(PACKAGE_DIR, "dashboards", "eventlane.json"), "utf8")) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const exported = new Set([
      "eventlane_outbox_pending_rows",
      "eventlane_outbox_lag_seconds",
      "eventlane_outbox_dead_letter_rows",
      "eventlane_outbox_parked_keys",
      "eventlane_outbox_shards",
      "eventlane_relay_shards_without_leader",
      "eventlane_relay_shard_heartbeat_age_seconds",
      "eventlane_notify_queue_usage_ratio",
      "eventlane_backlog_up",
      "eventlane_backlog_query_duration_seconds",
      "eventlane_relay_running",
      "eventlane_relay_producer_connected",
      "eventlane_relay_leader",
      "eventlane_relay_epoch",
      "eventlane_relay_published_total",
      "eventlane_relay_publish_errors_total",
      "eventlane_relay_record_failures_total",
      "eventlane_relay_dead_lettered_total",
      "eventlane_relay_key_actions_total",
      "eventlane_relay_leadership_changes_total",
      "eventlane_relay_errors_total",
      "eventlane_relay_batch_duration_seconds_bucket",
      "eventlane_commit_to_publish_seconds_bucket",
      "eventlane_consumer_lag_records",
      "eventlane_consumer_events_total",
      "eventlane_consumer_handler_failures_total",
      "eventlane_consumer_errors_total",
    ]);
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(8);
    for (const expr of exprs) {
      for (const name of expr.match(/eventlane_[a-z_]+/g) ?? []) expect(exported, `${name} in ${expr}`).toContain(name);
    }
  });
});
