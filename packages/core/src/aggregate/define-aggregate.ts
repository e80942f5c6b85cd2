import { InvalidOptionError } from "../errors.ts";
import type { EventDefinition, EventOf, PayloadSchema } from "../event/define-event.ts";

/**
 * A decider: pure functions from a command and the current state to new events, and from a state
 * and an event to the next state. No I/O: test it with `@eventlane/core/testing`.
 */
export interface Decider<State, Command, Event> {
  initialState(): State;
  evolve(state: State, event: Event): State;
  /** Returns the events the command produces (none, one or several); throws to reject it. */
  decide(command: Command, state: State): Event | readonly Event[];
}

/** Periodic snapshots of an aggregate's state, for long streams. */
export interface SnapshotConfig<State> {
  /** Schema of the state, used to store and load it. */
  readonly schema: PayloadSchema & { readonly Type: State };
  /**
   * Version of the snapshot schema: snapshots of another version are ignored (rebuilt by replay).
   * @default 1
   */
  readonly version?: number;
  /** Write a snapshot whenever the stream's version crosses a multiple of `every`. */
  readonly every: number;
}

export interface AggregateConfig<Type extends string, Defs extends readonly EventDefinition[], State, Command>
  extends Decider<State, Command, EventOf<Defs[number]>> {
  /** The aggregate type, stored with its streams and sent as the aggregate-type header. */
  readonly type: Type;
  /** Every event the aggregate can emit. Appending any other event does not compile. */
  readonly events: Defs;
  readonly snapshot?: SnapshotConfig<State>;
}

/** An event-sourced aggregate: a decider plus its events, type and snapshot policy. */
export interface Aggregate<
  Type extends string = string,
  Defs extends readonly EventDefinition[] = readonly EventDefinition[],
  State = unknown,
  Command = unknown,
> extends AggregateConfig<Type, Defs, State, Command> {
  /** Finds an event definition by type name. */
  readonly definition: (eventType: string) => EventDefinition | undefined;
}

/** The union of events an aggregate emits. */
export type AggregateEvent<A> =
  A extends Aggregate<string, infer Defs, unknown, unknown> ? EventOf<Defs[number]> : never;
/** The state type of an aggregate. */
export type AggregateState<A> = A extends Aggregate<string, readonly EventDefinition[], infer S, unknown> ? S : never;
/** The command type of an aggregate. */
export type AggregateCommand<A> = A extends Aggregate<string, readonly EventDefinition[], unknown, infer C> ? C : never;

/** Defines an event-sourced aggregate. */
export function defineAggregate<
  const Type extends string,
  const Defs extends readonly EventDefinition[],
  State,
  Command,
>(config: AggregateConfig<Type, Defs, State, Command>): Aggregate<Type, Defs, State, Command> {
  if (typeof config.type !== "string" || config.type.length === 0) {
    throw new InvalidOptionError({ option: "type", message: "aggregate type must be a non-empty string" });
  }
  const byType = new Map<string, EventDefinition>();
  for (const def of config.events) {
    if (byType.has(def.type)) {
      throw new InvalidOptionError({
        option: "events",
        message: `aggregate "${config.type}" lists event "${def.type}" twice`,
      });
    }
    byType.set(def.type, def);
  }
  if (config.snapshot !== undefined && (!Number.isInteger(config.snapshot.every) || config.snapshot.every < 1)) {
    throw new InvalidOptionError({
      option: "snapshot.every",
      message: `aggregate "${config.type}": snapshot.every must be an integer >= 1`,
    });
  }
  return Object.freeze({ ...config, definition: (eventType: string) => byType.get(eventType) });
}

/** Folds events into a state with the decider's `evolve`. */
export function foldEvents<State, Event>(
  decider: Pick<Decider<State, unknown, Event>, "evolve">,
  state: State,
  events: Iterable<Event>,
): State {
  let s = state;
  for (const e of events) s = decider.evolve(s, e);
  return s;
}

/** Normalises a decider's result to an array. */
export function asEventArray<E>(result: E | readonly E[]): readonly E[] {
  return Array.isArray(result) ? (result as readonly E[]) : [result as E];
}
