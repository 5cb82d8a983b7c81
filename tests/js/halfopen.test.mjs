// Thousands of connections that start and never finish, at every layer, while a
// tenant's client of the official socket.io-client keeps being answered. The harness
// runs this server with header_timeout_ms = body_timeout_ms = 1000, ping 500/1000 ms and
// connect_timeout_ms = 1000, and afterwards checks no session is left.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import WebSocket from "ws";
import { URL, WS_URL, sleep, connected, ack, rawWs } from "./helpers.mjs";

const { hostname, port } = new globalThis.URL(URL);
const PER_KIND = 600;
const BATCH = 50;

/** A raw TCP connection that writes `bytes` and resolves `closed` with the ms until the server closed it. */
function rawTcp(t, bytes) {
  const socket = net.connect({ host: hostname, port: Number(port) });
  const started = Date.now();
  const closed = new Promise((resolve) => socket.on("close", () => resolve(Date.now() - started)));
  socket.on("error", () => {});
  socket.on("data", () => {});
  if (bytes) socket.write(bytes);
  t.after(() => socket.destroy());
  return closed;
}

/**
 * GETs `path` on a connection of its own (not fetch's pool): the server closes a
 * kept-alive connection idle for header_timeout_ms (1 s here), and a request sent on
 * one just then would fail. Resolves with the status and the body.
 */
function get(path) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${URL}${path}`, { agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode, text }));
    });
    req.on("error", reject);
  });
}

/** Completes an Engine.IO polling handshake and never polls again; resolves with the sid. */
async function pollingHandshake() {
  const { text } = await get("/socket.io/?EIO=4&transport=polling");
  return JSON.parse(text.slice(1)).sid;
}

/** Opens Engine.IO over WebSocket, answers pings, never joins a namespace; resolves with the ms until the server closed it. */
function wsWithoutNamespace(t) {
  const ws = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);
  const started = Date.now();
  ws.on("message", (data) => data.toString() === "2" && ws.send("3"));
  ws.on("error", () => {});
  t.after(() => ws.terminate());
  return new Promise((resolve) => ws.on("close", () => resolve(Date.now() - started)));
}

test("half-open connections at every layer are closed on time, and a tenant keeps answering", async (t) => {
  const neighbour = await connected(t, "/t1", { auth: { token: "ok" }, transports: ["websocket"] });
  const drops = [];
  neighbour.on("disconnect", (reason) => drops.push(reason));
  let running = true;
  const answers = [];
  const load = (async () => {
    for (let i = 0; running; i++) answers.push((await ack(neighbour, "echo", i))[0]);
  })().catch((error) => {
    throw new Error(`${error.message} after ${answers.length} acks; disconnects: ${drops}`);
  });

  const silent = [];
  const partial = [];
  const withoutNamespace = [];
  // In batches of 150, 20 ms apart: thousands at once would overflow the kernel's
  // accept queue, and a connection dropped there is never accepted nor closed, which
  // would test the kernel rather than the server.
  for (let i = 0; i < PER_KIND; i += BATCH) {
    for (let j = 0; j < BATCH; j++) {
      silent.push(rawTcp(t, null));
      partial.push(rawTcp(t, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"));
      withoutNamespace.push(wsWithoutNamespace(t));
    }
    await sleep(20);
  }
  const sids = [];
  for (let i = 0; i < PER_KIND; i += 50) {
    sids.push(...(await Promise.all(Array.from({ length: 50 }, pollingHandshake))));
  }
  // While all of them hang, a newcomer is served as usual.
  const newcomer = await connected(t, "/t1", { auth: { token: "ok" } });
  assert.deepEqual(await ack(newcomer, "echo", "in"), ["in"]);

  const slowest = async (closings) => Math.max(...(await Promise.all(closings)));
  const [tcp, head, ws] = await Promise.all([slowest(silent), slowest(partial), slowest(withoutNamespace)]);
  t.diagnostic(`${PER_KIND} of each: silent TCP closed within ${tcp} ms, partial heads ${head} ms, EIO without a namespace ${ws} ms`);
  // Each within its 1 s timeout plus a generous margin for a busy machine.
  for (const ms of [tcp, head, ws]) assert.ok(ms < 8000, `${ms} ms`);
  // Polling sessions that never polled again are gone: their heartbeat timed out. A
  // poll of one still alive is answered by its next ping (never ponged).
  const gone = async (sid) => {
    for (let i = 0; i < 10; i++) {
      const { status, text } = await get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`);
      if (status === 400 || text.split("\x1e").includes("1")) return true;
    }
    return false;
  };
  const stale = await Promise.all(sids.slice(0, 20).map(gone));
  assert.deepEqual(stale, stale.map(() => true), "sessions closed by their heartbeat");

  running = false;
  await load;
  assert.ok(answers.length > 20, `${answers.length} acks answered meanwhile`);
  assert.deepEqual(answers, [...answers.keys()], "every ack, in order");
  assert.ok(neighbour.connected);
});

test("the connect timeout ends once a namespace is joined, as in Node: leaving it later does not close the connection", async (t) => {
  const c = rawWs(t, "/socket.io/?EIO=4&transport=websocket");
  await c.next(); // the open packet
  c.send('40/t1,{"token":"ok"}');
  let frame;
  do frame = await c.next(3000);
  while (!frame.startsWith("40/t1,"));
  c.send("41/t1,");
  // Past the 1 s connect timeout (pings answered meanwhile), the connection is still
  // open: a witness opened now, that never joins, is closed by it first.
  let closed = false;
  c.closed.then(() => (closed = true));
  const witness = await wsWithoutNamespace(t);
  assert.ok(witness >= 900, `the witness was closed by the connect timeout (${witness} ms)`);
  assert.equal(closed, false, "closed by the connect timeout after leaving its namespace");
  assert.equal(c.ws.readyState, WebSocket.OPEN);
  c.ws.close();
  await c.closed;
});

test("the host's wasm_stack_bytes (64 KiB here) bounds recursion: what fits 512 KiB traps", async (t) => {
  const s = await connected(t, "/deep");
  assert.deepEqual(await ack(s, "depth", 100), [100]);
  const told = new Promise((resolve) => s.once("nsbox:error", resolve));
  s.emit("depth", 3000);
  const notice = await told;
  assert.equal(notice.kind, "trap");
  assert.match(notice.error, /stack/i);
});

test("request bodies that trickle in are cut off at body_timeout_ms (1 s here), with their sessions", async (t) => {
  const sids = await Promise.all(Array.from({ length: 100 }, pollingHandshake));
  // Each declares 1,000 bytes and sends one.
  const closings = sids.map((sid) =>
    rawTcp(t, `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n4`));
  const slowest = Math.max(...(await Promise.all(closings)));
  t.diagnostic(`100 trickling bodies closed within ${slowest} ms`);
  assert.ok(slowest < 8000, `${slowest} ms`);
  // Their sessions ended with them.
  const after = await Promise.all(sids.slice(0, 10).map((sid) =>
    get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`).then((r) => r.status)));
  assert.deepEqual(after, after.map(() => 400));
});
