#!/usr/bin/env node
// nsbox-build ENTRY.js [-o OUT.wasm] [--wit DIR]: bundles a tenant's module with the SDK (esbuild)
// and turns it into a component of the nsbox:tenant world (componentize-qjs: QuickJS).
import { build } from "esbuild";
import { componentize } from "componentize-qjs";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const usage = "usage: nsbox-build ENTRY.js [-o OUT.wasm] [--wit DIR]";
const argv = process.argv.slice(2);
let entry;
let out;
let witDir;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "-o" || argv[i] === "--out") out = argv[++i];
  else if (argv[i] === "--wit") witDir = argv[++i];
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

/** The contract: `--wit`, else the package's own (packed with it), else the nearest `wit/` above the entry (a checkout of nsbox). */
function findWit() {
  if (witDir !== undefined) return resolve(witDir);
  const candidates = [resolve(sdk, "wit")];
  for (let dir = dirname(entry); ; dir = dirname(dir)) {
    candidates.push(resolve(dir, "wit"));
    if (dirname(dir) === dir) break;
  }
  return candidates.find((dir) => existsSync(resolve(dir, "tenant.wit")));
}
const wit = findWit();
if (wit === undefined || !existsSync(resolve(wit, "tenant.wit"))) {
  console.error("nsbox-build: no wit/tenant.wit (the nsbox:tenant contract) found; pass --wit DIR");
  process.exit(1);
}

const started = Date.now();
const src = (file) => JSON.stringify(resolve(sdk, "src", file));
// The SDK's Promise and text codecs before anything else, then the tenant's module (its
// top level registers the handlers), then the exports.
const bundle = await build({
  stdin: {
    contents: `import ${src("jobs.js")};\nimport ${src("text.js")};\nimport ${JSON.stringify(entry)};\nexport { handlers, clusterHandlers, broadcastHandlers, recoveryHandlers } from ${JSON.stringify(resolve(sdk, "src/exports.js"))};\n`,
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
  // `async`/`await` as generators over the SDK's Promise, whose jobs the SDK runs (QuickJS
  // in a synchronous component would never run a native promise's).
  supported: { "async-await": false, "async-generator": false, "for-await": false },
});
const source = bundle.outputFiles[0].text;

/**
 * The contract with one world more, `tenant-js`: the `tenant` world and `wasi:random`
 * (which nsbox grants every tenant), from which the SDK's `Math.random` and
 * `crypto.getRandomValues` draw.
 */
function witForJs() {
  const version = /^package nsbox:tenant@([^;]+);/m.exec(readFileSync(resolve(wit, "tenant.wit"), "utf8"))?.[1];
  if (version === undefined) throw new Error(`nsbox-build: ${wit}/tenant.wit declares no nsbox:tenant package`);
  const dir = mkdtempSync(join(tmpdir(), "nsbox-build-"));
  cpSync(wit, dir, { recursive: true });
  mkdirSync(join(dir, "deps", "random"), { recursive: true });
  writeFileSync(
    join(dir, "deps", "random", "random.wit"),
    "package wasi:random@0.2.0;\n\ninterface random {\n  get-random-bytes: func(len: u64) -> list<u8>;\n  get-random-u64: func() -> u64;\n}\n",
  );
  writeFileSync(
    join(dir, "tenant-js.wit"),
    `package nsbox:tenant@${version};\n\nworld tenant-js {\n  include tenant;\n  import wasi:random/random@0.2.0;\n}\n`,
  );
  return dir;
}

const jsWit = witForJs();
let component;
try {
  ({ component } = await componentize({
    jsSource: source,
    witPath: jsWit,
    world: "tenant-js",
    // Exports called as nsbox calls every tenant: synchronously.
    sync: true,
  }));
} finally {
  rmSync(jsWit, { recursive: true, force: true });
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, component);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`nsbox-build: ${out} (${(component.length / 1e6).toFixed(1)} MB, ${seconds} s)`);
