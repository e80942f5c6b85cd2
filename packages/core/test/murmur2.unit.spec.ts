import { describe, expect, it } from "vitest";
import { murmur2, positiveModulo } from "../src/internal/index.ts";

describe("murmur2", () => {
  // Vectors from Kafka's own UtilsTest.testMurmur2.
  it.each([
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107],
  ])("hashes %j as Kafka does", (key, expected) => {
    expect(murmur2(key)).toBe(expected);
  });

  it("hashes the UTF-8 bytes of a string", () => {
    expect(murmur2("hôtel-é")).toBe(murmur2(new TextEncoder().encode("hôtel-é")));
  });

  it("maps to a partition the way Kafka's toPositive does", () => {
    expect(positiveModulo(-973932308, 3)).toBe((-973932308 & 0x7fffffff) % 3);
    expect(positiveModulo(-2147483648, 7)).toBe(0);
  });
});
