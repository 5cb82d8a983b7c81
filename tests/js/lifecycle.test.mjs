// Instances come and go (see LIFECYCLE in js_client.rs): the pool holds 3 live instances,
// t1, t2 and t3 (echo) are evicted 400 ms after their last socket leaves, `keep` (echo)
// never is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sleep, once, client, connected } from "./helpers.mjs";

const OK = { auth: { token: "ok" } };
const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
const shown = async (tenant) =>
  (await fetch(`${process.env.ADMIN_URL}/v1/tenants/${tenant}`, { headers })).json();

/** Polls the admin API until `ok(tenant)` holds (5 s at most); returns the last answer. */
async function until(tenant, ok) {
  let last;
  for (let i = 0; i < 100; i++) {
    last = await shown(tenant);
    if (ok(last)) break;
    await sleep(50);
  }
  return last;
}

const echo = (socket, value) => socket.timeout(2000).emitWithAck("echo", value);

/**
 * Waits until an instance that is evicted (t3) has been, counted from now: past that,
 * one that should not have been evicted would have been.
 */
async function pastAnEviction(t) {
  const witness = await connected(t, "/t3", OK);
  assert.equal(await echo(witness, "w"), "w");
  witness.close();
  const evicted = await until("t3", (s) => !s.running);
  assert.equal(evicted.running, false, "the witness was evicted");
}

test("with evict_idle_after_ms = 0 an instance stays after its last socket leaves", async (t) => {
  const socket = await connected(t, "/keep", OK);
  assert.equal(await echo(socket, 1), 1);
  socket.close();
  await until("keep", (s) => s.sockets === 0);
  await pastAnEviction(t);
  const keep = await shown("keep");
  assert.equal(keep.running, true);
  assert.equal(keep.evictions, 0);
});

test("an instance without sockets is evicted; the next connection starts a fresh one", async (t) => {
  const first = await connected(t, "/t1", OK);
  assert.equal(await echo(first, "a"), "a");
  assert.equal((await shown("t1")).running, true);
  first.close();
  const evicted = await until("t1", (s) => !s.running);
  assert.equal(evicted.running, false, "evicted within 5 s of the last socket leaving");
  assert.equal(evicted.evictions, 1);
  assert.equal(evicted.restarts, 0, "an eviction is not a restart");
  assert.equal(evicted.faults, 0);
  const again = await connected(t, "/t1", OK);
  assert.equal(await echo(again, "b"), "b");
  const back = await shown("t1");
  assert.equal(back.running, true);
  assert.equal(back.evictions, 1);
  const metrics = await (await fetch(`${process.env.ADMIN_URL}/metrics`)).text();
  assert.match(metrics, /^nsbox_tenant_evictions_total\{tenant="t1"\} 1$/m);
  assert.match(metrics, /^nsbox_tenant_instances\{tenant="t1"\} 1$/m);
  again.close();
  await until("t1", (s) => !s.running);
});

test("an instance with a socket is not evicted, however long the socket stays quiet", async (t) => {
  const socket = await connected(t, "/t2", OK);
  await pastAnEviction(t);
  assert.equal(await echo(socket, "still here"), "still here");
  const t2 = await shown("t2");
  assert.equal(t2.running, true);
  assert.equal(t2.evictions, 0);
  socket.close();
  await until("t2", (s) => !s.running);
});

test("with the pool full a tenant that is not running is refused (capacity, no fault) until one is evicted", async (t) => {
  // keep is live; t1 and t2 fill the pool of 3.
  const one = await connected(t, "/t1", OK);
  const two = await connected(t, "/t2", OK);
  const [err] = await once(client(t, "/t3", OK), "connect_error");
  assert.equal(err.message, "tenant unavailable");
  assert.equal(err.data.kind, "capacity");
  assert.equal(err.data.tenant, "t3");
  assert.match(err.data.error, /maximum concurrent limit of 3/);
  const t3 = await shown("t3");
  assert.equal(t3.faults, 0, "the host's capacity is not the tenant's fault");
  assert.equal(t3.quarantined, false);
  // The running tenants are unharmed.
  assert.equal(await echo(one, 1), 1);
  assert.equal(await echo(two, 2), 2);
  // t1's last socket leaves: 400 ms later its place is free and t3 gets it.
  one.close();
  await until("t1", (s) => !s.running);
  const three = await connected(t, "/t3", OK);
  assert.equal(await echo(three, 3), 3);
  assert.equal((await shown("t3")).restarts, 0, "a start refused for capacity is not a restart");
  assert.equal(await echo(two, 2), 2);
  const metrics = await (await fetch(`${process.env.ADMIN_URL}/metrics`)).text();
  assert.match(metrics, /^nsbox_tenant_limit_trips_total\{tenant="t3",limit="capacity"\} 1$/m);
});
