// WebSocket permessage-deflate (Node's perMessageDeflate, here turned on with
// `per_message_deflate = true`): nsbox's echo tenant on /t1 against Node's socket.io
// 4.8.4 with `perMessageDeflate: true` and the same `echo` handler, in the same run. A raw
// client over TCP sees what a library would hide: the extension each server agrees to,
// and which frames come compressed (RSV1).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { randomBytes } from "node:crypto";
import { Server } from "socket.io";
import { URL, connected } from "./helpers.mjs";

const BIG = "nsbox ".repeat(2000); // 12,000 characters: over the 1,024-byte threshold
const SMALL = "small";
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** The WebSocket handshake for `offer` (a `Sec-WebSocket-Extensions` value, or none):
 * its status and the extension the server agreed to. */
function handshake(base, offer) {
  const { hostname, port } = new globalThis.URL(base);
  const headers = {
    Connection: "Upgrade",
    Upgrade: "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
  };
  if (offer !== undefined) headers["Sec-WebSocket-Extensions"] = offer;
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path: "/socket.io/?EIO=4&transport=websocket", headers });
    req.on("upgrade", (res, socket, head) => resolve({ status: res.statusCode, extensions: res.headers["sec-websocket-extensions"] ?? null, socket, head }));
    req.on("response", (res) => {
      res.resume();
      resolve({ status: res.statusCode, extensions: res.headers["sec-websocket-extensions"] ?? null });
    });
    req.on("error", reject);
    req.end();
  });
}

/** A raw WebSocket client of one Engine.IO session that offered
 * `permessage-deflate; server_no_context_takeover`, so that each compressed message
 * inflates on its own. */
async function rawSession(base) {
  const { status, extensions, socket, head } = await handshake(base, "permessage-deflate; server_no_context_takeover");
  assert.equal(status, 101);
  assert.equal(extensions, "permessage-deflate; server_no_context_takeover");
  let buffered = head;
  const frames = [];
  let wake = () => {};
  let closed = false;
  const parse = () => {
    for (;;) {
      if (buffered.length < 2) return;
      let length = buffered[1] & 0x7f;
      let offset = 2;
      if (length === 126) [length, offset] = [buffered.length >= 4 ? buffered.readUInt16BE(2) : -1, 4];
      else if (length === 127) [length, offset] = [buffered.length >= 10 ? Number(buffered.readBigUInt64BE(2)) : -1, 10];
      if (length < 0 || buffered.length < offset + length) return;
      const payload = buffered.subarray(offset, offset + length);
      const compressed = (buffered[0] & 0x40) !== 0;
      const opcode = buffered[0] & 0x0f;
      const data = compressed ? inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH }) : payload;
      frames.push({ compressed, opcode, text: opcode === 1 ? data.toString() : null, code: opcode === 8 && data.length >= 2 ? data.readUInt16BE(0) : null });
      buffered = buffered.subarray(offset + length);
    }
  };
  socket.on("data", (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    parse();
    wake();
  });
  socket.on("close", () => {
    closed = true;
    wake();
  });
  socket.on("error", () => {});
  parse();
  return {
    frames,
    get closed() {
      return closed;
    },
    /** Sends a text message, compressed or not. */
    send(text, compress = false) {
      socket.write(frame(compress ? deflated(text) : Buffer.from(text), compress));
    },
    /** Sends `payload` as one compressed text message, as it is. */
    sendRawCompressed(payload) {
      socket.write(frame(payload, true));
    },
    /** Waits for a frame matching `match` (within `ms`); its index. */
    async until(match, ms = 3000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const index = frames.findIndex(match);
        if (index >= 0) return frames[index];
        if (closed || Date.now() > deadline) throw new Error(`no such frame within ${ms} ms; got ${JSON.stringify(frames.map((f) => [f.compressed, f.opcode, f.text?.slice(0, 40)]))}`);
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
    },
    close() {
      socket.destroy();
    },
  };
}

/** `text` compressed as a message is (RFC 7692, 7.2.1): flushed, without the empty
 * block's tail. */
function deflated(text) {
  const data = deflateRawSync(Buffer.from(text), { finishFlush: constants.Z_SYNC_FLUSH });
  return data.subarray(0, data.length - 4);
}

/** A masked client frame (FIN, text, RSV1 when compressed). */
function frame(payload, compressed) {
  const mask = randomBytes(4);
  const header = [0x81 | (compressed ? 0x40 : 0)];
  if (payload.length < 126) header.push(0x80 | payload.length);
  else if (payload.length < 65536) header.push(0x80 | 126, payload.length >> 8, payload.length & 0xff);
  else {
    header.push(0x80 | 127);
    const size = Buffer.alloc(8);
    size.writeBigUInt64BE(BigInt(payload.length));
    header.push(...size);
  }
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]));
  return Buffer.concat([Buffer.from(header), mask, masked]);
}

/** Joins /t1 on a raw session, then asks `echo` with each of `texts` (the big ones sent
 * compressed): the answers' frames, as [compressed, text]. */
async function echoes(base, texts) {
  const raw = await rawSession(base);
  try {
    await raw.until((f) => f.text?.startsWith("0{"));
    raw.send('40/t1,{"token":"ok"}');
    await raw.until((f) => f.text?.startsWith("40/t1,"));
    const answers = [];
    for (const [id, text] of texts.entries()) {
      raw.send(`42/t1,${id}["echo",${JSON.stringify(text)}]`, text.length >= 1024);
      const answer = await raw.until((f) => f.text?.startsWith(`43/t1,${id}[`));
      answers.push([answer.compressed, answer.text]);
    }
    return answers;
  } finally {
    raw.close();
  }
}

describe("permessage-deflate, as Node's perMessageDeflate", () => {
  let node;
  before(async () => {
    const http = createServer();
    const io = new Server(http, { perMessageDeflate: true });
    io.of("/t1").use((socket, next) => (socket.handshake.auth.token === "ok" ? next() : next(new Error("unauthorized"))));
    io.of("/t1").on("connection", (socket) => {
      socket.on("echo", (...args) => args.pop()(...args));
    });
    await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
    node = { io, base: `http://127.0.0.1:${http.address().port}` };
  });
  after(() => new Promise((resolve) => node.io.close(() => resolve())));

  for (const offer of [
    undefined,
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; client_max_window_bits=10",
    'permessage-deflate; client_max_window_bits="12"',
    "permessage-deflate; server_max_window_bits=15",
    "x-webkit-deflate-frame, permessage-deflate",
    "permessage-deflate; bogus",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; server_no_context_takeover=1",
  ]) {
    test(`the offer ${offer ?? "(none)"} is answered as Node answers it`, async () => {
      const [ours, theirs] = [await handshake(URL, offer), await handshake(node.base, offer)];
      ours.socket?.destroy();
      theirs.socket?.destroy();
      assert.deepEqual([ours.status, ours.extensions], [theirs.status, theirs.extensions]);
    });
  }

  test("an offer for a smaller server window is passed over: the connection goes on uncompressed", async () => {
    const ours = await handshake(URL, "permessage-deflate; server_max_window_bits=10");
    ours.socket?.destroy();
    assert.deepEqual([ours.status, ours.extensions], [101, null]);
  });

  test("messages from the threshold up are compressed, both ways, as Node's", async () => {
    const texts = [SMALL, BIG, "x".repeat(1023), "y".repeat(1024), BIG];
    const [ours, theirs] = [await echoes(URL, texts), await echoes(node.base, texts)];
    assert.deepEqual(ours, theirs);
    assert.deepEqual(
      ours.map(([compressed]) => compressed),
      // `43/t1,N["…"]` around the text: 1,023 characters take it past 1,024 bytes.
      [false, true, true, true, true],
    );
    assert.equal(JSON.parse(ours[1][1].slice("43/t1,1".length))[0], BIG);
  });

  test("a message that inflates past maxPayload closes its connection only, as Node's", async () => {
    /** Sends 2 MB of one letter, deflated to a few KB (past the 1 MB maxPayload once
     * inflated): the close code the server sent, if any, and whether anything came back. */
    const bomb = async (base) => {
      const raw = await rawSession(base);
      await raw.until((f) => f.text?.startsWith("0{"));
      raw.sendRawCompressed(deflated(`4${"a".repeat(2_000_000)}`));
      const deadline = Date.now() + 3000;
      while (!raw.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      raw.close();
      const close = raw.frames.find((f) => f.opcode === 8);
      return { closed: raw.closed, code: close?.code ?? null, echoed: raw.frames.some((f) => f.text?.startsWith("4a")) };
    };
    const [ours, theirs] = [await bomb(URL), await bomb(node.base)];
    assert.deepEqual(ours, theirs);
    assert.deepEqual(ours, { closed: true, code: 1009, echoed: false });
    // The server goes on.
    assert.deepEqual(await echoes(URL, [BIG]), [[true, `43/t1,0[${JSON.stringify(BIG)}]`]]);
  });

  test("the official client (Node's ws offers permessage-deflate) keeps its context across messages", async (t) => {
    const socket = await connected(t, "/t1", { transports: ["websocket"], auth: { token: "ok" } });
    assert.deepEqual(Object.keys(socket.io.engine.transport.ws._extensions), ["permessage-deflate"]);
    for (let i = 0; i < 5; i++) {
      const text = `${i} ${BIG}`;
      assert.equal(await socket.timeout(3000).emitWithAck("echo", text), text);
    }
  });

  test("a polling session that upgrades agrees to it on its WebSocket", async (t) => {
    const socket = await connected(t, "/t1", { auth: { token: "ok" } });
    if (socket.io.engine.transport.name !== "websocket") await new Promise((resolve) => socket.io.engine.once("upgrade", resolve));
    assert.deepEqual(Object.keys(socket.io.engine.transport.ws._extensions), ["permessage-deflate"]);
    assert.equal(await socket.timeout(3000).emitWithAck("echo", BIG), BIG);
  });
});
