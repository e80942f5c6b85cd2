import { testKafka } from "@eventlane/test-kit";
import type { Kysely, Transaction } from "kysely";
import { describe, expectTypeOf, it } from "vitest";
import { createConsumer } from "../src/index.ts";
import { roomEvents, type TestDb } from "./fixtures/setup.ts";

declare const db: Kysely<TestDb>;
const { RoomBooked, RoomReleased } = roomEvents("rooms");

describe("consumer types", () => {
  it("types each handler's event from its definition and the transaction from the database", () => {
    createConsumer({
      kafka: testKafka(),
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

  it("rejects a handler for a type the consumer does not decode", () => {
    createConsumer({
      kafka: testKafka(),
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
