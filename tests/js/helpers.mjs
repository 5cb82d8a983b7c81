// Shared helpers for the end-to-end tests. The Rust harness starts the server and sets SERVER_URL.
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";

export const URL = process.env.SERVER_URL ?? "http://127.0.0.1:3000";
export const WS_URL = URL.replace("http", "ws");
// The test server runs with the conformance timers.
export const PING_INTERVAL = 300;
export const PING_TIMEOUT = 200;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the event's arguments, or rejects after `ms`. */
export function once(emitter, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** A socket.io-client socket that is closed after the test. */
export function client(t, path = "/", opts = {}) {
  const socket = io(URL + path, { forceNew: true, reconnection: false, ...opts });
  t.after(() => socket.close());
  return socket;
}

/** Connects and waits for "connect"; fails on connect_error. */
export async function connected(t, path = "/", opts = {}) {
  const socket = client(t, path, opts);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return socket;
}

/** A raw WebSocket with a queue of received frames (text as string, binary as Buffer);
 * to nsbox unless `base` names another server (e.g. Node's, to compare with). */
export function rawWs(t, query, { autoPong = true, base = WS_URL } = {}) {
  const ws = new WebSocket(`${base}${query}`);
  const frames = [];
  const waiters = [];
  ws.on("message", (data, isBinary) => {
    const frame = isBinary ? Buffer.from(data) : data.toString();
    if (autoPong && frame === "2") return ws.send("3");
    const waiter = waiters.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  ws.on("error", () => {});
  const closed = new Promise((resolve) => ws.on("close", (code) => resolve(code)));
  t.after(() => ws.terminate());
  return {
    ws,
    closed,
    opened: new Promise((resolve, reject) => {
      ws.on("open", resolve);
      ws.on("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    }),
    /** The next frame (pings are answered and skipped unless autoPong is off). */
    async next(ms = 2000) {
      if (frames.length) return frames.shift();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no frame within ${ms} ms`)), ms);
        waiters.push((f) => {
          clearTimeout(timer);
          resolve(f);
        });
      });
    },
    send: (data) => ws.send(data),
  };
}

/** Opens a polling session and returns its sid. */
export async function pollingSession(path = "/engine.io/") {
  const res = await fetch(`${URL}${path}?EIO=4&transport=polling`);
  const text = await res.text();
  return JSON.parse(text.substring(1)).sid;
}

export const poll = (sid, path = "/engine.io/") =>
  fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`);
export const post = (sid, body, path = "/engine.io/") =>
  fetch(`${URL}${path}?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body });

/** Connects to /observer, which hears `left` {nsp, id, reason} for every workspace socket. */
export async function observer(t) {
  const socket = await connected(t, "/observer");
  const seen = [];
  const waiters = [];
  socket.on("left", (info) => {
    seen.push(info);
    for (const w of waiters.splice(0)) w();
  });
  /** Waits (`ms` at most) for a departure that `matches`. */
  async function departure(matches, what, ms) {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      for (const w of waiters.splice(0)) w();
    }, ms);
    try {
      for (;;) {
        const hit = seen.find(matches);
        if (hit) return hit;
        if (expired) throw new Error(`no departure seen for ${what}`);
        // Woken by the next departure, or by the deadline.
        await new Promise((resolve) => waiters.push(resolve));
      }
    } finally {
      clearTimeout(timer);
    }
  }
  return {
    /** Waits for the departure of socket `id` and returns its reason. */
    async reasonFor(id, ms = 3000) {
      return (await departure((info) => info.id === id, id, ms)).reason;
    },
    /** Waits for the departure of any socket of namespace `nsp`; returns {id, reason}. */
    async departureFrom(nsp, ms = 3000) {
      return departure((info) => info.nsp === nsp, nsp, ms);
    },
  };
}

/** Emits `event` with `args` and resolves with every argument of the ack (3 s at most). */
export const ack = (socket, event, ...args) => ackWithin(3000, socket, event, ...args);

/** `ack` with a wait of its own, for calls whose work is the point (not their speed). */
export const ackWithin = (ms, socket, event, ...args) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack for ${event} within ${ms} ms`)), ms);
    socket.emit(event, ...args, (...answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });

/** Resolves with [message, data] of the socket's connect_error; rejects if it connects. */
export const refused = (socket) =>
  new Promise((resolve, reject) => {
    socket.once("connect", () => reject(new Error("connected, expected a refusal")));
    socket.once("connect_error", (err) => resolve([err.message, err.data]));
  });

/** Records the arguments of every `name` event a socket receives. */
export const record = (socket, name) => {
  const seen = [];
  socket.on(name, (...args) => seen.push(args));
  return seen;
};

/** The operator's credentials for the admin API (`ADMIN_TOKEN`). */
const adminHeaders = () => ({ authorization: `Bearer ${process.env.ADMIN_TOKEN}` });

/** The tenant's log lines after `after`, and the last one's sequence number. */
export async function logs(tenant, after = 0) {
  const res = await fetch(`${process.env.ADMIN_URL}/v1/tenants/${tenant}/logs?after=${after}`, { headers: adminHeaders() });
  assert.equal(res.status, 200);
  return res.json();
}

/**
 * Waits (5 s at most) for a log line of `tenant` after `after` whose message matches
 * `pattern`, following the log as server-sent events: each line as it is written.
 * The line comes back with `before`: the messages of the lines before it.
 */
export async function logged(tenant, after, pattern) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5000);
  const seen = [];
  try {
    const res = await fetch(`${process.env.ADMIN_URL}/v1/tenants/${tenant}/logs?follow=1&after=${after}`, { headers: adminHeaders(), signal: controller.signal });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the log stream ended; saw ${JSON.stringify(seen)}`);
      text += decoder.decode(value, { stream: true });
      const events = text.split("\n\n");
      text = events.pop();
      for (const event of events) {
        const data = /^data: (.*)$/m.exec(event);
        if (!data) continue;
        const line = JSON.parse(data[1]);
        if (pattern.test(line.message)) return { ...line, before: seen };
        seen.push(line.message);
      }
    }
  } catch (error) {
    if (controller.signal.aborted) assert.fail(`no log line matching ${pattern} within 5 s; saw ${JSON.stringify(seen)}`);
    throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}
