import { readFileSync } from "node:fs";
import { Headers } from "@eventlane/core";
import { describe, expect, it } from "vitest";
import { parseDuration } from "../src/args/time.ts";
import { COMMANDS, ExitCodes, runCli } from "../src/index.ts";
import { Redactor } from "../src/output/redact.ts";
import { planReplay, type ReplayCandidate } from "../src/replay/plan-replay.ts";
import { TopicAudit, type AuditMessage, type ExpectedEvent } from "../src/verify/topic-audit.ts";

async function run(argv: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    env,
    io: {
      stdout: (t) => {
        stdout += t;
      },
      stderr: (t) => {
        stderr += t;
      },
    },
  });
  return { code, stdout, stderr };
}

describe("the command line", () => {
  it("refuses unknown commands, actions and flags with exit code 2, naming them", async () => {
    const unknownCommand = await run(["stats"]);
    expect(unknownCommand.code).toBe(ExitCodes.usage);
    expect(unknownCommand.stderr).toContain('unknown command "stats"');
    const unknownAction = await run(["dead-letters", "purge"]);
    expect(unknownAction.code).toBe(2);
    expect(unknownAction.stderr).toContain('unknown action "purge"');
    const unknownFlag = await run(["status", "--shema", "x"]);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain("unknown option --shema");
    const noValue = await run(["verify", "--topic"]);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr).toContain("--topic needs a value");
    const twice = await run(["status", "--limit", "1", "--limit", "2"]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain("--limit given more than once");
    const positional = await run(["status", "extra"]);
    expect(positional.code).toBe(2);
    const badDuration = await run(["dead-letters", "list", "--older-than", "an hour"], {
      EVENTLANE_DATABASE_URL: "postgres://127.0.0.1:1/x",
    });
    expect(badDuration.code).toBe(2);
    expect(badDuration.stderr).toContain("--older-than");
    const bothAndNeither = await run(["dead-letters", "requeue"]);
    expect(bothAndNeither.code).toBe(2);
    const filterWithoutAll = await run(["dead-letters", "skip", "3", "--topic", "t"]);
    expect(filterWithoutAll.code).toBe(2);
    const noSelection = await run(["replay", "--to-topic", "t"]);
    expect(noSelection.code).toBe(2);
    expect(noSelection.stderr).toContain("select the events");
    const noTarget = await run(["replay", "--stream", "s"]);
    expect(noTarget.code).toBe(2);
    expect(noTarget.stderr).toContain("--to-original-topic");
  });

  it("exits 3 naming what is missing from the configuration, and 2 for a bad schema flag", async () => {
    const noDb = await run(["status"]);
    expect(noDb.code).toBe(ExitCodes.environment);
    expect(noDb.stderr).toContain("EVENTLANE_DATABASE_URL");
    const noBrokers = await run(["verify", "--topic", "t"], { EVENTLANE_DATABASE_URL: "postgres://127.0.0.1:1/x" });
    expect(noBrokers.code).toBe(3);
    expect(noBrokers.stderr).toContain("EVENTLANE_KAFKA_BROKERS");
    const badSchema = await run(["status", "--schema", "Bad-Name"], {
      EVENTLANE_DATABASE_URL: "postgres://127.0.0.1:1/x",
    });
    expect(badSchema.code).toBe(2);
    const badSchemaEnv = await run(["status"], {
      EVENTLANE_DATABASE_URL: "postgres://x/y",
      EVENTLANE_SCHEMA: "Bad-Name",
    });
    expect(badSchemaEnv.code).toBe(3);
    expect(badSchemaEnv.stderr).toContain("EVENTLANE_SCHEMA");
  });

  it("prints help for the program, a group and every command, with the exit codes", async () => {
    const main = await run(["--help"]);
    expect(main.code).toBe(0);
    for (const c of COMMANDS) expect(main.stdout).toContain(c.name);
    expect(main.stdout).toContain("Exit codes");
    const group = await run(["dead-letters", "--help"]);
    expect(group.code).toBe(0);
    expect(group.stdout).toContain("dead-letters requeue");
    for (const c of COMMANDS) {
      const help = await run([...c.name.split(" "), "--help"]);
      expect(help.code).toBe(0);
      for (const o of c.options) expect(help.stdout).toContain(`--${o.name}`);
      expect(help.stdout).toMatch(/Exit codes:\n {2}0 {2}/);
    }
    const bare = await run([]);
    expect(bare.code).toBe(2);
  });

  it("never prints a connection string or a password it was given", async () => {
    const url = "postgres://ops:s3cr3t-pw@127.0.0.1:1/db";
    const r = await run(["status", "--database-url", url, "--schema", url]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain("s3cr3t-pw");
    expect(r.stderr).toContain("[redacted]");
    const redactor = new Redactor();
    redactor.addConnectionString("postgres://u:p%40ss!word@h/d");
    redactor.addSecret("sasl-secret");
    expect(redactor.redact("a postgres://u:p%40ss!word@h/d b p@ss!word c sasl-secret password=hunter2")).toBe(
      "a [redacted] b [redacted] c [redacted] password=[redacted]",
    );
  });

  it("parses durations as operators write them", () => {
    expect(parseDuration("x", "90s")).toBe(90_000);
    expect(parseDuration("x", "1h30m")).toBe(5_400_000);
    expect(parseDuration("x", "2d")).toBe(172_800_000);
    expect(parseDuration("x", "250ms")).toBe(250);
    expect(() => parseDuration("x", "1 hour")).toThrow(/not a duration/);
    expect(() => parseDuration("x", "5")).toThrow(/not a duration/);
  });
});

describe("the README", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

  it("documents every command, every flag, every variable and every exit code", () => {
    for (const c of COMMANDS) {
      expect(readme).toContain(`eventlane ${c.name}`);
      for (const o of c.options) {
        expect(readme, `${c.name} --${o.name}`).toContain(`--${o.name}`);
        if (o.env !== undefined) expect(readme).toContain(o.env);
      }
    }
    for (const code of Object.values(ExitCodes)) expect(readme).toMatch(new RegExp(`\\| ${code} +\\|`));
  });
});

const candidate = (over: Partial<ReplayCandidate> & { eventId: string }): ReplayCandidate => ({
  sourceTopic: "orders",
  key: "k",
  keyHash: 1,
  eventType: "t",
  schemaVersion: 1,
  aggregateType: null,
  aggregateId: null,
  aggregateVersion: null,
  keySequence: null,
  payload: "{}",
  headers: {},
  outboxId: "1",
  status: "published",
  ...over,
});

describe("planning a replay", () => {
  it("keeps event ids and positions, adds the replay marker, and puts each key's rows in position order", () => {
    const plan = planReplay(
      [
        candidate({
          eventId: "e3",
          key: "a",
          aggregateVersion: 3,
          sourceTopic: null,
          status: "events-only",
          outboxId: null,
        }),
        candidate({
          eventId: "x1",
          key: "b",
          keySequence: "1",
          headers: { "eventlane-replay": "old", traceparent: "tp" },
        }),
        candidate({ eventId: "e1", key: "a", aggregateVersion: 1 }),
        candidate({ eventId: "e2", key: "a", aggregateVersion: 2 }),
      ],
      { toTopic: "orders.replay", toOriginalTopic: false },
      "R1",
    );
    expect(plan.rows.map((r) => `${r.key}:${r.position}`)).toEqual(["a:1", "b:1", "a:2", "a:3"]);
    expect(plan.rows.map((r) => r.eventId)).toEqual(["e1", "x1", "e2", "e3"]);
    expect(plan.rows[1]!.headers).toEqual({ "eventlane-replay": "R1", traceparent: "tp" });
    expect(plan.rows[1]!.keySequence).toBe("1");
    expect(plan.rows.every((r) => r.topic === "orders.replay")).toBe(true);
  });

  it("leaves out what was never published and refuses the original topic or an unknown one", () => {
    const plan = planReplay(
      [
        candidate({ eventId: "p", status: "pending" }),
        candidate({ eventId: "d", status: "dead_lettered", outboxId: "9" }),
        candidate({ eventId: "s", status: "skipped" }),
        candidate({ eventId: "o" }),
        candidate({ eventId: "u", sourceTopic: null, status: "events-only", outboxId: null }),
      ],
      { toTopic: undefined, toOriginalTopic: false },
      "R",
    );
    expect(plan.excluded.map((e) => e.eventId)).toEqual(["p", "d", "s"]);
    expect(plan.excluded[1]!.why).toContain("dead-letters requeue 9");
    expect(plan.toOriginalTopic.map((c) => c.eventId)).toEqual(["o"]);
    expect(plan.unknownTopic.map((c) => c.eventId)).toEqual(["u"]);
    expect(plan.rows).toEqual([]);
    const allowed = planReplay([candidate({ eventId: "o" })], { toTopic: undefined, toOriginalTopic: true }, "R");
    expect(allowed.rows.map((r) => r.topic)).toEqual(["orders"]);
  });
});

const message = (
  partition: number,
  offset: number,
  key: string,
  eventId: string,
  seq: number,
  extra = {},
): AuditMessage => ({
  partition,
  offset: String(offset),
  key,
  timestamp: 1_000 + offset,
  headers: { [Headers.eventId]: eventId, [Headers.keySequence]: String(seq), ...extra },
});

const expected = (eventId: string, key: string, partition: number, createdAtMs: number): ExpectedEvent => ({
  eventId,
  replayId: null,
  key,
  partition,
  position: null,
  createdAt: new Date(createdAtMs),
  outboxId: "1",
  source: "outbox",
});

describe("auditing a topic", () => {
  it("counts duplicates, finds first occurrences out of position order and keys on two partitions", () => {
    const audit = new TopicAudit([
      { partition: 0, low: "0", high: "10" },
      { partition: 1, low: "0", high: "10" },
    ]);
    audit.observe(message(0, 0, "a", "a1", 1));
    audit.observe(message(0, 1, "a", "a2", 2));
    audit.observe(message(0, 2, "a", "a1", 1)); // redelivered: a duplicate, not a reorder
    audit.observe(message(0, 3, "a", "a3", 3));
    audit.observe(message(0, 4, "a", "planted", 2)); // a new event with an old position
    audit.observe(message(0, 5, "a", "a2", 2, { "eventlane-replay": "R" })); // a replay: its own order
    audit.observe(message(1, 0, "a", "a4", 4)); // the key on a second partition
    audit.observe({ partition: 1, offset: "1", key: "x", timestamp: 0, headers: {} });
    const f = audit.reconcile([expected("a1", "a", 0, 0), expected("a3", "a", 0, 0)], {
      compacted: false,
      skippedKeys: new Set(),
    });
    expect(f.messages).toBe(8);
    expect(f.foreignMessages).toBe(1);
    expect(f.replayedMessages).toBe(1);
    expect(f.duplicates.count).toBe(1);
    expect(f.duplicates.listed[0]).toMatchObject({ eventId: "a1", offset: "2", firstOffset: "0" });
    expect(f.reordered.listed).toEqual([
      expect.objectContaining({
        eventId: "planted",
        offset: "4",
        position: 2,
        previousPosition: 3,
        previousOffset: "3",
      }),
    ]);
    expect(f.splitKeys.listed).toEqual([{ key: "a", partitions: [0, 1] }]);
    expect(f.present).toBe(2);
    expect(f.ok).toBe(false);
  });

  it("reports an absent event as expired when its partition lost older records, else as missing", () => {
    const audit = new TopicAudit([
      { partition: 0, low: "5", high: "7" },
      { partition: 1, low: "0", high: "1" },
    ]);
    audit.observe(message(0, 5, "a", "a6", 6)); // timestamp 1005
    audit.observe(message(0, 6, "a", "a7", 7));
    audit.observe(message(1, 0, "b", "b1", 1));
    const f = audit.reconcile(
      [
        expected("a1", "a", 0, 900), // written before the first retained record was sent: expired
        expected("a9", "a", 0, 2_000), // written after it: missing
        expected("b0", "b", 1, 10), // partition 1 lost nothing: missing
        expected("a6", "a", 0, 1_000),
      ],
      { compacted: false, skippedKeys: new Set() },
    );
    expect(f.expired.listed.map((m) => m.eventId)).toEqual(["a1"]);
    expect(f.missing.listed.map((m) => m.eventId)).toEqual(["a9", "b0"]);
    expect(f.missing.listed[0]).toMatchObject({ key: "a", partition: 0, partitionLowOffset: "5" });
    expect(f.present).toBe(1);
    expect(f.ok).toBe(false);
  });
});
