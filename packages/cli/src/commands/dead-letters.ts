import {
  consumerDeadLetters,
  DeadLetterNotFoundError as ConsumerDeadLetterNotFoundError,
  type DeadLetterActionResult,
  type DeadLetterFilter,
  DeadLetterReasons,
  type DeadLetterReason,
  type DeadLetterRow,
  DeadLetterStatuses,
  type DeadLetterStatus,
  type DeadLetterLog,
} from "@eventlane/consumer";
import {
  type DeadLetter,
  type DeadLetterActionOutcome,
  type DeadLetterDetail,
  DeadLetterNotFoundError,
  type DeadLetters,
  type ListDeadLettersOptions,
  outboxDeadLetters,
} from "@eventlane/relay";
import { HELP_OPTION, type OptionSpec } from "../args/options.ts";
import { parseDuration, parseOutboxId, parsePositiveInteger } from "../args/time.ts";
import type { Command, CommandContext } from "../command.ts";
import {
  CONSUMER_OPTIONS,
  type ConsumerTarget,
  DATABASE_OPTIONS,
  type DatabaseTarget,
  defaultActor,
  JSON_OPTION,
  resolveConsumer,
  resolveDatabase,
} from "../config/config.ts";
import { checkConsumerSchema, checkCoreSchema, type Database, openDatabase } from "../config/connections.ts";
import { UsageError } from "../errors.ts";
import { type ExitCode, ExitCodes } from "../exit-codes.ts";
import { formatAgo, formatTime, plural, truncate } from "../output/format.ts";
import { renderTable } from "../output/table.ts";

const TOPIC: OptionSpec = { name: "topic", type: "string", value: "<topic>", description: "only this topic" };
const KEY: OptionSpec = { name: "key", type: "string", value: "<key>", description: "only this message key" };
const REASON: OptionSpec = {
  name: "reason",
  type: "string",
  value: "<reason>",
  description:
    "only this reason: relay oversize, invalid-record, record, unrouted-topic; consumer " +
    DeadLetterReasons.join(", "),
};
const OLDER_THAN: OptionSpec = {
  name: "older-than",
  type: "string",
  value: "<duration>",
  description: "only dead letters older than this (90s, 15m, 1h, 2d)",
};
const STATUS: OptionSpec = {
  name: "status",
  type: "string",
  value: "<status>",
  description: `with --consumer: only this status (${DeadLetterStatuses.join(", ")}; default all)`,
};
const LIMIT: OptionSpec = { name: "limit", type: "string", value: "<n>", description: "list at most n (default 100)" };
const PAYLOAD: OptionSpec = {
  name: "payload",
  type: "boolean",
  description: "include the payload (the record's value) in the output",
};
const ALL: OptionSpec = {
  name: "all",
  type: "boolean",
  description: "every dead letter the filters take (at most 10000 per run), oldest first",
};
const ACTOR: OptionSpec = {
  name: "actor",
  type: "string",
  value: "<who>",
  description: "recorded with the action (default cli:<user>@<host>)",
};
const NOTE: OptionSpec = {
  name: "note",
  type: "string",
  value: "<text>",
  description: "why: recorded with the action",
};

const FILTERS = [TOPIC, KEY, REASON, OLDER_THAN];
const COMMON = [...DATABASE_OPTIONS, ...CONSUMER_OPTIONS];

const CONSUMER_NOTE = `With --consumer <schema> --name <consumer>: the dead letters of that consumer, in its own
database (--consumer-database-url, else the outbox's).`;

/** The relay's dead letters or a consumer's, opened for one command. */
type Target =
  | { readonly kind: "relay"; readonly database: Database; readonly target: DatabaseTarget; readonly log: DeadLetters }
  | {
      readonly kind: "consumer";
      readonly database: Database;
      readonly target: ConsumerTarget;
      readonly log: DeadLetterLog;
    };

async function withTarget<T>(ctx: CommandContext, run: (t: Target) => Promise<T>): Promise<T> {
  const consumer = resolveConsumer(ctx.args, ctx.env);
  if (consumer !== undefined) {
    const database = await openDatabase(consumer.url, "the consumer's database");
    try {
      await checkConsumerSchema(database, consumer.tables);
      const log = consumerDeadLetters(database.db, { name: consumer.name, schema: consumer.tables.schema });
      return await run({ kind: "consumer", database, target: consumer, log });
    } finally {
      await database.close();
    }
  }
  if (ctx.args.values.status !== undefined) {
    throw new UsageError({ message: "--status filters a consumer's dead letters: use it with --consumer" });
  }
  const target = resolveDatabase(ctx.args, ctx.env);
  const database = await openDatabase(target.url, "the outbox's database");
  try {
    await checkCoreSchema(database, target);
    const log = outboxDeadLetters(database.pool, { ...target.schemaOptions, actor: actorOf(ctx) });
    return await run({ kind: "relay", database, target, log });
  } finally {
    await database.close();
  }
}

function actorOf(ctx: CommandContext): string {
  const a = ctx.args.values.actor;
  if (typeof a === "string") {
    if (a.trim() === "" || a.length > 200) throw new UsageError({ message: "--actor: 1 to 200 characters" });
    return a.trim();
  }
  return defaultActor(ctx.env);
}

function noteOf(ctx: CommandContext): string | undefined {
  const n = ctx.args.values.note;
  return typeof n === "string" && n.trim() !== "" ? n.trim() : undefined;
}

interface Filters {
  readonly topic?: string;
  readonly key?: string;
  readonly reason?: string;
  readonly before?: Date;
}

function filtersOf(ctx: CommandContext): Filters {
  const v = ctx.args.values;
  const older = v["older-than"];
  return {
    ...(typeof v.topic === "string" ? { topic: v.topic } : {}),
    ...(typeof v.key === "string" ? { key: v.key } : {}),
    ...(typeof v.reason === "string" ? { reason: v.reason } : {}),
    ...(typeof older === "string" ? { before: new Date(Date.now() - parseDuration("older-than", older)) } : {}),
  };
}

function relayFilter(f: Filters): Omit<ListDeadLettersOptions, "limit"> {
  return {
    ...(f.topic === undefined ? {} : { topic: f.topic }),
    ...(f.key === undefined ? {} : { key: f.key }),
    ...(f.reason === undefined ? {} : { reason: f.reason }),
    ...(f.before === undefined ? {} : { deadLetteredBefore: f.before }),
  };
}

function consumerFilter(ctx: CommandContext, f: Filters): DeadLetterFilter {
  if (f.reason !== undefined && !(DeadLetterReasons as readonly string[]).includes(f.reason)) {
    throw new UsageError({ message: `--reason: a consumer's reasons are ${DeadLetterReasons.join(", ")}` });
  }
  const status = ctx.args.values.status;
  if (typeof status === "string" && !(DeadLetterStatuses as readonly string[]).includes(status)) {
    throw new UsageError({ message: `--status: one of ${DeadLetterStatuses.join(", ")}` });
  }
  return {
    ...(f.topic === undefined ? {} : { topic: f.topic }),
    ...(f.key === undefined ? {} : { key: f.key }),
    ...(f.reason === undefined ? {} : { reason: f.reason as DeadLetterReason }),
    ...(f.before === undefined ? {} : { before: f.before }),
    ...(typeof status === "string" ? { status: status as DeadLetterStatus } : {}),
  };
}

const relayJson = (d: DeadLetter) => ({
  outboxId: d.outboxId,
  eventId: d.eventId,
  topic: d.topic,
  key: d.key,
  eventType: d.eventType,
  attempts: d.attempts,
  reason: d.reason,
  lastError: d.lastError,
  createdAt: d.createdAt.toISOString(),
  deadLetteredAt: d.deadLetteredAt?.toISOString() ?? null,
});

const consumerJson = (d: DeadLetterRow, payload: boolean) => ({
  id: d.id,
  status: d.status,
  topic: d.topic,
  partition: d.partition,
  offset: d.offset,
  key: d.key,
  eventType: d.eventType,
  eventId: d.eventId,
  reason: d.reason,
  detail: d.detail,
  headers: d.headers,
  ...(payload ? { value: d.value } : { valueBytes: d.value === null ? null : Buffer.byteLength(d.value, "utf8") }),
  requestedBy: d.requestedBy,
  resolvedBy: d.resolvedBy,
  resolvedAt: d.resolvedAt?.toISOString() ?? null,
  createdAt: d.createdAt.toISOString(),
});

export const deadLettersListCommand: Command = {
  name: "dead-letters list",
  summary: "list dead letters (the relay's, or a consumer's with --consumer), oldest first",
  usage: "dead-letters list [filters] [--limit <n>] [--json] [--consumer <schema> --name <consumer>]",
  details: `The relay's dead letters are outbox rows it could not publish after its attempts; each parks its
(topic, key) until it is requeued or skipped.

${CONSUMER_NOTE}`,
  options: [...COMMON, ...FILTERS, STATUS, LIMIT, JSON_OPTION, HELP_OPTION],
  positionals: { min: 0, max: 0 },
  exitCodes: { ok: "listed (possibly none)" },
  run: (ctx) => {
    const limitText = ctx.args.values.limit;
    const limit = typeof limitText === "string" ? parsePositiveInteger("limit", limitText, 10_000) : 100;
    const f = filtersOf(ctx);
    const consumerF = ctx.args.values.consumer === undefined ? undefined : consumerFilter(ctx, f);
    return withTarget(ctx, async (t) => {
      const now = new Date();
      if (t.kind === "relay") {
        const rows = await t.log.list({ ...relayFilter(f), limit });
        ctx.print({ source: "relay", deadLetters: rows.map(relayJson) }, () =>
          rows.length === 0
            ? "No dead letters."
            : renderTable(
                [
                  { heading: "outbox id", align: "right" },
                  { heading: "topic" },
                  { heading: "key" },
                  { heading: "event type" },
                  { heading: "attempts", align: "right" },
                  { heading: "dead-lettered" },
                  { heading: "reason" },
                  { heading: "last error" },
                ],
                rows.map((d) => [
                  d.outboxId,
                  d.topic,
                  truncate(d.key, 40),
                  d.eventType,
                  String(d.attempts),
                  formatAgo(d.deadLetteredAt ?? d.createdAt, now),
                  d.reason ?? "-",
                  truncate(d.lastError, 60),
                ]),
              ),
        );
      } else {
        const rows = await t.log.list({ ...consumerF, limit });
        ctx.print(
          {
            source: "consumer",
            consumer: t.target.name,
            schema: t.target.tables.schema,
            deadLetters: rows.map((d) => consumerJson(d, false)),
          },
          () =>
            rows.length === 0
              ? "No dead letters."
              : renderTable(
                  [
                    { heading: "id", align: "right" },
                    { heading: "status" },
                    { heading: "topic" },
                    { heading: "partition:offset" },
                    { heading: "key" },
                    { heading: "event type" },
                    { heading: "reason" },
                    { heading: "created" },
                    { heading: "detail" },
                  ],
                  rows.map((d) => [
                    d.id,
                    d.status,
                    d.topic,
                    `${d.partition}:${d.offset}`,
                    truncate(d.key, 40),
                    d.eventType ?? "-",
                    d.reason,
                    formatAgo(d.createdAt, now),
                    truncate(d.detail, 50),
                  ]),
                ),
        );
      }
      return ExitCodes.ok;
    });
  },
};

export const deadLettersShowCommand: Command = {
  name: "dead-letters show",
  summary: "show one dead letter: its event, headers, history and what waits behind it",
  usage: "dead-letters show <id> [--payload] [--json] [--consumer <schema> --name <consumer>]",
  details: `<id> is the outbox id of a relay dead letter (as listed), or with --consumer the consumer dead
letter's id. The payload is left out unless --payload is given.

${CONSUMER_NOTE}`,
  options: [...COMMON, PAYLOAD, JSON_OPTION, HELP_OPTION],
  positionals: { min: 1, max: 1, name: "id" },
  exitCodes: { ok: "shown", finding: "there is no such dead letter" },
  run: (ctx) => {
    const id = parseOutboxId("id", ctx.args.positionals[0]!);
    const payload = ctx.args.values.payload === true;
    return withTarget(ctx, async (t) => {
      if (t.kind === "relay") {
        let d: DeadLetterDetail;
        try {
          d = await t.log.get(id);
        } catch (error) {
          if (!(error instanceof DeadLetterNotFoundError)) throw error;
          ctx.note(`outbox row ${id} is not a dead letter`);
          return ExitCodes.finding;
        }
        const json = {
          source: "relay",
          ...relayJson(d),
          status: d.status,
          schemaVersion: d.schemaVersion,
          aggregateType: d.aggregateType,
          aggregateId: d.aggregateId,
          aggregateVersion: d.aggregateVersion,
          keySequence: d.keySequence,
          headers: d.headers,
          ...(payload
            ? { payload: d.payload }
            : { payloadBytes: d.payload === null ? null : Buffer.byteLength(d.payload, "utf8") }),
          parksKey: d.parksKey,
          waitingRows: d.waitingRows,
          log: d.log.map((l) => ({ ...l, at: l.at.toISOString() })),
        };
        ctx.print(json, () => relayShowText(json, d));
      } else {
        let d: DeadLetterRow;
        try {
          d = await t.log.get(id);
        } catch (error) {
          if (!(error instanceof ConsumerDeadLetterNotFoundError)) throw error;
          ctx.note(`consumer "${t.target.name}" has no dead letter ${id}`);
          return ExitCodes.finding;
        }
        const json = { source: "consumer", consumer: t.target.name, ...consumerJson(d, payload) };
        ctx.print(json, () =>
          fields([
            ["dead letter", d.id],
            ["consumer", t.target.name],
            ["status", d.status],
            ["topic", d.topic],
            ["partition:offset", `${d.partition}:${d.offset}`],
            ["key", d.key ?? "-"],
            ["event type", d.eventType ?? "-"],
            ["event id", d.eventId ?? "-"],
            ["reason", d.reason],
            ["detail", d.detail],
            ["created", formatTime(d.createdAt)],
            ["requested by", d.requestedBy ?? "-"],
            ["resolved by", d.resolvedBy === null ? "-" : `${d.resolvedBy} at ${formatTime(d.resolvedAt)}`],
            ["headers", JSON.stringify(d.headers)],
            payload
              ? ["value", d.value ?? "null"]
              : ["value", `${d.value === null ? 0 : Buffer.byteLength(d.value, "utf8")} bytes (--payload to show)`],
          ]),
        );
      }
      return ExitCodes.ok;
    });
  },
};

function fields(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join("\n");
}

function relayShowText(json: { payloadBytes?: number | null; payload?: string | null }, d: DeadLetterDetail): string {
  const position =
    d.aggregateVersion !== null
      ? `aggregate ${d.aggregateType ?? "?"} ${d.aggregateId ?? "?"} version ${d.aggregateVersion}`
      : d.keySequence !== null
        ? `key sequence ${d.keySequence}`
        : "-";
  const head = fields([
    ["outbox id", d.outboxId],
    ["status", d.status],
    ["topic", d.topic],
    ["key", d.key],
    ["event", `${d.eventType} v${d.schemaVersion}, id ${d.eventId}`],
    ["position", position],
    ["attempts", String(d.attempts)],
    ["reason", d.reason ?? "-"],
    ["last error", d.lastError ?? "-"],
    ["created", formatTime(d.createdAt)],
    ["dead-lettered", formatTime(d.deadLetteredAt)],
    ["parks its key", d.parksKey ? `yes: ${plural(d.waitingRows, "pending row")} of the key wait behind it` : "no"],
    ["headers", JSON.stringify(d.headers)],
    "payload" in json
      ? ["payload", json.payload ?? "null"]
      : ["payload", `${json.payloadBytes ?? 0} bytes (--payload to show)`],
  ]);
  const log = renderTable(
    [{ heading: "at" }, { heading: "action" }, { heading: "actor" }, { heading: "reason" }],
    d.log.map((l) => [formatTime(l.at), l.action, l.actor ?? "-", truncate(l.reason, 60)]),
  );
  return `${head}\n\nHistory:\n${log}`;
}

/** What `requeue` and `skip` do, for one target kind. */
interface Action {
  readonly verb: "requeue" | "skip";
  readonly relayOne: (
    log: DeadLetters,
    id: string,
    actor: string,
    note: string | undefined,
  ) => Promise<{ topic: string; key: string }>;
  readonly relayWhere: (
    log: DeadLetters,
    filter: Omit<ListDeadLettersOptions, "limit">,
    actor: string,
    note: string | undefined,
  ) => Promise<DeadLetterActionOutcome[]>;
  readonly consumerOne: (
    log: DeadLetterLog,
    id: string,
    actor: string,
    note: string | undefined,
  ) => Promise<DeadLetterActionResult>;
  readonly consumerWhere: (
    log: DeadLetterLog,
    filter: DeadLetterFilter,
    actor: string,
    note: string | undefined,
  ) => Promise<DeadLetterActionResult[]>;
}

const who = (actor: string, note: string | undefined) => ({ actor, ...(note === undefined ? {} : { reason: note }) });
const by = (actor: string, note: string | undefined) => ({ actor, ...(note === undefined ? {} : { detail: note }) });

function actionCommand(action: Action, summary: string, details: string): Command {
  return {
    name: `dead-letters ${action.verb}`,
    summary,
    usage: `dead-letters ${action.verb} (<id>... | --all [filters]) [--actor <who>] [--note <text>] [--json] [--consumer <schema> --name <consumer>]`,
    details: `${details}\n\n${CONSUMER_NOTE}`,
    options: [...COMMON, ALL, ...FILTERS, ACTOR, NOTE, JSON_OPTION, HELP_OPTION],
    positionals: { min: 0, max: Number.POSITIVE_INFINITY, name: "id" },
    exitCodes: {
      ok: "every dead letter named (or taken by --all) was handled",
      finding: "a named id is no unresolved dead letter (nothing done to it), or --all took none",
    },
    run: (ctx) => {
      const all = ctx.args.values.all === true;
      const ids = ctx.args.positionals.map((p) => parseOutboxId("id", p));
      if (all === ids.length > 0) {
        throw new UsageError({
          message: `give dead letter ids, or --all (with filters), not both and not neither`,
        });
      }
      const f = filtersOf(ctx);
      if (!all && Object.keys(f).length > 0) {
        throw new UsageError({
          message: `--topic, --key, --reason and --older-than go with --all`,
        });
      }
      const consumerF = ctx.args.values.consumer === undefined ? undefined : consumerFilter(ctx, f);
      // Oldest first, so a key's dead letters go back in their original order.
      ids.sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
      return withTarget(ctx, async (t) => {
        const actor = actorOf(ctx);
        const note = noteOf(ctx);
        const results: {
          id: string;
          topic: string | null;
          key: string | null;
          outcome: string;
          status?: string;
        }[] = [];
        if (t.kind === "relay") {
          if (all) {
            for (const r of await action.relayWhere(t.log, relayFilter(f), actor, note)) {
              results.push({ id: r.outboxId, topic: r.topic, key: r.key, outcome: r.outcome });
            }
          } else {
            for (const id of ids) {
              try {
                const row = await action.relayOne(t.log, id, actor, note);
                results.push({
                  id,
                  topic: row.topic,
                  key: row.key,
                  outcome: action.verb === "requeue" ? "requeued" : "skipped",
                });
              } catch (error) {
                if (!(error instanceof DeadLetterNotFoundError)) throw error;
                results.push({ id, topic: null, key: null, outcome: "not-found" });
              }
            }
          }
        } else {
          const consumerResults: (DeadLetterActionResult | { id: string; outcome: "not-found" })[] = [];
          if (all) {
            consumerResults.push(...(await action.consumerWhere(t.log, consumerF ?? {}, actor, note)));
          } else {
            for (const id of ids) {
              try {
                consumerResults.push(await action.consumerOne(t.log, id, actor, note));
              } catch (error) {
                if (!(error instanceof ConsumerDeadLetterNotFoundError)) throw error;
                consumerResults.push({ id, outcome: "not-found" });
              }
            }
          }
          for (const r of consumerResults) {
            results.push({
              id: r.id,
              topic: null,
              key: null,
              outcome: r.outcome,
              ...("status" in r ? { status: r.status } : {}),
            });
          }
        }
        // Named ids that are no dead letter, or already final (replayed, skipped): nothing was done.
        const failed = results.filter(
          (r) => r.outcome === "not-found" || (!all && r.outcome === "unchanged" && r.status !== "replay_requested"),
        );
        ctx.print({ source: t.kind, actor, results }, () => {
          if (results.length === 0) return "No dead letter matches.";
          const table = renderTable(
            t.kind === "relay"
              ? [
                  { heading: "outbox id", align: "right" },
                  { heading: "topic" },
                  { heading: "key" },
                  { heading: "outcome" },
                ]
              : [{ heading: "id", align: "right" }, { heading: "outcome" }, { heading: "status" }],
            results.map((r) =>
              t.kind === "relay"
                ? [r.id, r.topic ?? "-", truncate(r.key ?? "-", 40), r.outcome]
                : [r.id, r.outcome, r.status ?? "-"],
            ),
          );
          const tail =
            t.kind === "consumer" && results.some((r) => r.outcome === "replay_requested")
              ? "\nA running consumer of the group applies replay-requested dead letters (within its replayPollMs)."
              : "";
          return `${table}${tail}`;
        });
        if (results.length === 0 || failed.length > 0) {
          if (failed.length > 0) {
            ctx.note(
              `${plural(failed.length, "id")} ${failed.length === 1 ? "is" : "are"} no unresolved dead letter: ${failed.map((r) => r.id).join(", ")}`,
            );
          }
          return ExitCodes.finding as ExitCode;
        }
        return ExitCodes.ok as ExitCode;
      });
    },
  };
}

export const deadLettersRequeueCommand = actionCommand(
  {
    verb: "requeue",
    relayOne: (log, id, actor, note) => log.requeue(id, who(actor, note)),
    relayWhere: (log, filter, actor, note) => log.requeueWhere(filter, who(actor, note)),
    consumerOne: (log, id, actor, note) => log.requestReplay(id, by(actor, note)),
    consumerWhere: (log, filter, actor, note) => log.requestReplayWhere(filter, by(actor, note)),
  },
  "requeue dead letters: the relay publishes them again; a consumer's are marked replay-requested",
  `A relay dead letter goes back to pending with its attempts reset and its key unparked; being its
key's lowest pending id, it is published before the key's later events (a running relay is woken
at once). A consumer's dead letter cannot be applied here (the CLI does not run its handlers): it is
marked replay-requested, and a running consumer of the group applies it, exactly once. Several ids
or --all go oldest first. Each action is recorded with its actor.`,
);

export const deadLettersSkipCommand = actionCommand(
  {
    verb: "skip",
    relayOne: (log, id, actor, note) => log.skip(id, who(actor, note)),
    relayWhere: (log, filter, actor, note) => log.skipWhere(filter, who(actor, note)),
    consumerOne: (log, id, actor, note) => log.skip(id, by(actor, note)),
    consumerWhere: (log, filter, actor, note) => log.skipWhere(filter, by(actor, note)),
  },
  "skip dead letters: give up on them (their keys flow again); recorded with the actor",
  `A skipped relay dead letter is never published and its key is unparked: the key's later events
flow. A skipped consumer dead letter is never applied. Each action is recorded with its actor.`,
);
