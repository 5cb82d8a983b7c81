#!/usr/bin/env node
// nsbox-build ENTRY.js [-o OUT.wasm] [--wit DIR]: bundles a tenant's module with the SDK (esbuild)
// and turns it into a component of the nsbox:tenant world (componentize-js).
import { build } from "esbuild";
import { componentize } from "@bytecodealliance/componentize-js";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
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
// The tenant's module first (its top level registers the handlers), then the exports.
const bundle = await build({
  stdin: {
    contents: `import ${JSON.stringify(entry)};\nexport { handlers, clusterHandlers, broadcastHandlers, recoveryHandlers } from ${JSON.stringify(resolve(sdk, "src/exports.js"))};\n`,
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
});
const source = bundle.outputFiles[0].text;

const { component } = await componentize(source, {
  sourceName: basename(entry),
  witPath: wit,
  worldName: "tenant",
  // No HTTP, no stdio (and so no filesystem): `console` goes to the tenant's log.
  disableFeatures: ["http", "fetch-event", "stdio"],
});
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, component);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`nsbox-build: ${out} (${(component.length / 1e6).toFixed(1)} MB, ${seconds} s)`);
