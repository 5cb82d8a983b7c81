// Limits that need their own server, set low (see TIGHT_LIMITS in js_client.rs): the
// tenant t1 (echo) may receive 100 events per second from all its sockets together.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sleep, connected } from "./helpers.mjs";

const OK = { auth: { token: "ok" } };

test("a tenant's events per second are bounded before they reach it, sockets not disconnected", async (t) => {
  const sockets = await Promise.all([1, 2, 3].map(() => connected(t, "/t1", { ...OK, transports: ["websocket"] })));
  let answered = 0;
  const sent = 3 * 150;
  for (const s of sockets) {
    for (let i = 0; i < 150; i++) s.emit("echo", i, () => answered++);
  }
  await sleep(1000);
  // A burst of 100, then about 100 a second: far fewer than the 450 sent.
  assert.ok(answered >= 90 && answered <= 250, `${answered} of ${sent} answered`);
  const headers = { authorization: `Bearer ${process.env.ADMIN_TOKEN}` };
  const shown = await (await fetch(`${process.env.ADMIN_URL}/v1/tenants/t1`, { headers })).json();
  assert.equal(shown.dropped_events, sent - shown.events);
  assert.ok(shown.dropped_events >= 200, `${shown.dropped_events} dropped`);
  // Per-tenant limiting drops events; it does not disconnect anyone.
  for (const s of sockets) assert.ok(s.connected);
  await sleep(1100);
  const answer = await sockets[0].timeout(2000).emitWithAck("echo", "after");
  assert.equal(answer, "after", "the budget refills");
  t.diagnostic(`${answered} of ${sent} answered, ${shown.dropped_events} dropped`);
});
