// The server side of the Socket.IO Admin UI (`[admin_ui]`), spoken to with the official
// client as the UI speaks to it: the login, `config`, `all_sockets`, `server_stats`,
// the socket, room and event reports, the commands, and a tenant's login that sees
// only its own namespaces. With ADMIN_UI_READONLY, the same server read-only.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { URL, once, connected } from "./helpers.mjs";

const NSP = "/nsbox-admin";
const OPERATOR = { username: "admin", password: "secret" };
const OK = { auth: { token: "ok" } };
const READONLY = !!process.env.ADMIN_UI_READONLY;

/** Everything a UI socket receives, by event, and a way to wait for one. */
function recorder(socket) {
  const seen = [];
  const waiters = [];
  socket.onAny((event, ...args) => {
    seen.push([event, ...args]);
    for (const w of waiters.splice(0)) w();
  });
  return {
    seen,
    async until(match, what, ms = 5000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = seen.find((e) => match(e));
        if (hit) return hit;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`never: ${what}; saw ${JSON.stringify(seen.map((e) => e[0]))}`);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

/** A UI socket logged in with `auth`, recording from its first packet. */
async function ui(t, auth) {
  const socket = io(URL + NSP, { forceNew: true, reconnection: false, auth });
  t.after(() => socket.close());
  const events = recorder(socket);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return { socket, events };
}

async function mintToken(tenant) {
  const res = await fetch(`${process.env.ADMIN_URL}/v1/tenants/${tenant}/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${process.env.ADMIN_TOKEN}` },
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.token;
}

describe("the Admin UI's login", () => {
  test("a wrong password, an unknown user and no credentials are refused", async (t) => {
    for (const auth of [{ username: "admin", password: "nope" }, { username: "root", password: "secret" }, {}]) {
      const socket = io(URL + NSP, { forceNew: true, reconnection: false, auth });
      t.after(() => socket.close());
      const [error] = await once(socket, "connect_error");
      assert.equal(error.message, "invalid credentials");
    }
  });

  test("the operator gets a session to come back with, the features and every socket", async (t) => {
    // WebSocket from the start: an upgrade under way would change the transport shown.
    const client = await connected(t, "/t1", { ...OK, transports: ["websocket"] });
    const { events } = await ui(t, OPERATOR);
    const [, session] = await events.until((e) => e[0] === "session", "a session");
    assert.match(session, /^[0-9a-f]{16}$/);
    const [, config] = await events.until((e) => e[0] === "config", "the config");
    const features = READONLY
      ? ["AGGREGATED_EVENTS", "ALL_EVENTS"]
      : ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"];
    assert.deepEqual(config, { supportedFeatures: features });
    const [, sockets] = await events.until((e) => e[0] === "all_sockets", "every socket");
    const mine = sockets.find((s) => s.id === client.id);
    assert.ok(mine, JSON.stringify(sockets.map((s) => s.id)));
    assert.equal(mine.nsp, "/t1");
    assert.deepEqual(mine.rooms, [client.id]);
    assert.equal(mine.transport, client.io.engine.transport.name);
    assert.equal(mine.clientId, client.io.engine.id.slice(0, 12));
    assert.equal(mine.handshake.address, "127.0.0.1");
    assert.equal(typeof mine.handshake.issued, "number");
    assert.equal(mine.handshake.query.EIO, "4");
    // The session stands for the password.
    await ui(t, { sessionId: session });
  });

  test("a tenant logs in with its name and a deploy token, and sees only its own", async (t) => {
    const token = await mintToken("t2");
    const other = await connected(t, "/t1", OK);
    const own = await connected(t, "/t2", OK);
    const refused = io(URL + NSP, { forceNew: true, reconnection: false, auth: { username: "t1", password: token } });
    t.after(() => refused.close());
    assert.equal((await once(refused, "connect_error"))[0].message, "invalid credentials", "t2's token is not t1's");
    const { socket: view, events } = await ui(t, { username: "t2", password: token });
    const [, sockets] = await events.until((e) => e[0] === "all_sockets", "its sockets");
    assert.deepEqual([...new Set(sockets.map((s) => s.nsp))], ["/t2"]);
    assert.ok(sockets.some((s) => s.id === own.id));
    const [, stats] = await events.until((e) => e[0] === "server_stats", "its statistics");
    assert.deepEqual(stats.namespaces.map((n) => n.name), ["/t2"]);
    assert.deepEqual(stats.aggregatedEvents, [], "the server's traffic is the operator's");
    // What happens on /t1 is not shown to it; what happens on /t2 is.
    other.emit("echo", "unseen");
    own.emit("echo", "seen");
    await events.until((e) => e[0] === "event_received" && e[3][1] === "seen", "its own event");
    assert.equal(events.seen.filter((e) => e[0] === "event_received" && e[1] === "/t1").length, 0);
    if (!READONLY) {
      // Its commands reach only its own namespaces.
      const heard = once(other, "nudge", 500).then(() => true, () => false);
      view.emit("emit", "/t1", null, "nudge");
      assert.equal(await heard, false);
    }
  });
});

describe("what the Admin UI is told", () => {
  test("server_stats every 2 s: the server, its clients and its namespaces", async (t) => {
    const client = await connected(t, "/t1", OK);
    const { events } = await ui(t, OPERATOR);
    const [, stats] = await events.until((e) => e[0] === "server_stats", "the statistics", 5000);
    assert.equal(typeof stats.serverId, "string");
    assert.equal(typeof stats.hostname, "string");
    assert.equal(typeof stats.pid, "number");
    assert.equal(typeof stats.uptime, "number");
    assert.ok(stats.clientsCount >= 2, JSON.stringify(stats));
    assert.equal(typeof stats.pollingClientsCount, "number");
    assert.ok(Array.isArray(stats.aggregatedEvents));
    const t1 = stats.namespaces.find((n) => n.name === "/t1");
    assert.ok(t1 && t1.socketsCount >= 1, JSON.stringify(stats.namespaces));
    assert.ok(client.connected);
  });

  test("the traffic of every second: sessions opened, closed by reason, messages and bytes each way", async (t) => {
    const { events } = await ui(t, OPERATOR);
    const client = await connected(t, "/t1", { ...OK, transports: ["websocket"] });
    await client.timeout(2000).emitWithAck("echo", "x".repeat(1000));
    const cut = once(client, "disconnect");
    client.io.engine.close();
    await cut;
    // Summed over the statistics that came: each second's counts, in one or two of them.
    const totals = () => {
      const sums = new Map();
      for (const [event, stats] of events.seen) {
        if (event !== "server_stats") continue;
        for (const { type, subType, count, timestamp } of stats.aggregatedEvents) {
          assert.equal(timestamp % 1000, 0, "a second's count");
          const key = subType ? `${type}:${subType}` : type;
          sums.set(key, (sums.get(key) ?? 0) + count);
        }
      }
      return sums;
    };
    await events.until(() => (totals().get("rawDisconnection:transport close") ?? 0) >= 1, "the close counted", 8000);
    const sums = totals();
    assert.ok(sums.get("rawConnection") >= 1, JSON.stringify([...sums]));
    assert.ok(sums.get("packetsIn") >= 2, JSON.stringify([...sums]));
    assert.ok(sums.get("bytesIn") >= 1000, JSON.stringify([...sums]));
    assert.ok(sums.get("packetsOut") >= 2, JSON.stringify([...sums]));
    assert.ok(sums.get("bytesOut") >= 1000, JSON.stringify([...sums]));
  });

  test("a socket whose connection upgrades to WebSocket is shown updated", async (t) => {
    const { events } = await ui(t, OPERATOR);
    const client = await connected(t, "/t1", { ...OK, transports: ["polling", "websocket"] });
    // The upgrade may finish while the tenant's middleware still runs (as in Node, a
    // socket not yet connected is not updated): then it is shown connected on
    // WebSocket, and there is no update to see.
    const [, shown] = await events.until((e) => e[0] === "socket_connected" && e[1].id === client.id, "the socket");
    if (shown.transport === "websocket") {
      t.diagnostic("upgraded before it joined: shown connected on WebSocket");
      return;
    }
    assert.equal(shown.transport, "polling");
    const [, updated] = await events.until((e) => e[0] === "socket_updated" && e[1].id === client.id, "the upgrade");
    assert.deepEqual(updated, { id: client.id, nsp: "/t1", transport: "websocket" });
  });

  test("sockets joining and leaving, rooms, and the events both ways, as they happen", async (t) => {
    const { events } = await ui(t, OPERATOR);
    await events.until((e) => e[0] === "all_sockets", "every socket");
    const client = await connected(t, "/t1", OK);
    const [, shown] = await events.until((e) => e[0] === "socket_connected" && e[1].id === client.id, "the socket joining");
    assert.equal(shown.nsp, "/t1");
    await events.until((e) => e[0] === "room_joined" && e[1] === "/t1" && e[2] === client.id && e[3] === client.id, "its own room");
    assert.equal(await client.timeout(2000).emitWithAck("join", "blue"), "blue");
    await events.until((e) => e[0] === "room_joined" && e[2] === "blue" && e[3] === client.id, "room blue");
    const [, , , received] = await events.until((e) => e[0] === "event_received" && e[2] === client.id, "its event");
    assert.deepEqual(received, ["join", "blue"]);
    // The tenant's hello to the namespace, sent to this socket too.
    const [, , , sent] = await events.until((e) => e[0] === "event_sent" && e[2] === client.id && e[3][0] === "hello", "an event to it");
    assert.equal(sent[1].id, client.id);
    const gone = client.id;
    client.disconnect();
    const [, nsp, id, reason] = await events.until((e) => e[0] === "socket_disconnected" && e[2] === gone, "it leaving");
    assert.deepEqual([nsp, id, reason], ["/t1", gone, "client namespace disconnect"]);
    await events.until((e) => e[0] === "room_left" && e[2] === "blue" && e[3] === gone, "it leaving blue");
  });
});

describe("the Admin UI's commands", () => {
  test(READONLY ? "are not offered, and do nothing" : "emit, join, leave and disconnect, by room", async (t) => {
    const { socket, events } = await ui(t, OPERATOR);
    await events.until((e) => e[0] === "config", "the config");
    const member = await connected(t, "/t1", OK);
    const outsider = await connected(t, "/t1", OK);
    assert.equal(await member.timeout(2000).emitWithAck("join", "blue"), "blue");
    const toMember = once(member, "nudge", READONLY ? 500 : 3000).then((args) => args, () => null);
    const toOutsider = once(outsider, "nudge", 500).then(() => true, () => false);
    socket.emit("emit", "/t1", "blue", "nudge", 1, { two: 2 });
    if (READONLY) {
      assert.equal(await toMember, null);
      socket.emit("_disconnect", "/t1", false, "blue");
      assert.equal(await once(member, "disconnect", 500).then(() => true, () => false), false);
      return;
    }
    assert.deepEqual(await toMember, [1, { two: 2 }]);
    assert.equal(await toOutsider, false, "only the room");
    socket.emit("join", "/t1", "green", "blue");
    await events.until((e) => e[0] === "room_joined" && e[2] === "green" && e[3] === member.id, "the member joins green");
    assert.deepEqual(await member.timeout(2000).emitWithAck("fetch", "green"), [member.id]);
    socket.emit("leave", "/t1", "green");
    await events.until((e) => e[0] === "room_left" && e[2] === "green" && e[3] === member.id, "it leaves green");
    const gone = once(member, "disconnect");
    socket.emit("_disconnect", "/t1", false, "blue");
    assert.equal((await gone)[0], "io server disconnect");
    assert.ok(outsider.connected, "not in blue: still there");
  });
});
