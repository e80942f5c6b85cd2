import { describe, expect, it } from "vitest";
import * as core from "../src/index.ts";
import * as testing from "../src/testing/index.ts";

type ErrorClass = new (props: object) => Error & { readonly code?: unknown; readonly _tag?: unknown };

/** Every exported class whose instances are Errors, from both entry points. */
const errorClasses: [string, ErrorClass][] = Object.entries({ ...core, ...testing } as Record<string, unknown>).flatMap(
  ([name, value]) =>
    typeof value === "function" && value.prototype instanceof Error
      ? [[name, value as ErrorClass] as [string, ErrorClass]]
      : [],
);

describe("error codes", () => {
  it("finds the error classes (the enumeration itself works)", () => {
    expect(errorClasses.map(([name]) => name)).toEqual(
      expect.arrayContaining(["InvalidOptionError", "SchemaVersionError", "DatabaseError", "DomainRejection"]),
    );
  });

  it.each(errorClasses)("%s has a stable code from EventlaneErrorCodes and is an Eventlane error", (_name, E) => {
    const error = new E({ message: "m" });
    expect(core.EventlaneErrorCodes).toContain(error.code);
    expect(error._tag).toBe(_name);
    expect(core.isEventlaneError(error)).toBe(true);
  });

  it("lists each code once, and only codes some class has", () => {
    const codes = errorClasses.map(([, E]) => new E({ message: "m" }).code);
    expect(new Set(codes).size).toBe(codes.length);
    expect([...core.EventlaneErrorCodes].sort()).toEqual([...codes].sort());
  });

  it("isEventlaneError goes by class, not by the shape of a code", () => {
    expect(core.isEventlaneError({ code: "EVENTLANE_CONCURRENCY", _tag: "ConcurrencyError" })).toBe(false);
    expect(core.isEventlaneError(Object.assign(new Error("x"), { code: "EVENTLANE_DATABASE" }))).toBe(false);
  });
});
