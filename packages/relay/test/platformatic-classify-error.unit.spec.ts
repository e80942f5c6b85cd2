import {
  AuthenticationError,
  MultipleErrors,
  NetworkError,
  ProtocolError,
  protocolErrors,
  ResponseError,
  TimeoutError,
  UserError,
} from "@platformatic/kafka";
import { describe, expect, it } from "vitest";
import { classifyPlatformaticError, describePlatformaticError } from "../src/producer/classify-platformatic-error.ts";

// Produce is API key 0; the paths are where the client found each partition's error code.
const produceResponse = (...codes: number[]) =>
  new ResponseError(
    0,
    11,
    Object.fromEntries(codes.map((code, i) => [`/responses/0/partitionResponses/${i}`, [code, null]])),
    {},
  );
const code = (id: string) => protocolErrors[id]!.code;
const refused = () =>
  new NetworkError("Connection to 127.0.0.1:1 failed.", {
    cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
  });

describe("classifyPlatformaticError", () => {
  it("makes only record-level Kafka errors `record`, over every error the client knows", () => {
    const record = Object.keys(protocolErrors).filter(
      (id) => classifyPlatformaticError(new ProtocolError(id)) === "record",
    );
    expect(record.sort()).toEqual(
      [
        "CORRUPT_MESSAGE",
        "INVALID_RECORD",
        "INVALID_TIMESTAMP",
        "MESSAGE_TOO_LARGE",
        "RECORD_LIST_TOO_LARGE",
        "UNSUPPORTED_COMPRESSION_TYPE",
      ].sort(),
    );
    // A retriable Kafka error is transient, so it may not count toward attempts; the one exception is
    // CORRUPT_MESSAGE, which Kafka marks retriable (corruption in transit) and the client retries
    // twice itself: after that it is the record's (DESIGN invariant 7), as in the kafkajs adapter.
    const retriable = Object.entries(protocolErrors).filter(([, def]) => def.canRetry);
    expect(retriable.length).toBeGreaterThan(20);
    for (const [id] of retriable) {
      if (id !== "CORRUPT_MESSAGE") expect(classifyPlatformaticError(new ProtocolError(id)), id).not.toBe("record");
    }
  });

  it.each([
    ["NOT_LEADER_OR_FOLLOWER", "leadership"],
    ["LEADER_NOT_AVAILABLE", "leadership"],
    ["NOT_ENOUGH_REPLICAS", "leadership"],
    ["NOT_ENOUGH_REPLICAS_AFTER_APPEND", "leadership"],
    ["UNKNOWN_TOPIC_OR_PARTITION", "leadership"],
    ["REQUEST_TIMED_OUT", "timeout"],
    ["THROTTLING_QUOTA_EXCEEDED", "throttling"],
    ["SASL_AUTHENTICATION_FAILED", "connection"],
    ["OUT_OF_ORDER_SEQUENCE_NUMBER", "unknown"],
    ["UNKNOWN_PRODUCER_ID", "unknown"],
  ])("classifies the Kafka error %s as %s", (id, reason) => {
    expect(classifyPlatformaticError(new ProtocolError(id))).toBe(reason);
    expect(classifyPlatformaticError(produceResponse(code(id)))).toBe(reason);
  });

  it("classifies the client's own errors", () => {
    expect(classifyPlatformaticError(refused())).toBe("connection");
    expect(classifyPlatformaticError(new NetworkError("Connection closed"))).toBe("connection");
    expect(classifyPlatformaticError(new TimeoutError("Request timed out"))).toBe("timeout");
    expect(classifyPlatformaticError(new AuthenticationError("SASL failed"))).toBe("connection");
    expect(classifyPlatformaticError(new UserError("Failed to serialize a message."))).toBe("unknown");
    expect(classifyPlatformaticError(Object.assign(new Error("reset"), { code: "ECONNRESET" }))).toBe("connection");
    expect(classifyPlatformaticError(new Error("anything"))).toBe("unknown");
    expect(classifyPlatformaticError("a string")).toBe("unknown");
    expect(classifyPlatformaticError(undefined)).toBe("unknown");
  });

  it("is `record` for an aggregate only when every part failed for a record reason", () => {
    const tooLarge = code("MESSAGE_TOO_LARGE");
    expect(classifyPlatformaticError(produceResponse(tooLarge, tooLarge))).toBe("record");
    expect(
      classifyPlatformaticError(new MultipleErrors("Producing messages failed.", [produceResponse(tooLarge)])),
    ).toBe("record");
    // One partition oversize, another without a leader: transient wins.
    expect(classifyPlatformaticError(produceResponse(tooLarge, code("NOT_LEADER_OR_FOLLOWER")))).toBe("leadership");
    // Retries: a connection failure, then an oversize answer.
    expect(
      classifyPlatformaticError(new MultipleErrors("produce failed 2 times.", [refused(), produceResponse(tooLarge)])),
    ).toBe("connection");
    // One broker oversize, the other unreachable.
    expect(
      classifyPlatformaticError(
        new MultipleErrors("Producing messages failed.", [produceResponse(tooLarge), new TimeoutError("timed out")]),
      ),
    ).toBe("timeout");
    // Something unrecognised next to a record error is never `record`.
    expect(
      classifyPlatformaticError(
        new MultipleErrors("Producing messages failed.", [produceResponse(tooLarge), new Error("?")]),
      ),
    ).toBe("unknown");
  });
});

describe("describePlatformaticError", () => {
  it("names the Kafka errors inside the client's aggregate", () => {
    const text = describePlatformaticError(
      new MultipleErrors("Producing messages failed.", [produceResponse(code("MESSAGE_TOO_LARGE"))]),
    );
    expect(text).toContain("Producing messages failed.");
    expect(text).toContain("MESSAGE_TOO_LARGE");
  });

  it("strips user info from anything that looks like a URL", () => {
    const text = describePlatformaticError(new NetworkError("failed for sasl://user:hunter2@broker:9092"));
    expect(text).not.toContain("hunter2");
  });
});
