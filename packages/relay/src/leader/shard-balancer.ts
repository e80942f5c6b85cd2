import { murmur2 } from "@eventlane/core/internal";
import type pg from "pg";

/**
 * The `application_name` of a lock session: `eventlane-relay <namespace> <instance> <b|f><shard>`,
 * hex-encoded so it stays far below PostgreSQL's 63-byte limit. `b` marks an instance that balances
 * (competes for every shard), `f` one pinned to the shards of its `shards` option. Other instances
 * count live relays and their shards from these names and `pg_locks`, with no table of their own:
 * a killed instance's sessions vanish at once, a paused one's when the server ends them (one lease).
 */
export function lockSessionName(namespace: number, instanceId: string, shard: number, balancing: boolean): string {
  return `${sessionPrefix(namespace)}${instanceTag(instanceId)} ${balancing ? "b" : "f"}${shard}`;
}

export function sessionPrefix(namespace: number): string {
  return `eventlane-relay ${(namespace >>> 0).toString(16).padStart(8, "0")} `;
}

/** A short, stable tag of an instance id (the id itself may be 200 characters). */
export function instanceTag(instanceId: string): string {
  return (murmur2(instanceId) >>> 0).toString(16).padStart(8, "0");
}

/** Who competes for and who holds the shards of one installation, as seen from `pg_stat_activity`. */
export interface ShardHolders {
  /** Tags of live balancing instances. */
  readonly balancing: ReadonlySet<string>;
  /** Shards held, by instance tag (balancing or pinned). */
  readonly held: ReadonlyMap<string, readonly number[]>;
  /** Shards held by pinned instances (they never move). */
  readonly pinned: number;
}

/** Reads the lock sessions of an installation and the shard locks they hold. */
export async function readShardHolders(pool: pg.Pool, namespace: number): Promise<ShardHolders> {
  const r = await pool.query<{ name: string; shard: number | null }>(
    `SELECT a.application_name AS name, l.objid::integer AS shard
       FROM pg_stat_activity a
       LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
            AND l.classid::bigint = $1 AND l.objsubid = 2
      WHERE a.datname = current_database() AND starts_with(a.application_name, $2)`,
    [namespace, sessionPrefix(namespace)],
  );
  const balancing = new Set<string>();
  const held = new Map<string, number[]>();
  let pinned = 0;
  for (const row of r.rows) {
    const [tag, kind] = row.name.slice(sessionPrefix(namespace).length).split(" ");
    if (tag === undefined || kind === undefined) continue;
    const isBalancing = kind.startsWith("b");
    if (isBalancing) balancing.add(tag);
    if (row.shard === null) continue;
    if (!isBalancing) pinned++;
    const list = held.get(tag) ?? [];
    list.push(row.shard);
    held.set(tag, list);
  }
  return { balancing, held, pinned };
}

/** What one balancing instance should do now. */
export interface BalanceDecision {
  /** Whether this instance may take a free shard. */
  readonly mayAcquire: boolean;
  /** A shard this instance should hand over (finish its batch, release the lock), if any. */
  readonly release: number | undefined;
  /** The share each live balancing instance aims at: `[floor, ceil]` of free shards / instances. */
  readonly target: readonly [number, number];
}

/**
 * The balancing rule, pure. With `m` shards not pinned and `n` live balancing instances (this one
 * included), each aims at `floor(m / n)` to `ceil(m / n)` shards:
 * - an instance below the floor may acquire; one below the ceiling may too unless another is below the floor;
 * - an instance above the ceiling gives one shard up per round;
 * - while another is below the floor, the instance holding the most (ties: the smallest tag) gives one up.
 * Only one instance moves a shard at a time, so the shares settle without flapping. The rule is
 * advisory: which instance may publish a shard is decided by its lock and fencing token alone.
 */
export function decideBalance(args: {
  readonly shardCount: number;
  readonly me: string;
  readonly holders: ShardHolders;
}): BalanceDecision {
  const { holders, me } = args;
  const live = new Set(holders.balancing);
  live.add(me);
  const movable = Math.max(0, args.shardCount - holders.pinned);
  const floor = Math.floor(movable / live.size);
  const ceil = Math.ceil(movable / live.size);
  const count = (tag: string) => holders.held.get(tag)?.length ?? 0;
  const mine = count(me);
  const starving = [...live].some((tag) => tag !== me && count(tag) < floor);
  const mayAcquire = mine < floor || (mine < ceil && !starving);
  const highest = () => Math.max(...(holders.held.get(me) ?? []));
  if (mine > ceil) return { mayAcquire: false, release: highest(), target: [floor, ceil] };
  if (starving && mine > floor) {
    const richest = [...live].sort((a, b) => count(b) - count(a) || a.localeCompare(b))[0];
    if (richest === me) return { mayAcquire: false, release: highest(), target: [floor, ceil] };
  }
  return { mayAcquire, release: undefined, target: [floor, ceil] };
}
