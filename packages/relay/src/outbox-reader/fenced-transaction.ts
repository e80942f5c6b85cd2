import type pg from "pg";
import { LeadershipLostError } from "../errors.ts";
import type { RelayStatements } from "./statements.ts";

/** The leadership a change to outbox rows is made under. */
export interface Fence {
  readonly shard: number;
  readonly epoch: number;
  readonly token: string;
}

/**
 * Runs `work` in a transaction that first locks the shard row `FOR SHARE` and checks the token.
 * Throws {@link LeadershipLostError} (reason `fenced`) and changes nothing when another leader took
 * the shard: a paused or partitioned former leader can never mark, dead-letter or delete rows.
 */
export async function inFencedTransaction<T>(
  pool: pg.Pool,
  statements: RelayStatements,
  fence: Fence,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN");
    const r = await client.query<{ token: string | null }>({ ...statements.lockShardForShare, values: [fence.shard] });
    if (r.rows[0]?.token !== fence.token) {
      await client.query("ROLLBACK");
      throw new LeadershipLostError({
        shard: fence.shard,
        epoch: fence.epoch,
        reason: "fenced",
        message: `shard ${fence.shard}: another instance holds it now (epoch ${fence.epoch} is stale)`,
      });
    }
    const out = await work(client);
    await client.query("COMMIT");
    return out;
  } catch (error) {
    if (!(error instanceof LeadershipLostError)) {
      await client.query("ROLLBACK").catch(() => {
        broken = true;
      });
    }
    throw error;
  } finally {
    client.release(broken);
  }
}
