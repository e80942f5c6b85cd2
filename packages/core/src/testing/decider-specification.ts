import { asEventArray, type Decider, foldEvents } from "../aggregate/define-aggregate.ts";

/** What `thenEmits` compares: events as `{ type, data }` (metadata is ignored). */
function strip<E>(events: readonly E[]): unknown[] {
  return events.map((e) => {
    const { type, data } = e as unknown as { type: string; data: unknown };
    return { type, data };
  });
}

function isDeepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export interface DeciderThen<State, Event> {
  /** Asserts the command produced exactly these events (compared by type and data). */
  thenEmits(expected: Event | readonly Event[]): void;
  /** Asserts the command produced no events. */
  thenNothingHappened(): void;
  /**
   * Asserts `decide` threw. `check` is an Error subclass the error must be an instance of, or a
   * predicate that returns false (or throws) to fail.
   */
  thenThrows(check?: ((error: unknown) => boolean) | (new (...args: never[]) => Error)): void;
  /** Asserts the state after the events (given + produced) with `check`. */
  thenState(check: (state: State) => void): void;
}

export interface DeciderWhen<State, Command, Event> {
  when(command: Command): DeciderThen<State, Event>;
}

class AssertionFailed extends Error {
  override readonly name = "DeciderAssertionError";
}

/**
 * Given/when/then tests for deciders, with no database:
 *
 * ```ts
 * DeciderSpecification.for(Booking)
 *   .given([BookingConfirmed.make({...})])
 *   .when({ kind: "cancel", bookingId: "b1", reason: "ill" })
 *   .thenEmits([BookingCancelled.make({ bookingId: "b1", reason: "ill" })]);
 * ```
 */
export const DeciderSpecification = {
  for<State, Command, Event>(decider: Decider<State, Command, Event>) {
    return {
      given(events: readonly Event[] = []): DeciderWhen<State, Command, Event> {
        return {
          when(command: Command): DeciderThen<State, Event> {
            const state = foldEvents(decider, decider.initialState(), events);
            const run = (): readonly Event[] =>
              asEventArray(decider.decide(command, state) as Event | readonly Event[]);
            return {
              thenEmits(expected) {
                const actual = strip(run());
                const want = strip(Array.isArray(expected) ? (expected as readonly Event[]) : [expected as Event]);
                if (!isDeepEqual(actual, want)) {
                  throw new AssertionFailed(
                    `expected events ${JSON.stringify(want)}\n     got events ${JSON.stringify(actual)}`,
                  );
                }
              },
              thenNothingHappened() {
                const actual = run();
                if (actual.length !== 0)
                  throw new AssertionFailed(`expected no events, got ${JSON.stringify(strip(actual))}`);
              },
              thenThrows(check) {
                let produced: readonly Event[];
                try {
                  produced = run();
                } catch (error) {
                  if (check === undefined) return;
                  // An Error subclass is matched with instanceof; any other function is a predicate.
                  const ok =
                    check.prototype instanceof Error
                      ? error instanceof (check as new (...args: never[]) => unknown)
                      : (check as (e: unknown) => boolean)(error);
                  if (!ok) throw new AssertionFailed(`decide threw an unexpected error: ${String(error)}`);
                  return;
                }
                throw new AssertionFailed(`expected decide to throw, it produced ${JSON.stringify(strip(produced))}`);
              },
              thenState(check) {
                check(foldEvents(decider, state, run()));
              },
            };
          },
        };
      },
    };
  },
};
