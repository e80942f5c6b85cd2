import { InvalidOptionError } from "../errors.ts";

/**
 * Throws {@link InvalidOptionError} naming the first key of `options` that is not in `known` (a typo
 * such as `shema` would otherwise be ignored in silence), or when `options` is not an object.
 * `what` names the options in the message: `unknown ${what} option "shema"`.
 */
export function refuseUnknownOptions(options: unknown, known: readonly string[], what: string): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new InvalidOptionError({
      option: "options",
      message: `${what} options must be an object; got ${options === null ? "null" : Array.isArray(options) ? "an array" : typeof options}`,
    });
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new InvalidOptionError({
        option: key,
        message: `unknown ${what} option "${key}"; known: ${known.join(", ")}`,
      });
    }
  }
}
