import { InvalidOptionError } from "@eventlane/core";
import type { Kysely } from "kysely";
import { DeadLetterNotFoundError } from "../errors.ts";
import { resolveConsumerTableNames } from "../schema/names.ts";
import {
  type ConsumerStore,
  consumerStore,
  type DeadLetterFilter,
  type DeadLetterRow,
  type DeadLetterStatus,
} from "../store/consumer-store.ts";

/** What an action did to one dead letter. `unchanged`: it was already replayed or skipped. */
export interface DeadLetterActionResult {
  readonly id: string;
  readonly outcome: "replayed" | "skipped" | "replay_requested" | "unchanged";
  /** The status after the action. */
  readonly status: DeadLetterStatus;
}

/** Who does an action: recorded in the dead letter's log. */
export interface ActorOptions {
  /** A person or a program ("ops:alice", "cli", ...). */
  readonly actor: string;
  /** Why (kept in the action log). */
  readonly detail?: string;
}

/**
 * A consumer's dead letters, without its handlers: list them, ask for a replay (a running consumer
 * of the group applies it within `replayPollMs`), or skip them. For tools that cannot run the
 * consumer's handlers, such as the CLI; a consumer's own `deadLetters` adds `replay`.
 */
export interface DeadLetterLog {
  /** Dead letters, oldest first (every status unless `filter.status` says). */
  list(filter?: DeadLetterFilter): Promise<DeadLetterRow[]>;
  /** One dead letter; `DeadLetterNotFoundError` if there is none with this id. */
  get(id: string): Promise<DeadLetterRow>;
  /** Marks a pending dead letter replay-requested. */
  requestReplay(id: string, by: ActorOptions): Promise<DeadLetterActionResult>;
  /** Marks every unresolved dead letter the filter takes replay-requested, oldest first. */
  requestReplayWhere(filter: DeadLetterFilter, by: ActorOptions): Promise<DeadLetterActionResult[]>;
  /** Skips a dead letter: it is never applied (recorded with the actor). */
  skip(id: string, by: ActorOptions): Promise<DeadLetterActionResult>;
  /** Skips every unresolved dead letter the filter takes, oldest first. */
  skipWhere(filter: DeadLetterFilter, by: ActorOptions): Promise<DeadLetterActionResult[]>;
}

export function checkActor(by: ActorOptions): string {
  if (typeof by?.actor !== "string" || by.actor.length === 0 || by.actor.length > 200) {
    throw new InvalidOptionError({
      option: "actor",
      message: "actor: must be a non-empty string of at most 200 characters",
    });
  }
  return by.actor;
}

/** Throws `DeadLetterNotFoundError` for an id that cannot be one (ids are positive integers). */
export function checkId(id: string): string {
  if (typeof id !== "string" || !/^[1-9][0-9]{0,18}$/.test(id)) {
    throw new DeadLetterNotFoundError({
      id: String(id),
      message: `no dead letter with id ${JSON.stringify(id)}: ids are positive integers`,
    });
  }
  return id;
}

const unresolved = (s: DeadLetterStatus) => s === "pending" || s === "replay_requested";

/** The log over a store; shared by {@link consumerDeadLetters} and the consumer. */
// biome-ignore lint/suspicious/noExplicitAny: the log runs only its own SQL in the caller's database
export function deadLetterLog(db: Kysely<any>, store: ConsumerStore): DeadLetterLog {
  const act =
    (action: "skipped" | "replay_requested") =>
    async (id: string, by: ActorOptions): Promise<DeadLetterActionResult> => {
      const actor = checkActor(by);
      checkId(id);
      return db.transaction().execute(async (trx) => {
        const row = await store.lockDeadLetter(trx, id);
        if (row === undefined) throw new DeadLetterNotFoundError({ id, message: `no dead letter with id ${id}` });
        if (!unresolved(row.status) || (action === "replay_requested" && row.status === "replay_requested")) {
          return { id, outcome: "unchanged" as const, status: row.status };
        }
        await store.resolveDeadLetter(trx, id, action, actor, by.detail ?? null);
        return { id, outcome: action, status: action };
      });
    };
  const where =
    (one: (id: string, by: ActorOptions) => Promise<DeadLetterActionResult>) =>
    async (filter: DeadLetterFilter, by: ActorOptions) => {
      checkActor(by);
      const out: DeadLetterActionResult[] = [];
      for (const id of await store.deadLetterIds(db, filter)) out.push(await one(id, by));
      return out;
    };
  const skip = act("skipped");
  const requestReplay = act("replay_requested");
  return {
    list: (filter = {}) => store.listDeadLetters(db, filter),
    get: async (id) => {
      checkId(id);
      const [row] = await store.listDeadLetters(db, { id, limit: 1 });
      if (row === undefined) throw new DeadLetterNotFoundError({ id, message: `no dead letter with id ${id}` });
      return row;
    },
    requestReplay,
    requestReplayWhere: where(requestReplay),
    skip,
    skipWhere: where(skip),
  };
}

/**
 * The dead letters of the consumer `name` (its group id unless it was given another name) in the
 * consumer schema `schema`, for tools that do not run the consumer.
 */
export function consumerDeadLetters<DB>(
  db: Kysely<DB>,
  options: { readonly name: string; readonly schema?: string },
): DeadLetterLog {
  if (typeof options?.name !== "string" || options.name.length === 0) {
    throw new InvalidOptionError({
      option: "name",
      message: "name: the consumer's name (its groupId by default) is required",
    });
  }
  const names = resolveConsumerTableNames(options.schema === undefined ? {} : { schema: options.schema });
  return deadLetterLog(db, consumerStore(names, options.name));
}
