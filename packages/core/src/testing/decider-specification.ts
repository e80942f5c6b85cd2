import { AssertionError } from "node:assert";
import { inspect, isDeepStrictEqual } from "node:util";
import { asEventArray, type Decider, foldEvents } from "../aggregate/define-aggregate.ts";

/** What `thenEmits` compares: events as `{ type, data }` (metadata is ignored). */
function strip<E>(events: readonly E[]): { type: string; data: unknown }[] {
  return events.map((e) => {
    const { type, data } = e as unknown as { type: string; data: unknown };
    return { type, data };
  });
}

function show(value: unknown): string {
  return inspect(value, { depth: 6, breakLength: 100 });
}

function describeThrown(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : show(error);
}

/** What `decide` did: the events it returned, or what it threw. */
type Outcome<Event> = { readonly events: readonly Event[] } | { readonly thrown: unknown };

// Failures are node:assert's AssertionError (no test runner at runtime). With a `diff`, node appends
// "+ actual - expected" and the lines that differ to the message, and runners show the two values
// side by side; `stackStartFn` points the stack at the test's line, not at this file.
function fail(
  message: string,
  stackStartFn: (...args: never[]) => unknown,
  details: { readonly diff?: { readonly actual: unknown; readonly expected: unknown }; readonly cause?: unknown } = {},
): never {
  const error = new AssertionError({
    message,
    stackStartFn,
    ...(details.diff === undefined
      ? { operator: "fail" }
      : { actual: details.diff.actual, expected: details.diff.expected, operator: "deepStrictEqual" }),
  });
  if ("cause" in details) error.cause = details.cause;
  throw error;
}

export interface DeciderThen<State, Event> {
  /**
   * Asserts the command produced exactly these events, in this order, compared structurally by type
   * and data (`node:assert`'s deep strict equality: key order does not matter, values and types do;
   * metadata is ignored). Fails as an assertion, with a diff, when they differ or when `decide` threw.
   */
  thenEmits(expected: Event | readonly Event[]): void;
  /** Asserts the command produced no events (fails as an assertion when `decide` threw). */
  thenNothingHappened(): void;
  /**
   * Asserts `decide` threw. `check` is an Error class the error must be an instance of, or a
   * predicate that returns false (or throws) to fail.
   */
  thenThrows(check?: ((error: unknown) => boolean) | (new (...args: never[]) => Error)): void;
  /** Asserts the state after the events (given + produced) with `check`. */
  thenState(check: (state: State) => void): void;
}

export interface DeciderWhen<State, Command, Event> {
  when(command: Command): DeciderThen<State, Event>;
}

/**
 * Given/when/then tests for deciders, with no database and no dependency on a test runner:
 *
 * ```ts
 * DeciderSpecification.for(Booking)
 *   .given([BookingConfirmed.make({...})])
 *   .when({ kind: "cancel", bookingId: "b1", reason: "ill" })
 *   .thenEmits([BookingCancelled.make({ bookingId: "b1", reason: "ill" })]);
 * ```
 *
 * Failed expectations throw `node:assert`'s `AssertionError` (`code: "ERR_ASSERTION"`).
 */
export const DeciderSpecification = {
  for<State, Command, Event>(decider: Decider<State, Command, Event>) {
    return {
      given(events: readonly Event[] = []): DeciderWhen<State, Command, Event> {
        return {
          when(command: Command): DeciderThen<State, Event> {
            const state = foldEvents(decider, decider.initialState(), events);
            const run = (): Outcome<Event> => {
              try {
                return { events: asEventArray(decider.decide(command, state) as Event | readonly Event[]) };
              } catch (thrown) {
                return { thrown };
              }
            };
            /** The events `decide` produced; an assertion failure of `caller` when it threw. */
            const produced = (caller: (...args: never[]) => unknown, what: string): readonly Event[] => {
              const outcome = run();
              if ("thrown" in outcome) {
                fail(`${what}, but decide threw ${describeThrown(outcome.thrown)}`, caller, { cause: outcome.thrown });
              }
              return outcome.events;
            };
            const then: DeciderThen<State, Event> = {
              thenEmits(expected) {
                const want = strip(Array.isArray(expected) ? (expected as readonly Event[]) : [expected as Event]);
                const actual = strip(produced(then.thenEmits, `expected the command to emit ${show(want)}`));
                if (!isDeepStrictEqual(actual, want)) {
                  fail("the command emitted other events than expected:", then.thenEmits, {
                    diff: { actual, expected: want },
                  });
                }
              },
              thenNothingHappened() {
                const actual = produced(then.thenNothingHappened, "expected the command to emit no events");
                if (actual.length !== 0) {
                  fail("expected the command to emit no events, it emitted some:", then.thenNothingHappened, {
                    diff: { actual: strip(actual), expected: [] },
                  });
                }
              },
              thenThrows(check) {
                const outcome = run();
                if (!("thrown" in outcome)) {
                  fail(`expected decide to throw, it emitted ${show(strip(outcome.events))}`, then.thenThrows);
                }
                if (check === undefined) return;
                // An Error class is matched with instanceof; any other function is a predicate.
                const isClass = check === Error || check.prototype instanceof Error;
                const ok = isClass
                  ? outcome.thrown instanceof (check as new (...args: never[]) => unknown)
                  : (check as (e: unknown) => boolean)(outcome.thrown);
                if (!ok) {
                  fail(
                    isClass
                      ? `expected decide to throw a ${check.name}, it threw ${describeThrown(outcome.thrown)}`
                      : `decide threw ${describeThrown(outcome.thrown)}, which the check refused`,
                    then.thenThrows,
                    { cause: outcome.thrown },
                  );
                }
              },
              thenState(check) {
                check(foldEvents(decider, state, produced(then.thenState, "expected a state to check")));
              },
            };
            return then;
          },
        };
      },
    };
  },
};
