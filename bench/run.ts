// Runs one benchmark: `pnpm bench <name>` (from the repository root). Lists them without a name.
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .map((f) => f.replace(/\.bench\.ts$/, ""));
const name = process.argv[2];
if (name === undefined || !available.includes(name)) {
  console.error(`usage: pnpm bench <name>; available: ${available.join(", ")}`);
  process.exit(2);
}
const mod = (await import(pathToFileURL(path.join(here, `${name}.bench.ts`)).href)) as {
  main: (args: string[]) => Promise<unknown>;
};
const result = await mod.main(process.argv.slice(3));
// The last line of output is always one JSON object with the figures.
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
