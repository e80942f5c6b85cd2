import { resolveTableNames, type SchemaOptions } from "@eventlane/core";
import { booleanOption, refuseUnknownOptions, stringOption } from "@eventlane/core/internal";
import type pg from "pg";
import { DeadLetters } from "./dead-letters.ts";

/** Where the outbox is and who acts, for {@link outboxDeadLetters}. */
export interface OutboxDeadLettersOptions extends SchemaOptions {
  /** Recorded in `dead_letter_log` for every action that names no actor of its own ("cli:alice@host"). */
  readonly actor: string;
  /**
   * Send one NOTIFY on the outbox channel with each requeue and skip, so running relays read the
   * unparked key at once instead of at their next poll.
   * @default true
   */
  readonly notify?: boolean;
}

const KNOWN = [
  "schema",
  "tablePrefix",
  "actor",
  "notify",
] as const satisfies readonly (keyof OutboxDeadLettersOptions)[];

/**
 * The relay's dead letters over a pool of your own, for tools that do not run a relay (the
 * `eventlane` CLI, an admin API): list, show, requeue and skip, one by one or in bulk, each action
 * recorded in `dead_letter_log`. The pool is the caller's: it is never ended here. Unknown options
 * are refused (`InvalidOptionError`), `schema`/`tablePrefix` validated (`InvalidIdentifierError`).
 */
export function outboxDeadLetters(pool: pg.Pool, options: OutboxDeadLettersOptions): DeadLetters {
  refuseUnknownOptions(options, KNOWN, "outboxDeadLetters");
  const actor = stringOption("actor", options.actor, 200);
  const notify = booleanOption("notify", options.notify, true);
  const tables = resolveTableNames({
    ...(options.schema === undefined ? {} : { schema: options.schema }),
    ...(options.tablePrefix === undefined ? {} : { tablePrefix: options.tablePrefix }),
  });
  return new DeadLetters(pool, tables, actor, notify ? tables.notifyChannel : undefined);
}
