// Tenants that keep state (issue 14 §2, §4, §7, §8): durable storage through
// wasi:keyvalue, configuration and secrets through wasi:config, the admin API's views of
// both, quotas against a hostile tenant, and what survives: a fault, a redeploy, a
// rollback, and a host killed with SIGKILL and started again on its data directory.
//
// The harness runs a server in its own process too (HOST_BIN, on HOST_CONFIG), which
// this suite kills and restarts.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";
import { connected } from "./helpers.mjs";

const ADMIN = process.env.ADMIN_URL;
const TOKEN = process.env.ADMIN_TOKEN;
const component = (name) => readFileSync(`${process.env.EXAMPLES_DIR}/${name}.wasm`);

async function admin(method, path, { body, token = TOKEN, base = ADMIN } = {}) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined && !(body instanceof Uint8Array)) headers["content-type"] = "application/json";
  const res = await fetch(base + path, {
    method,
    headers,
    body: body instanceof Uint8Array ? body : body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json, text };
}

const ask = (socket, event, ...args) => socket.timeout(5000).emitWithAck(event, ...args);
/** Every argument of the ack, not only the first. */
const askAll = (socket, event, ...args) =>
  new Promise((resolve, reject) =>
    socket.timeout(5000).emit(event, ...args, (err, ...answer) => (err ? reject(err) : resolve(answer))),
  );

const echo = (t, tenant, url) =>
  url ? connectedTo(t, url, `/${tenant}`, { auth: { token: "ok" } }) : connected(t, `/${tenant}`, { auth: { token: "ok" } });

async function connectedTo(t, url, path, opts = {}) {
  const socket = io(url + path, { forceNew: true, reconnection: false, ...opts });
  t.after(() => socket.close());
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return socket;
}

describe("storage through wasi:keyvalue", () => {
  test("the admin API lists, reads and exports a tenant's keys, for the operator and its own token only", async (t) => {
    const s = await echo(t, "t1");
    for (const [k, v] of [["export/a", "1"], ["export/b", { two: 2 }], ["export/c", [3]]]) await ask(s, "store", k, v);
    const first = await admin("GET", "/v1/tenants/t1/kv?prefix=export%2F&limit=2&values=1");
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.body.keys, [
      { key: "export/a", value: '"1"' },
      { key: "export/b", value: '{"two":2}' },
    ]);
    assert.equal(first.body.cursor, "export/b");
    assert.ok(first.body.usage.keys >= 3 && first.body.usage.bytes > 0);
    const rest = await admin("GET", `/v1/tenants/t1/kv?prefix=export%2F&cursor=${encodeURIComponent(first.body.cursor)}`);
    assert.deepEqual(rest.body.keys, ["export/c"]);
    assert.equal(rest.body.cursor, null);
    const one = await admin("GET", "/v1/tenants/t1/kv?key=export%2Fc");
    assert.deepEqual(one.body, { key: "export/c", value: "[3]" });
    assert.equal((await admin("GET", "/v1/tenants/t1/kv?key=nothing")).status, 404);
    const t1Token = (await admin("POST", "/v1/tenants/t1/tokens")).body.token;
    const t2Token = (await admin("POST", "/v1/tenants/t2/tokens")).body.token;
    assert.equal((await admin("GET", "/v1/tenants/t1/kv", { token: t1Token })).status, 200);
    assert.equal((await admin("GET", "/v1/tenants/t1/kv", { token: t2Token })).status, 403);
    assert.equal((await admin("GET", "/v1/tenants/t1/kv", { token: "wrong" })).status, 401);
  });

  test("keys survive the eviction of an idle instance", async (t) => {
    const s = await echo(t, "evicted");
    await ask(s, "store", "kept", "across the eviction");
    const evictions = async () => (await admin("GET", "/v1/tenants/evicted")).body.evictions;
    const before = await evictions();
    s.close();
    // Round trips until the instance is gone (300 ms after the socket left).
    const deadline = Date.now() + 15_000;
    while ((await evictions()) === before) assert.ok(Date.now() < deadline, "evicted within 15 s");
    const again = await echo(t, "evicted");
    assert.deepEqual(await ask(again, "load", "kept"), { ok: true, value: "across the eviction" });
  });

  test("keys survive a fault of the instance, and a deleted tenant's keys go with it", async (t) => {
    const tenant = "kept";
    assert.equal((await admin("PUT", `/v1/tenants/${tenant}/component`, { body: component("echo") })).status, 200);
    let s = await echo(t, tenant);
    await ask(s, "store", "survivor", "still here");
    // The hoard tenant's `fill` breaks the emit budget: a fault. Echo has no such event,
    // so fault it through a new version that is the hoard, then come back.
    assert.equal((await admin("PUT", `/v1/tenants/${tenant}/component`, { body: component("hostile_hoard") })).status, 200);
    const hoard = await connected(t, `/${tenant}`);
    const faulted = new Promise((resolve) => hoard.once("nsbox:error", resolve));
    hoard.emit("fill", { count: 2000, bytes: 1 });
    const error = await faulted;
    assert.equal(error.kind, "emit-limit");
    const read = await admin("GET", `/v1/tenants/${tenant}/kv?key=survivor`);
    assert.deepEqual(read.body, { key: "survivor", value: '"still here"' });
    assert.equal((await admin("POST", `/v1/tenants/${tenant}/rollback`, { body: { version: 1 } })).status, 200);
    s = await echo(t, tenant);
    assert.deepEqual(await ask(s, "load", "survivor"), { ok: true, value: "still here" });
    s.close();
    assert.equal((await admin("DELETE", `/v1/tenants/${tenant}`)).status, 200);
    assert.equal((await admin("PUT", `/v1/tenants/${tenant}/component`, { body: component("echo") })).status, 200);
    s = await echo(t, tenant);
    assert.deepEqual(await ask(s, "load", "survivor"), { ok: true, value: null });
  });
});

describe("configuration and secrets through wasi:config", () => {
  test("a tenant reads its configuration and secrets; the API masks the secrets", async (t) => {
    const s = await echo(t, "t1");
    assert.equal(await ask(s, "config", "greeting"), "hello");
    assert.equal(await ask(s, "config", "nothing"), null);
    assert.equal(await ask(s, "config", "api_key"), "s3cret-t1");
    assert.deepEqual(await ask(s, "config"), { greeting: "hello", api_key: "s3cret-t1" });
    const shown = await admin("GET", "/v1/tenants/t1/config");
    assert.equal(shown.status, 200);
    assert.deepEqual(shown.body.config, { greeting: "hello" });
    assert.deepEqual(shown.body.secrets, { api_key: "********" });
    assert.ok(!shown.text.includes("s3cret"));
    // The configuration file's tenants are configured there.
    const refused = await admin("PUT", "/v1/tenants/t1/config", { body: { config: { a: "b" } } });
    assert.equal(refused.status, 409);
  });

  test("PUT /config reaches a fresh instance, secrets are stored owner-only and never shown back", async (t) => {
    const tenant = "configured";
    assert.equal((await admin("PUT", `/v1/tenants/${tenant}/component`, { body: component("echo") })).status, 200);
    const token = (await admin("POST", `/v1/tenants/${tenant}/tokens`)).body.token;
    const s = await echo(t, tenant);
    assert.deepEqual(await ask(s, "config"), {});
    const put = await admin("PUT", `/v1/tenants/${tenant}/config`, {
      token,
      body: { config: { room: "lobby" }, secrets: { key: "hunter2-secret" } },
    });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual(put.body.secrets, { key: "********" });
    assert.ok(!put.text.includes("hunter2"));
    // The socket was carried over to a fresh instance that reads the new values.
    const fresh = await echo(t, tenant);
    assert.deepEqual(await ask(fresh, "config"), { room: "lobby", key: "hunter2-secret" });
    // A change keeps what it does not name and removes what it sets to null.
    await admin("PUT", `/v1/tenants/${tenant}/config`, { body: { config: { room: null, motd: "hi" } } });
    const after = await echo(t, tenant);
    assert.deepEqual(await ask(after, "config"), { motd: "hi", key: "hunter2-secret" });
    const bad = await admin("PUT", `/v1/tenants/${tenant}/config`, { body: { secrets: { n: 5 } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "invalid_config");
    const file = join(process.env.DATA_DIR, "tenants", tenant, "config.json");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const logs = await admin("GET", `/v1/tenants/${tenant}/logs`);
    assert.ok(!logs.text.includes("hunter2"));
    // A tenant deleted and uploaded again under the same name starts with nothing of
    // the old one's: no value, no secret.
    after.close();
    assert.equal((await admin("DELETE", `/v1/tenants/${tenant}`)).status, 200);
    assert.equal((await admin("PUT", `/v1/tenants/${tenant}/component`, { body: component("echo") })).status, 200);
    const reborn = await echo(t, tenant);
    assert.deepEqual(await ask(reborn, "config"), {});
  });
});

describe("a hostile tenant's storage and configuration", () => {
  test("a flood past every quota is an error to the guest, counted, and the neighbour is served", async (t) => {
    const hoard = await connected(t, "/hoard");
    const neighbour = await echo(t, "t2");
    let answered = 0;
    let stop = false;
    const beside = (async () => {
      while (!stop) {
        assert.equal(await ask(neighbour, "echo", answered), answered);
        answered += 1;
      }
    })();
    // 100 operations a call: the flood stops at the ops quota, then at the keys quota (50).
    const [firstWritten, firstRefusal] = await askAll(hoard, "kv-flood", { bytes: 10 });
    assert.equal(firstWritten, 50);
    assert.match(firstRefusal, /quota exceeded: storage_keys is 50/);
    const [, again] = await askAll(hoard, "kv-flood", { bytes: 10 });
    assert.match(again, /storage_keys/);
    const [batch] = await askAll(hoard, "kv-batch", { count: 101 });
    assert.match(batch, /storage_ops_per_call is 100/);
    const [longKey] = await askAll(hoard, "kv-big", { key_bytes: 65, value_bytes: 1 });
    assert.match(longKey, /storage_key_bytes is 64/);
    const [bigValue] = await askAll(hoard, "kv-big", { key_bytes: 1, value_bytes: 10001 });
    assert.match(bigValue, /storage_value_bytes is 10000/);
    // Overwrites of a kept key (no new key past the quota) keep nothing more, but the
    // disk takes each: 50,000 bytes a call, so the sixth write of 9,000 bytes (and its
    // 7-byte key) is refused.
    const [rewritten, rewriteRefusal] = await askAll(hoard, "kv-rewrite", { bytes: 9000, times: 10 });
    assert.equal(rewritten, 5);
    assert.match(rewriteRefusal, /storage_write_bytes_per_call is 50000/);
    // Still the same instance: a quota is not a fault.
    assert.ok(hoard.connected);
    stop = true;
    await beside;
    assert.ok(answered > 0);
    const metrics = await (await fetch(`${ADMIN}/metrics`)).text();
    for (const quota of ["storage_keys", "storage_ops_per_call", "storage_key_bytes", "storage_value_bytes", "storage_write_bytes_per_call"]) {
      const line = metrics
        .split("\n")
        .find((l) => l.startsWith(`nsbox_tenant_storage_refused_total{tenant="hoard",quota="${quota}"}`));
      assert.ok(line && Number(line.split(" ").at(-1)) >= 1, `${quota}: ${line}`);
    }
    const usage = (await admin("GET", "/v1/tenants/hoard/kv?limit=1")).body.usage;
    assert.equal(usage.keys, 50);
  });

  test("a tenant cannot read another tenant's configuration", async (t) => {
    const hoard = await connected(t, "/hoard");
    const seen = await ask(hoard, "config-peek", { names: ["api_key", "greeting"] });
    assert.deepEqual(seen, { mine: ["own"], asked: { api_key: null, greeting: null } });
  });
});

/** Starts the server process on `dataDir`; resolves with its URLs and the process. */
async function startHost(dataDir) {
  const child = spawn(process.env.HOST_BIN, [process.env.HOST_CONFIG, dataDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const lines = createInterface({ input: child.stdout });
  const ready = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the host exited (${code}): ${stderr}`)));
    lines.once("line", resolve);
  });
  const urls = Object.fromEntries(ready.split(" ").map((pair) => pair.split("=")));
  return { child, urls, stderr: () => stderr };
}

async function kill(host) {
  const exited = new Promise((resolve) => host.child.once("exit", resolve));
  host.child.kill("SIGKILL");
  await exited;
}

describe("what survives a host killed with SIGKILL", () => {
  test("chat's history survives a redeploy and a host killed and started again", async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), "nsbox-kill-"));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    let host = await startHost(dataDir);
    t.after(() => host.child.kill("SIGKILL"));
    const base = host.urls.ADMIN_URL;
    // `acme` is the configuration's built-in chat; `team` an uploaded one.
    const team = await admin("PUT", "/v1/tenants/team/component", { body: component("chat"), base });
    assert.equal(team.status, 200, team.text);
    const say = async (tenant, nickname, texts) => {
      const s = await connectedTo(t, host.urls.SERVER_URL, `/${tenant}`, { auth: { nickname } });
      for (const text of texts) assert.deepEqual(await ask(s, "message", "#general", text), { ok: true });
      s.close();
    };
    const history = async (tenant, nickname) => {
      const s = await connectedTo(t, host.urls.SERVER_URL, `/${tenant}`, { auth: { nickname } });
      const texts = (await ask(s, "history", "#general")).map((m) => m.text);
      s.close();
      return texts;
    };
    await say("acme", "ann", ["one", "two"]);
    await say("team", "bob", ["alpha"]);
    // A redeploy: a fresh instance, nothing kept in memory; the history is in storage.
    const again = await admin("PUT", "/v1/tenants/team/component", { body: component("chat"), base });
    assert.equal(again.status, 200);
    assert.deepEqual(await history("team", "cy"), ["alpha"]);
    await say("team", "cy", ["beta"]);
    // Sixty more: only the last 50 are kept.
    await say("acme", "ann", Array.from({ length: 60 }, (_, i) => `m${i}`));
    // Killed at once: every acknowledged write must be there after the restart.
    await kill(host);
    host = await startHost(dataDir);
    const acme = await history("acme", "dee");
    assert.equal(acme.length, 50);
    assert.equal(acme.at(-1), "m59");
    assert.equal(acme[0], "m10");
    assert.deepEqual(await history("team", "dee"), ["alpha", "beta"]);
    assert.ok(!host.stderr().includes("panicked"), host.stderr());
  });
});
