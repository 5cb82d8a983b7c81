// Connection state recovery (socket.io 4.6+), with the official client's own mechanism
// (the `pid` and offsets it keeps, `socket.recovered`) against the echo tenant (the Rust
// one, or the JS or Python one named by RECOVERY_ECHO):
// `/t1` recovers sessions for a minute, `/t3` for 400 ms, `/t2` not at all. And the
// packets, frame for frame, against Node's socket.io 4.8.4 running the same app with
// `connectionStateRecovery` on.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Server } from "socket.io";
import { once, client, connected, rawWs } from "./helpers.mjs";

const OK = { auth: { token: "ok" } };
const ADMIN = process.env.ADMIN_URL;

async function tenantSockets(tenant) {
  const res = await fetch(`${ADMIN}/v1/tenants/${tenant}`, {
    headers: { authorization: `Bearer ${process.env.ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()).sockets;
}

/** Resolves once `check` holds (polled every 10 ms, for `ms` at most). */
async function until(check, what, ms = 5000) {
  for (const start = Date.now(); Date.now() - start < ms; ) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`never: ${what}`);
}

/** Every "msg" a socket gets, and when "connect" fired among them. */
function inbox(socket) {
  const got = [];
  socket.on("msg", (...args) => got.push(args));
  socket.on("connect", () => got.push("<connect>"));
  return {
    got,
    async until(match, ms = 3000) {
      await until(() => got.some((m) => m !== "<connect>" && match(m)), `a matching msg in ${JSON.stringify(got)}`, ms);
    },
  };
}

/** Two sockets of `nsp` in room "blue" (the second also a witness), and a sender. */
async function roomOf(t, nsp, opts = {}) {
  const member = await connected(t, nsp, { ...OK, ...opts });
  const witness = await connected(t, nsp, OK);
  const sender = await connected(t, nsp, OK);
  for (const s of [member, witness]) assert.deepEqual(await s.timeout(2000).emitWithAck("join", "blue"), "blue");
  return { member, witness, sender };
}

describe("the official client's recovery against a tenant", () => {
  for (const transports of [["websocket"], ["polling"]]) {
    test(`events sent while its ${transports[0]} connection was cut arrive after it reconnects, in order, none twice, none lost`, async (t) => {
      const { member, witness, sender } = await roomOf(t, "/t1", { transports });
      const hellos = [];
      witness.on("hello", (info) => hellos.push(info.id));
      const [mine, theirs] = [inbox(member), inbox(witness)];
      assert.equal(member.recovered, false, "a fresh session the first time");
      const id = member.id;
      sender.emit("to-room", "blue", "before", 0);
      await mine.until((m) => m[0] === "before");

      // The connection is cut under it (the server sees its transport close).
      const cut = once(member, "disconnect");
      member.io.engine.close();
      await cut;
      for (let i = 0; i < 10; i++) sender.emit("to-room", "blue", "missed", i);
      await theirs.until((m) => m[0] === "missed" && m[1] === 9);

      // Reconnecting by hand (reconnection is off in these tests), with the same pid and offset.
      const told = once(member, "recovered");
      member.connect();
      await once(member, "connect");
      assert.equal(member.recovered, true);
      assert.equal(member.id, id, "the same socket id");
      // The tenant was told (on-recovered), and its per-socket data is as it was. (As
      // with Node, the event's offset comes last among its arguments.)
      assert.deepEqual((await told)[0], { id, trail: ["m1", "m2", "m3"] });
      sender.emit("to-room", "blue", "after", 0);
      await mine.until((m) => m[0] === "after");
      const order = mine.got.map((m) => (m === "<connect>" ? m : `${m[0]}:${m[1]}`));
      assert.deepEqual(
        order,
        ["before:0", ...Array.from({ length: 10 }, (_, i) => `missed:${i}`), "<connect>", "after:0"],
        "what it missed comes before the connect event, and nothing twice",
      );
      // Still in its room on the server, and the tenant never saw it leave and come back:
      // its on-connection (which says hello to the namespace) ran once for it.
      assert.equal(hellos.filter((h) => h === id).length, 0, "no second hello for a recovered socket");
    });
  }

  test("a client cut longer than the window gets a fresh session, and the tenant saw it leave then", async (t) => {
    const { member } = await roomOf(t, "/t3");
    const id = member.id;
    await until(async () => (await tenantSockets("t3")) === 3, "three sockets");
    member.io.engine.close();
    // Within the window the tenant still counts it; after it, the socket has left.
    assert.equal(await tenantSockets("t3"), 3, "kept while its client may come back");
    await until(async () => (await tenantSockets("t3")) === 2, "it left once its window passed");
    member.connect();
    await once(member, "connect");
    assert.equal(member.recovered, false);
    assert.notEqual(member.id, id);
  });

  test("a tenant without recovery gives no pid and no offsets", async (t) => {
    const { member, sender } = await roomOf(t, "/t2");
    assert.equal(member._pid, undefined);
    const got = once(member, "msg");
    sender.emit("to-room", "blue", "plain");
    assert.deepEqual(await got, ["plain"]);
    const cut = once(member, "disconnect");
    member.io.engine.close();
    await cut;
    member.connect();
    await once(member, "connect");
    assert.ok(!member.recovered);
  });

  test("a client leaving on purpose is not kept", async (t) => {
    const { member } = await roomOf(t, "/t1");
    const before = await tenantSockets("t1");
    member.disconnect();
    await until(async () => (await tenantSockets("t1")) === before - 1, "it left at once");
  });
});

// The host's frames, with the Rust echo (whose JSON key order the Node app copies).
const hostOnly = process.env.RECOVERY_ECHO ? { skip: "the host's own behaviour: run with the Rust echo" } : {};

describe("recovery's packets, frame for frame as Node's socket.io sends them", hostOnly, () => {
  let node;
  before(async () => {
    // Node's socket.io with recovery on, and the echo tenant's app on /t1: its token
    // check, its hello to the namespace on connection, "join" and "to-room".
    const http = createServer();
    const io = new Server(http, { connectionStateRecovery: {} });
    const t1 = io.of("/t1");
    t1.use((socket, next) => (socket.handshake.auth.token === "ok" ? next() : next(new Error("unauthorized"))));
    t1.on("connection", (socket) => {
      if (!socket.recovered) t1.emit("hello", { id: socket.id, nsp: "/t1" });
      else socket.emit("recovered", { id: socket.id, trail: ["m1", "m2", "m3"] });
      socket.on("join", (room, ack) => {
        socket.join(room);
        ack(room);
      });
      socket.on("to-room", (room, ...args) => socket.to(room).emit("msg", ...args));
    });
    await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
    node = { io, http, base: `ws://127.0.0.1:${http.address().port}` };
  });
  after(() => new Promise((resolve) => node.io.close(() => resolve())));

  /** A raw WebSocket joined to /t1 with `auth`; its first frames after the CONNECT. */
  async function join(t, base, auth, frames) {
    const ws = rawWs(t, "/socket.io/?EIO=4&transport=websocket", base ? { base } : {});
    await ws.opened;
    assert.match(await ws.next(), /^0\{/);
    ws.send(`40/t1,${JSON.stringify(auth)}`);
    const got = [];
    for (let i = 0; i < frames; i++) got.push(await ws.next());
    return { ws, got };
  }

  /** The frames of one run: a member, cut, an event it misses, its return. */
  async function run(t, base) {
    const answer = (frame) => JSON.parse(frame.slice("40/t1,".length));
    const first = await join(t, base, { token: "ok" }, 2);
    const { sid, pid } = answer(first.got[0]);
    first.ws.send('42/t1,1["join","blue"]');
    const joined = await first.ws.next();
    const sender = await join(t, base, { token: "ok" }, 2);
    const seen = await first.ws.next(); // the sender's hello
    const offset = JSON.parse(seen.slice("42/t1,".length)).at(-1);
    const closed = first.ws.closed;
    first.ws.ws.terminate();
    await closed;
    // A round trip on the sender: the server has handled the close by its answer.
    sender.ws.send('42/t1,1["join","green"]');
    await sender.ws.next();
    sender.ws.send('42/t1,["to-room","blue","missed",1]');
    sender.ws.send('42/t1,2["join","green"]');
    await sender.ws.next();
    const back = await join(t, base, { token: "ok", pid, offset }, 3);
    const frames = [...first.got, joined, seen, ...back.got];
    // Each server's own ids and offsets, as placeholders.
    const names = new Map([[sid, "<sid>"], [pid, "<pid>"], [answer(sender.got[0]).sid, "<sender>"]]);
    return frames.map((frame) => {
      let text = frame;
      for (const [value, name] of names) text = text.split(value).join(name);
      return text.replace(/,"[^"]*"\]$/, ',"<offset>"]');
    });
  }

  test("the CONNECT answer with its pid, offsets on events, and a recovered session's missed events before its answer", async (t) => {
    const ours = await run(t, undefined);
    const theirs = await run(t, node.base);
    assert.deepEqual(ours, theirs);
    assert.deepEqual(theirs.slice(-3), [
      '42/t1,["msg","missed",1,"<offset>"]',
      '40/t1,{"sid":"<sid>","pid":"<pid>"}',
      '42/t1,["recovered",{"id":"<sid>","trail":["m1","m2","m3"]},"<offset>"]',
    ]);
  });
});
