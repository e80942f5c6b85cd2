/**
 * Packages a user can install: every publishable package is built and packed with pnpm, the tarballs
 * are installed with npm into new projects outside the workspace, and a small program is type-checked
 * against their declarations (strict, `skipLibCheck: false`) and run against the real PostgreSQL and
 * Kafka: one event enqueued, published by the relay and applied by a consumer. Three projects:
 *
 * - everything, with kafkajs;
 * - everything but kafkajs, with @platformatic/kafka as the only client;
 * - @eventlane/core and @eventlane/consumer alone, without the relay.
 *
 * A failed build, pack or install fails the test; nothing is skipped.
 */
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTestDatabase,
  deleteTopics,
  kafkaBrokers,
  type TestDatabase,
  uniqueTopic,
} from "../../packages/test-kit/src/index.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const fixtures = path.join(here, "fixtures");

/** The publishable packages, in the order they depend on each other; files every tarball must hold. */
const PACKAGES = [
  { dir: "core", name: "@eventlane/core", files: [] },
  { dir: "relay", name: "@eventlane/relay", files: [] },
  { dir: "consumer", name: "@eventlane/consumer", files: [] },
  {
    dir: "fastify-plugin",
    name: "@eventlane/fastify",
    // The README says the plugin ships them.
    files: ["alerts/eventlane.rules.yml", "alerts/eventlane.rules.test.yml", "dashboards/eventlane.json"],
  },
  { dir: "relay-server", name: "@eventlane/relay-server", files: [] },
] as const;
type PackageName = (typeof PACKAGES)[number]["name"];

const REQUIRED_FILES = ["package.json", "README.md", "LICENSE", "CHANGELOG.md"];
const REPOSITORY_URL = "git+https://github.com/eventlane/eventlane.git";
/** Not a dependency of the workspace: @platformatic/kafka's declarations import `debug` without it. */
const TYPES_DEBUG_VERSION = "4.1.13";

// Each step's limit (ms): an install downloads from the registry, a program connects to both services.
const STEP_TIMEOUT_MS = 120_000;
const PROGRAM_TIMEOUT_MS = 90_000;
const TEST_TIMEOUT_MS = 170_000;

interface Packed {
  readonly name: PackageName;
  readonly dir: string;
  readonly tarball: string;
  /** The tarball's paths, without the leading `package/`. */
  readonly entries: readonly string[];
  readonly manifest: PackageManifest;
}

interface PackageManifest {
  readonly name: string;
  readonly version: string;
  readonly license?: string;
  readonly author?: string;
  readonly repository?: { readonly type?: string; readonly url?: string; readonly directory?: string };
  readonly homepage?: string;
  readonly bugs?: { readonly url?: string };
  readonly keywords?: readonly string[];
  readonly publishConfig?: { readonly access?: string };
  readonly exports?: unknown;
  readonly bin?: Readonly<Record<string, string>>;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly devDependencies?: Readonly<Record<string, string>>;
}

interface Result {
  /** The exit code; null when the command did not exit by itself (see `failure`). */
  readonly code: number | null;
  /** Why the command did not run to an exit code of its own: not found, killed after its time limit. */
  readonly failure: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly command: string;
  readonly cwd: string;
}

/** Runs a command to its end (or kills it after `timeoutMs`); never throws on a failed exit. */
function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Result> {
  const timeoutMs = options.timeoutMs ?? STEP_TIMEOUT_MS;
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
        const failure =
          error === null || code !== null
            ? null
            : error.killed
              ? `killed after ${timeoutMs} ms (still running: a hang, or a handle that keeps it alive)`
              : error.message;
        resolve({ code, failure, stdout, stderr, command: [command, ...args].join(" "), cwd: options.cwd });
      },
    );
  });
}

function report(result: Result): string {
  const outcome = result.failure ?? `exit ${result.code}`;
  return `${result.command} (in ${result.cwd}): ${outcome}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

function expectSuccess(result: Result): void {
  expect(result.code, report(result)).toBe(0);
}

/**
 * The environment of a user's shell, this Node first on PATH, without what the workspace's pnpm set
 * for vitest: npm_* and pnpm_* variables (npm reads npm_config_* as its configuration), NODE_PATH (pnpm's
 * bin shims point it at the workspace's packages, where a CommonJS require of a package the project
 * lacks would find one) and NODE_OPTIONS.
 */
function userEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^p?npm_/i.test(key) && key !== "NODE_PATH" && key !== "NODE_OPTIONS") env[key] = value;
  }
  env.PATH = `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}`;
  env.npm_config_update_notifier = "false";
  return { ...env, ...extra };
}

async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await readFile(file, "utf8")) as T;
}

/** The version the workspace uses of a third-party package, read from the manifest that pins it. */
async function workspaceVersion(manifest: string, name: string): Promise<string> {
  const json = await readJson<{ dependencies?: Record<string, string>; devDependencies?: Record<string, string> }>(
    path.join(root, manifest),
  );
  const version = json.devDependencies?.[name] ?? json.dependencies?.[name];
  if (version === undefined) throw new Error(`${manifest} does not pin ${name}`);
  return version;
}

/** Every relative path an `exports` map points at. */
function exportTargets(exports: unknown): string[] {
  if (typeof exports === "string") return [exports];
  if (exports === null || typeof exports !== "object") return [];
  return Object.values(exports).flatMap(exportTargets);
}

/** The subpaths of an `exports` map: `.` is the package itself. */
function exportSubpaths(name: string, exports: unknown): string[] {
  if (exports === null || typeof exports !== "object") return [name];
  return Object.keys(exports).map((key) => (key === "." ? name : `${name}/${key.slice(2)}`));
}

let work: string;
let packed: ReadonlyMap<PackageName, Packed>;
let versions: Readonly<Record<string, string>>;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), "eventlane-install-"));
  const packs = path.join(work, "packs");
  await mkdir(packs);

  // Every package's dist, from this checkout's sources (the packages' references included).
  const tsc = path.join(root, "node_modules/typescript/bin/tsc");
  expectSuccess(await run(process.execPath, [tsc, "-b", ...PACKAGES.map((p) => `packages/${p.dir}`)], { cwd: root }));

  const result = new Map<PackageName, Packed>();
  for (const p of PACKAGES) {
    // pnpm pack, not npm pack: it turns `workspace:*` into the packages' versions.
    const pack = await run("pnpm", ["pack", "--pack-destination", packs, "--json"], {
      cwd: path.join(root, "packages", p.dir),
    });
    expectSuccess(pack);
    const { filename } = JSON.parse(pack.stdout) as { filename: string };
    const list = await run("tar", ["tzf", filename], { cwd: work });
    expectSuccess(list);
    const manifest = await run("tar", ["xzf", filename, "-O", "package/package.json"], { cwd: work });
    expectSuccess(manifest);
    result.set(p.name, {
      name: p.name,
      dir: p.dir,
      tarball: filename,
      entries: list.stdout
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => line.replace(/^package\//, "")),
      manifest: JSON.parse(manifest.stdout) as PackageManifest,
    });
  }
  packed = result;

  versions = {
    effect: await workspaceVersion("packages/consumer/package.json", "effect"),
    kysely: await workspaceVersion("packages/consumer/package.json", "kysely"),
    kafkajs: await workspaceVersion("packages/consumer/package.json", "kafkajs"),
    "@platformatic/kafka": await workspaceVersion("packages/consumer/package.json", "@platformatic/kafka"),
    pg: await workspaceVersion("packages/consumer/package.json", "pg"),
    "@types/pg": await workspaceVersion("packages/consumer/package.json", "@types/pg"),
    fastify: await workspaceVersion("packages/fastify-plugin/package.json", "fastify"),
    "@prometheus-io/client": await workspaceVersion("packages/fastify-plugin/package.json", "@prometheus-io/client"),
    typescript: await workspaceVersion("package.json", "typescript"),
    // The root asks for ^24; the project gets the version the workspace resolved.
    "@types/node": (await readJson<{ version: string }>(path.join(root, "node_modules/@types/node/package.json")))
      .version,
    "@types/debug": TYPES_DEBUG_VERSION,
  };
}, 180_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

interface ProjectSpec {
  readonly name: string;
  readonly packages: readonly PackageName[];
  readonly dependencies: readonly string[];
  readonly devDependencies: readonly string[];
  readonly fixtures: readonly string[];
  /** Entry points not imported at run time: the client adapters whose client this project lacks. */
  readonly notLoaded?: readonly string[];
}

/** The strictest settings a user is likely to have, with the libraries' declarations checked too. */
const TSCONFIG = {
  compilerOptions: {
    target: "ES2023",
    lib: ["ES2023"],
    module: "nodenext",
    moduleResolution: "nodenext",
    types: ["node"],
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: false,
    noEmit: true,
    // The program runs as written: `node program.ts` strips its types.
    allowImportingTsExtensions: true,
    verbatimModuleSyntax: true,
    erasableSyntaxOnly: true,
  },
  include: ["*.ts"],
};

/**
 * A new npm project in the temporary folder that depends on the tarballs and the given third-party
 * packages (at the workspace's versions), installed with npm. `overrides` make the packages'
 * dependencies on each other (`@eventlane/relay` -> `@eventlane/core` 0.1.0) resolve to the tarballs,
 * never to the registry. Every installed package's entry points are imported by `entry-points.ts`.
 */
async function installProject(spec: ProjectSpec): Promise<string> {
  const dir = path.join(work, spec.name);
  await mkdir(dir);
  const tarballs = spec.packages.map((name) => packed.get(name)!);
  const pick = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, versions[n]!]));
  const manifest = {
    name: `eventlane-install-${spec.name}`,
    private: true,
    type: "module",
    dependencies: {
      ...Object.fromEntries(tarballs.map((p) => [p.name, `file:${p.tarball}`])),
      ...pick(spec.dependencies),
    },
    devDependencies: pick(spec.devDependencies),
    overrides: Object.fromEntries(tarballs.map((p) => [p.name, `$${p.name}`])),
  };
  await writeFile(path.join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  await writeFile(path.join(dir, "tsconfig.json"), `${JSON.stringify(TSCONFIG, null, 2)}\n`);
  for (const file of spec.fixtures) await cp(path.join(fixtures, file), path.join(dir, file));
  const subpaths = tarballs.flatMap((p) => exportSubpaths(p.name, p.manifest.exports));
  await writeFile(
    path.join(dir, "entry-points.ts"),
    [
      "/** Type-checks every entry point's declarations; run, imports each (but the relay-server bin, which starts). */",
      ...subpaths.map((s, i) => `import type * as entry${i} from "${s}";`),
      `export type { ${subpaths.map((_, i) => `entry${i}`).join(", ")} };`,
      "const loaded: string[] = [];",
      "const failed: Record<string, string> = {};",
      `for (const name of ${JSON.stringify(subpaths.filter((s) => s !== "@eventlane/relay-server" && !(spec.notLoaded ?? []).includes(s)))}) {`,
      "  await import(name).then(",
      "    () => loaded.push(name),",
      "    (error: unknown) => {",
      "      failed[name] = String(error);",
      "    },",
      "  );",
      "}",
      "console.log(JSON.stringify({ loaded, failed }));",
      "process.exitCode = Object.keys(failed).length === 0 ? 0 : 1;",
      "",
    ].join("\n"),
  );

  // One npm cache for every project of the run.
  const install = await run(
    "npm",
    ["install", "--no-audit", "--no-fund", "--prefer-offline", "--cache", path.join(work, "npm-cache")],
    { cwd: dir, env: userEnv() },
  );
  expectSuccess(install);

  // Each package once, at the top, from its tarball.
  const lock = await readJson<{ packages: Record<string, { resolved?: string }> }>(path.join(dir, "package-lock.json"));
  const installed = Object.entries(lock.packages).filter(([key]) => /(^|\/)node_modules\/@eventlane\//.test(key));
  expect(installed.map(([key]) => key).sort()).toEqual(spec.packages.map((n) => `node_modules/${n}`).sort());
  for (const [key, entry] of installed) {
    expect(entry.resolved, `${key} comes from its tarball`).toMatch(/^file:.*\.tgz$/);
  }
  return dir;
}

async function typeCheck(dir: string): Promise<void> {
  expectSuccess(
    await run(process.execPath, ["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."], {
      cwd: dir,
      env: userEnv(),
    }),
  );
}

/** Runs a TypeScript file of the project with this Node (which strips the types). */
function runProgram(dir: string, file: string, env: Readonly<Record<string, string>> = {}): Promise<Result> {
  return run(process.execPath, [file], { cwd: dir, env: userEnv(env), timeoutMs: PROGRAM_TIMEOUT_MS });
}

/** The last line of a program's output, which is its JSON summary. */
function summary(result: Result): unknown {
  const last = result.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last);
  } catch {
    return last;
  }
}

/** The installed `eventlane-relay` bin loads (all its imports) and prints the package's version. */
async function expectBinWorks(dir: string): Promise<void> {
  const version = await run(path.join(dir, "node_modules/.bin/eventlane-relay"), ["--version"], {
    cwd: dir,
    env: userEnv(),
  });
  expect
    .soft({ code: version.code, stdout: version.stdout.trim() }, report(version))
    .toEqual({ code: 0, stdout: packed.get("@eventlane/relay-server")!.manifest.version });
}

/** Enqueue, relay, consume one event on a database and a topic of its own, dropped afterwards. */
async function runFlow(dir: string, program: string, client: string): Promise<void> {
  let database: TestDatabase | undefined;
  const topic = uniqueTopic("install");
  try {
    database = await createTestDatabase("el_install");
    const result = await runProgram(dir, program, {
      DATABASE_URL: database.url,
      KAFKA_BROKERS: kafkaBrokers.join(","),
      TOPIC: topic,
    });
    expectSuccess(result);
    expect(summary(result), report(result)).toMatchObject({ client, applied: 1 });
  } finally {
    await deleteTopics([topic]);
    await database?.drop();
  }
}

describe("the packed packages", () => {
  it("hold their metadata, README, LICENSE, CHANGELOG and dist, no tests, no stale or build-state files", async () => {
    for (const p of PACKAGES) {
      const { entries, manifest } = packed.get(p.name)!;
      const where = `${p.name} (${path.basename(packed.get(p.name)!.tarball)})`;
      for (const file of [...REQUIRED_FILES, ...p.files])
        expect.soft(entries, `${where} holds ${file}`).toContain(file);
      for (const target of [...exportTargets(manifest.exports), ...Object.values(manifest.bin ?? {})]) {
        expect.soft(entries, `${where} holds ${target}, named in its package.json`).toContain(target.slice(2));
      }
      expect
        .soft(
          entries.filter((e) => /\.tsbuildinfo$|\.(spec|test)\.[cm]?[jt]s$|\.test-d\.ts$|^test\//.test(e)),
          `${where} holds no tests and no tsbuildinfo`,
        )
        .toEqual([]);
      // tsc -b never deletes the output of a removed source file: it would be published.
      const stale = entries.filter(
        (e) => e.startsWith("dist/") && !entries.includes(`src/${e.slice(5).replace(/\.(d\.ts|js)(\.map)?$/, "")}.ts`),
      );
      expect
        .soft(
          stale,
          `${where}: dist files without a source (rm -rf packages/*/dist packages/*/tsconfig.tsbuildinfo and build again)`,
        )
        .toEqual([]);

      expect.soft(JSON.stringify(manifest), `${where}: no workspace: range left`).not.toContain("workspace:");
      for (const [dep, range] of Object.entries(manifest.dependencies ?? {})) {
        const sibling = PACKAGES.find((s) => s.name === dep);
        if (sibling !== undefined) {
          expect
            .soft(range, `${where} depends on ${dep} at its version`)
            .toBe(packed.get(sibling.name)!.manifest.version);
        }
      }
      expect.soft(manifest.license, where).toBe("MIT");
      expect.soft(manifest.author, where).toBe("the Eventlane contributors");
      expect
        .soft(manifest.repository, where)
        .toEqual({ type: "git", url: REPOSITORY_URL, directory: `packages/${p.dir}` });
      expect
        .soft(manifest.homepage, where)
        .toBe(`https://github.com/eventlane/eventlane/tree/main/packages/${p.dir}#readme`);
      expect.soft(manifest.bugs, where).toEqual({ url: "https://github.com/eventlane/eventlane/issues" });
      expect.soft(manifest.keywords?.length ?? 0, `${where} has keywords`).toBeGreaterThan(0);
      expect.soft(manifest.publishConfig, where).toEqual({ access: "public" });
    }
  });

  it(
    "install with npm and kafkajs: the program type-checks and enqueues, relays and consumes one event",
    async () => {
      const dir = await installProject({
        name: "with-kafkajs",
        packages: PACKAGES.map((p) => p.name),
        dependencies: ["kysely", "pg", "effect", "kafkajs", "@platformatic/kafka", "fastify", "@prometheus-io/client"],
        devDependencies: ["typescript", "@types/node", "@types/pg"],
        fixtures: ["flow.ts", "program-kafkajs.ts", "web-crypto-types.d.ts"],
      });
      await typeCheck(dir);
      const entryPoints = await runProgram(dir, "entry-points.ts");
      expect.soft(entryPoints.code, report(entryPoints)).toBe(0);
      await expectBinWorks(dir);
      await runFlow(dir, "program-kafkajs.ts", "kafkajs");
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "install with npm without kafkajs: the program type-checks and runs the flow on @platformatic/kafka",
    async () => {
      const dir = await installProject({
        name: "without-kafkajs",
        packages: PACKAGES.map((p) => p.name),
        dependencies: ["kysely", "pg", "effect", "@platformatic/kafka", "fastify", "@prometheus-io/client"],
        // program-platformatic.ts imports @platformatic/kafka, whose declarations import `debug`.
        devDependencies: ["typescript", "@types/node", "@types/pg", "@types/debug"],
        fixtures: ["flow.ts", "program-platformatic.ts", "web-crypto-types.d.ts"],
        // The kafkajs adapter's own subpath needs kafkajs by definition; nothing else may.
        notLoaded: ["@eventlane/relay/kafkajs"],
      });
      // kafkajs is an optional peer of every package: npm must not have installed it.
      const lock = await readJson<{ packages: Record<string, unknown> }>(path.join(dir, "package-lock.json"));
      expect(Object.keys(lock.packages).filter((key) => key.endsWith("node_modules/kafkajs"))).toEqual([]);
      await typeCheck(dir);
      // Each package loads without kafkajs (the relay's entry point, and the bin that imports it).
      const entryPoints = await runProgram(dir, "entry-points.ts");
      expect.soft(entryPoints.code, report(entryPoints)).toBe(0);
      await expectBinWorks(dir);
      await runFlow(dir, "program-platformatic.ts", "platformatic");
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "install with npm without the relay: core and consumer type-check and load on their own",
    async () => {
      const dir = await installProject({
        name: "without-relay",
        packages: ["@eventlane/core", "@eventlane/consumer"],
        dependencies: ["kysely", "pg", "effect", "kafkajs"],
        devDependencies: ["typescript", "@types/node", "@types/pg"],
        fixtures: ["program-without-relay.ts", "web-crypto-types.d.ts"],
      });
      await typeCheck(dir);
      const entryPoints = await runProgram(dir, "entry-points.ts");
      expectSuccess(entryPoints);
      const program = await runProgram(dir, "program-without-relay.ts");
      expectSuccess(program);
    },
    TEST_TIMEOUT_MS,
  );
});
