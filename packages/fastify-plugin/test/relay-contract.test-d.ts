import {
  createRelay,
  type LeadershipLossReason,
  type PublishFailureReason as RelayPublishFailureReason,
  type RelayEvents,
  type RelayOptions,
  type RelayStatus,
  type ShardStatus,
} from "@eventlane/relay";
import Fastify from "fastify";
import type { Kysely } from "kysely";
import { describe, expectTypeOf, it } from "vitest";
import {
  type EventlanePluginOptions,
  type EventlaneRelayEventName,
  type EventlaneRelayEvents,
  type EventlaneRelayHandle,
  type EventlaneRelayShardStatus,
  type EventlaneRelayStatus,
  eventlane,
  type PublishFailureReason,
  type RelayEventNames,
} from "../src/index.ts";

declare const options: RelayOptions;
declare const db: Kysely<unknown>;

describe("the relay's contract with the plugin", () => {
  it("takes createRelay's relay as the relay option", () => {
    const relay = createRelay(options);
    expectTypeOf(relay).toExtend<EventlaneRelayHandle>();
    expectTypeOf(relay).toExtend<NonNullable<EventlanePluginOptions["relay"]>>();
    Fastify().register(eventlane, { db, relay });
  });

  it("is one definition: the relay's types are the plugin's", () => {
    expectTypeOf<RelayEvents>().toEqualTypeOf<EventlaneRelayEvents>();
    expectTypeOf<RelayStatus>().toEqualTypeOf<EventlaneRelayStatus>();
    expectTypeOf<ShardStatus>().toEqualTypeOf<EventlaneRelayShardStatus>();
    expectTypeOf<RelayPublishFailureReason>().toEqualTypeOf<PublishFailureReason>();
    expectTypeOf<EventlaneRelayEvents["leader:lost"]["reason"]>().toEqualTypeOf<LeadershipLossReason>();
  });

  it("lists every event name", () => {
    expectTypeOf<(typeof RelayEventNames)[number]>().toEqualTypeOf<EventlaneRelayEventName>();
    expectTypeOf<EventlaneRelayEventName>().toEqualTypeOf<keyof RelayEvents>();
  });
});
