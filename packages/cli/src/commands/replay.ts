import { uuidv7 } from "@eventlane/core/internal";
import { murmur2 } from "@eventlane/core/internal";
import { HELP_OPTION, type OptionSpec } from "../args/options.ts";
import { parseOutboxId, parsePositiveInteger, parseTime } from "../args/time.ts";
import type { Command } from "../command.ts";
import {
  BROKERS_OPTION,
  DATABASE_OPTIONS,
  JSON_OPTION,
  relayTopicsFromEnv,
  resolveDatabase,
  resolveKafka,
} from "../config/config.ts";
import { checkCoreSchema, connectAdmin, kafkaClient, openDatabase, topicPartitions } from "../config/connections.ts";
import {
  insertReplayRows,
  readKeySequenceGaps,
  readOutboxStart,
  readParkedAmong,
  readReplayEventsWithoutOutbox,
  readReplayOutboxRows,
  REPLAY_HEADER,
  type ReplaySelection,
} from "../database/statements.ts";
import { UsageError } from "../errors.ts";
import { ExitCodes } from "../exit-codes.ts";
import { plural, truncate } from "../output/format.ts";
import { renderTable } from "../output/table.ts";
import { planReplay, type ReplayCandidate } from "../replay/plan-replay.ts";

const opt = (name: string, value: string, description: string): OptionSpec => ({
  name,
  type: "string",
  value,
  description,
});

const STREAM = opt("stream", "<stream id>", "the events of one event-sourced stream");
const KEY = opt("key", "<key>", "the events of one message key (a stream's key is its id)");
const TOPIC = opt("topic", "<topic>", "only events whose original topic is this one");
const FROM_ID = opt("from-id", "<outbox id>", "outbox ids from this one (inclusive)");
const TO_ID = opt("to-id", "<outbox id>", "outbox ids up to this one (inclusive)");
const SINCE = opt("since", "<time>", "events written at or after this time (ISO 8601, or a duration ago: 2h)");
const UNTIL = opt("until", "<time>", "events written before this time (ISO 8601, or a duration ago)");
const TO_TOPIC = opt("to-topic", "<topic>", "publish the replayed events to this topic");
const TO_ORIGINAL: OptionSpec = {
  name: "to-original-topic",
  type: "boolean",
  description: "allow replaying events to the topic they were published to (Eventlane consumers skip them)",
};
const DRY_RUN: OptionSpec = {
  name: "dry-run",
  type: "boolean",
  description: "show what would be replayed; write nothing",
};
const LIMIT = opt("limit", "<n>", "refuse selections of more than n events (default 10000)");

export const replayCommand: Command = {
  name: "replay",
  summary: "publish events again through the outbox: one stream, one key, or an id/time range",
  usage:
    "replay (--stream <id> | --key <key> | --from-id/--to-id | --since/--until) [--topic <t>] (--to-topic <t> | --to-original-topic) [--dry-run] [--json]",
  details: `Writes new outbox rows for the selected events, so the relay publishes them with its usual
order per key and fencing. A replayed event keeps its event id and its position headers (aggregate
version or key sequence) and adds ${REPLAY_HEADER}: <replay id>; it takes no new key sequence. An
Eventlane consumer therefore skips it as a duplicate unless it reads another topic (--to-topic) or
is a new consumer group; replaying to the original topic needs --to-original-topic.

Only published events are replayed (pending ones are on their way; dead letters are requeued with
dead-letters requeue). Event-sourced events are read from the events table, so they can be replayed
for ever; their original topic is known while their outbox row exists (else name it with --to-topic).
Enqueued events can be replayed only while their outbox rows exist (retention removes them): the
command says which ones are gone. With brokers configured, the target topics are checked to exist.
All rows of a replay are written in one transaction.`,
  options: [
    ...DATABASE_OPTIONS,
    STREAM,
    KEY,
    TOPIC,
    FROM_ID,
    TO_ID,
    SINCE,
    UNTIL,
    TO_TOPIC,
    TO_ORIGINAL,
    DRY_RUN,
    LIMIT,
    BROKERS_OPTION,
    JSON_OPTION,
    HELP_OPTION,
  ],
  positionals: { min: 0, max: 0 },
  exitCodes: {
    ok: "the events were written to the outbox (or listed, with --dry-run)",
    finding: "nothing to replay, or events whose topic is unknown (nothing written)",
  },
  async run(ctx) {
    const v = ctx.args.values;
    const str = (name: string) => (typeof v[name] === "string" ? (v[name] as string) : undefined);
    const now = new Date();
    const selection: ReplaySelection = {
      ...(str("stream") === undefined ? {} : { stream: str("stream")! }),
      ...(str("key") === undefined ? {} : { key: str("key")! }),
      ...(str("topic") === undefined ? {} : { topic: str("topic")! }),
      ...(str("from-id") === undefined ? {} : { fromId: parseOutboxId("--from-id", str("from-id")!) }),
      ...(str("to-id") === undefined ? {} : { toId: parseOutboxId("--to-id", str("to-id")!) }),
      ...(str("since") === undefined ? {} : { since: parseTime("since", str("since")!, now) }),
      ...(str("until") === undefined ? {} : { until: parseTime("until", str("until")!, now) }),
    };
    const s = selection;
    if (
      s.stream === undefined &&
      s.key === undefined &&
      s.fromId === undefined &&
      s.toId === undefined &&
      s.since === undefined &&
      s.until === undefined
    ) {
      throw new UsageError({
        message: "select the events: --stream, --key, --from-id/--to-id or --since/--until",
      });
    }
    const toTopic = str("to-topic");
    const toOriginalTopic = v["to-original-topic"] === true;
    if (toTopic === undefined && !toOriginalTopic) {
      throw new UsageError({
        message:
          "say where to: --to-topic <topic>, or --to-original-topic to publish them to their original topics again",
      });
    }
    const limit = str("limit") === undefined ? 10_000 : parsePositiveInteger("limit", str("limit")!, 1_000_000);
    const dryRun = v["dry-run"] === true;
    const target = resolveDatabase(ctx.args, ctx.env);
    const kafka = resolveKafka(ctx.args, ctx.env, false);

    const database = await openDatabase(target.url, "the outbox's database");
    try {
      await checkCoreSchema(database, target);
      const n = target.tables;
      const notes: string[] = [];
      const outboxRows = await readReplayOutboxRows(database.db, n, s, limit + 1);
      // Rows without an outbox row can only be taken by stream, key or time: ids and topics are gone with it.
      const byOutboxOnly = s.topic !== undefined || s.fromId !== undefined || s.toId !== undefined;
      const eventRows = byOutboxOnly ? [] : await readReplayEventsWithoutOutbox(database.db, n, s, limit + 1);
      if (outboxRows.length + eventRows.length > limit) {
        throw new UsageError({
          message: `the selection takes more than ${limit} events: narrow it, or raise --limit`,
        });
      }
      const candidates: ReplayCandidate[] = [
        ...eventRows.map(
          (e): ReplayCandidate => ({
            eventId: e.event_id,
            sourceTopic: null,
            key: e.stream_id,
            keyHash: murmur2(e.stream_id),
            eventType: e.event_type,
            schemaVersion: e.schema_version,
            aggregateType: e.stream_type,
            aggregateId: e.stream_id,
            aggregateVersion: e.version,
            keySequence: null,
            payload: null,
            headers: e.headers ?? {},
            outboxId: null,
            status: "events-only",
          }),
        ),
        ...outboxRows.map(
          (o): ReplayCandidate => ({
            eventId: o.event_id,
            sourceTopic: o.topic,
            key: o.key,
            keyHash: o.key_hash,
            eventType: o.event_type,
            schemaVersion: o.schema_version,
            aggregateType: o.aggregate_type,
            aggregateId: o.aggregate_id,
            aggregateVersion: o.aggregate_version,
            keySequence: o.key_sequence,
            payload: o.payload,
            headers: o.headers ?? {},
            outboxId: o.id,
            status: o.status as ReplayCandidate["status"],
          }),
        ),
      ];

      // Say which enqueued events are gone: their rows were the only copy.
      if (s.key !== undefined) {
        for (const g of await readKeySequenceGaps(database.db, n, s.key, s.topic)) {
          const first = g.first_in_outbox === null ? Number(g.last_sequence) + 1 : Number(g.first_in_outbox);
          if (first > 1) {
            notes.push(
              `key "${s.key}" on topic ${g.topic}: enqueued events with sequences 1 to ${first - 1} are no longer in the outbox (retention removed them) and cannot be replayed`,
            );
          }
        }
      }
      if (s.fromId !== undefined || s.since !== undefined) {
        const start = await readOutboxStart(database.db, n);
        const goneById = s.fromId !== undefined && (start.id === null || BigInt(start.id) > BigInt(s.fromId));
        const goneByTime = s.since !== undefined && (start.created_at === null || start.created_at > s.since);
        if (goneById || goneByTime) {
          notes.push(
            start.id === null
              ? "the outbox is empty: enqueued events of this range are gone and cannot be replayed"
              : `the outbox starts at id ${start.id} (written ${start.created_at?.toISOString()}): enqueued events before that are gone and cannot be replayed` +
                  (byOutboxOnly
                    ? "; event-sourced ones can be, selected by --stream, --key or --since/--until without --topic"
                    : ""),
          );
        }
      }
      if (byOutboxOnly && (s.stream !== undefined || s.key !== undefined)) {
        notes.push("events whose outbox rows are gone are not taken with --topic, --from-id or --to-id");
      }

      const replayId = uuidv7();
      const plan = planReplay(candidates, { toTopic, toOriginalTopic }, replayId);
      if (plan.toOriginalTopic.length > 0) {
        const topics = [...new Set(plan.toOriginalTopic.map((c) => c.sourceTopic))].join(", ");
        throw new UsageError({
          message: `${plural(plan.toOriginalTopic.length, "event")} would go back to ${topics}, the topic they were published to; Eventlane consumers of it skip them as duplicates. Pass --to-original-topic to do it anyway, or --to-topic another topic`,
        });
      }
      const excluded = plan.excluded;
      const json = (written: readonly string[] | null) => ({
        replayId,
        dryRun,
        count: plan.rows.length,
        rows: plan.rows.map((r, i) => ({
          eventId: r.eventId,
          key: r.key,
          eventType: r.eventType,
          fromTopic: r.sourceTopic,
          toTopic: r.topic,
          position: r.position,
          originalOutboxId: r.originalOutboxId,
          outboxId: written?.[i] ?? null,
        })),
        excluded,
        unknownTopic: plan.unknownTopic.map((c) => ({ eventId: c.eventId, key: c.key, version: c.aggregateVersion })),
        notes,
      });
      if (plan.unknownTopic.length > 0) {
        ctx.print(json(null), () =>
          [
            `${plural(plan.unknownTopic.length, "event")} of the selection ${plan.unknownTopic.length === 1 ? "has" : "have"} no outbox row any more, so ${plan.unknownTopic.length === 1 ? "its" : "their"} original topic is unknown: name the topic with --to-topic. Nothing was written.`,
            ...notes,
          ].join("\n"),
        );
        return ExitCodes.finding;
      }
      if (plan.rows.length === 0) {
        ctx.print(json(null), () =>
          ["Nothing to replay.", ...excluded.map((e) => `  ${e.eventId} (key ${e.key}): ${e.why}`), ...notes].join(
            "\n",
          ),
        );
        return ExitCodes.finding;
      }

      const targets = [...new Set(plan.rows.map((r) => r.topic))];
      const relayTopics = relayTopicsFromEnv(ctx.env);
      if (relayTopics !== undefined) {
        for (const t of targets) {
          if (!relayTopics.has(t))
            notes.push(`topic ${t} is not in EVENTLANE_RELAY_TOPICS: the relay will dead-letter these rows`);
        }
      }
      if (kafka !== undefined) {
        const admin = await connectAdmin(kafkaClient(kafka));
        try {
          for (const t of targets) await topicPartitions(admin, t);
        } finally {
          await admin.disconnect().catch(() => undefined);
        }
      } else {
        notes.push("no brokers configured: the target topics were not checked to exist");
      }
      const pairs = [
        ...new Map(plan.rows.map((r) => [`${r.topic}\u0000${r.key}`, { topic: r.topic, key: r.key }])).values(),
      ];
      for (const p of await readParkedAmong(database.db, n, pairs)) {
        notes.push(`key "${p.key}" on ${p.topic} is parked behind a dead letter: its replayed events wait for it`);
      }

      const written = dryRun ? null : await insertReplayRows(database.db, n, plan.rows);
      ctx.print(json(written), () => {
        const head = dryRun
          ? `Dry run: replay would write ${plural(plan.rows.length, "event")} to the outbox (nothing written).`
          : `Replay ${replayId}: ${plural(plan.rows.length, "event")} written to the outbox (ids ${written![0]} to ${written![written!.length - 1]}); the relay publishes them with ${REPLAY_HEADER}: ${replayId}.`;
        const shown = plan.rows.slice(0, 50);
        const table = renderTable(
          [
            { heading: "event id" },
            { heading: "key" },
            { heading: "event type" },
            { heading: "position", align: "right" },
            { heading: "from" },
            { heading: "to" },
          ],
          shown.map((r) => [
            r.eventId,
            truncate(r.key, 40),
            r.eventType,
            r.position === null ? "-" : String(r.position),
            r.sourceTopic ?? "(unknown)",
            r.topic,
          ]),
        );
        const more =
          plan.rows.length > shown.length ? `\n(${plan.rows.length - shown.length} more; --json lists all)` : "";
        const left =
          excluded.length === 0
            ? ""
            : `\nLeft out:\n${excluded.map((e) => `  ${e.eventId} (key ${e.key}): ${e.why}`).join("\n")}`;
        const noteText = notes.length === 0 ? "" : `\n${notes.map((x) => `Note: ${x}`).join("\n")}`;
        return `${head}\n${table}${more}${left}${noteText}`;
      });
      return ExitCodes.ok;
    } finally {
      await database.close();
    }
  },
};
