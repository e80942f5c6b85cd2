import { Effect } from "effect";
import {
  describeError,
  type LeadershipLossReason,
  LeadershipLostError,
  RelayDatabaseError,
  SessionPoolerError,
  ShardCountMismatchError,
} from "../errors.ts";
import type { RelayEventName, RelayEvents } from "../events.ts";
import { closeLockSession, openLockSession } from "../leader/lock-session.ts";
import { lockSessionName } from "../leader/shard-balancer.ts";
import { ShardLease } from "../leader/shard-lease.ts";
import { deleteProcessedRows } from "../retention/retention.ts";
import { makeBackoffStepper } from "./backoff.ts";
import { publishBatch } from "./publish-batch.ts";
import { producerFor, type RelayRuntime } from "./runtime.ts";

const emit = <K extends RelayEventName>(rt: RelayRuntime, event: K, payload: RelayEvents[K]) =>
  Effect.sync(() => rt.events.emit(event, payload));

/** Sleeps up to `ms`, waking early on a NOTIFY; interruptible. */
const idle = (rt: RelayRuntime, ms: number, since: number) =>
  Effect.callback<void>((resume, signal) => {
    rt.wakeup.wait(ms, signal, since).then(() => resume(Effect.void));
  });

/** Heartbeats on the lock session until one fails; fails with the loss. */
const heartbeatLoop = (rt: RelayRuntime, lease: ShardLease, onLost: (reason: LeadershipLossReason) => void) =>
  Effect.gen(function* () {
    for (;;) {
      yield* Effect.sleep(rt.options.heartbeatIntervalMs);
      yield* Effect.tryPromise({
        try: () => lease.heartbeat(),
        catch: (e) =>
          e instanceof LeadershipLostError
            ? e
            : new LeadershipLostError({
                shard: lease.shard,
                epoch: lease.epoch,
                reason: "heartbeat-failed",
                message: describeError(e),
              }),
      }).pipe(
        // Report the loss at once: the in-flight batch (uninterruptible) may still be waiting on a
        // dead connection, but it sends nothing more (the lease check before each send) and its
        // mark is fenced.
        Effect.tapError((e) => Effect.sync(() => onLost(e.reason))),
      );
      rt.shardStatus.set(lease.shard, {
        shard: lease.shard,
        leader: true,
        epoch: lease.epoch,
        lastHeartbeatAt: new Date(lease.lastGoodHeartbeatAt),
      });
    }
  });

/**
 * Publishes while there is work; idles (NOTIFY or poll) when there is none; backs the whole shard
 * off on connection, leadership, timeout and throttling errors and on database errors. Each batch
 * runs uninterruptibly, so a graceful stop lets the in-flight batch finish and be marked.
 */
const publishLoop = (rt: RelayRuntime, lease: ShardLease) =>
  Effect.gen(function* () {
    const backoff = yield* makeBackoffStepper(rt.options.backoffBaseMs, rt.options.backoffMaxMs);
    for (;;) {
      // A NOTIFY that arrives while the batch is read or sent must not wait for the next poll.
      const since = rt.wakeup.generation;
      const outcome = yield* Effect.uninterruptible(Effect.promise(() => publishBatch(rt, lease)));
      switch (outcome.kind) {
        case "worked":
          yield* backoff.reset;
          break;
        case "idle":
          yield* backoff.reset;
          yield* idle(rt, rt.options.pollIntervalMs, since);
          break;
        case "lost":
          return yield* Effect.fail(outcome.error);
        case "backoff": {
          const backoffMs = yield* backoff.next;
          yield* emit(rt, "publish:failed", {
            shard: lease.shard,
            reason: outcome.error.reason,
            backoffMs,
            error: outcome.error,
          });
          if (outcome.error.reason !== "throttling") {
            const producer = producerFor(rt, lease.shard);
            yield* Effect.promise(() => rt.sendSerially(() => producer.reset()));
          }
          yield* Effect.sleep(backoffMs);
          break;
        }
        case "database": {
          const backoffMs = yield* backoff.next;
          yield* emit(rt, "error", { error: outcome.error });
          yield* Effect.sleep(backoffMs);
          break;
        }
      }
    }
  });

/** Deletes processed rows on a schedule; runs on the leader of the lowest shard only, fenced. */
const retentionLoop = (rt: RelayRuntime, lease: ShardLease) =>
  Effect.gen(function* () {
    for (;;) {
      yield* Effect.sleep(rt.options.retentionIntervalMs);
      const result = yield* Effect.promise(() =>
        deleteProcessedRows(rt.pool, rt.statements, lease, {
          retentionMs: rt.options.retentionMs,
          batchSize: rt.options.retentionBatchSize,
        }).then(
          (count) => ({ count, error: undefined }),
          (error: unknown) => ({ count: 0, error }),
        ),
      );
      if (result.error instanceof LeadershipLostError) return yield* Effect.fail(result.error);
      if (result.error !== undefined) {
        yield* emit(rt, "error", {
          error: new RelayDatabaseError({
            operation: "retention",
            message: `retention failed: ${describeError(result.error)}`,
            cause: result.error,
          }),
        });
      } else if (result.count > 0) {
        yield* emit(rt, "retention:deleted", { count: result.count });
      }
    }
  });

/**
 * One candidacy for a shard: open a dedicated lock session, wait for the lock, lead until the lease
 * is lost (or the fiber is interrupted by stop), then release the lock and end the session.
 */
const candidacy = (rt: RelayRuntime, shard: number) =>
  Effect.gen(function* () {
    const { options } = rt;
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          openLockSession({
            connectionString: rt.connectionString,
            leaseMs: options.leaseMs,
            applicationName: lockSessionName(rt.namespace, options.instanceId, shard, rt.balancing),
          }),
        catch: (e) =>
          new RelayDatabaseError({
            operation: "open the lock session",
            message: `shard ${shard}: could not open the lock session: ${describeError(e)}`,
            cause: e,
          }),
      }),
      (c) => Effect.promise(() => closeLockSession(c, 2000)),
    );
    let lease: ShardLease | undefined;
    while (lease === undefined) {
      if (!rt.balance.mayAcquire) {
        yield* Effect.sleep(options.acquireIntervalMs);
        continue;
      }
      lease = yield* Effect.tryPromise({
        try: () =>
          ShardLease.tryAcquire({
            client,
            tables: rt.tables,
            namespace: rt.namespace,
            shard,
            owner: options.instanceId,
            leaseMs: options.leaseMs,
            shardCount: options.shardCount,
          }),
        catch: (e) =>
          e instanceof SessionPoolerError || e instanceof ShardCountMismatchError
            ? e
            : new RelayDatabaseError({
                operation: "acquire the shard lock",
                message: `shard ${shard}: ${describeError(e)}`,
                cause: e,
              }),
      });
      if (lease === undefined) yield* Effect.sleep(options.acquireIntervalMs);
    }
    const held = lease;
    yield* Effect.addFinalizer(() => Effect.promise(() => held.release()));
    rt.shardStatus.set(shard, {
      shard,
      leader: true,
      epoch: held.epoch,
      lastHeartbeatAt: new Date(held.lastGoodHeartbeatAt),
    });
    yield* emit(rt, "leader:acquired", { shard, epoch: held.epoch });
    const kafka = options.kafka;
    if (kafka?.mode === "transactional")
      yield* shardProducer(rt, shard, `${kafka.transactionalIdPrefix}-shard-${shard}`);

    let reported = false;
    const onLost = (reason: LeadershipLossReason) => {
      held.markLost(reason);
      rt.shardStatus.set(shard, { shard, leader: false, epoch: held.epoch, lastHeartbeatAt: null });
      if (reported) return;
      reported = true;
      rt.events.emit("leader:lost", { shard, epoch: held.epoch, reason });
    };

    const lead = Effect.raceFirst(
      publishLoop(rt, held),
      shard === Math.min(...options.shards) && options.retentionMs > 0
        ? Effect.raceFirst(heartbeatLoop(rt, held, onLost), retentionLoop(rt, held))
        : heartbeatLoop(rt, held, onLost),
    );
    // The balancer may ask for the shard: the in-flight batch (uninterruptible) finishes and is
    // marked, then the lock is released with the scope.
    const handedOver = Effect.callback<LeadershipLostError>((resume, signal) => {
      const handOver = () =>
        resume(
          Effect.succeed(
            new LeadershipLostError({
              shard,
              epoch: held.epoch,
              reason: "rebalanced",
              message: `shard ${shard} (epoch ${held.epoch}): handed over to balance the shards`,
            }),
          ),
        );
      rt.handOver.set(shard, handOver);
      signal.addEventListener("abort", () => {
        if (rt.handOver.get(shard) === handOver) rt.handOver.delete(shard);
      });
    });
    const lost = yield* Effect.raceFirst(lead.pipe(Effect.flip), handedOver).pipe(
      Effect.onInterrupt(() => Effect.sync(() => onLost("stopped"))),
    );
    rt.handOver.delete(shard);
    onLost(lost.reason);
  });

/**
 * Transactional mode: the shard's own producer, bound to its `transactional.id`, for as long as this
 * instance leads the shard. Initialising the id at once fences a paused predecessor's producer at the
 * broker before this leader sends anything; if the broker is down, the first send initialises it.
 */
const shardProducer = (rt: RelayRuntime, shard: number, transactionalId: string) =>
  Effect.gen(function* () {
    const producer = rt.producer.transactional!(transactionalId);
    rt.shardProducers.set(shard, producer);
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        if (rt.shardProducers.get(shard) === producer) rt.shardProducers.delete(shard);
        await rt.sendSerially(() => producer.disconnect()).catch(() => undefined);
      }),
    );
    const connected = yield* Effect.promise(() =>
      producer.connect({ onConnected: () => undefined, onDisconnected: () => undefined }).then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    if (connected !== undefined) yield* emit(rt, "error", { error: connected });
  });

/**
 * The fiber of one shard: compete for it forever. After a loss or a database error it backs off
 * (the shard back-off schedule) and competes again, so a relay whose database went away rejoins.
 */
export const shardWorker = (rt: RelayRuntime, shard: number) =>
  Effect.gen(function* () {
    const backoff = yield* makeBackoffStepper(rt.options.backoffBaseMs, rt.options.backoffMaxMs);
    rt.shardStatus.set(shard, { shard, leader: false, epoch: null, lastHeartbeatAt: null });
    for (;;) {
      const exit = yield* Effect.exit(Effect.scoped(candidacy(rt, shard)));
      if (exit._tag === "Success") {
        yield* backoff.reset;
        yield* Effect.sleep(rt.options.acquireIntervalMs);
        continue;
      }
      const error = exit.cause;
      yield* emit(rt, "error", { error: causeError(error) });
      yield* Effect.sleep(yield* backoff.next);
    }
  });

function causeError(cause: unknown): unknown {
  const reasons = (cause as { reasons?: readonly { error?: unknown; defect?: unknown }[] }).reasons;
  const first = reasons?.[0];
  return first?.error ?? first?.defect ?? cause;
}
