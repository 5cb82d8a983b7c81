// The countdown tenant (examples/countdown): a tenant acting on its own timers, through
// the official client. The same suite runs against the Rust countdown and the JavaScript
// one (`examples/js/countdown`, on setInterval), served as CLOCK (/clock unless set).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { once, connected, ack, record } from "./helpers.mjs";

const CLOCK = process.env.CLOCK ?? "/clock";

describe("countdown tenant (timers)", () => {
  test("ticks n-1 down to 0 every interval, then done, while the client says nothing", async (t) => {
    const s = await connected(t, CLOCK);
    const ticks = record(s, "tick");
    const done = once(s, "done", 5000);
    const start = performance.now();
    assert.deepEqual(await ack(s, "countdown", 4, 50), [{ ok: true }]);
    await done;
    const took = performance.now() - start;
    assert.deepEqual(ticks, [[3], [2], [1], [0]]);
    assert.ok(took >= 190, `done after ${took} ms`);
  });

  test("invalid arguments are refused with why", async (t) => {
    const s = await connected(t, CLOCK);
    for (const args of [[0, 50], [101, 50], [3, 9], [3, 10001], ["x", 50], [3]]) {
      const [answer] = await ack(s, "countdown", ...args);
      assert.equal(answer.ok, false, JSON.stringify(args));
      assert.equal(typeof answer.error, "string");
    }
  });

  test("a socket that leaves stops its countdown; another's goes on", async (t) => {
    const leaving = await connected(t, CLOCK);
    const staying = await connected(t, CLOCK);
    assert.deepEqual(await ack(leaving, "countdown", 100, 10), [{ ok: true }]);
    const done = once(staying, "done", 5000);
    assert.deepEqual(await ack(staying, "countdown", 3, 30), [{ ok: true }]);
    leaving.close();
    await done;
  });
});
