// The README's JavaScript tenant ("In JavaScript"), built by the harness exactly as the
// README says (HELLO_WASM), deployed through the admin API as `nsbox deploy` does, and
// spoken to with the official client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { once, client, connected, refused } from "./helpers.mjs";

// The upload compiles a 2 MB JS component: about 2 s of one core, longer when CI's other
// suites build and compile theirs on the same two cores.
test("the README's JS example deploys and answers as the README says", { timeout: 240_000 }, async (t) => {
  const res = await fetch(`${process.env.ADMIN_URL}/v1/tenants/hello/component`, {
    method: "PUT",
    headers: { authorization: `Bearer ${process.env.ADMIN_TOKEN}` },
    body: readFileSync(process.env.HELLO_WASM),
  });
  const shown = await res.json();
  assert.equal(res.status, 200, JSON.stringify(shown));
  assert.equal(shown.contract, "0.2.3");

  const [message, data] = await refused(client(t, "/hello"));
  assert.equal(message, "who are you?");
  assert.deepEqual(data, { need: "name" });

  const ann = await connected(t, "/hello", { auth: { name: "ann" } });
  const arrived = once(ann, "arrived");
  const bob = await connected(t, "/hello", { auth: { name: "bob" } });
  assert.deepEqual(await arrived, ["bob"]);
  assert.equal(await ann.emitWithAck("greet"), "hello, ann, visitor 1");
  assert.equal(await bob.emitWithAck("greet"), "hello, bob, visitor 2");
  const left = once(ann, "left");
  bob.close();
  assert.deepEqual(await left, ["bob", "client namespace disconnect"]);
});
