// Socket.IO v5 with the official socket.io-client against the native test app
// (nsbox::demo::conformance and nsbox::demo::workspaces).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Manager } from "socket.io-client";
import { URL, sleep, once, client, connected, rawWs, observer } from "./helpers.mjs";

const ok = { auth: { token: "ok" } };

describe("transports", () => {
  for (const [name, transports, expected] of [
    ["polling then upgrade", ["polling", "websocket"], "websocket"],
    ["websocket only", ["websocket"], "websocket"],
    ["polling only", ["polling"], "polling"],
  ]) {
    test(name, async (t) => {
      const socket = client(t, "/", { transports, auth: { token: "123" } });
      const [auth] = await once(socket, "auth");
      assert.equal(socket.connected, true);
      assert.deepEqual(auth, { token: "123" });
      if (expected === "websocket" && socket.io.engine.transport.name !== "websocket") {
        await once(socket.io.engine, "upgrade");
      }
      assert.equal(socket.io.engine.transport.name, expected);
      const back = once(socket, "message-back");
      socket.emit("message", 1, "2", { 3: [true] }, Buffer.from([1, 2, 3]));
      const args = await back;
      assert.deepEqual(args.slice(0, 3), [1, "2", { 3: [true] }]);
      assert.deepEqual(Buffer.from(args[3]), Buffer.from([1, 2, 3]));
      const answer = await socket.timeout(2000).emitWithAck("message-with-ack", "a", { b: 1 });
      assert.deepEqual(answer, "a");
    });
  }

  test("nothing lost or reordered across the upgrade", async (t) => {
    const socket = await connected(t, "/w_order", { ...ok, transports: ["polling", "websocket"] });
    const got = [];
    const all = new Promise((resolve) => {
      socket.on("msg", (n) => {
        got.push(n);
        if (got.length === 200) resolve();
      });
    });
    for (let i = 0; i < 200; i++) socket.emit("broadcast", i);
    await all;
    assert.deepEqual(got, [...Array(200).keys()]);
    assert.equal(socket.io.engine.transport.name, "websocket");
  });
});

describe("namespaces", () => {
  test("unknown namespace gets Invalid namespace", async (t) => {
    const socket = client(t, "/no-such-namespace!");
    const [err] = await once(socket, "connect_error");
    assert.equal(err.message, "Invalid namespace");
  });

  test("several namespaces multiplexed over one connection", async (t) => {
    const manager = new Manager(URL, { reconnection: false });
    t.after(() => manager._close());
    const sockets = ["/", "/custom", "/w_multi_a", "/w_multi_b"].map((nsp) => manager.socket(nsp, ok));
    await Promise.all(sockets.map((s) => once(s, "connect")));
    const engineIds = new Set(sockets.map((s) => s.io.engine.id));
    assert.equal(engineIds.size, 1, "one Engine.IO session");
    const [a, b] = await Promise.all([
      sockets[2].emitWithAck("whoami"),
      sockets[3].emitWithAck("whoami"),
    ]);
    assert.equal(a.nsp, "/w_multi_a");
    assert.equal(b.nsp, "/w_multi_b");
    // Leaving one namespace leaves the others and the connection working.
    sockets[2].disconnect();
    assert.deepEqual(await sockets[3].emitWithAck("echo", 7), 7);
    sockets.forEach((s) => s.disconnect());
  });

  test("dynamic children: hello goes to the child only, and children are kept apart", async (t) => {
    const a = await connected(t, "/w_dyn_a", ok);
    const other = await connected(t, "/w_dyn_b", ok);
    let leaked = false;
    other.on("hello", () => (leaked = true));
    other.on("msg", () => (leaked = true));
    const hello = once(a, "hello");
    const b = await connected(t, "/w_dyn_a", ok);
    const [info] = await hello;
    assert.deepEqual(info, { nsp: "/w_dyn_a", id: b.id });
    const msg = once(b, "msg");
    a.emit("broadcast", "to my workspace");
    assert.deepEqual(await msg, ["to my workspace"]);
    // The broadcast went out before this answer, on the same connection: a leak would be here by now.
    await other.emitWithAck("whoami");
    assert.equal(leaked, false);
  });

  test("an emptied child is cleaned up and created afresh", async (t) => {
    const obs = await observer(t);
    const first = await connected(t, "/w_cleanup", ok);
    await first.emitWithAck("join", "r");
    const firstId = first.id;
    first.disconnect();
    await obs.reasonFor(firstId);
    const second = await connected(t, "/w_cleanup", ok);
    const me = await second.emitWithAck("whoami");
    assert.deepEqual(me.rooms, ["members", second.id].sort());
  });
});

describe("middleware", () => {
  test("the chain runs in order", async (t) => {
    const socket = await connected(t, "/w_mw", ok);
    const me = await socket.emitWithAck("whoami");
    assert.deepEqual(me.trail, ["m1", "m2", "m3"]);
  });

  test("handshake data: auth, query, headers, address, time", async (t) => {
    const before = Date.now();
    const socket = await connected(t, "/w_hs", {
      auth: { token: "ok", extra: [1] },
      query: { room: "lobby", n: "a b" },
      extraHeaders: { "user-agent": "nsbox-test/1" },
    });
    const me = await socket.emitWithAck("whoami");
    assert.deepEqual(me.auth, { token: "ok", extra: [1] });
    assert.equal(me.query.room, "lobby");
    assert.equal(me.query.n, "a b");
    assert.equal(me.query.EIO, "4");
    assert.equal(me.address, "127.0.0.1");
    assert.equal(me.userAgent, "nsbox-test/1");
    assert.ok(me.issued >= before - 1000 && me.issued <= Date.now() + 1000, `issued ${me.issued}`);
  });

  test("a room joined in middleware works once connected", async (t) => {
    const a = await connected(t, "/w_mwroom", ok);
    const b = await connected(t, "/w_mwroom", ok);
    const got = once(b, "msg");
    a.emit("to-room", "members", "hi members");
    assert.deepEqual(await got, ["hi members"]);
  });

  test("a connection that closes while middleware runs leaves no socket behind", async (t) => {
    const obs = await observer(t);
    const c = rawWs(t, "/socket.io/?EIO=4&transport=websocket");
    await c.next();
    c.send('40/w_gone,{"token":"ok","delayMs":150}');
    c.ws.close();
    await c.closed;
    // Accepted after its connection was gone, that socket must leave at once; the harness
    // checks at the end of the suite that no socket is left.
    const gone = await obs.departureFrom("/w_gone");
    assert.equal(gone.reason, "transport close");
    const late = await connected(t, "/w_gone", ok);
    assert.equal((await late.emitWithAck("whoami")).nsp, "/w_gone");
    const id = late.id;
    late.disconnect();
    assert.equal(await obs.reasonFor(id), "client namespace disconnect");
  });

  test("a refusal ends the chain and reaches the client with message and data", async (t) => {
    const socket = client(t, "/w_mw", { auth: { token: "wrong" } });
    const [err] = await once(socket, "connect_error");
    assert.equal(err.message, "unauthorized");
    assert.deepEqual(err.data, { reason: "bad token" });
    assert.equal(socket.connected, false);
  });

  test("a refusal over websocket only, too", async (t) => {
    const socket = client(t, "/w_mw", { transports: ["websocket"] });
    const [err] = await once(socket, "connect_error");
    assert.equal(err.message, "unauthorized");
    assert.deepEqual(err.data, { reason: "bad token" });
  });
});

describe("rooms and broadcast", () => {
  test("to a room, the sender excepted", async (t) => {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => connected(t, "/w_rooms", ok)));
    await a.emitWithAck("join", "blue");
    await b.emitWithAck("join", "blue");
    const got = { a: [], b: [], c: [] };
    a.on("msg", (m) => got.a.push(m));
    b.on("msg", (m) => got.b.push(m));
    c.on("msg", (m) => got.c.push(m));
    const bGot = once(b, "msg");
    a.emit("to-room", "blue", "hi blue");
    await bGot;
    // Sent after the room message, on the same connections: anything misdelivered is in by then.
    await Promise.all([a.emitWithAck("whoami"), c.emitWithAck("whoami")]);
    assert.deepEqual(got, { a: [], b: ["hi blue"], c: [] });
  });

  test("leave stops delivery; every socket is in its own id's room", async (t) => {
    const a = await connected(t, "/w_leave", ok);
    const b = await connected(t, "/w_leave", ok);
    await b.emitWithAck("join", "green");
    assert.deepEqual((await b.emitWithAck("whoami")).rooms, ["green", "members", b.id].sort());
    await b.emitWithAck("leave", "green");
    const got = [];
    b.on("msg", (m) => got.push(m));
    a.emit("to-room", "green", "not for b any more");
    const direct = once(b, "msg");
    a.emit("to-room", b.id, "by id");
    await direct;
    // Same connection, same order: had the first one been delivered, it would be first.
    assert.deepEqual(got, ["by id"]);
    assert.deepEqual((await b.emitWithAck("whoami")).rooms, ["members", b.id].sort());
  });

  test("broadcast to rooms with exceptions", async (t) => {
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map(() => connected(t, "/w_except", ok)));
    await a.emitWithAck("join", "all");
    await b.emitWithAck("join", "all");
    await c.emitWithAck("join", "all");
    await c.emitWithAck("join", "muted");
    const got = new Set();
    for (const [name, s] of Object.entries({ a, b, c, d })) s.on("msg", () => got.add(name));
    const done = Promise.all([once(a, "msg"), once(b, "msg")]);
    d.emit("to-room-except", "all", "muted", "news");
    await done;
    await Promise.all([c.emitWithAck("whoami"), d.emitWithAck("whoami")]);
    assert.deepEqual([...got].sort(), ["a", "b"]);
  });
});

describe("binary and acks", () => {
  test("binary at depth round-trips through an ack", async (t) => {
    const socket = await connected(t, "/w_bin", ok);
    const payload = { deep: [1, { bytes: Buffer.from([0, 255, 7]) }], list: [Buffer.from("a"), "b"] };
    const answer = await socket.timeout(2000).emitWithAck("echo", payload, Buffer.from([9]));
    assert.deepEqual(Buffer.from(answer.deep[1].bytes), Buffer.from([0, 255, 7]));
    assert.deepEqual(Buffer.from(answer.list[0]), Buffer.from("a"));
    assert.equal(answer.list[1], "b");
  });

  test("binary broadcast reaches the room", async (t) => {
    const a = await connected(t, "/w_binroom", ok);
    const b = await connected(t, "/w_binroom", ok);
    await b.emitWithAck("join", "r");
    const got = once(b, "msg");
    a.emit("to-room", "r", { file: Buffer.from([1, 2]) });
    const [m] = await got;
    assert.deepEqual(Buffer.from(m.file), Buffer.from([1, 2]));
  });

  test("server-to-client ack is answered", async (t) => {
    const socket = await connected(t, "/w_ask", ok);
    socket.on("question", (q, cb) => cb(`pong to ${q}`));
    assert.deepEqual(await socket.emitWithAck("ask"), { answer: "pong to ping?" });
  });

  test("server-to-client ack times out and frees its slot", async (t) => {
    const socket = await connected(t, "/w_ask", ok);
    socket.on("question", () => {});
    const started = Date.now();
    const reply = await socket.emitWithAck("ask", 200);
    assert.deepEqual(reply, { error: "timeout", pending: 0 });
    assert.ok(Date.now() - started >= 190);
  });

  test("client-side ack timeout when the server never answers", async (t) => {
    const socket = await connected(t, "/w_noack", ok);
    await assert.rejects(socket.timeout(200).emitWithAck("no-such-event"), /operation has timed out/);
  });
});

describe("disconnect reasons", () => {
  test("server disconnect: client sees io server disconnect", async (t) => {
    const obs = await observer(t);
    const socket = await connected(t, "/w_bye", ok);
    const id = socket.id;
    const reason = once(socket, "disconnect");
    socket.emit("bye");
    assert.equal((await reason)[0], "io server disconnect");
    assert.equal(await obs.reasonFor(id), "server namespace disconnect");
  });

  test("client disconnect: client namespace disconnect", async (t) => {
    const obs = await observer(t);
    const socket = await connected(t, "/w_leaving", ok);
    const id = socket.id;
    const reason = once(socket, "disconnect");
    socket.disconnect();
    assert.equal((await reason)[0], "io client disconnect");
    assert.equal(await obs.reasonFor(id), "client namespace disconnect");
  });

  test("transport close", async (t) => {
    const obs = await observer(t);
    const socket = await connected(t, "/w_tclose", { ...ok, transports: ["websocket"] });
    const id = socket.id;
    socket.io.engine.close();
    assert.equal(await obs.reasonFor(id), "transport close");
  });

  test("ping timeout, and the client sees it too", async (t) => {
    const obs = await observer(t);
    const c = rawWs(t, "/socket.io/?EIO=4&transport=websocket", { autoPong: false });
    await c.next();
    c.send('40/w_ping,{"token":"ok"}');
    const accepted = await c.next(2000);
    const id = JSON.parse(accepted.substring("40/w_ping,".length)).sid;
    // Never answer the pings.
    assert.equal(await obs.reasonFor(id, 3000), "ping timeout");
    await c.closed;
  });

  test("parse error", async (t) => {
    const obs = await observer(t);
    const c = rawWs(t, "/socket.io/?EIO=4&transport=websocket");
    await c.next();
    c.send('40/w_parse,{"token":"ok"}');
    const id = JSON.parse((await c.next()).substring("40/w_parse,".length)).sid;
    c.send("42/w_parse,{}");
    assert.equal(await obs.reasonFor(id), "parse error");
    await c.closed;
  });

  test("an oversized message: transport error, and only that connection", async (t) => {
    const obs = await observer(t);
    const big = await connected(t, "/w_big", { ...ok, transports: ["websocket"] });
    const small = await connected(t, "/w_big", { ...ok, transports: ["websocket"] });
    const id = big.id;
    const gone = once(big, "disconnect");
    big.emit("echo", "x".repeat(1_000_001));
    const [reason] = await gone;
    assert.equal(reason, "transport close");
    assert.equal(await obs.reasonFor(id), "transport error");
    assert.deepEqual(await small.emitWithAck("echo", "fine"), "fine");
  });

  test("an oversized polling message closes only that connection", async (t) => {
    const big = await connected(t, "/w_bigpoll", { ...ok, transports: ["polling"] });
    const small = await connected(t, "/w_bigpoll", { ...ok, transports: ["polling"] });
    const gone = once(big, "disconnect", 5000);
    big.emit("echo", "x".repeat(1_000_001));
    await gone;
    assert.deepEqual(await small.emitWithAck("echo", "fine"), "fine");
  });
});

describe("Socket.IO packets on the wire", () => {
  async function joined(t, nsp = "") {
    const c = rawWs(t, "/socket.io/?EIO=4&transport=websocket");
    await c.next();
    c.send(`40${nsp}`);
    const accepted = await c.next();
    return { c, accepted };
  }

  test("CONNECT answers exactly {sid}, then auth", async (t) => {
    const { c, accepted } = await joined(t);
    assert.ok(accepted.startsWith("40{"));
    assert.deepEqual(Object.keys(JSON.parse(accepted.substring(2))), ["sid"]);
    assert.equal(await c.next(), '42["auth",{}]');
  });

  test("custom namespace with and without the trailing comma, with auth", async (t) => {
    const { c, accepted } = await joined(t, '/custom,{"token":"abc"}');
    assert.ok(accepted.startsWith("40/custom,{"));
    assert.equal(await c.next(), '42/custom,["auth",{"token":"abc"}]');
    const d = rawWs(t, "/socket.io/?EIO=4&transport=websocket");
    await d.next();
    d.send("40/custom");
    assert.ok((await d.next()).startsWith("40/custom,"));
  });

  test("unknown namespace", async (t) => {
    const { accepted } = await joined(t, "/random-ns");
    assert.equal(accepted, '44/random-ns,{"message":"Invalid namespace"}');
  });

  test("events keep the JSON as sent", async (t) => {
    const { c } = await joined(t);
    await c.next();
    c.send('42["message",1,"2",{"3":[true],"b":1.50,"a":null}]');
    assert.equal(await c.next(), '42["message-back",1,"2",{"3":[true],"b":1.50,"a":null}]');
    c.send('42456["message-with-ack",1,"2",{"3":[false]}]');
    assert.equal(await c.next(), '43456[1,"2",{"3":[false]}]');
  });

  test("binary event and binary ack", async (t) => {
    const { c } = await joined(t);
    await c.next();
    const placeholders = '{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}';
    for (const [sent, expected] of [
      [`452-["message",${placeholders}]`, `452-["message-back",${placeholders}]`],
      [`452-789["message-with-ack",${placeholders}]`, `462-789[${placeholders}]`],
    ]) {
      c.send(sent);
      c.send(Buffer.from([1, 2, 3]));
      c.send(Buffer.from([4, 5, 6]));
      assert.equal(await c.next(), expected);
      assert.deepEqual(await c.next(), Buffer.from([1, 2, 3]));
      assert.deepEqual(await c.next(), Buffer.from([4, 5, 6]));
    }
  });

  // The last one announces more attachments than the 256 allowed.
  for (const bad of ["4abc", "42{}", '42abc["message-with-ack",1]', '451-["m",{"_placeholder":true,"num":5}]', '4257-["m"]']) {
    test(`malformed ${bad} closes the connection`, async (t) => {
      const { c } = await joined(t);
      await c.next();
      c.send(bad);
      if (bad.startsWith("451-")) c.send(Buffer.from([1]));
      await c.closed;
    });
  }

  test("41 leaves the namespace and keeps the connection", async (t) => {
    const { c } = await joined(t);
    await c.next();
    c.send("40/custom,");
    await c.next();
    await c.next();
    c.send("41/custom,");
    c.send('42["message","still here"]');
    assert.equal(await c.next(), '42["message-back","still here"]');
  });

  test("a connection that joins no namespace is closed after the connect timeout", async (t) => {
    const c = rawWs(t, "/socket.io/?EIO=4&transport=websocket");
    await c.next();
    const started = Date.now();
    await c.closed;
    assert.ok(Date.now() - started >= 900, "closed too early");
  });
});
