// Limits that need their own server, set low (see TIGHT_LIMITS in js_client.rs): a
// tenant (t1, t3, t4: echo) may receive 100 events per second from all its sockets
// together, have 4 sockets at once, and each socket may be in 3 rooms besides its own;
// a tenant may use 100 ms of CPU per second (burner's `burn` uses what it is asked).
// slowstart and spinstart (the spin example, configured to burn 200 ms in on-start and
// to loop there for ever) have a second of CPU per second, for the start-up allowance.
// Each test has tenants of its own, so none waits for another's budgets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sleep, once, client, connected, ack } from "./helpers.mjs";

const OK = { auth: { token: "ok" } };

test("a tenant's events per second are bounded before they reach it, sockets not disconnected", async (t) => {
  const sockets = await Promise.all([1, 2, 3].map(() => connected(t, "/t1", { ...OK, transports: ["websocket"] })));
  let answered = 0;
  const sent = 3 * 150;
  for (const s of sockets) {
    for (let i = 0; i < 150; i++) s.emit("echo", i, () => answered++);
  }
  // Wait until the host has handled or dropped every event (a busy machine may take a while).
  const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
  let shown;
  for (let i = 0; i < 100; i++) {
    shown = await (await fetch(`${process.env.ADMIN_URL}/v1/tenants/t1`, { headers })).json();
    if (shown.events + shown.dropped_events >= sent && answered >= shown.events) break;
    await sleep(50);
  }
  assert.equal(shown.events + shown.dropped_events, sent, "every event handled or dropped");
  assert.equal(answered, shown.events, "every handled event answered");
  // A burst of 100, then about 100 a second while they arrive: most of the 450 are dropped.
  assert.ok(shown.events >= 90, `${shown.events} handled`);
  assert.ok(shown.dropped_events >= 100, `${shown.dropped_events} dropped`);
  // Per-tenant limiting drops events; it does not disconnect anyone.
  for (const s of sockets) assert.ok(s.connected);
  // The budget refills (100 a second): an event is answered again soon.
  let answer;
  for (let i = 0; i < 20 && answer === undefined; i++) {
    answer = await sockets[0].timeout(200).emitWithAck("echo", "after").catch(() => undefined);
  }
  assert.equal(answer, "after", "the budget refills");
  t.diagnostic(`${answered} of ${sent} answered, ${shown.dropped_events} dropped`);
});

test("a tenant holds at most max_sockets sockets", async (t) => {
  const four = await Promise.all([1, 2, 3, 4].map(() => connected(t, "/t3", OK)));
  const fifth = client(t, "/t3", OK);
  const [err] = await once(fifth, "connect_error");
  assert.equal(err.message, "tenant full");
  assert.deepEqual(err.data, { tenant: "t3", max_sockets: 4 });
  four[0].close();
  // The place frees once the host has seen the socket go; then it can be taken.
  let again = null;
  for (let i = 0; i < 40 && !again; i++) {
    await sleep(50);
    again = await connected(t, "/t3", OK).catch(() => null);
  }
  assert.ok(again?.connected, "a place freed is a place taken");
});

test("a tenant's own [tenants.NAME.limits] replace the configuration's for it alone", async (t) => {
  // t2 has max_sockets = 2 and max_rooms_per_socket = 1 of its own; t1 keeps 4 and 3.
  const two = await Promise.all([1, 2].map(() => connected(t, "/t2", OK)));
  const [err] = await once(client(t, "/t2", OK), "connect_error");
  assert.deepEqual(err.data, { tenant: "t2", max_sockets: 2 });
  assert.deepEqual(await ack(two[0], "join", "a"), ["a"]);
  const told = once(two[0], "nsbox:error");
  two[0].emit("join", "b");
  assert.match((await told)[0].error, /at most 1 room/);
  const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
  const shown = await (await fetch(`${process.env.ADMIN_URL}/v1/tenants/t2`, { headers })).json();
  assert.equal(shown.limits.max_sockets, 2);
  assert.equal(shown.limits.events_per_second, 100, "the rest from [limits]");
});

test("instance and table counts are limits: a component needing more does not start", async (t) => {
  for (const [tenant, says] of [["oneinstance", /instance/], ["notables", /table/]]) {
    const [err] = await once(client(t, `/${tenant}`, OK), "connect_error");
    assert.equal(err.message, "tenant unavailable");
    assert.equal(err.data.tenant, tenant);
    assert.match(err.data.error, says);
    t.diagnostic(`${tenant}: ${err.data.error}`);
  }
  const neighbour = await connected(t, "/t1", OK);
  assert.deepEqual(await ack(neighbour, "echo", 1), [1]);
});

test("a socket joining more rooms than allowed is told and disconnected", async (t) => {
  const s = await connected(t, "/t4", OK);
  for (const room of ["a", "b", "c", "a"]) assert.deepEqual(await ack(s, "join", room), [room]);
  const told = once(s, "nsbox:error");
  const gone = once(s, "disconnect");
  s.emit("join", "d");
  const [notice] = await told;
  assert.equal(notice.kind, "room-limit");
  assert.match(notice.error, /at most 3 rooms/);
  assert.equal((await gone)[0], "io server disconnect");
  const other = await connected(t, "/t4", OK);
  assert.deepEqual(await ack(other, "echo", 1), [1], "the tenant itself is fine");
  // The metrics say which limits tripped (t3's socket limit, in an earlier test).
  const text = await (await fetch(`${process.env.ADMIN_URL}/metrics`)).text();
  const trips = (tenant, limit) =>
    Number(text.split("\n").find((l) => l.startsWith(`nsbox_tenant_limit_trips_total{tenant="${tenant}",limit="${limit}"}`))?.split(" ").at(-1));
  assert.ok(trips("t4", "room-limit") >= 1, "room-limit counted");
  assert.ok(trips("t3", "tenant-full") >= 1, "tenant-full counted");
});

test("a tenant past its CPU per second waits; its neighbour does not", async (t) => {
  // Counted from before the burner's first call (its middleware): the budget's windows
  // start there.
  const started = Date.now();
  const burner = await connected(t, "/burner");
  const neighbour = await connected(t, "/t1", OK);
  let neighbourAcks = 0;
  let burning = true;
  const neighbourLoop = (async () => {
    while (burning) {
      await ack(neighbour, "echo", 1);
      neighbourAcks++;
      await sleep(20);
    }
  })();
  const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
  const metrics = async () => (await fetch(`${process.env.ADMIN_URL}/metrics`, { headers })).text();
  const read = (text, name) =>
    Number(text.split("\n").find((l) => l.startsWith(`${name}{tenant="burner"}`))?.split(" ").at(-1));
  // `burn` spins for 40 ms of the guest's clock; what it costs in CPU depends on how
  // busy the machine is, so burn until the host has charged 320 ms of CPU (at 100 ms a
  // second): the calls a window admits charge at most 100 ms and one call (< 50 ms)
  // more, so that is at least three windows, two waits.
  let cpu = 0;
  for (let i = 0; i < 60 && cpu < 0.32; i++) {
    assert.equal(await burner.timeout(5000).emitWithAck("burn", 40), 40);
    cpu = read(await metrics(), "nsbox_tenant_call_cpu_seconds_sum");
  }
  const elapsed = Date.now() - started;
  burning = false;
  await neighbourLoop;
  assert.ok(cpu >= 0.32, `${cpu} s of CPU charged`);
  const windows = Math.ceil(cpu / 0.15);
  assert.ok(elapsed >= (windows - 1) * 1000, `throttled: ${cpu} s of CPU took ${elapsed} ms`);
  assert.ok(neighbourAcks >= 5, `the neighbour kept being answered (${neighbourAcks})`);
  assert.ok(read(await metrics(), "nsbox_tenant_throttled_total") >= 1, "throttling counted");
  t.diagnostic(`${cpu.toFixed(3)} s of CPU at 100 ms/s took ${elapsed} ms; neighbour acks meanwhile: ${neighbourAcks}`);
});

test("a fresh instance may use cpu_startup_ms to start, more than a call may", async (t) => {
  // slowstart burns 200 ms in on-start: past cpu_per_call_ms (50), within cpu_startup_ms (500).
  const s = await connected(t, "/slowstart");
  assert.deepEqual(await ack(s, "echo", 1), [1]);
  // Once started, a call is held to cpu_per_call_ms again.
  const told = once(s, "nsbox:error");
  s.emit("burn", 200);
  const [notice] = await told;
  assert.equal(notice.kind, "deadline");
});

test("a start that never ends is stopped at cpu_startup_ms; its neighbour goes on", async (t) => {
  const neighbour = await connected(t, "/t1", OK);
  const [err] = await once(client(t, "/spinstart"), "connect_error", 10000);
  assert.equal(err.message, "tenant unavailable");
  assert.equal(err.data.kind, "deadline");
  assert.match(err.data.error, /CPU deadline of 200ms/);
  assert.deepEqual(await ack(neighbour, "echo", 1), [1]);
});
