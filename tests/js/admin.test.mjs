// The admin API over real HTTP, and what its changes do to clients of the official
// socket.io-client. The harness gives ADMIN_URL, ADMIN_TOKEN and EXAMPLES_DIR (where the
// example components were built); the server allows components up to 1 MiB.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { sleep, once, client, connected, ack } from "./helpers.mjs";

const ADMIN_URL = process.env.ADMIN_URL;
const OPERATOR = process.env.ADMIN_TOKEN;
const component = (name) => readFileSync(`${process.env.EXAMPLES_DIR}/${name}.wasm`);
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** One admin request; resolves with {status, body, headers}. */
async function api(method, path, { token = OPERATOR, body } = {}) {
  const headers = token === null ? {} : { authorization: `Bearer ${token}` };
  const res = await fetch(`${ADMIN_URL}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}
const deploy = (tenant, bytes, token) => api("PUT", `/v1/tenants/${tenant}/component`, { token, body: bytes });
/** True when `event` gets no ack within `ms`. */
const unanswered = (socket, event, ms = 300) =>
  socket.timeout(ms).emitWithAck(event).then(() => false, () => true);

describe("tokens", () => {
  test("no token or a wrong one: 401", async () => {
    for (const token of [null, "wrong", ""]) {
      const res = await api("GET", "/v1/tenants", { token });
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, "unauthorized");
      assert.equal(res.headers.get("www-authenticate"), "Bearer");
    }
  });

  test("a deploy token reaches its own tenant and nothing else", async () => {
    const minted = await api("POST", "/v1/tenants/alpha/tokens");
    assert.equal(minted.status, 201);
    const token = minted.body.token;
    assert.match(token, /^nsbox_/);
    assert.deepEqual((await api("GET", "/v1/whoami", { token })).body, { access: "tenant", tenant: "alpha" });
    assert.deepEqual((await api("GET", "/v1/whoami")).body, { access: "operator" });
    assert.equal((await api("GET", "/v1/whoami", { token: "wrong" })).status, 401);

    const own = await deploy("alpha", component("echo"), token);
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.equal((await api("GET", "/v1/tenants/alpha", { token })).status, 200);
    assert.equal((await api("GET", "/v1/tenants/alpha/versions", { token })).status, 200);
    const listed = await api("GET", "/v1/tenants", { token });
    assert.deepEqual(listed.body.tenants.map((t) => t.name), ["alpha"]);

    for (const [method, path] of [
      ["PUT", "/v1/tenants/beta/component"],
      ["GET", "/v1/tenants/t1"],
      ["DELETE", "/v1/tenants/alpha"],
      ["POST", "/v1/tenants/alpha/tokens"],
      ["POST", "/v1/tenants/beta/tokens"],
    ]) {
      const res = await api(method, path, { token, body: method === "PUT" ? component("echo") : undefined });
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(res.body.error.code, "forbidden");
    }
    // The operator sees every tenant, the configuration's included.
    const all = await api("GET", "/v1/tenants");
    for (const name of ["alpha", "t1", "t2", "acme", "admin"]) {
      assert.ok(all.body.tenants.some((t) => t.name === name), name);
    }
  });

  test("names that are not tenant names are refused", async () => {
    for (const name of ["..", "a.b", "%2e%2e", "x".repeat(65)]) {
      const res = await deploy(name, component("echo"));
      assert.ok([400, 404].includes(res.status), `${name}: ${res.status}`);
    }
  });
});

describe("the tenant list", () => {
  test("pages, searches and sorts on the server; says what it cannot", async (t) => {
    const all = (await api("GET", "/v1/tenants?limit=1000")).body;
    const names = all.tenants.map((x) => x.name);
    assert.deepEqual(names, [...names].sort(), "by name by default");
    assert.equal(all.total, names.length);
    assert.equal(all.next_offset, null);
    // Two at a time, every tenant once, in order.
    const paged = [];
    for (let offset = 0; offset !== null; ) {
      const page = (await api("GET", `/v1/tenants?limit=2&offset=${offset}`)).body;
      assert.ok(page.tenants.length <= 2);
      assert.equal(page.total, all.total);
      paged.push(...page.tenants.map((x) => x.name));
      offset = page.next_offset;
    }
    assert.deepEqual(paged, names);
    // A search, case ignored.
    const found = (await api("GET", "/v1/tenants?q=T")).body;
    assert.deepEqual(found.tenants.map((x) => x.name), names.filter((n) => n.toLowerCase().includes("t")));
    // The busiest first: t2 with two sockets, t1 with one, then the rest by name.
    await connected(t, "/t2", { auth: { token: "ok" } });
    await connected(t, "/t2", { auth: { token: "ok" } });
    await connected(t, "/t1", { auth: { token: "ok" } });
    const busiest = (await api("GET", "/v1/tenants?sort=sockets&order=desc&limit=2")).body;
    assert.deepEqual(busiest.tenants.map((x) => [x.name, x.sockets]), [["t2", 2], ["t1", 1]]);
    assert.equal(busiest.next_offset, 2);
    // Ties by name; by name backwards.
    const bySockets = (await api("GET", "/v1/tenants?sort=sockets&order=desc&limit=1000")).body.tenants;
    const idle = bySockets.filter((x) => x.sockets === 0).map((x) => x.name);
    assert.deepEqual(idle, [...idle].sort());
    const backwards = (await api("GET", "/v1/tenants?order=desc&limit=1000")).body.tenants;
    assert.deepEqual(backwards.map((x) => x.name), [...names].reverse());
    for (const bad of ["sort=size", "order=up", "limit=0", "limit=1001", "offset=x"]) {
      const refused = await api("GET", `/v1/tenants?${bad}`);
      assert.equal(refused.status, 400, bad);
      assert.equal(refused.body.error.code, "bad_query");
    }
  });
});

describe("deploy, redeploy, roll back, delete", () => {
  test("one component as two tenants, kept apart", async (t) => {
    const echo = component("echo");
    for (const name of ["left", "right"]) {
      const res = await deploy(name, echo);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { tenant: name, version: 1, sha256: sha256(echo), size: echo.length, contract: "0.2.3" });
    }
    const left = await connected(t, "/left", { auth: { token: "ok" } });
    const right = await connected(t, "/right", { auth: { token: "ok" } });
    const leaked = [];
    right.on("msg", (...args) => leaked.push(args));
    const own = once(left, "msg");
    left.emit("broadcast", "only left");
    assert.deepEqual(await own, ["only left"]);
    assert.deepEqual(await ack(right, "whoami"), [{ nsp: "/right", trail: ["m1", "m2", "m3"] }]);
    assert.deepEqual(leaked, []);
    const shown = await api("GET", "/v1/tenants/left");
    assert.equal(shown.body.namespace, "/left");
    assert.equal(shown.body.namespace_pattern, "^/(\\w+)$");
    const statically = await api("GET", "/v1/tenants/admin");
    assert.equal(statically.body.namespace, "/admin");
    assert.equal(statically.body.namespace_pattern, null);
    assert.equal(shown.body.version, 1);
    assert.equal(shown.body.sha256, sha256(echo));
    assert.equal(shown.body.sockets, 1);
    assert.ok(shown.body.events >= 1);
    assert.ok(shown.body.memory_bytes > 0);
  });

  test("a new version takes over connected sockets, and a roll back brings the old one back", async (t) => {
    const v1 = component("hostile_panic"); // acks echo; no whoami
    const v2 = component("echo");
    assert.equal((await deploy("gamma", v1)).body.version, 1);
    const s = await connected(t, "/gamma", { auth: { token: "ok" } });
    const disconnects = [];
    s.on("disconnect", (reason) => disconnects.push(reason));
    assert.deepEqual(await ack(s, "echo", 1), [1]);
    assert.ok(await unanswered(s, "whoami"));

    const redeployed = once(s, "nsbox:redeployed");
    const up = await deploy("gamma", v2);
    assert.equal(up.status, 200);
    assert.equal(up.body.version, 2);
    assert.deepEqual((await redeployed)[0], { tenant: "gamma", version: 2 });
    // Same socket, new behaviour: the new version ran its middleware chain for it.
    assert.ok(s.connected);
    assert.deepEqual(await ack(s, "whoami"), [{ nsp: "/gamma", trail: ["m1", "m2", "m3"] }]);
    const fresh = await connected(t, "/gamma", { auth: { token: "ok" } });
    assert.deepEqual(await ack(fresh, "whoami"), [{ nsp: "/gamma", trail: ["m1", "m2", "m3"] }]);

    const versions = await api("GET", "/v1/tenants/gamma/versions");
    assert.equal(versions.body.current, 2);
    assert.deepEqual(versions.body.versions.map((v) => [v.version, v.sha256]), [[1, sha256(v1)], [2, sha256(v2)]]);

    const back = once(s, "nsbox:redeployed");
    const rolled = await api("POST", "/v1/tenants/gamma/rollback");
    assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
    assert.equal(rolled.body.version, 1);
    assert.deepEqual((await back)[0], { tenant: "gamma", version: 1 });
    assert.ok(await unanswered(s, "whoami"));
    assert.deepEqual(await ack(s, "echo", 2), [2]);
    assert.equal((await api("GET", "/v1/tenants/gamma")).body.version, 1);
    assert.equal((await api("GET", "/v1/tenants/gamma/versions")).body.current, 1);

    const forward = await api("POST", "/v1/tenants/gamma/rollback", { body: JSON.stringify({ version: 2 }) });
    assert.equal(forward.body.version, 2);
    const missing = await api("POST", "/v1/tenants/gamma/rollback", { body: JSON.stringify({ version: 9 }) });
    assert.equal(missing.status, 404);
    assert.deepEqual(disconnects, [], "no socket was dropped along the way");
  });

  test("a socket the new version refuses is told why and disconnected", async (t) => {
    await deploy("delta", component("hostile_panic"));
    const s = await connected(t, "/delta"); // no token: the echo chain will refuse it
    const told = once(s, "nsbox:error");
    const gone = once(s, "disconnect");
    await deploy("delta", component("echo"));
    const [notice] = await told;
    assert.equal(notice.kind, "refused");
    assert.equal(notice.error, "unauthorized");
    assert.deepEqual(notice.data, { reason: "bad token" });
    assert.equal((await gone)[0], "io server disconnect");
  });

  test("delete disconnects the sockets, removes versions and tokens, refuses newcomers", async (t) => {
    await deploy("omega", component("hostile_panic"));
    const token = (await api("POST", "/v1/tenants/omega/tokens")).body.token;
    const s = await connected(t, "/omega");
    const told = once(s, "nsbox:error");
    const gone = once(s, "disconnect");
    const res = await api("DELETE", "/v1/tenants/omega");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { deleted: "omega" });
    assert.equal((await told)[0].kind, "deleted");
    assert.equal((await gone)[0], "io server disconnect");
    assert.equal((await api("GET", "/v1/tenants/omega")).status, 404);
    assert.equal((await api("GET", "/v1/tenants/omega/versions")).status, 404);
    assert.equal((await api("GET", "/v1/tenants/omega", { token })).status, 401, "its tokens are revoked");
    const newcomer = client(t, "/omega");
    const [err] = await once(newcomer, "connect_error");
    assert.equal(err.message, "unknown tenant");
    assert.equal((await api("DELETE", "/v1/tenants/omega")).status, 404);
  });
});

describe("limits per tenant", () => {
  test("the operator sets them, they apply at once to that tenant only, and {} resets them", async (t) => {
    await deploy("kappa", component("echo"));
    await deploy("lambda", component("echo"));
    const token = (await api("POST", "/v1/tenants/kappa/tokens")).body.token;
    const put = (tenant, limits, opts = {}) =>
      api("PUT", `/v1/tenants/${tenant}/limits`, { body: JSON.stringify(limits), ...opts });

    assert.equal((await put("kappa", { max_sockets: 100 }, { token })).status, 403, "not with a deploy token");
    const unknown = await put("kappa", { max_sockts: 1 });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.code, "invalid_limits");
    assert.match(unknown.body.error.message, /max_sockts/);
    assert.equal((await put("kappa", { max_sockets: "one" })).body.error.code, "invalid_limits");
    assert.equal((await put("kappa", [1])).body.error.code, "invalid_limits");
    assert.equal((await put("t1", { max_sockets: 1 })).body.error.code, "configured_tenant");
    assert.equal((await put("nobody", { max_sockets: 1 })).status, 404);

    const auth = { auth: { token: "ok" } };
    const first = await connected(t, "/kappa", auth);
    const redeployed = once(first, "nsbox:redeployed");
    const set = await put("kappa", { max_sockets: 1, cpu_per_call_ms: 20 });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.limits.max_sockets, 1);
    assert.equal(set.body.limits.cpu_per_call_ms, 20);
    assert.equal(set.body.limits.memory_bytes, 64 << 20, "the rest as configured");
    await redeployed;
    assert.ok(first.connected, "the connected socket is carried over");
    assert.deepEqual(await ack(first, "echo", 1), [1]);

    const second = client(t, "/kappa", auth);
    const [err] = await once(second, "connect_error");
    assert.equal(err.message, "tenant full");
    await connected(t, "/lambda", auth);
    await connected(t, "/lambda", auth); // the neighbour keeps the configured limit

    const shown = await api("GET", "/v1/tenants/kappa", { token });
    assert.equal(shown.body.limits.max_sockets, 1);
    assert.deepEqual(shown.body.limit_overrides, { max_sockets: 1, cpu_per_call_ms: 20 });
    // A new version keeps the tenant's limits.
    await deploy("kappa", component("echo"));
    assert.equal((await api("GET", "/v1/tenants/kappa")).body.limits.max_sockets, 1);

    const reset = await put("kappa", {});
    assert.equal(reset.body.limits.max_sockets, (await api("GET", "/v1/tenants/lambda")).body.limits.max_sockets);
    await connected(t, "/kappa", auth);
  });
});

describe("uploads and the other tenants", () => {
  test("a tenant under load keeps being served while another one is deployed", async (t) => {
    const n = await connected(t, "/t1", { auth: { token: "ok" } });
    let running = true;
    let inFlight = false;
    let duringDeploys = 0;
    const answers = [];
    const loop = (async () => {
      for (let i = 0; running; i++) {
        answers.push((await ack(n, "echo", i))[0]);
        if (inFlight) duringDeploys++;
      }
    })();
    // Components not compiled yet on this host, so each upload really compiles.
    for (const name of ["chat", "admin", "hostile_spin", "hostile_memory"]) {
      inFlight = true;
      const res = await deploy("busy", component(name));
      inFlight = false;
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    running = false;
    await loop;
    assert.ok(duringDeploys >= 4, `acks answered while uploads compiled: ${duringDeploys}`);
    assert.deepEqual(answers, [...answers.keys()], "every ack, in order");
    t.diagnostic(`${duringDeploys} acks answered during 4 uploads`);
  });
});

describe("what uploads may cost", () => {
  test("the live version uploaded again is stored once and compiled not at all", async () => {
    const echo = component("echo");
    const first = await deploy("same", echo);
    assert.equal(first.status, 200);
    const again = await deploy("same", echo);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.version, first.body.version);
    assert.equal(again.body.unchanged, true);
    assert.equal((await api("GET", "/v1/tenants/same/versions")).body.versions.length, 1);
  });

  test("at most max_versions_per_tenant (3 here) versions are kept, the oldest pruned", async () => {
    for (const name of ["echo", "chat", "admin", "bench"]) {
      assert.equal((await deploy("many", component(name))).status, 200, name);
    }
    const listed = await api("GET", "/v1/tenants/many/versions");
    assert.deepEqual(listed.body.versions.map((v) => v.version), [2, 3, 4]);
    assert.equal(listed.body.current, 4);
    const back = await api("POST", "/v1/tenants/many/rollback", { body: JSON.stringify({ version: 1 }) });
    assert.equal(back.status, 404, "version 1 is gone");
  });

  test("a deploy token uploads at most uploads_per_minute_per_token (5 here) a minute; the operator is not limited", async () => {
    const token = (await api("POST", "/v1/tenants/ratey/tokens")).body.token;
    const names = ["echo", "chat", "admin", "bench", "echo"];
    for (const name of names) assert.equal((await deploy("ratey", component(name), token)).status, 200, name);
    const refused = await deploy("ratey", component("chat"), token);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, "rate_limited");
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal((await deploy("ratey", component("chat"))).status, 200, "the operator is not limited");
  });

  test("a delete that lands while an upload is under way is not undone by it", async () => {
    assert.equal((await deploy("doomed", component("echo"))).status, 200);
    const bytes = component("chat");
    let req;
    const answer = new Promise((resolve, reject) => {
      req = http.request(new globalThis.URL(`${ADMIN_URL}/v1/tenants/doomed/component`), {
        method: "PUT",
        agent: false,
        headers: { authorization: `Bearer ${OPERATOR}`, "content-length": bytes.length },
      }, (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
      });
      req.on("error", reject);
    });
    // Half the body now; the rest once the tenant is deleted.
    req.write(bytes.subarray(0, 1000));
    let inFlight = 0;
    // Each try a round trip to the admin API: bounded, not timed.
    for (let i = 0; i < 500 && inFlight !== 1; i++) {
      const text = await (await fetch(`${ADMIN_URL}/metrics`)).text();
      inFlight = Number(text.match(/^nsbox_admin_uploads_in_flight (\d+)$/m)?.[1]);
    }
    assert.equal(inFlight, 1, "the upload is under way");
    assert.equal((await api("DELETE", "/v1/tenants/doomed")).status, 200);
    req.end(bytes.subarray(1000));
    const res = await answer;
    assert.equal(res.status, 409, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "tenant_deleted");
    assert.equal((await api("GET", "/v1/tenants/doomed")).status, 404);
  });

  test("changes to one tenant do not wait for another's, nor for its queued events", async (t) => {
    assert.equal((await deploy("burner", component("hostile_spin"))).status, 200);
    assert.equal((await deploy("bystander", component("echo"))).status, 200);
    const s = await connected(t, "/burner");
    assert.deepEqual(await ack(s, "echo", "first"), ["first"]);
    // About 8 s of the tenant's CPU budget (500 ms a second) queued.
    for (let i = 0; i < 100; i++) s.emit("burn", 40);
    const put = (tenant, limits) => api("PUT", `/v1/tenants/${tenant}/limits`, { body: JSON.stringify(limits) });
    const started = Date.now();
    const burner = put("burner", { cpu_per_call_ms: 45 });
    const bystander = await put("bystander", { max_sockets: 50 });
    const bystanderMs = Date.now() - started;
    assert.equal(bystander.status, 200);
    assert.equal((await burner).status, 200);
    const burnerMs = Date.now() - started;
    t.diagnostic(`limits changed: bystander in ${bystanderMs} ms, burner (100 events queued) in ${burnerMs} ms`);
    assert.ok(bystanderMs < 2000, `the bystander waited ${bystanderMs} ms`);
    assert.ok(burnerMs < 3000, `the burner's change waited ${burnerMs} ms behind its queue`);
  });
});

describe("bad uploads change nothing", () => {
  const cases = [
    ["random bytes", () => randomBytes(4096), "not_wasm"],
    ["an empty body", () => Buffer.alloc(0), "not_wasm"],
    ["a core module", () => Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), "core_module"],
    ["a component of another world", () => Buffer.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]), "wrong_world"],
    ["a truncated component", () => component("echo").subarray(0, 5000), "invalid"],
    ["a component importing wasi:http", () => readFileSync(process.env.FORBIDDEN_COMPONENT), "forbidden_import"],
    ["an oversized one", () => randomBytes(1_100_000), "too_large"],
  ];

  test("each is refused with a code and a message, and the live version keeps serving", async (t) => {
    const echo = component("echo");
    await deploy("stable", echo);
    const s = await connected(t, "/stable", { auth: { token: "ok" } });
    for (const [what, bytes, code] of cases) {
      const res = await deploy("stable", bytes());
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, code, what);
      assert.ok(res.body.error.message.length > 20, what);
      if (code === "forbidden_import") assert.match(res.body.error.message, /wasi:http\/outgoing-handler@0\.2\.6/);
    }
    const shown = await api("GET", "/v1/tenants/stable");
    assert.equal(shown.body.version, 1);
    assert.equal(shown.body.sha256, sha256(echo));
    assert.equal((await api("GET", "/v1/tenants/stable/versions")).body.versions.length, 1);
    assert.deepEqual(await ack(s, "echo", "still here"), ["still here"]);
    // A bad first upload creates nothing.
    assert.equal((await deploy("never", randomBytes(100))).status, 400);
    assert.equal((await api("GET", "/v1/tenants/never")).status, 404);
  });
});

describe("metrics", () => {
  /** The value of `name{tenant="t"...}` in the Prometheus text, or of the unlabelled/other-labelled line. */
  const read = (text, name, labels) => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
    assert.ok(line, `${name}{${labels}} in the metrics`);
    return Number(line.split(" ").at(-1));
  };
  const metrics = async (query = "") => {
    const res = await fetch(`${ADMIN_URL}/metrics${query}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^text\/plain/);
    return res.text();
  };

  test("move when traffic flows", async (t) => {
    await deploy("metered", component("echo"));
    const tenant = 'tenant="metered"';
    // Nothing has reached it yet: its version, no counters (all zero until then).
    const unreached = await metrics();
    assert.equal(read(unreached, "nsbox_tenant_version", tenant), 1);
    assert.ok(!unreached.includes(`nsbox_tenant_events_in_total{${tenant}}`), "no counters before anything reached it");
    for (const family of ["nsbox_tenant_call_cpu_seconds", "nsbox_tenant_sockets", "nsbox_connections"]) {
      assert.match(unreached, new RegExp(`# TYPE ${family} `));
    }
    // Reached: a refused connection starts its actor, and its counters appear.
    await refusedOnce(t);
    const before = await metrics();
    assert.equal(read(before, "nsbox_tenant_connects_refused_total", tenant), 1);
    const a = await connected(t, "/metered", { auth: { token: "ok" }, transports: ["websocket"] });
    const b = await connected(t, "/metered", { auth: { token: "ok" } });
    await refusedOnce(t);
    for (let i = 0; i < 5; i++) await ack(a, "echo", "x".repeat(100));
    const heard = once(b, "msg");
    a.emit("broadcast", "to both");
    await heard;
    // Handled after the broadcast's call was over and counted: its counters are in.
    await ack(b, "echo", "sync");
    const after = await metrics();
    assert.equal(read(after, "nsbox_tenant_sockets", tenant), 2);
    assert.equal(read(after, "nsbox_tenant_connects_accepted_total", tenant) - read(before, "nsbox_tenant_connects_accepted_total", tenant), 2);
    assert.equal(read(after, "nsbox_tenant_connects_refused_total", tenant) - read(before, "nsbox_tenant_connects_refused_total", tenant), 1);
    assert.equal(read(after, "nsbox_tenant_events_in_total", tenant) - read(before, "nsbox_tenant_events_in_total", tenant), 7);
    assert.ok(read(after, "nsbox_tenant_bytes_in_total", tenant) - read(before, "nsbox_tenant_bytes_in_total", tenant) >= 500);
    // 5 acks, 2 hellos to the first socket... at least: acks + broadcast to both.
    assert.ok(read(after, "nsbox_tenant_events_out_total", tenant) - read(before, "nsbox_tenant_events_out_total", tenant) >= 7);
    assert.ok(read(after, "nsbox_tenant_bytes_out_total", tenant) > read(before, "nsbox_tenant_bytes_out_total", tenant));
    assert.ok(read(after, "nsbox_tenant_call_cpu_seconds_count", tenant) > read(before, "nsbox_tenant_call_cpu_seconds_count", tenant));
    assert.ok(read(after, "nsbox_tenant_memory_bytes", tenant) > 0);
    assert.equal(read(after, "nsbox_tenant_version", tenant), 1);
    assert.ok(read(after, 'nsbox_connections', 'transport="websocket"') >= 1);
    assert.ok(read(after, 'nsbox_connections', 'transport="polling"') + read(after, 'nsbox_connections', 'transport="websocket"') >= 2);
    // One tenant's alone, beside the host's.
    const one = await metrics("?tenant=metered");
    assert.equal(read(one, "nsbox_tenant_sockets", tenant), 2);
    assert.ok(!/tenant="(?!metered")/.test(one), "no other tenant's series");
    assert.ok(read(one, 'nsbox_connections', 'transport="websocket"') >= 1);
  });

  async function refusedOnce(t) {
    const s = client(t, "/metered", { auth: { token: "bad" } });
    await once(s, "connect_error");
  }

  test("count traps and restarts", async (t) => {
    const tenant = 'tenant="crash"';
    const s = await connected(t, "/crash");
    const before = await metrics();
    const gone = once(s, "disconnect");
    s.emit("boom");
    await gone;
    await connected(t, "/crash"); // a fresh instance
    const after = await metrics();
    assert.equal(read(after, "nsbox_tenant_traps_total", tenant) - read(before, "nsbox_tenant_traps_total", tenant), 1);
    // Which limit tripped, by name.
    const trips = (text, limit) => read(text, "nsbox_tenant_limit_trips_total", `${tenant},limit="${limit}"`);
    assert.equal(trips(after, "trap") - trips(before, "trap"), 1);
    assert.equal(trips(after, "deadline") - trips(before, "deadline"), 0);
    assert.ok(read(after, "nsbox_tenant_restarts_total", tenant) > read(before, "nsbox_tenant_restarts_total", tenant));
    const shown = await api("GET", "/v1/tenants/crash");
    assert.ok(shown.body.faults >= 1 && shown.body.restarts >= 1);
  });

  test("a new version, a roll back or a change of limits is not a restart", async (t) => {
    const auth = { auth: { token: "ok" } };
    await deploy("steady", component("echo"));
    const s = await connected(t, "/steady", auth);
    const redeployed = () => once(s, "nsbox:redeployed");
    let next = redeployed();
    assert.equal((await deploy("steady", component("bench"))).status, 200);
    await next;
    next = redeployed();
    assert.equal((await api("POST", "/v1/tenants/steady/rollback")).status, 200);
    await next;
    next = redeployed();
    assert.equal((await api("PUT", "/v1/tenants/steady/limits", { body: JSON.stringify({ max_sockets: 9 }) })).status, 200);
    await next;
    assert.deepEqual(await ack(s, "echo", 1), [1]);
    const shown = (await api("GET", "/v1/tenants/steady")).body;
    assert.equal(shown.faults, 0);
    assert.equal(shown.restarts, 0, "four instances started, none of them after a fault");
    assert.equal(read(await metrics(), "nsbox_tenant_restarts_total", 'tenant="steady"'), 0);
  });
});

describe("a tenant's logs", () => {
  /** The lines of `tenant` after `after`, with `token`. */
  const lines = async (tenant, after = 0, token = OPERATOR) =>
    (await api("GET", `/v1/tenants/${tenant}/logs?after=${after}`, { token })).body;

  test("a panic's message, the fault and the restart are there, in order, one line each", async (t) => {
    const { next } = await lines("crash");
    const s = await connected(t, "/crash");
    const gone = once(s, "disconnect");
    s.emit("boom");
    await gone;
    await connected(t, "/crash"); // a fresh instance
    const seen = (await lines("crash", next)).lines;
    const at = (source, pattern) => seen.findIndex((l) => l.source === source && pattern.test(l.message));
    const panicked = at("stderr", /asked to panic/);
    const stopped = at("host", /the instance was stopped \(trap\)/);
    const restarted = at("host", /a fresh instance started after the fault/);
    assert.ok(panicked >= 0 && stopped > panicked && restarted > stopped, JSON.stringify(seen, null, 1));
    assert.equal(seen[panicked].level, "warn");
    for (const line of seen) {
      assert.ok(line.seq > next && typeof line.time_ms === "number");
      assert.ok(!line.message.includes("\n"), "one line each");
    }
  });

  test("a tenant's token reads its own logs only; the operator reads any", async () => {
    const token = (await api("POST", "/v1/tenants/logger/tokens")).body.token;
    assert.equal((await deploy("logger", component("echo"), token)).status, 200);
    const own = await api("GET", "/v1/tenants/logger/logs", { token });
    assert.equal(own.status, 200);
    assert.ok(own.body.lines.some((l) => l.source === "host" && /version 1 now serves/.test(l.message)));
    // Each stored version says which contract it was built for.
    const versions = await api("GET", "/v1/tenants/logger/versions", { token });
    assert.equal(versions.body.versions[0].contract, "0.2.3");
    assert.equal((await api("GET", "/v1/tenants/crash/logs", { token })).status, 403);
    assert.equal((await api("GET", "/v1/tenants/nosuch/logs")).status, 404);
  });

  test("?follow=1 streams each new line as a server-sent event", async (t) => {
    const { next } = await lines("crash");
    const controller = new AbortController();
    t.after(() => controller.abort());
    const res = await fetch(`${ADMIN_URL}/v1/tenants/crash/logs?follow=1&after=${next}`, {
      headers: { authorization: `Bearer ${OPERATOR}` },
      signal: controller.signal,
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const reader = res.body.getReader();
    const s = await connected(t, "/crash");
    s.emit("boom");
    let text = "";
    while (!/event: line\nid: \d+\ndata: \{[^\n]*asked to panic/.test(text)) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the stream ended; got ${text}`);
      text += new TextDecoder().decode(value);
    }
    const data = JSON.parse(/data: (\{[^\n]*asked to panic[^\n]*\})/.exec(text)[1]);
    assert.equal(data.source, "stderr");
    assert.ok(data.seq > next);
  });
});
