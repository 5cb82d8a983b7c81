#!/usr/bin/env node
// nsbox-build ENTRY.js [-o OUT.wasm]: bundles a tenant's module with the SDK (esbuild),
// evaluates the bundle in the SDK's QuickJS runtime and snapshots it (Wizer), and wraps
// the snapshot as a component of the nsbox:tenant world (jco, with WASI preview 1's
// reactor adapter). The contract is the one the runtime was built against (runtime/).
import { build } from "esbuild";
import { componentNew, preview1AdapterReactorPath } from "@bytecodealliance/jco";
import wizer from "@bytecodealliance/wizer";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sourceStack } from "../src/stack.js";

const usage = "usage: nsbox-build ENTRY.js [-o OUT.wasm]";
const argv = process.argv.slice(2);
let entry;
let out;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "-o" || argv[i] === "--out") out = argv[++i];
  else if (argv[i] === "-h" || argv[i] === "--help") {
    console.log(usage);
    process.exit(0);
  } else if (entry === undefined) entry = argv[i];
  else {
    console.error(usage);
    process.exit(2);
  }
}
if (entry === undefined || (out !== undefined && out.length === 0)) {
  console.error(usage);
  process.exit(2);
}
entry = resolve(entry);
out = resolve(out ?? `dist/${basename(entry).replace(/\.[cm]?js$/, "")}.wasm`);

const sdk = dirname(dirname(fileURLToPath(import.meta.url)));
const started = Date.now();
const src = (file) => JSON.stringify(resolve(sdk, "src", file));
// The SDK's Promise and text codecs before anything else, then the tenant's module (its
// top level registers the handlers), then the exports.
const bundled = build({
  stdin: {
    contents: `import ${src("jobs.js")};\nimport ${src("text.js")};\nimport ${JSON.stringify(entry)};\nexport { handlers, eventRoutes, clusterHandlers, broadcastHandlers, recoveryHandlers } from ${src("exports.js")};\n`,
    resolveDir: dirname(entry),
    sourcefile: "nsbox-entry.js",
  },
  bundle: true,
  write: false,
  format: "esm",
  platform: "neutral",
  mainFields: ["module", "main"],
  external: ["nsbox:*", "wasi:*"],
  logLevel: "warning",
  // The map's paths are relative to this (nonexistent) file: to the directory of the build.
  outfile: resolve("nsbox-tenant.js"),
  sourcemap: "external",
  sourcesContent: false,
  // `async`/`await` as generators over the SDK's Promise, whose jobs the SDK runs (the
  // runtime is called synchronously and never runs a native promise's).
  supported: { "async-await": false, "async-generator": false, "for-await": false },
});
// esbuild has printed what is wrong with the source.
const bundle = await bundled.catch(() => process.exit(1));
const output = (suffix) => bundle.outputFiles.find((file) => file.path.endsWith(suffix)).text;
const map = JSON.parse(output(".js.map"));
// Where each line of the bundle came from, for the SDK to show stacks in the tenant's
// files (src/stack.js); appended, so that the lines stay where the map says. The same
// shows the stack of an exception at the module's top level here.
const sourceMap = { sources: map.sources, mappings: map.mappings };
const source = `${output(".js")}\nglobalThis[Symbol.for("nsbox.sourceMap")] = ${JSON.stringify(sourceMap)};\n`;
globalThis[Symbol.for("nsbox.sourceMap")] = sourceMap;

const work = mkdtempSync(join(tmpdir(), "nsbox-build-"));
let component;
let failure;
try {
  // Wizer runs the runtime's initialisation with the bundle on its stdin: an exception at
  // the module's top level fails the build here, with the runtime's message (its lines
  // start with `nsbox-js-runtime:`; Wizer's own follow).
  const snapshot = join(work, "tenant.core.wasm");
  const wizened = spawnSync(
    wizer,
    [resolve(sdk, "runtime/nsbox-js-runtime.wasm"), "-o", snapshot, "--allow-wasi", "--inherit-stdio", "true", "--wasm-bulk-memory", "true"],
    { input: source, stdio: ["pipe", "inherit", "pipe"], encoding: "utf8" },
  );
  if (wizened.error === undefined && wizened.status === 0) {
    const adapter = readFileSync(preview1AdapterReactorPath());
    component = await componentNew(readFileSync(snapshot), [["wasi_snapshot_preview1", adapter]]);
  } else {
    const said = (wizened.stderr ?? "").split("\n").filter((line) => line.startsWith("nsbox-js-runtime:"));
    failure = said.length > 0 ? sourceStack(said.join("\n")) : (wizened.error?.message ?? wizened.stderr);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (failure !== undefined) {
  console.error(`nsbox-build: evaluating ${entry} failed:\n${failure}`);
  process.exit(1);
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, component);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`nsbox-build: ${out} (${(component.length / 1e6).toFixed(1)} MB, ${seconds} s)`);
