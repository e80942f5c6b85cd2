import { SCHEMA_VERSION } from "@eventlane/core";
import { advisoryLockNamespace } from "@eventlane/relay";
import { HELP_OPTION } from "../args/options.ts";
import { parsePositiveInteger } from "../args/time.ts";
import type { Command } from "../command.ts";
import { DATABASE_OPTIONS, JSON_OPTION, resolveDatabase } from "../config/config.ts";
import { checkCoreSchema, openDatabase } from "../config/connections.ts";
import { readDeadLetterGroups, readParkedKeys, readShards } from "../database/statements.ts";
import { ExitCodes } from "../exit-codes.ts";
import { formatAgo, formatSeconds, plural, truncate } from "../output/format.ts";
import { renderTable } from "../output/table.ts";

/** `eventlane status --json`: the shape scripts read. */
export interface StatusReport {
  readonly schema: string;
  readonly tablePrefix: string;
  readonly schemaVersion: number;
  /** relay_config's count, or 1 (the default) when no relay has started on this database yet. */
  readonly shardCount: number;
  readonly shardCountRecorded: boolean;
  readonly observedAt: string;
  readonly shards: readonly {
    readonly shard: number;
    /** The instance that holds the shard's lock now (the shard row's owner while its lock is held), else null. */
    readonly leader: string | null;
    readonly lockHeld: boolean;
    /** The shard row's owner, whether or not it still holds the lock. */
    readonly lastOwner: string | null;
    readonly epoch: number | null;
    readonly acquiredAt: string | null;
    readonly heartbeatAgeSeconds: number | null;
    readonly pendingRows: number;
    /** Age of the shard's oldest pending row (0 when none is pending). */
    readonly lagSeconds: number;
  }[];
  readonly pendingRows: number;
  readonly maxLagSeconds: number;
  readonly parkedKeys: {
    readonly total: number;
    readonly keys: readonly {
      readonly topic: string;
      readonly key: string;
      readonly outboxId: string;
      readonly reason: string;
      readonly parkedAt: string;
      readonly waitingRows: number;
    }[];
  };
  readonly deadLetters: {
    readonly total: number;
    readonly oldestAt: string | null;
    readonly byTopic: readonly {
      readonly topic: string;
      readonly reason: string | null;
      readonly count: number;
      readonly oldestAt: string;
    }[];
  };
}

const LIMIT_OPTION = {
  name: "limit",
  type: "string",
  value: "<n>",
  description: "parked keys listed at most (default 20)",
} as const;

export const statusCommand: Command = {
  name: "status",
  summary: "shards (leader, epoch, heartbeat, pending rows, lag), parked keys and dead letters",
  usage: "status [--json] [--limit <n>] [database options]",
  details: `Reads the relay's state from the database, cluster-wide: for each shard the instance holding
its lock (pg_locks decides, the shard row names the owner), the epoch, the age of the last heartbeat,
the pending rows and the lag (age of the oldest pending row); then the parked keys (the pending rows
waiting behind each) and the dead letters by topic and reason. Needs no Kafka.`,
  options: [...DATABASE_OPTIONS, LIMIT_OPTION, JSON_OPTION, HELP_OPTION],
  positionals: { min: 0, max: 0 },
  exitCodes: { ok: "the status was read (whatever it shows)" },
  async run(ctx) {
    const limitText = ctx.args.values.limit;
    const limit = typeof limitText === "string" ? parsePositiveInteger("limit", limitText, 10_000) : 20;
    const target = resolveDatabase(ctx.args, ctx.env);
    const database = await openDatabase(target.url, "the outbox's database");
    try {
      await checkCoreSchema(database, target);
      const n = target.tables;
      const [shards, parked, dead] = await Promise.all([
        readShards(database.db, n, advisoryLockNamespace(n)),
        readParkedKeys(database.db, n, limit),
        readDeadLetterGroups(database.db, n),
      ]);
      const now = shards[0]?.now ?? new Date();
      const deadTotal = dead.reduce((sum, d) => sum + Number(d.count), 0);
      const oldestDead = dead.reduce<Date | null>((m, d) => (m === null || d.oldest < m ? d.oldest : m), null);
      const report: StatusReport = {
        schema: n.schema,
        tablePrefix: n.tablePrefix,
        schemaVersion: SCHEMA_VERSION,
        shardCount: shards[0]?.shard_count ?? 1,
        shardCountRecorded: shards[0]?.recorded ?? false,
        observedAt: now.toISOString(),
        shards: shards.map((s) => ({
          shard: s.shard,
          leader: s.lock_held ? s.owner : null,
          lockHeld: s.lock_held,
          lastOwner: s.owner,
          epoch: s.epoch === null ? null : Number(s.epoch),
          acquiredAt: s.acquired_at?.toISOString() ?? null,
          heartbeatAgeSeconds: s.heartbeat_age_seconds,
          pendingRows: Number(s.pending_rows),
          lagSeconds: s.lag_seconds,
        })),
        pendingRows: shards.reduce((sum, s) => sum + Number(s.pending_rows), 0),
        maxLagSeconds: shards.reduce((max, s) => Math.max(max, s.lag_seconds), 0),
        parkedKeys: {
          total: Number(parked[0]?.total ?? 0),
          keys: parked.map((p) => ({
            topic: p.topic,
            key: p.key,
            outboxId: p.outbox_id,
            reason: p.reason,
            parkedAt: p.parked_at.toISOString(),
            waitingRows: Number(p.waiting_rows),
          })),
        },
        deadLetters: {
          total: deadTotal,
          oldestAt: oldestDead?.toISOString() ?? null,
          byTopic: dead.map((d) => ({
            topic: d.topic,
            reason: d.reason,
            count: Number(d.count),
            oldestAt: d.oldest.toISOString(),
          })),
        },
      };
      ctx.print(report, () => statusText(report, now));
      return ExitCodes.ok;
    } finally {
      await database.close();
    }
  },
};

function statusText(r: StatusReport, now: Date): string {
  const out: string[] = [];
  const prefix = r.tablePrefix === "" ? "" : `, table prefix "${r.tablePrefix}"`;
  out.push(
    `Eventlane schema "${r.schema}"${prefix} at version ${r.schemaVersion}; ${plural(r.shardCount, "shard")}` +
      (r.shardCountRecorded ? "" : " (no relay has started on this database yet)"),
  );
  out.push("");
  out.push(
    renderTable(
      [
        { heading: "shard", align: "right" },
        { heading: "leader" },
        { heading: "epoch", align: "right" },
        { heading: "heartbeat", align: "right" },
        { heading: "pending", align: "right" },
        { heading: "lag", align: "right" },
      ],
      r.shards.map((s) => [
        String(s.shard),
        s.leader ?? (s.lastOwner === null ? "none" : `none (last: ${truncate(s.lastOwner, 40)})`),
        s.epoch === null ? "-" : String(s.epoch),
        s.heartbeatAgeSeconds === null ? "-" : `${formatSeconds(s.heartbeatAgeSeconds)} ago`,
        String(s.pendingRows),
        s.pendingRows === 0 ? "-" : formatSeconds(s.lagSeconds),
      ]),
    ),
  );
  out.push("");
  out.push(`Parked keys: ${r.parkedKeys.total}`);
  if (r.parkedKeys.keys.length > 0) {
    out.push(
      renderTable(
        [
          { heading: "topic" },
          { heading: "key" },
          { heading: "outbox id", align: "right" },
          { heading: "waiting", align: "right" },
          { heading: "parked" },
          { heading: "reason" },
        ],
        r.parkedKeys.keys.map((p) => [
          p.topic,
          truncate(p.key, 40),
          p.outboxId,
          String(p.waitingRows),
          formatAgo(new Date(p.parkedAt), now),
          truncate(p.reason, 50),
        ]),
      ),
    );
    if (r.parkedKeys.total > r.parkedKeys.keys.length) {
      out.push(`(${r.parkedKeys.total - r.parkedKeys.keys.length} more; --limit to list them)`);
    }
  }
  out.push("");
  out.push(
    `Dead letters: ${r.deadLetters.total}` +
      (r.deadLetters.oldestAt === null ? "" : ` (oldest ${formatAgo(new Date(r.deadLetters.oldestAt), now)})`),
  );
  if (r.deadLetters.byTopic.length > 0) {
    out.push(
      renderTable(
        [{ heading: "topic" }, { heading: "reason" }, { heading: "count", align: "right" }, { heading: "oldest" }],
        r.deadLetters.byTopic.map((d) => [
          d.topic,
          d.reason ?? "-",
          String(d.count),
          formatAgo(new Date(d.oldestAt), now),
        ]),
      ),
    );
    out.push("See them with: eventlane dead-letters list");
  }
  return out.join("\n");
}
