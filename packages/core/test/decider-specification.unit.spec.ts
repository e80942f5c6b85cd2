import { AssertionError } from "node:assert";
import { describe, expect, it } from "vitest";
import type { Decider } from "../src/index.ts";
import { DeciderSpecification } from "../src/testing/index.ts";

// A decider of its own, with nested payloads, so the kit is tested apart from any example domain.
type Event =
  | {
      readonly type: "priced";
      readonly data: { readonly sku: string; readonly price: { amount: number; currency: string } };
    }
  | { readonly type: "discontinued"; readonly data: { readonly sku: string } };
type Command =
  | { readonly kind: "price"; readonly sku: string; readonly amount: number }
  | { readonly kind: "discontinue"; readonly sku: string }
  | { readonly kind: "expire" }
  | { readonly kind: "noop" };
type State = { readonly priced: number; readonly discontinued: boolean };

class Discontinued extends Error {}

const Product: Decider<State, Command, Event> = {
  initialState: () => ({ priced: 0, discontinued: false }),
  evolve: (s, e) => (e.type === "priced" ? { ...s, priced: s.priced + 1 } : { ...s, discontinued: true }),
  decide: (c, s) => {
    if (s.discontinued) throw new Discontinued("product is discontinued");
    switch (c.kind) {
      case "price":
        // Keys written in this order: the expectations below list them in another.
        return { type: "priced", data: { sku: c.sku, price: { amount: c.amount, currency: "EUR" } } };
      case "discontinue":
        return [{ type: "discontinued", data: { sku: c.sku } }];
      case "expire":
        // Not an Error, and a code shaped like a SQLSTATE-ish "E..." code: still just a throw.
        throw { code: "EXPIRED" };
      case "noop":
        return [];
    }
  },
};
const spec = DeciderSpecification.for(Product);
const discontinued: Event = { type: "discontinued", data: { sku: "p1" } };

/** Runs `fn` and returns the AssertionError it throws (failing the test if it throws anything else). */
function assertionOf(fn: () => void): AssertionError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AssertionError);
    return error as AssertionError;
  }
  throw new Error("expected an assertion failure, nothing was thrown");
}

describe("DeciderSpecification", () => {
  describe("thenEmits", () => {
    it("passes on equal events written with their keys in another order, single or in an array", () => {
      const when = spec.given([]).when({ kind: "price", sku: "p1", amount: 10 });
      when.thenEmits({ data: { price: { currency: "EUR", amount: 10 }, sku: "p1" }, type: "priced" });
      when.thenEmits([{ type: "priced", data: { price: { currency: "EUR", amount: 10 }, sku: "p1" } }]);
    });

    it("ignores metadata", () => {
      spec
        .given([])
        .when({ kind: "discontinue", sku: "p1" })
        .thenEmits([{ ...discontinued, metadata: { correlationId: "c-1" } } as Event]);
    });

    it("fails as an assertion on a different payload, with a diff naming the differing value", () => {
      const error = assertionOf(() =>
        spec
          .given([])
          .when({ kind: "price", sku: "p1", amount: 10 })
          .thenEmits({ type: "priced", data: { sku: "p1", price: { amount: 11, currency: "EUR" } } }),
      );
      expect(error.code).toBe("ERR_ASSERTION");
      expect(error.message).toMatch(/emitted other events than expected/);
      expect(error.message).toMatch(/\+ actual - expected/);
      expect(error.message).toMatch(/\+\s+amount: 10/);
      expect(error.message).toMatch(/-\s+amount: 11/);
      expect(error.actual).toEqual([{ type: "priced", data: { sku: "p1", price: { amount: 10, currency: "EUR" } } }]);
      expect(error.expected).toEqual([{ type: "priced", data: { sku: "p1", price: { amount: 11, currency: "EUR" } } }]);
      // The stack starts at the caller, not inside the kit.
      const firstFrame = error.stack?.split("\n").find((line) => line.trimStart().startsWith("at "));
      expect(firstFrame).toMatch(/decider-specification\.unit\.spec\.ts/);
    });

    it("compares structurally, not by JSON text: a type or an extra event makes a difference", () => {
      assertionOf(() =>
        spec
          .given([])
          .when({ kind: "price", sku: "p1", amount: 10 })
          .thenEmits({ type: "priced", data: { sku: "p1", price: { amount: "10", currency: "EUR" } } } as never),
      );
      assertionOf(() =>
        spec.given([]).when({ kind: "discontinue", sku: "p1" }).thenEmits([discontinued, discontinued]),
      );
      assertionOf(() => spec.given([]).when({ kind: "discontinue", sku: "p1" }).thenEmits([]));
    });

    it("fails as an assertion, not by rethrowing, when decide throws", () => {
      const error = assertionOf(() => spec.given([discontinued]).when({ kind: "noop" }).thenEmits([]));
      expect(error.message).toMatch(/decide threw Error: product is discontinued/);
      expect(error.cause).toBeInstanceOf(Discontinued);
      const plain = assertionOf(() => spec.given([]).when({ kind: "expire" }).thenEmits([]));
      expect(plain.message).toMatch(/decide threw \{ code: 'EXPIRED' \}/);
      expect(plain.cause).toEqual({ code: "EXPIRED" });
    });
  });

  describe("thenThrows", () => {
    it("passes when decide throws, matched by class, by Error itself or by a predicate", () => {
      const when = spec.given([discontinued]).when({ kind: "price", sku: "p1", amount: 1 });
      when.thenThrows();
      when.thenThrows(Discontinued);
      when.thenThrows(Error);
      when.thenThrows((e) => e instanceof Discontinued && e.message.includes("discontinued"));
      spec
        .given([])
        .when({ kind: "expire" })
        .thenThrows((e) => (e as { code?: string }).code === "EXPIRED");
    });

    it("fails when decide does not throw, or throws something the check refuses", () => {
      const none = assertionOf(() => spec.given([]).when({ kind: "discontinue", sku: "p1" }).thenThrows());
      expect(none.message).toMatch(/expected decide to throw, it emitted/);
      const wrongClass = assertionOf(() => spec.given([]).when({ kind: "expire" }).thenThrows(Discontinued));
      expect(wrongClass.message).toMatch(/expected decide to throw a Discontinued, it threw \{ code: 'EXPIRED' \}/);
      const refused = assertionOf(() =>
        spec
          .given([discontinued])
          .when({ kind: "noop" })
          .thenThrows(() => false),
      );
      expect(refused.message).toMatch(/which the check refused/);
      expect(refused.cause).toBeInstanceOf(Discontinued);
    });
  });

  describe("thenNothingHappened and thenState", () => {
    it("thenNothingHappened passes on no events and fails, as an assertion, on some or on a throw", () => {
      spec.given([]).when({ kind: "noop" }).thenNothingHappened();
      const some = assertionOf(() => spec.given([]).when({ kind: "discontinue", sku: "p1" }).thenNothingHappened());
      expect(some.message).toMatch(/emit no events, it emitted some/);
      expect(some.actual).toEqual([discontinued]);
      assertionOf(() => spec.given([discontinued]).when({ kind: "noop" }).thenNothingHappened());
    });

    it("thenState folds the given and the produced events", () => {
      const priced: Event = { type: "priced", data: { sku: "p1", price: { amount: 1, currency: "EUR" } } };
      let seen: State | undefined;
      spec
        .given([priced])
        .when({ kind: "price", sku: "p1", amount: 2 })
        .thenState((s) => {
          seen = s;
        });
      expect(seen).toEqual({ priced: 2, discontinued: false });
      assertionOf(() =>
        spec
          .given([discontinued])
          .when({ kind: "noop" })
          .thenState(() => undefined),
      );
    });
  });
});
