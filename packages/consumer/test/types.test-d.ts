import type { Kysely, Transaction } from "kysely";
import { describe, expectTypeOf, it } from "vitest";
import { createConsumer } from "../src/index.ts";
import { roomEvents, type TestDb } from "./fixtures/setup.ts";

declare const db: Kysely<TestDb>;
const { RoomBooked, RoomReleased } = roomEvents("rooms");

describe("consumer types", () => {
  it("types each handler's event from its definition and the transaction from the database", () => {
    createConsumer({
      kafka: { brokers: ["localhost:9092"] },
      db,
      groupId: "g",
      events: [RoomBooked, RoomReleased],
      handlers: {
        room_booked: (event, { trx }) => {
          expectTypeOf(event.type).toEqualTypeOf<"room_booked">();
          expectTypeOf(event.data).toEqualTypeOf<{
            readonly roomId: string;
            readonly guest: string;
            readonly nights: number;
          }>();
          expectTypeOf(trx).toEqualTypeOf<Transaction<TestDb>>();
        },
        room_released: (event) => {
          expectTypeOf(event.data).toEqualTypeOf<{ readonly roomId: string }>();
        },
      },
    });
  });

  it("types batch handlers by event type and handleBatch over every event", () => {
    createConsumer({
      kafka: { brokers: ["localhost:9092"], client: "platformatic" },
      db,
      groupId: "g",
      events: [RoomBooked, RoomReleased],
      batchHandlers: {
        room_booked: (items, { trx }) => {
          expectTypeOf(items[0]?.event.data.nights).toEqualTypeOf<number | undefined>();
          expectTypeOf(items[0]?.context.replay).toEqualTypeOf<
            { readonly deadLetterId: string; readonly reason: string; readonly actor: string } | null | undefined
          >();
          expectTypeOf(trx).toEqualTypeOf<Transaction<TestDb>>();
        },
      },
    });
    createConsumer({
      kafka: { brokers: ["localhost:9092"] },
      db,
      groupId: "g",
      events: [RoomBooked, RoomReleased],
      handleBatch: (items) => {
        expectTypeOf(items[0]?.event.type).toEqualTypeOf<"room_booked" | "room_released" | undefined>();
      },
    });
  });

  it("rejects a handler for a type the consumer does not decode", () => {
    createConsumer({
      kafka: { brokers: ["localhost:9092"] },
      db,
      groupId: "g",
      events: [RoomBooked],
      handlers: {
        // @ts-expect-error room_released is not in events
        room_released: () => {},
      },
    });
  });
});
