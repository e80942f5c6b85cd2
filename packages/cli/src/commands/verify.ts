import { murmur2, positiveModulo } from "@eventlane/core/internal";
import kafkajs from "kafkajs";
import { HELP_OPTION, type OptionSpec } from "../args/options.ts";
import { parseDuration, parsePositiveInteger, parseTime } from "../args/time.ts";
import type { Command } from "../command.ts";
import { BROKERS_OPTION, DATABASE_OPTIONS, JSON_OPTION, resolveDatabase, resolveKafka } from "../config/config.ts";
import { checkCoreSchema, connectAdmin, kafkaClient, openDatabase, topicPartitions } from "../config/connections.ts";
import {
  readDatabaseNow,
  readEventsWithoutOutbox,
  readPublishedRows,
  readSkippedKeys,
  readTopicEventTypes,
} from "../database/statements.ts";
import { UsageError } from "../errors.ts";
import { ExitCodes } from "../exit-codes.ts";
import { formatTime, plural, truncate } from "../output/format.ts";
import { renderTable } from "../output/table.ts";
import { readPartitionRanges, readTopicToEnd } from "../verify/read-topic.ts";
import { type AuditFindings, type ExpectedEvent, type MissingEvent, TopicAudit } from "../verify/topic-audit.ts";

const TOPIC: OptionSpec = {
  name: "topic",
  type: "string",
  value: "<topic>",
  description: "the topic to verify (required)",
};
const SINCE: OptionSpec = {
  name: "since",
  type: "string",
  value: "<time>",
  description: "expect only events written at or after this time (ISO 8601, or a duration ago: 2h)",
};
const EVENT_TYPE: OptionSpec = {
  name: "event-type",
  type: "string",
  multiple: true,
  value: "<type>",
  description: "an event type routed to the topic, to check its events whose outbox rows are gone",
};
const TIMEOUT: OptionSpec = {
  name: "timeout",
  type: "string",
  value: "<duration>",
  description: "give up reading the topic after this long (default 2m)",
};
const MAX_LISTED: OptionSpec = {
  name: "max-listed",
  type: "string",
  value: "<n>",
  description: "list at most n events per finding (default 100; counts are always complete)",
};

/** `eventlane verify --json`. */
export interface VerifyReport extends AuditFindings {
  readonly topic: string;
  /** Events published (rows marked published) at or before this database time are expected. */
  readonly cutoff: string;
  readonly since: string | null;
  readonly partitions: readonly {
    readonly partition: number;
    readonly lowOffset: string;
    readonly endOffset: string;
    readonly firstRecordAt: string | null;
  }[];
  readonly retentionMs: string | null;
  readonly cleanupPolicy: string | null;
  /**
   * Event types whose events without outbox rows were checked, and the event-sourced types seen on
   * the topic that were not (the outbox no longer routes them to this topic alone: name them).
   */
  readonly eventTypes: { readonly checked: readonly string[]; readonly unchecked: readonly string[] };
}

export const verifyCommand: Command = {
  name: "verify",
  summary: "read a topic back and reconcile it with the database: missing, reordered, split keys",
  usage: "verify --topic <topic> [--since <time>] [--event-type <type>]... [--timeout <d>] [--json]",
  details: `Takes a cut-off from the database clock, then reads the topic from the earliest offset each
partition still holds to its end offset (read_committed), and checks:
  - present: every event the database says was published to the topic at or before the cut-off
    (outbox rows marked published; event-sourced events whose outbox rows are gone, for the event
    types the outbox routes to the topic or --event-type names) has a record, the original and
    each replay apart;
  - order: for each key, the first occurrences come in position order (key sequence or aggregate
    version), the originals and each replay (eventlane-replay) apart;
  - one partition per key.
Records of an event read more than once are counted as duplicates (at-least-once allows them). An
absent event older than the first record its partition still holds, on a partition that has lost
records, is reported as expired by the topic's retention, not missing; on a compacted topic, as
compacted when a later record of its key is there. The outbox and events tables are scanned: run it
against a replica if they are large.`,
  options: [
    ...DATABASE_OPTIONS,
    BROKERS_OPTION,
    TOPIC,
    SINCE,
    EVENT_TYPE,
    TIMEOUT,
    MAX_LISTED,
    JSON_OPTION,
    HELP_OPTION,
  ],
  positionals: { min: 0, max: 0 },
  exitCodes: {
    ok: "every expected event is there, in order, each key on one partition",
    finding: "an event is missing or reordered, or a key is on two partitions (keys and offsets listed)",
  },
  async run(ctx) {
    const v = ctx.args.values;
    const topic = typeof v.topic === "string" ? v.topic.trim() : "";
    if (topic === "") throw new UsageError({ message: "--topic <topic> is required" });
    const since = typeof v.since === "string" ? parseTime("since", v.since, new Date()) : undefined;
    const timeoutMs = typeof v.timeout === "string" ? parseDuration("timeout", v.timeout) : 120_000;
    const maxListed =
      typeof v["max-listed"] === "string" ? parsePositiveInteger("max-listed", v["max-listed"], 100_000) : 100;
    const namedTypes = Array.isArray(v["event-type"]) ? (v["event-type"] as string[]) : [];
    const target = resolveDatabase(ctx.args, ctx.env);
    const kafkaTarget = resolveKafka(ctx.args, ctx.env, true);

    const database = await openDatabase(target.url, "the outbox's database");
    try {
      await checkCoreSchema(database, target);
      const n = target.tables;
      const kafka = kafkaClient(kafkaTarget);
      const admin = await connectAdmin(kafka);
      try {
        const partitionCount = await topicPartitions(admin, topic);
        const configs = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [
            { type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ["retention.ms", "cleanup.policy"] },
          ],
        });
        const entries = configs.resources[0]?.configEntries ?? [];
        const config = (name: string) => entries.find((e) => e.configName === name)?.configValue ?? null;
        const cleanupPolicy = config("cleanup.policy");

        // 1. The cut-off, and what the database holds without outbox rows, before the end offsets:
        //    all of it was processed before this moment, so sent before those offsets.
        const cutoff = await readDatabaseNow(database.db);
        const routed = await readTopicEventTypes(database.db, n, topic);
        const checked = [
          ...new Set([...routed.filter((t) => t.topics === 1).map((t) => t.event_type), ...namedTypes]),
        ].sort();
        const eventsWithoutOutbox = await readEventsWithoutOutbox(database.db, n, checked, cutoff, since);
        // 2. The end offsets, then the topic up to them.
        const ranges = await readPartitionRanges(admin, topic);
        const audit = new TopicAudit(ranges, maxListed);
        await readTopicToEnd({ kafka, admin, topic, ranges, timeoutMs, onMessage: (m) => audit.observe(m) });
        // 3. Rows marked published by the cut-off: each was acknowledged by Kafka before its mark.
        const published = await readPublishedRows(database.db, n, topic, cutoff, since);
        const skippedKeys = await readSkippedKeys(database.db, n, topic);

        function* expected(): Generator<ExpectedEvent> {
          for (const r of published) {
            yield {
              eventId: r.event_id,
              replayId: r.replay_id,
              key: r.key,
              partition: positiveModulo(r.key_hash, partitionCount),
              position: r.aggregate_version ?? (r.key_sequence === null ? null : Number(r.key_sequence)),
              createdAt: r.created_at,
              outboxId: r.id,
              source: "outbox",
            };
          }
          for (const e of eventsWithoutOutbox) {
            yield {
              eventId: e.event_id,
              replayId: null,
              key: e.stream_id,
              partition: positiveModulo(murmur2(e.stream_id), partitionCount),
              position: e.version,
              createdAt: e.created_at,
              outboxId: null,
              source: "events",
            };
          }
        }
        const findings = audit.reconcile(expected(), {
          compacted: cleanupPolicy?.includes("compact") ?? false,
          skippedKeys,
        });
        const report: VerifyReport = {
          topic,
          cutoff: cutoff.toISOString(),
          since: since?.toISOString() ?? null,
          partitions: ranges.map((r) => {
            const first = audit.firstRetained(r.partition);
            return {
              partition: r.partition,
              lowOffset: r.low,
              endOffset: r.high,
              firstRecordAt: first === undefined ? null : new Date(first.timestamp).toISOString(),
            };
          }),
          retentionMs: config("retention.ms"),
          cleanupPolicy,
          eventTypes: {
            checked,
            unchecked: [...audit.eventSourcedTypes].filter((t) => !checked.includes(t)).sort(),
          },
          ...findings,
        };
        ctx.print(report, () => verifyText(report));
        return report.ok ? ExitCodes.ok : ExitCodes.finding;
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    } finally {
      await database.close();
    }
  },
};

function absentTable(list: readonly MissingEvent[]): string {
  return renderTable(
    [
      { heading: "key" },
      { heading: "partition", align: "right" },
      { heading: "position", align: "right" },
      { heading: "event id" },
      { heading: "outbox id", align: "right" },
      { heading: "replay" },
      { heading: "written" },
    ],
    list.map((m) => [
      truncate(m.key, 40),
      String(m.partition),
      m.position === null ? "-" : String(m.position),
      m.eventId,
      m.outboxId ?? "(gone)",
      m.replayId ?? "-",
      m.createdAt,
    ]),
  );
}

function more(count: number, listed: number): string {
  return count > listed ? `\n(${count - listed} more; --max-listed or --json)` : "";
}

function verifyText(r: VerifyReport): string {
  const out: string[] = [];
  out.push(`Topic ${r.topic}: ${plural(r.partitions.length, "partition")}, cut-off ${formatTime(new Date(r.cutoff))}`);
  out.push(
    renderTable(
      [
        { heading: "partition", align: "right" },
        { heading: "from offset", align: "right" },
        { heading: "to offset", align: "right" },
        { heading: "first record" },
      ],
      r.partitions.map((p) => [String(p.partition), p.lowOffset, p.endOffset, p.firstRecordAt ?? "-"]),
    ),
  );
  out.push(
    `Read ${plural(r.messages, "record")}: ${plural(r.distinctEvents, "distinct event")}, ${plural(r.duplicates.count, "duplicate")}, ` +
      `${r.replayedMessages} replayed, ${r.foreignMessages} not Eventlane's, ${r.unpositioned} without a position`,
  );
  out.push(
    `Expected ${r.expected.outboxRows + r.expected.eventsWithoutOutbox} (outbox rows ${r.expected.outboxRows}, ` +
      `events without outbox rows ${r.expected.eventsWithoutOutbox}): present ${r.present}, missing ${r.missing.count}, ` +
      `expired ${r.expired.count}` +
      (r.compacted.count > 0 ? `, compacted ${r.compacted.count}` : "") +
      (r.unverifiable.count > 0 ? `, unverifiable ${r.unverifiable.count}` : ""),
  );
  if (r.missing.count > 0) {
    out.push("", `MISSING: ${plural(r.missing.count, "event")} published per the database but not in the topic:`);
    out.push(absentTable(r.missing.listed) + more(r.missing.count, r.missing.listed.length));
  }
  if (r.reordered.count > 0) {
    out.push("", `REORDERED: ${plural(r.reordered.count, "event")} after a later position of its key:`);
    out.push(
      renderTable(
        [
          { heading: "key" },
          { heading: "partition", align: "right" },
          { heading: "offset", align: "right" },
          { heading: "position", align: "right" },
          { heading: "after position", align: "right" },
          { heading: "at offset", align: "right" },
          { heading: "event id" },
          { heading: "replay" },
        ],
        r.reordered.listed.map((x) => [
          truncate(x.key, 40),
          String(x.partition),
          x.offset,
          `${x.positionKind} ${x.position}`,
          String(x.previousPosition),
          x.previousOffset,
          x.eventId,
          x.replayId ?? "-",
        ]),
      ) + more(r.reordered.count, r.reordered.listed.length),
    );
  }
  if (r.splitKeys.count > 0) {
    out.push("", `SPLIT KEYS: ${plural(r.splitKeys.count, "key")} on more than one partition:`);
    out.push(
      renderTable(
        [{ heading: "key" }, { heading: "partitions" }],
        r.splitKeys.listed.map((k) => [truncate(k.key, 60), k.partitions.join(", ")]),
      ) + more(r.splitKeys.count, r.splitKeys.listed.length),
    );
  }
  if (r.expired.count > 0) {
    out.push(
      "",
      `Expired: ${plural(r.expired.count, "event")} older than the first record ${r.expired.count === 1 ? "its" : "their"} partition still holds (retention.ms ${r.retentionMs ?? "?"}): not missing.`,
    );
  }
  if (r.unverifiable.count > 0) {
    out.push(
      "",
      `Unverifiable: ${plural(r.unverifiable.count, "event")} without outbox rows, of keys with a skipped dead letter (maybe never sent):`,
    );
    out.push(absentTable(r.unverifiable.listed) + more(r.unverifiable.count, r.unverifiable.listed.length));
  }
  if (r.eventTypes.unchecked.length > 0) {
    out.push(
      "",
      `Event-sourced types on the topic whose events without outbox rows were not checked: ${r.eventTypes.unchecked.join(", ")} (name them with --event-type)`,
    );
  }
  out.push(
    "",
    r.ok
      ? "OK: every expected event is present, in order per key, each key on one partition."
      : "FAILED: see the findings above.",
  );
  return out.join("\n");
}
