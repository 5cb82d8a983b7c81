// Tenants written in JavaScript and Python are contained as Rust ones are (issue 16,
// Sandbox): a hostile example (examples/js/hostile, examples/python/hostile) as one
// tenant per test, /PREFIX_NAME (PREFIX is HOSTILE, `js` unless set; one tenant a test,
// so that one test's faults do not back off the next one's restarts), beside the JS echo
// as /jsecho and the Rust echo as /t1. Each fault ends only the faulty instance; an
// exception is a fault whose message is in the tenant's log.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { once, client, connected, ack, logs, logged } from "./helpers.mjs";

const OK = { auth: { token: "ok" } };
const PREFIX = process.env.HOSTILE ?? "js";
const JS = PREFIX === "js";

/** Runs `fault` while both neighbours (JS and Rust echo) echo in a loop; every ack comes back, in order. */
async function neighboursUnharmed(t, fault) {
  const neighbours = [await connected(t, "/jsecho", OK), await connected(t, "/t1", OK)];
  let stopAt = Infinity;
  const loops = neighbours.map(async (n) => {
    const answers = [];
    while (answers.length < stopAt) answers.push((await ack(n, "echo", answers.length))[0]);
    assert.deepEqual(answers, [...answers.keys()], "every ack, in order");
  });
  const result = await fault();
  stopAt = 5;
  await Promise.all(loops);
  return result;
}

/** Two sockets on the hostile tenant `tenant`; `event` from one; both are told `kind` and disconnected; a fresh instance serves. */
async function faultTellsEverySocket(t, tenant, event, kind) {
  const BAD = `/${tenant}`;
  const a = await connected(t, BAD);
  const b = await connected(t, BAD);
  assert.deepEqual(await ack(a, "echo", "alive"), ["alive"]);
  const told = [once(a, "nsbox:error", 10000), once(b, "nsbox:error", 10000)];
  const gone = [once(a, "disconnect", 10000), once(b, "disconnect", 10000)];
  const started = Date.now();
  a.emit(event);
  for (const [notice] of await Promise.all(told)) {
    assert.equal(notice.kind, kind, JSON.stringify(notice));
    assert.equal(notice.tenant, tenant);
  }
  for (const [reason] of await Promise.all(gone)) assert.equal(reason, "io server disconnect");
  const elapsed = Date.now() - started;
  t.diagnostic(`${event}: sockets told and disconnected ${elapsed} ms after the event`);
  const fresh = await connected(t, BAD);
  assert.deepEqual(await ack(fresh, "echo", "again"), ["again"]);
  return elapsed;
}

describe(`a hostile ${JS ? "JavaScript" : "Python"} tenant`, () => {
  test("an exception in a handler is a fault, its message and stack in the tenant's log", async (t) => {
    const { next } = await logs(`${PREFIX}_throw`);
    await neighboursUnharmed(t, () => faultTellsEverySocket(t, `${PREFIX}_throw`, "throw", "trap"));
    const line = await logged(`${PREFIX}_throw`, next, /(thrown|raised) in a handler on purpose/);
    assert.equal(line.level, "error");
    assert.match(line.message, /uncaught exception in the handler of "throw"/);
    // The stack is in the tenant's own file (the JS build's source map), as Python's is.
    assert.match(line.message, JS ? /\(src\/hostile\.js:25:\d+\)/ : /hostile\.py", line \d+/);
  });

  test("an infinite loop hits the CPU deadline", async (t) => {
    const elapsed = await neighboursUnharmed(t, () => faultTellsEverySocket(t, `${PREFIX}_spin`, "spin", "deadline"));
    assert.ok(elapsed < 3000, `stopped in ${elapsed} ms`);
  });

  test("memory growth hits the memory limit", async (t) => {
    await neighboursUnharmed(t, () => faultTellsEverySocket(t, `${PREFIX}_grow`, "grow", "memory"));
  });

  test("an emit flood stops at the per-call message budget", async (t) => {
    await neighboursUnharmed(t, () => faultTellsEverySocket(t, `${PREFIX}_flood`, "flood", "emit-limit"));
  });

  test("recursion without end is stopped", async (t) => {
    await neighboursUnharmed(t, () => faultTellsEverySocket(t, `${PREFIX}_deep`, "deep", "trap"));
  });

  test("a rejected async handler is logged; the instance serves on", { skip: !JS && "JS only" }, async (t) => {
    const { next } = await logs(`${PREFIX}_reject`);
    const s = await connected(t, `/${PREFIX}_reject`);
    s.emit("reject");
    await logged(`${PREFIX}_reject`, next, /unhandled promise rejection:.*rejected in an async handler on purpose/);
    assert.deepEqual(await ack(s, "echo", 1), [1]);
  });

  test("an exception in a timer is a fault, logged", { skip: JS && "Python only" }, async (t) => {
    const { next } = await logs(`${PREFIX}_reject`);
    await neighboursUnharmed(t, () => faultTellsEverySocket(t, `${PREFIX}_reject`, "reject", "trap"));
    await logged(`${PREFIX}_reject`, next, /uncaught exception in a timer: ValueError: raised in a timer on purpose/);
  });

  test("an exception in middleware refuses that socket, logged; the next one gets in", async (t) => {
    const { next } = await logs(`${PREFIX}_mw`);
    await neighboursUnharmed(t, async () => {
      const refused = client(t, `/${PREFIX}_mw`, { auth: { throw: true } });
      const [err] = await once(refused, "connect_error", 10000);
      assert.equal(err.message, "tenant error");
      const s = await connected(t, `/${PREFIX}_mw`);
      assert.deepEqual(await ack(s, "echo", 2), [2]);
    });
    await logged(`${PREFIX}_mw`, next, /uncaught exception in (middleware|the "connect" handler):[\s\S]*(thrown in middleware|raised in connect) on purpose/);
  });

  test("an infinite loop in middleware is stopped too", async (t) => {
    await neighboursUnharmed(t, async () => {
      const refused = client(t, `/${PREFIX}_mwspin`, { auth: { spin: true } });
      const [err] = await once(refused, "connect_error", 10000);
      assert.equal(err.message, "tenant error");
      assert.match(err.data.error, /tenant failed|deadline|CPU/i, JSON.stringify(err.data));
    });
    const s = await connected(t, `/${PREFIX}_mwspin`);
    assert.deepEqual(await ack(s, "echo", 3), [3]);
  });
});
