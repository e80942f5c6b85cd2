import type pg from "pg";
import { type Fence, inFencedTransaction } from "../outbox-reader/fenced-transaction.ts";
import type { RelayStatements } from "../outbox-reader/statements.ts";

/**
 * Deletes published and skipped rows older than `retentionMs`, `batchSize` rows per fenced
 * transaction, until a batch comes back short (or `maxBatches` ran, so one run stays bounded).
 * Returns the number of rows deleted.
 */
export async function deleteProcessedRows(
  pool: pg.Pool,
  statements: RelayStatements,
  fence: Fence,
  options: { readonly retentionMs: number; readonly batchSize: number; readonly maxBatches?: number },
): Promise<number> {
  let total = 0;
  for (let i = 0; i < (options.maxBatches ?? 100); i++) {
    const deleted = await inFencedTransaction(pool, statements, fence, async (client) => {
      const r = await client.query({ ...statements.deleteProcessed, values: [options.retentionMs, options.batchSize] });
      return r.rowCount ?? 0;
    });
    total += deleted;
    if (deleted < options.batchSize) break;
  }
  return total;
}
