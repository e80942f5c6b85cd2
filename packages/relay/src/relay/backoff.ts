import { Duration, Effect, Schedule } from "effect";

/**
 * The shard back-off after a connection, leadership, timeout or throttling error: exponential from
 * `baseMs`, doubling, capped at `maxMs`, then jittered to 80..120%. With the defaults (200 ms, 30 s):
 * 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, ... ms (each ±20%).
 * It never ends: a broker outage of any length only delays the shard.
 */
export function shardBackoff(baseMs: number, maxMs: number): Schedule.Schedule<Duration.Duration> {
  return Schedule.exponential(Duration.millis(baseMs), 2).pipe(
    Schedule.modifyDelay(({ duration }) =>
      Effect.succeed(Duration.millis(Math.min(Duration.toMillis(duration), maxMs))),
    ),
    Schedule.jittered,
  );
}

/** A stateful stepper over {@link shardBackoff}: `next()` gives the next delay in ms; a success resets it. */
export const makeBackoffStepper = (baseMs: number, maxMs: number) =>
  Effect.gen(function* () {
    let step = yield* Schedule.toStep(shardBackoff(baseMs, maxMs));
    return {
      next: Effect.gen(function* () {
        const [, delay] = yield* Effect.orDie(step(Date.now(), undefined));
        return Math.round(Duration.toMillis(delay));
      }),
      reset: Effect.gen(function* () {
        step = yield* Schedule.toStep(shardBackoff(baseMs, maxMs));
      }),
    };
  });
