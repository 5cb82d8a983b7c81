// The Wasm tenants (examples/ built to wasm32-wasip2) through the official client.
// The Rust harness serves: echo as /t1 and /t2, admin at /admin, chat as /acme, and the
// hostile examples as /crash (panics), /spin (loops forever) and /hog (eats memory).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Manager } from "socket.io-client";
import { URL, sleep, once, client, connected, pollingSession, post, ack, refused, record } from "./helpers.mjs";

const OK = { auth: { token: "ok" } };

describe("namespaces and tenants", () => {
  test("several tenants multiplexed over one connection", async (t) => {
    const manager = new Manager(URL, { reconnection: false });
    t.after(() => manager.engine?.close());
    const t1 = manager.socket("/t1", OK);
    const t2 = manager.socket("/t2", OK);
    const admin = manager.socket("/admin", { auth: { role: "admin" } });
    await Promise.all([t1, t2, admin].map((s) => once(s, "connect")));
    assert.deepEqual(await ack(t1, "whoami"), [{ nsp: "/t1", trail: ["m1", "m2", "m3"] }]);
    assert.deepEqual(await ack(t2, "whoami"), [{ nsp: "/t2", trail: ["m1", "m2", "m3"] }]);
    assert.deepEqual(await ack(admin, "delete user", 7), [{ deleted: 7 }]);
    assert.equal(manager.engine.id && typeof manager.engine.id, "string");
  });

  test("a namespace whose tenant has no component is refused clearly", async (t) => {
    const [message, data] = await refused(client(t, "/nobody"));
    assert.equal(message, "unknown tenant");
    assert.deepEqual(data, { namespace: "/nobody", tenant: "nobody" });
  });

  test("a namespace outside the pattern is an invalid namespace", async (t) => {
    const [message] = await refused(client(t, "/not/a/tenant"));
    assert.equal(message, "Invalid namespace");
  });
});

describe("admin tenant", () => {
  test("only role admin gets in", async (t) => {
    const [message] = await refused(client(t, "/admin", { auth: { role: "user" } }));
    assert.equal(message, "forbidden");
    const [again] = await refused(client(t, "/admin"));
    assert.equal(again, "forbidden");
  });

  test("delete user acks the id", async (t) => {
    const s = await connected(t, "/admin", { auth: { role: "admin" } });
    assert.deepEqual(await ack(s, "delete user", "u-42"), [{ deleted: "u-42" }]);
  });
});

/**
 * Keeps a /t1 client echoing in a closed loop while `fault` runs, and checks every ack
 * came back, in order: the other tenant did not notice.
 */
async function neighbourUnharmed(t, fault) {
  const n = await connected(t, "/t1", OK);
  // Echoes until five more acks came back after the fault (each within ack's 3 s):
  // a fault that is over in milliseconds still has its neighbour checked after it.
  let stopAt = Infinity;
  const answers = [];
  const loop = (async () => {
    while (answers.length < stopAt) answers.push((await ack(n, "echo", answers.length))[0]);
  })();
  const result = await fault();
  stopAt = answers.length + 5;
  await loop;
  assert.deepEqual(answers, [...answers.keys()], "every ack, in order");
  return result;
}

/** Connects two sockets to a hostile tenant, triggers `event`, and checks both are told. */
async function faultTellsEverySocket(t, nsp, event, kind) {
  const a = await connected(t, nsp);
  const b = await connected(t, nsp);
  assert.deepEqual(await ack(a, "echo", "alive"), ["alive"]);
  const told = [once(a, "nsbox:error"), once(b, "nsbox:error")];
  const gone = [once(a, "disconnect"), once(b, "disconnect")];
  const started = Date.now();
  a.emit(event);
  for (const [notice] of await Promise.all(told)) {
    assert.equal(notice.kind, kind);
    assert.equal(notice.tenant, nsp.slice(1));
    assert.equal(typeof notice.error, "string");
  }
  for (const [reason] of await Promise.all(gone)) assert.equal(reason, "io server disconnect");
  const elapsed = Date.now() - started;
  t.diagnostic(`${nsp} ${event}: sockets told and disconnected ${elapsed} ms after the event`);
  // A fresh instance serves the next connection.
  const fresh = await connected(t, nsp);
  assert.deepEqual(await ack(fresh, "echo", "again"), ["again"]);
  return elapsed;
}

describe("faults stop only the faulty tenant", () => {
  test("a trap (panic) in a handler", async (t) => {
    await neighbourUnharmed(t, () => faultTellsEverySocket(t, "/crash", "boom", "trap"));
  });

  test("an infinite loop hits the CPU deadline", async (t) => {
    const elapsed = await neighbourUnharmed(t, () => faultTellsEverySocket(t, "/spin", "spin", "deadline"));
    assert.ok(elapsed < 2000, `stopped in ${elapsed} ms`);
  });

  test("memory growth hits the memory limit", async (t) => {
    await neighbourUnharmed(t, () => faultTellsEverySocket(t, "/hog", "grow", "memory"));
  });

  test("an emit flood stops at the per-call message budget", async (t) => {
    const a = await connected(t, "/flood");
    let spam = 0;
    a.on("spam", () => spam++);
    const told = once(a, "nsbox:error", 10000);
    a.emit("flood");
    const [notice] = await told;
    assert.equal(notice.kind, "emit-limit");
    assert.match(notice.error, /1000 messages/);
    assert.ok(spam <= 1000, `${spam} messages got out`);
    t.diagnostic(`flood: ${spam} messages reached the client before the trap`);
  });

  test("a broadcast amplification stops at the per-call byte budget, recipients counted", async (t) => {
    const [a, b] = [await connected(t, "/flood"), await connected(t, "/flood")];
    let bytes = 0;
    for (const s of [a, b]) s.on("big", (text) => (bytes += text.length));
    const told = Promise.all([once(a, "nsbox:error", 10000), once(b, "nsbox:error", 10000)]);
    a.emit("amplify");
    for (const [notice] of await told) {
      assert.equal(notice.kind, "emit-limit");
      assert.match(notice.error, /bytes/);
    }
    assert.ok(bytes <= 1024 * 1024, `${bytes} bytes got out`);
    t.diagnostic(`amplify: ${bytes} bytes reached the two clients before the trap`);
  });

  test("a message larger than a tenant may send is stopped before it leaves", async (t) => {
    const a = await connected(t, "/flood");
    const giants = [];
    a.on("giant", (g) => giants.push(g.length));
    const told = once(a, "nsbox:error");
    a.emit("giant");
    const [notice] = await told;
    assert.equal(notice.kind, "message-size", JSON.stringify(notice));
    assert.deepEqual(giants, []);
    const fresh = await connected(t, "/flood");
    assert.deepEqual(await ack(fresh, "echo", "fine"), ["fine"]);
  });

  test("repeated faults back off, then quarantine the tenant until its next upload", async (t) => {
    const waits = [];
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      const s = await connected(t, "/fragile");
      waits.push(Date.now() - started);
      const gone = once(s, "disconnect");
      s.emit("boom");
      await gone;
    }
    t.diagnostic(`connect times after each fault (ms): ${waits.join(", ")}`);
    // The first restart is immediate; the next ones wait out 100, 200 and 400 ms from
    // the fault (measured here from when the client heard of it, hence the margins).
    assert.ok(waits[4] >= 300 && waits[2] + waits[3] + waits[4] >= 500, `backoff: ${waits}`);
    const [message, data] = await refused(client(t, "/fragile"));
    assert.equal(message, "tenant quarantined");
    assert.equal(data.tenant, "fragile");
    assert.equal(data.faults, 5);
    assert.match(data.error, /trap/);
    // Its neighbours carry on.
    const n = await connected(t, "/t1", OK);
    assert.deepEqual(await ack(n, "echo", 1), [1]);
    if (process.env.ADMIN_URL) {
      const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
      const shown = await (await fetch(`${process.env.ADMIN_URL}/v1/tenants/fragile`, { headers })).json();
      assert.equal(shown.quarantined, true);
      const metrics = await (await fetch(`${process.env.ADMIN_URL}/metrics`)).text();
      assert.match(metrics, /nsbox_tenant_quarantined\{tenant="fragile"\} 1/);
      // A new upload lifts the quarantine.
      const { readFileSync } = await import("node:fs");
      const body = readFileSync(`${process.env.EXAMPLES_DIR}/hostile_panic.wasm`);
      const up = await fetch(`${process.env.ADMIN_URL}/v1/tenants/fragile/component`, { method: "PUT", headers, body });
      assert.equal(up.status, 200);
      const s = await connected(t, "/fragile");
      assert.deepEqual(await ack(s, "echo", "back"), ["back"]);
    }
  });

  test("a trap in middleware refuses that socket and the next one gets in", async (t) => {
    const [message, data] = await refused(client(t, "/crash", { auth: { boom: true } }));
    assert.equal(message, "tenant error");
    assert.equal(data.tenant, "crash");
    const s = await connected(t, "/crash");
    assert.deepEqual(await ack(s, "echo", 1), [1]);
  });

  test("an infinite loop in on-connection is stopped too", async (t) => {
    const s = client(t, "/spin", { auth: { spinOnConnection: true } });
    const told = once(s, "nsbox:error");
    const [notice] = await told;
    assert.equal(notice.kind, "deadline");
    const fresh = await connected(t, "/spin");
    assert.deepEqual(await ack(fresh, "echo", 1), [1]);
  });

  test("an infinite loop in middleware is stopped too", async (t) => {
    const [message] = await refused(client(t, "/spin", { auth: { spin: true } }));
    assert.equal(message, "tenant error");
    const s = await connected(t, "/spin");
    assert.deepEqual(await ack(s, "echo", 1), [1]);
  });
});

describe("more hostile tenants", () => {
  test("files, sockets and the environment hold nothing for a tenant", async (t) => {
    const s = await connected(t, "/reach");
    const [file] = await ack(s, "fs");
    assert.ok(!file.includes("root:"), file);
    assert.match(file, /no such file|not found|not permitted|not supported|bad file descriptor|No such/i);
    const [net] = await ack(s, "net");
    assert.notEqual(net, "connected");
    assert.match(net, /denied|not permitted|not supported|unsupported|refused/i);
    assert.deepEqual(await ack(s, "env"), [[]]);
  });

  test("memory that grows a little on every call stops at the limit", async (t) => {
    const s = await connected(t, "/greedy");
    const told = once(s, "nsbox:error", 10000);
    let held = 0;
    let stopped = false;
    told.then(() => (stopped = true));
    while (!stopped && held < 128) {
      const answer = await s.timeout(2000).emitWithAck("leak").catch(() => null);
      if (answer === null) break;
      assert.ok(answer > held, "it keeps what it took");
      held = answer;
    }
    const [notice] = await told;
    assert.equal(notice.kind, "memory");
    assert.ok(held < 64, `held ${held} MiB before the stop`);
    t.diagnostic(`greedy held ${held} MiB when the 64 MiB limit stopped it`);
    const fresh = await connected(t, "/greedy");
    assert.equal(await fresh.emitWithAck("leak"), 4, "a fresh instance starts empty");
  });

  test("unbounded recursion traps", async (t) => {
    const s = await connected(t, "/deep");
    const told = once(s, "nsbox:error");
    s.emit("recurse");
    const [notice] = await told;
    assert.equal(notice.kind, "trap");
    t.diagnostic(`recursion: ${notice.error}`);
    const fresh = await connected(t, "/deep");
    assert.deepEqual(await ack(fresh, "echo", 1), [1]);
  });

  test("recursion within the wasm stack (512 KiB here) answers", async (t) => {
    const s = await connected(t, "/deep");
    assert.deepEqual(await ack(s, "depth", 3000), [3000]);
  });

  test("a call that blocks is stopped by the wall-clock limit", async (t) => {
    const elapsed = await neighbourUnharmed(t, async () => {
      const s = await connected(t, "/sleepy");
      const told = once(s, "nsbox:error", 5000);
      const started = Date.now();
      s.emit("sleep");
      const [notice] = await told;
      assert.equal(notice.kind, "wall-clock");
      return Date.now() - started;
    });
    assert.ok(elapsed >= 900 && elapsed < 2500, `stopped after ${elapsed} ms (limit 1 s, sleep 3 s)`);
    t.diagnostic(`sleep: stopped after ${elapsed} ms`);
    const [message] = await refused(client(t, "/sleepy", { auth: { sleep: true } }));
    assert.equal(message, "tenant error");
  });

  test("an ack answered twice, a forged ack and an ack never answered", async (t) => {
    const s = await connected(t, "/acks");
    const results = [];
    s.on("result", (r) => results.push(r));
    const answers = [];
    s.emit("twice", (...args) => answers.push(args));
    s.emit("forged");
    await until(() => results.length >= 2 && answers.length >= 1);
    await ack(s, "echo", "sync"); // anything more would have arrived before this ack
    assert.deepEqual(answers, [["first"]], "the client got one answer");
    assert.equal(results.length, 2);
    assert.match(results[0], /already answered/);
    assert.match(results[1], /unknown/);
    assert.equal(await unansweredAck(s, "never"), true);
    assert.deepEqual(await ack(s, "echo", "alive"), ["alive"], "misuse is an error to the tenant, not a fault");
  });

  test("a socket flooding events is told and disconnected; its neighbours are not", async (t) => {
    const flooder = await connected(t, "/t2", { ...OK, transports: ["websocket"] });
    const neighbour = await connected(t, "/t2", OK);
    const told = once(flooder, "nsbox:error", 10000);
    const gone = once(flooder, "disconnect", 10000);
    for (let i = 0; i < 20000; i++) flooder.emit("echo", i);
    const [notice] = await told;
    assert.equal(notice.kind, "rate-limit");
    assert.match(notice.error, /5000 events per second/);
    assert.equal((await gone)[0], "io server disconnect");
    assert.deepEqual(await ack(neighbour, "echo", "fine"), ["fine"]);
  });

  test("handles of other tenants' sockets cannot be guessed", async (t) => {
    const victim = await connected(t, "/t1", OK);
    const stolen = [];
    victim.on("stolen", (x) => stolen.push(x));
    const thief = await connected(t, "/acks");
    const own = [];
    thief.on("stolen", (x) => own.push(x));
    await ack(thief, "steal");
    // Answered after the steal was over, on the victim's own connection: anything the
    // thief sent it would be in by now.
    await ack(victim, "echo", 1);
    assert.deepEqual(stolen, [], "nothing reached another tenant's socket");
    assert.deepEqual(own, ["gotcha"], "only its own socket, once");
  });
});

describe("components whose instantiation misbehaves (built by hand: the world's exports plus WAT)", () => {
  // name → the fault kind it must be refused with, and what the message must say.
  const cases = [
    ["startloop", "deadline", /CPU/],
    ["starttrap", "trap", /unreachable/],
    ["startrecurse", "trap", /call stack exhausted/],
    ["startgrow", "memory", /memory/],
    ["bigdata", "trap", /out of bounds/],
    ["bigtable", "table", /table/],
    ["memories", "trap", /memor/],
  ];
  for (const [name, kind, says] of cases) {
    test(`${name}: refused with kind ${kind}, every time, the neighbour unharmed`, async (t) => {
      await neighbourUnharmed(t, async () => {
        for (let attempt = 0; attempt < 2; attempt++) {
          const started = Date.now();
          const [message, data] = await refused(client(t, `/${name}`));
          const elapsed = Date.now() - started;
          assert.equal(message, "tenant unavailable");
          assert.equal(data.tenant, name);
          assert.equal(data.kind, kind, data.error);
          assert.match(data.error, says);
          t.diagnostic(`${name} attempt ${attempt + 1}: refused after ${elapsed} ms: ${data.error}`);
        }
      });
    });
  }
});

describe("broadcasts", () => {
  test("a broadcast excepting several sockets reaches exactly the others", async (t) => {
    const sockets = await Promise.all([1, 2, 3, 4].map(() => connected(t, "/acks")));
    const handles = await Promise.all(sockets.map(async (s) => (await ack(s, "handle"))[0]));
    const heard = sockets.map((s) => record(s, "spared"));
    // The fourth spares the first, the second and itself: only the third hears.
    await ack(sockets[3], "spare", [handles[0], handles[1], handles[3]]);
    // Each answered after the broadcast, on its own connection.
    await Promise.all(sockets.map((s) => ack(s, "echo", "flush")));
    assert.deepEqual(heard.map((h) => h.length), [0, 0, 1, 0]);
  });
});

/** True when `event` gets no ack within 300 ms. */
const unansweredAck = (socket, event) =>
  socket.timeout(300).emitWithAck(event).then(() => false, () => true);

/** Waits (3 s at most) until `condition()` holds. */
async function until(condition) {
  for (let i = 0; i < 60 && !condition(); i++) await sleep(50);
}

describe("one connection, one socket per namespace", () => {
  const headers = () => ({ authorization: `Bearer ${process.env.ADMIN_TOKEN}` });
  const socketsOf = async (tenant) =>
    (await (await fetch(`${process.env.ADMIN_URL}/v1/tenants/${tenant}`, { headers: headers() })).json()).sockets;

  test("twenty CONNECTs for a namespace still joining make one socket, gone with the connection", async () => {
    const before = await socketsOf("t2");
    const sid = await pollingSession("/socket.io/");
    const connects = Array(20).fill('40/t2,{"token":"ok"}').join("\x1e");
    await post(sid, connects, "/socket.io/");
    const pollUntil = async (marker) => {
      let received = "";
      for (let i = 0; i < 50 && !received.includes(marker); i++) {
        received += "\x1e" + (await (await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`)).text());
      }
      assert.ok(received.includes(marker), received);
      return received;
    };
    let received = await pollUntil('40/t2,{"sid"');
    // Then an event with an ack: the tenant handles it after every middleware call queued before it.
    await post(sid, '42/t2,7["whoami"]', "/socket.io/");
    received += await pollUntil("43/t2,7");
    assert.equal(received.split("\x1e").filter((p) => p.startsWith("40/t2,")).length, 1, received);
    assert.equal(await socketsOf("t2"), before + 1);
    await post(sid, "1", "/socket.io/");
    let now;
    // Each try a round trip to the admin API: bounded, not timed.
    for (let i = 0; i < 500 && (now = await socketsOf("t2")) !== before; i++);
    assert.equal(now, before, "every socket of the connection left with it");
  });

  test("a CONNECT for a namespace already joined closes the connection, as Node does", async () => {
    const sid = await pollingSession("/socket.io/");
    await post(sid, '40/t2,{"token":"ok"}', "/socket.io/");
    let received = "";
    for (let i = 0; i < 20 && !received.includes('40/t2,{"sid"'); i++) {
      received += (await (await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`)).text());
    }
    assert.ok(received.includes('40/t2,{"sid"'), received);
    await post(sid, '40/t2,{"token":"ok"}', "/socket.io/");
    let closed = false;
    for (let i = 0; i < 20 && !closed; i++) {
      const res = await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
      // The close packet, or (once it is gone) the unknown session.
      closed = res.status === 400 || (await res.text()).split("\x1e").includes("1");
    }
    assert.ok(closed, "the session was closed");
  });
});

describe("contract versions", () => {
  test("a component built for nsbox:tenant@0.1.0 is served as it was; the admin API says which contract each targets", async (t) => {
    const s = await connected(t, "/legacy", OK);
    assert.deepEqual(await ack(s, "whoami"), [{ nsp: "/legacy", trail: ["m1", "m2", "m3"] }]);
    const bin = Buffer.from([1, 2, 3]);
    assert.deepEqual(await ack(s, "echo", "a", { b: bin }), ["a", { b: bin }]);
    const [message] = await refused(client(t, "/legacy", { auth: { token: "no" } }));
    assert.equal(message, "unauthorized");
    const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
    const shown = async (tenant) => (await fetch(`${process.env.ADMIN_URL}/v1/tenants/${tenant}`, { headers })).json();
    assert.equal((await shown("legacy")).contract, "0.1.0");
    assert.equal((await shown("t1")).contract, "0.2.3");
  });

  test("a component built for nsbox:tenant@0.2.0 is served under 0.2.3, its storage included", async (t) => {
    const s = await connected(t, "/legacy2", OK);
    assert.deepEqual(await ack(s, "whoami"), [{ nsp: "/legacy2", trail: ["m1", "m2", "m3"] }]);
    assert.deepEqual(await ack(s, "store", "k", 1), [{ ok: true, value: null }]);
    assert.deepEqual(await ack(s, "load", "k"), [{ ok: true, value: 1 }]);
    const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
    const shown = await (await fetch(`${process.env.ADMIN_URL}/v1/tenants/legacy2`, { headers })).json();
    assert.equal(shown.contract, "0.2.0");
  });

  test("a component built for nsbox:tenant@0.2.1 is served under 0.2.3", async (t) => {
    const s = await connected(t, "/legacy3", OK);
    assert.deepEqual(await ack(s, "whoami"), [{ nsp: "/legacy3", trail: ["m1", "m2", "m3"] }]);
    const bin = Buffer.from([4, 5]);
    assert.deepEqual(await ack(s, "echo", { b: bin }), [{ b: bin }]);
    const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
    const shown = await (await fetch(`${process.env.ADMIN_URL}/v1/tenants/legacy3`, { headers })).json();
    assert.equal(shown.contract, "0.2.1");
  });

  test("a component built for nsbox:tenant@0.2.2 is served under 0.2.3", async (t) => {
    const s = await connected(t, "/legacy4", OK);
    assert.deepEqual(await ack(s, "whoami"), [{ nsp: "/legacy4", trail: ["m1", "m2", "m3"] }]);
    const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
    const shown = await (await fetch(`${process.env.ADMIN_URL}/v1/tenants/legacy4`, { headers })).json();
    assert.equal(shown.contract, "0.2.2");
  });
});

