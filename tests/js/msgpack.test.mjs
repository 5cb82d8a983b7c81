// The msgpack parser (socket.io-msgpack-parser) through the official client, and its
// packets byte for byte against Node's socket.io 4.8.4 running the same app with the
// same parser. nsbox tells each connection's parser from its first message, so clients
// of both parsers share namespaces, rooms and tenants.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Server } from "socket.io";
import * as msgpackParser from "socket.io-msgpack-parser";
import notepack from "notepack.io";
import { once, client, connected, ack, rawWs } from "./helpers.mjs";

const parser = msgpackParser.default ?? msgpackParser;
// Against nsbox's reference app (tests/src/demo.rs), or against its Wasm tenants.
const APP = !process.env.MSGPACK_TENANT;
const msgpack = (opts = {}) => ({ parser, ...opts });
const OK = { auth: { token: "ok" } };

describe("a client with the msgpack parser", { skip: !APP }, () => {
  for (const transports of [["polling"], ["websocket"], ["polling", "websocket"]]) {
    test(`speaks with the reference app over ${transports.join(" then ")}`, async (t) => {
      const socket = client(t, "/", msgpack({ transports, auth: { token: "123" } }));
      const [auth] = await once(socket, "auth");
      assert.deepEqual(auth, { token: "123" });
      if (transports.length === 2 && socket.io.engine.transport.name !== "websocket") {
        await once(socket.io.engine, "upgrade");
      }
      const back = once(socket, "message-back");
      socket.emit("message", 1, "2", { 3: [true, null] }, Buffer.from([1, 2, 3]), 2.5);
      const args = await back;
      assert.deepEqual(args.slice(0, 3), [1, "2", { 3: [true, null] }]);
      assert.deepEqual(Buffer.from(args[3]), Buffer.from([1, 2, 3]));
      assert.equal(args[4], 2.5);
      assert.deepEqual(await socket.timeout(2000).emitWithAck("message-with-ack", "a", { b: 1 }), "a");
    });
  }

  test("is refused by middleware with the error's message and data", async (t) => {
    const socket = client(t, "/w_mp", msgpack({ auth: { token: "no" } }));
    const err = await once(socket, "connect_error");
    assert.equal(err[0].message, "unauthorized");
    assert.deepEqual(err[0].data, { reason: "bad token" });
  });

  test("shares a room with a JSON client: each gets a broadcast in its own parser", async (t) => {
    const packed = await connected(t, "/w_mixed", msgpack(OK));
    const plain = await connected(t, "/w_mixed", OK);
    const toPacked = once(packed, "msg");
    const toPlain = once(plain, "msg");
    plain.emit("broadcast", "hi", Buffer.from([7]));
    for (const args of [await toPacked, await toPlain]) {
      assert.equal(args[0], "hi");
      assert.deepEqual(Buffer.from(args[1]), Buffer.from([7]));
    }
    const fromPacked = once(plain, "msg");
    packed.emit("broadcast", { n: 1 }, Buffer.from([8, 9]));
    const [value, bytes] = await fromPacked;
    assert.deepEqual(value, { n: 1 });
    assert.deepEqual(Buffer.from(bytes), Buffer.from([8, 9]));
  });

});

describe("a Wasm tenant", { skip: APP }, () => {
  test("talks to a msgpack client, and sees JSON arguments and binary attachments", async (t) => {
    const socket = await connected(t, process.env.MSGPACK_TENANT, msgpack(OK));
    assert.deepEqual(await ack(socket, "whoami"), [{ nsp: "/t1", trail: ["m1", "m2", "m3"] }]);
    const [echoed] = await ack(socket, "echo", { nested: [Buffer.from([4, 5])] });
    assert.deepEqual(Buffer.from(echoed.nested[0]), Buffer.from([4, 5]));
  });
});

describe("msgpack packets, byte for byte as Node's socket.io writes them", { skip: !APP }, () => {
  let node;
  before(async () => {
    // Node's socket.io with the same parser and the same app as nsbox's reference app
    // (tests/src/demo.rs): `/` and a dynamic `/w_*` refusing a bad token.
    const http = createServer();
    const io = new Server(http, { parser });
    io.of("/").on("connection", (socket) => {
      socket.emit("auth", socket.handshake.auth);
      socket.on("message", (...args) => socket.emit("message-back", ...args));
      socket.on("message-with-ack", (...args) => {
        const answer = args.pop();
        answer(...args);
      });
    });
    io.of(/^\/w_\w+$/).use((socket, next) => {
      if (socket.handshake.auth.token === "ok") return next();
      const error = new Error("unauthorized");
      error.data = { reason: "bad token" };
      next(error);
    });
    await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
    node = { io, http, base: `ws://127.0.0.1:${http.address().port}` };
  });
  after(() => new Promise((resolve) => node.io.close(() => resolve())));

  /** The frames one raw WebSocket gets from either server: each step's packet is sent
   * once the frames the step before it expected have come (Node closes a connection
   * that sends an event before its CONNECT is answered). */
  async function exchange(t, base, steps) {
    const ws = rawWs(t, "/socket.io/?EIO=4&transport=websocket", base ? { base } : {});
    await ws.opened;
    assert.match(await ws.next(), /^0\{/);
    const frames = [];
    for (const [packet, expected] of steps) {
      ws.send(notepack.encode(packet));
      for (let i = 0; i < expected; i++) {
        try {
          frames.push(await ws.next());
        } catch (error) {
          throw new Error(`${base ?? "nsbox"}: ${error.message} after ${JSON.stringify(packet)}`);
        }
      }
    }
    return frames;
  }

  test("connect, events with binaries, acks and both refusals", async (t) => {
    const steps = [
      [{ type: 0, nsp: "/", data: { token: "x" } }, 2],
      [{ type: 2, nsp: "/", data: ["message", 1, -2, 2.5, "é", null, Buffer.from([1, 2]), { a: [true] }] }, 1],
      [{ type: 2, nsp: "/", data: ["message-with-ack", { b: 1 }], id: 5 }, 1],
      [{ type: 0, nsp: "/no-where" }, 1],
      [{ type: 0, nsp: "/w_x", data: { token: "no" } }, 1],
    ];
    const ours = await exchange(t, undefined, steps);
    const theirs = await exchange(t, node.base, steps);
    // The CONNECT answer carries each server's own socket id: the same bytes otherwise.
    const [ourSid, theirSid] = [ours, theirs].map((frames) => notepack.decode(frames[0]).data.sid);
    ours[0] = Buffer.from(ours[0].toString("hex").replace(Buffer.from(ourSid).toString("hex"), ""), "hex");
    theirs[0] = Buffer.from(theirs[0].toString("hex").replace(Buffer.from(theirSid).toString("hex"), ""), "hex");
    for (const [i, frame] of theirs.entries()) {
      assert.ok(Buffer.isBuffer(ours[i]), `frame ${i} is binary`);
      assert.equal(ours[i].toString("hex"), frame.toString("hex"), `frame ${i}`);
    }
  });

  test("a malformed packet closes the connection, as in Node", async (t) => {
    for (const base of [undefined, node.base]) {
      const ws = rawWs(t, "/socket.io/?EIO=4&transport=websocket", base ? { base } : {});
      await ws.opened;
      await ws.next();
      ws.send(notepack.encode({ type: 9, nsp: "/" }));
      await ws.closed;
    }
  });
});
