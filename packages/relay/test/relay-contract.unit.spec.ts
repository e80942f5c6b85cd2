import { resolveTableNames } from "@eventlane/core";
import * as contract from "@eventlane/core/internal";
import { describe, expect, it } from "vitest";
import { relayStatements } from "../src/outbox-reader/statements.ts";
import { LeadershipLossReasons, PublishFailureReasons } from "../src/index.ts";

describe("the relay's contract with its watchers", () => {
  it("has the relay's reason lists", () => {
    expect(LeadershipLossReasons).toBe(contract.LeadershipLossReasons);
    // Still defined in producer-port.ts until it re-exports the contract's: the two must not drift.
    expect(PublishFailureReasons).toBe(contract.PublishFailureReasons);
  });

  it("reads a shard's rows by the shared shard expression", () => {
    const { readBatch } = relayStatements(resolveTableNames());
    expect(readBatch.text).toContain(`${contract.shardOfSqlText("o.key_hash", "$1::integer")} = $2::integer`);
    expect(readBatch.text).toContain("(o.key_hash & 2147483647) % $1::integer = $2::integer");
  });
});
