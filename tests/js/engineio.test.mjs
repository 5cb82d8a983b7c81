// Engine.IO v4 on the wire, against the raw echo endpoint /engine.io/ (and /socket.io/ for paths).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { URL, PING_INTERVAL, PING_TIMEOUT, sleep, rawWs, pollingSession, poll, post } from "./helpers.mjs";

async function expectError(res, code, message) {
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code, message });
}

describe("handshake", () => {
  test("polling open packet has exactly the five keys", async () => {
    const res = await fetch(`${URL}/engine.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^text\/plain/);
    const text = await res.text();
    assert.equal(text[0], "0");
    const open = JSON.parse(text.substring(1));
    // In the order Node's engine.io writes them.
    assert.deepEqual(Object.keys(open), ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]);
    assert.equal(typeof open.sid, "string");
    assert.deepEqual(open.upgrades, ["websocket"]);
    assert.equal(open.pingInterval, PING_INTERVAL);
    assert.equal(open.pingTimeout, PING_TIMEOUT);
    assert.equal(open.maxPayload, 1000000);
  });

  test("websocket open packet has no upgrades", async (t) => {
    const c = rawWs(t, "/engine.io/?EIO=4&transport=websocket");
    const open = JSON.parse((await c.next()).substring(1));
    assert.deepEqual(open.upgrades, []);
    assert.equal(open.maxPayload, 1000000);
  });

  test("the path works without its trailing slash", async () => {
    const res = await fetch(`${URL}/socket.io?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
  });

  test("errors as Node sends them", async () => {
    await expectError(await fetch(`${URL}/engine.io/?transport=polling`), 5, "Unsupported protocol version");
    await expectError(await fetch(`${URL}/engine.io/?EIO=abc&transport=polling`), 5, "Unsupported protocol version");
    await expectError(await fetch(`${URL}/engine.io/?EIO=3&transport=polling`), 5, "Unsupported protocol version");
    await expectError(await fetch(`${URL}/engine.io/?EIO=4`), 0, "Transport unknown");
    await expectError(await fetch(`${URL}/engine.io/?EIO=4&transport=abc`), 0, "Transport unknown");
    await expectError(await fetch(`${URL}/engine.io/?EIO=4&transport=polling`, { method: "POST", body: "4x" }), 2, "Bad handshake method");
    await expectError(await fetch(`${URL}/engine.io/?EIO=4&transport=polling`, { method: "PUT", body: "4x" }), 2, "Bad handshake method");
    await expectError(await poll("nope"), 1, "Session ID unknown");
  });

  test("a websocket with a bad query is refused", async (t) => {
    const c = rawWs(t, "/engine.io/?transport=websocket");
    await assert.rejects(c.opened, /HTTP 400/);
    const d = rawWs(t, "/engine.io/?EIO=4&transport=abc");
    await assert.rejects(d.opened, /HTTP 400/);
  });

  test("CORS reflects the origin with credentials and answers preflights", async () => {
    const res = await fetch(`${URL}/engine.io/?EIO=4&transport=polling`, { headers: { origin: "http://example.test" } });
    assert.equal(res.headers.get("access-control-allow-origin"), "http://example.test");
    assert.equal(res.headers.get("access-control-allow-credentials"), "true");
    const pre = await fetch(`${URL}/engine.io/?EIO=4&transport=polling`, {
      method: "OPTIONS",
      headers: { origin: "http://example.test", "access-control-request-headers": "x-custom" },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-headers"), "x-custom");
  });
});

describe("polling", () => {
  test("several packets, text and binary, come back in one body", async () => {
    const sid = await pollingSession();
    const push = await post(sid, "4hello\x1e4€uro\x1ebAQIDBA==");
    assert.equal(push.status, 200);
    assert.equal(await push.text(), "ok");
    const res = await poll(sid);
    assert.equal(await res.text(), "4hello\x1e4€uro\x1ebAQIDBA==");
  });

  test("a malformed body closes the session", async () => {
    const sid = await pollingSession();
    const push = await post(sid, "abc");
    assert.equal(push.status, 400);
    assert.equal((await poll(sid)).status, 400);
  });

  test("duplicate polls: the pending one gets close, the other 400, then the session is gone", async () => {
    const sid = await pollingSession();
    // Whichever the server takes first is the pending one.
    const answers = await Promise.all([poll(sid), poll(sid)]);
    const bodies = await Promise.all(answers.map((res) => res.text()));
    const statuses = answers.map((res) => res.status).sort();
    assert.deepEqual(statuses, [200, 400], bodies.join(" | "));
    assert.equal(bodies[answers.findIndex((res) => res.status === 200)], "1");
    assert.equal((await poll(sid)).status, 400);
  });

  test("client close releases the pending poll with a noop", async () => {
    // The poll is pending unless the close overtook it (then it finds no session):
    // tried until one was pending.
    for (let i = 0; i < 20; i++) {
      const sid = await pollingSession();
      const pending = poll(sid);
      assert.equal((await post(sid, "1")).status, 200);
      const res = await pending;
      const body = await res.text();
      if (res.status === 400) continue;
      assert.equal(body, "6");
      assert.equal((await poll(sid)).status, 400);
      return;
    }
    assert.fail("the close overtook the poll every time");
  });

  test("server pings after pingInterval and a pong keeps the session", async () => {
    const sid = await pollingSession();
    for (let i = 0; i < 2; i++) {
      const started = Date.now();
      const text = await (await poll(sid)).text();
      assert.equal(text, "2");
      assert.ok(Date.now() - started >= PING_INTERVAL - 50, "ping came too early");
      assert.equal((await post(sid, "3")).status, 200);
    }
  });

  test("a client ping gets a pong", async () => {
    const sid = await pollingSession();
    await post(sid, "2");
    assert.equal(await (await poll(sid)).text(), "3");
  });

  test("no pong closes the session after pingInterval + pingTimeout", async () => {
    const sid = await pollingSession();
    const started = Date.now();
    // Polled (each poll is answered by the next ping) but never ponged.
    let closed = false;
    for (let i = 0; i < 20 && !closed; i++) {
      const res = await poll(sid);
      closed = res.status === 400 || (await res.text()).split("\x1e").includes("1");
    }
    const elapsed = Date.now() - started;
    assert.ok(closed, "closed");
    assert.ok(elapsed >= PING_INTERVAL + PING_TIMEOUT - 50, `closed after ${elapsed} ms`);
    assert.equal((await post(sid, "3")).status, 400);
  });

  test("a client that never reads is closed once its queue is full, and only that one", async () => {
    const sid = await pollingSession();
    const other = await pollingSession();
    // Each packet is echoed into the session's queue, bounded at 10,000 packets; nobody polls.
    const body = Array.from({ length: 10_001 }, () => "4a").join("\x1e");
    assert.equal((await post(sid, body)).status, 200);
    assert.equal((await poll(sid)).status, 400);
    await post(other, "4fine");
    assert.equal(await (await poll(other)).text(), "4fine");
  });

  test("a body over maxPayload is refused and closes only that session", async () => {
    const sid = await pollingSession();
    const other = await pollingSession();
    // Node answers 413; the connection may also be cut before the whole body is sent.
    const status = await post(sid, "4" + "x".repeat(1_000_001)).then((r) => r.status, () => "reset");
    assert.ok([413, "reset"].includes(status), `got ${status}`);
    assert.equal((await poll(sid)).status, 400);
    await post(other, "4still here");
    assert.equal(await (await poll(other)).text(), "4still here");
  });
});

describe("websocket", () => {
  test("text and binary frames echo", async (t) => {
    const c = rawWs(t, "/engine.io/?EIO=4&transport=websocket");
    await c.next();
    c.send("4hello");
    assert.equal(await c.next(), "4hello");
    c.send(Buffer.from([1, 2, 3, 4]));
    assert.deepEqual(await c.next(), Buffer.from([1, 2, 3, 4]));
  });

  test("an invalid packet closes the connection", async (t) => {
    const c = rawWs(t, "/engine.io/?EIO=4&transport=websocket");
    await c.next();
    c.send("abc");
    await c.closed;
  });

  test("a close packet closes the connection", async (t) => {
    const c = rawWs(t, "/engine.io/?EIO=4&transport=websocket");
    await c.next();
    c.send("1");
    await c.closed;
  });

  test("heartbeat: ping then close without pong", async (t) => {
    const c = rawWs(t, "/engine.io/?EIO=4&transport=websocket", { autoPong: false });
    await c.next();
    assert.equal(await c.next(1000), "2");
    await c.closed;
  });

  test("a message over maxPayload closes only its own connection", async (t) => {
    const big = rawWs(t, "/engine.io/?EIO=4&transport=websocket");
    const small = rawWs(t, "/engine.io/?EIO=4&transport=websocket");
    await big.next();
    await small.next();
    big.send("4" + "x".repeat(1_000_001));
    // As Node's `ws` closes it: 1009, message too big.
    assert.equal(await big.closed, 1009);
    small.send("4alive");
    assert.equal(await small.next(), "4alive");
  });
});

describe("upgrade", () => {
  /** Opens a polling session and a WebSocket for it that has been probed (`2probe` → `3probe`). */
  async function probed(t) {
    const sid = await pollingSession();
    const c = rawWs(t, `/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await c.opened;
    c.send("2probe");
    assert.equal(await c.next(), "3probe");
    return { sid, c };
  }

  test("probe, noop to the pending poll, then messages over websocket", async (t) => {
    const sid = await pollingSession();
    // Pending before or after the probe: either way it is released with a noop.
    const pending = poll(sid);
    const c = rawWs(t, `/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await c.opened;
    c.send("2probe");
    assert.equal(await c.next(), "3probe");
    assert.equal(await (await pending).text(), "6");
    c.send("5");
    c.send("4hello");
    // Nothing before the answer: Node sends no noop over the WebSocket.
    assert.equal(await c.next(), "4hello");
    assert.equal((await poll(sid)).status, 400);
  });

  test("an upgraded session is pinged once a pingInterval over its WebSocket, and closed without a pong", async (t) => {
    const sid = await pollingSession();
    const c = rawWs(t, `/engine.io/?EIO=4&transport=websocket&sid=${sid}`, { autoPong: false });
    await c.opened;
    c.send("2probe");
    assert.equal(await c.next(), "3probe");
    c.send("5");
    // The session's one heartbeat (begun while it polled) goes on over the WebSocket.
    assert.equal(await c.next(PING_INTERVAL + 1000), "2");
    let pinged = Date.now();
    c.send("3");
    assert.equal(await c.next(PING_INTERVAL + 1000), "2");
    assert.ok(Date.now() - pinged >= PING_INTERVAL - 50, "a second ping came too early");
    pinged = Date.now();
    // Unanswered: closed after pingTimeout, with no other ping before.
    await c.closed;
    assert.ok(Date.now() - pinged >= PING_TIMEOUT - 50, "closed too early");
    await assert.rejects(c.next(1), /no frame/);
    assert.equal((await poll(sid)).status, 400);
  });

  test("without a pending poll the first frame after 5 answers the client, not a noop", async (t) => {
    const { c } = await probed(t);
    c.send("5");
    c.send("4hello");
    assert.equal(await c.next(), "4hello");
  });

  test("2probe and 5 back to back, then a poll: the poll gets 400", async (t) => {
    for (let i = 0; i < 20; i++) {
      const sid = await pollingSession();
      const c = rawWs(t, `/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
      await c.opened;
      c.send("2probe");
      c.send("5");
      const res = await poll(sid);
      assert.equal(res.status, 400, `round ${i}: ${await res.text()}`);
      assert.equal(await c.next(), "3probe");
      c.ws.close();
    }
  });

  test("a second websocket for an upgraded sid is opened and closed at once, as Node does", async (t) => {
    const { sid, c } = await probed(t);
    c.send("5");
    const d = rawWs(t, `/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await d.opened;
    assert.equal(await d.closed, 1005);
    c.send("4still");
    assert.equal(await c.next(), "4still");
  });

  test("a second websocket during the upgrade is closed and the first goes on", async (t) => {
    const { sid, c } = await probed(t);
    const d = rawWs(t, `/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await d.opened;
    assert.equal(await d.closed, 1005);
    c.send("5");
    c.send("4on");
    assert.equal(await c.next(), "4on");
  });

  test("messages queued during the upgrade are neither lost nor reordered", async (t) => {
    const { sid, c } = await probed(t);
    // Sent over polling while the upgrade is under way: echoed into the shared queue.
    await post(sid, "4a\x1e4b\x1e4c");
    c.send("5");
    const got = [];
    while (got.length < 3) got.push(await c.next());
    assert.deepEqual(got, ["4a", "4b", "4c"]);
  });
});
