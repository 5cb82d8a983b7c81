// The SDKs' API beyond what the examples use, through the official client: the JS
// SDK's event middleware (`socket.use`), `once`, `off`, the `*Any` listeners,
// `onAnyOutgoing`, an async middleware, promise jobs, the text codecs and randomness
// (tests/fixtures/js/surface, SURFACE_JS); the Python SDK's `*` handler, sessions,
// `send`, `rooms`, `close_room` and broadcasts with acks (tests/fixtures/python/surface,
// SURFACE_PY); the Rust SDK's listeners of every event in and out (examples/surface,
// SURFACE_RS).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { once, connected, ack, record, logs, logged, rawWs } from "./helpers.mjs";
import { jsonCases } from "../fixtures/js/surface/src/json-cases.js";

const JS = process.env.SURFACE_JS ?? "/jsapi";
/** A second tenant of the same JS component. */
const JS2 = process.env.SURFACE_JS2 ?? "/jsapi2";
const PY = process.env.SURFACE_PY ?? "/pyapi";
const RS = process.env.SURFACE_RS ?? "/rsapi";

/** Resolves once `seen` holds `count` entries (3 s at most). */
async function until(socket, event, seen, count) {
  while (seen.length < count) await once(socket, event);
}

// An event without binary that reaches one listener alone is delivered by the JS
// runtime itself (arguments, ack function, encoding of the answer); any other by the
// SDK. The expected answers are what Node's socket.io gives for the same handlers.
describe("an event delivered by the JS runtime and by the SDK", () => {
  for (const [path, auth] of [
    ["the runtime", { plain: true }],
    ["the SDK", {}],
  ]) {
    test(`${path}: this, JSON shapes, a binary answer, an async listener`, async (t) => {
      const s = await connected(t, JS, { auth });
      assert.deepEqual(await ack(s, "this-is-socket"), [true]);
      assert.deepEqual(await ack(s, "shapes"), [
        null,
        null,
        null,
        [null, null],
        { n: null, nested: { x: [1, "two", true] } },
        "1970-01-01T00:00:00.000Z",
        "custom",
      ]);
      assert.deepEqual(await ack(s, "binary-answer"), ["text", { bytes: Buffer.from([1, 2, 3]) }]);
      assert.deepEqual(await ack(s, "awaits"), ["awaited"]);
    });

    test(`${path}: an answer's JSON is what JSON.stringify writes, byte for byte`, async (t) => {
      const c = rawWs(t, "/socket.io/?EIO=4&transport=websocket");
      assert.match(await c.next(), /^0\{/);
      c.send(`40${JS},${JSON.stringify(auth)}`);
      assert.match(await c.next(), new RegExp(`^40${JS},\\{"sid"`));
      c.send(`42${JS},7["json-cases"]`);
      assert.equal(await c.next(), `43${JS},7${JSON.stringify(jsonCases())}`);
    });

    test(`${path}: a listener replaced, or an onAny added, after the event's first delivery takes it from then on`, async (t) => {
      const s = await connected(t, JS, { auth });
      assert.deepEqual(await ack(s, "which"), ["first"]);
      assert.deepEqual(await ack(s, "which"), ["first"]);
      assert.deepEqual(await ack(s, "replace-which"), [true]);
      assert.deepEqual(await ack(s, "which"), ["second"]);
      assert.deepEqual(await ack(s, "watch-any"), [true]);
      assert.deepEqual(await ack(s, "which"), ["second"]);
      assert.deepEqual(await ack(s, "heard"), [["which", "heard"]]);
    });

    test(`${path}: an ack answers once; an answer the host refuses is logged, not sent`, async (t) => {
      const s = await connected(t, JS, { auth });
      const { next } = await logs("jsapi");
      assert.deepEqual(await ack(s, "twice"), ["first"]);
      s.emit("too-deep", () => assert.fail("a refused answer reached the client"));
      const { before } = await logged("jsapi", next, /the ack of "too-deep" was refused: .*nested too deep/);
      // The second answer to "twice" was never offered to the host (it would refuse it).
      assert.ok(!before.some((l) => l.includes('"twice"')), JSON.stringify(before));
      assert.deepEqual(await ack(s, "this-is-socket"), [true]);
    });
  }
});

describe("the JS SDK", () => {
  test("socket.use refuses an event, and the error reaches the socket's error listeners", async (t) => {
    const s = await connected(t, JS);
    const refused = once(s, "refused");
    s.emit("forbidden", 1);
    assert.deepEqual(await refused, ['"forbidden" is not allowed']);
  });

  test("socket.use may rewrite an event's arguments before its listeners see them", async (t) => {
    const s = await connected(t, JS);
    assert.deepEqual(await ack(s, "shout", "hey"), ["HEY"]);
  });

  test("once answers once; the next time the event has no listener and onAny answers", async (t) => {
    const s = await connected(t, JS);
    assert.deepEqual(await ack(s, "tally"), ["once"]);
    assert.deepEqual(await ack(s, "tally"), [{ unhandled: "tally", args: [] }]);
  });

  test("off removes an event's listeners", async (t) => {
    const s = await connected(t, JS);
    assert.deepEqual(await ack(s, "ping2"), ["pong"]);
    assert.deepEqual(await ack(s, "mute", "ping2"), [0]);
    assert.deepEqual(await ack(s, "ping2"), [{ unhandled: "ping2", args: [] }]);
  });

  test("onAny gets an event nobody listens to, with its arguments", async (t) => {
    const s = await connected(t, JS);
    assert.deepEqual(await ack(s, "nothing-here", 1, { a: [2] }), [
      { unhandled: "nothing-here", args: [1, { a: [2] }] },
    ]);
  });

  test("onAnyOutgoing sees what the socket emits, not the acks it answers", async (t) => {
    const s = await connected(t, JS);
    const refused = once(s, "refused");
    s.emit("forbidden");
    await refused;
    assert.deepEqual(await ack(s, "shout", "x"), ["X"]);
    assert.deepEqual(await ack(s, "sent"), [[["refused", '"forbidden" is not allowed']]]);
  });

  test("prependAny sees every event that passed the middleware, in order; offAny removes them all", async (t) => {
    const s = await connected(t, JS);
    const refused = once(s, "refused");
    s.emit("shout", "a", () => {});
    s.emit("forbidden");
    s.emit("tally", () => {});
    await refused;
    assert.deepEqual(await ack(s, "seen"), [["shout", "tally", "seen"]]);
    assert.deepEqual(await ack(s, "forget-any"), [0]);
    assert.deepEqual(await ack(s, "shout", "b"), ["B"]);
    assert.deepEqual(await ack(s, "seen"), [["shout", "tally", "seen", "forget-any"]]);
  });

  test("an async middleware that awaits calls next() in time", async (t) => {
    const s = await connected(t, JS);
    assert.deepEqual(await ack(s, "checked"), ["awaited in middleware"]);
  });

  test("promise jobs run in the order the language gives (as Node 20 runs the same code)", async (t) => {
    const s = await connected(t, JS);
    const [answer] = await ack(s, "promises");
    assert.deepEqual(answer, {
      order: ["sync", "then", "microtask", "after await", "finally"],
      results: {
        all: [1, 2, "thenable"],
        allSettled: ["rejected", "fulfilled"],
        any: "b",
        anyNone: "AggregateError:1",
        race: "first",
        finally: 5,
        caught: "boom",
        withResolvers: "resolved",
        isPromise: true,
        tag: "[object Promise]",
      },
    });
  });

  test("TextEncoder and TextDecoder give what Node's do", async (t) => {
    const s = await connected(t, JS);
    const input = "héllo 🎉 \ud800";
    const bytes = new TextEncoder().encode(input);
    const invalid = new Uint8Array([0x61, 0xff, 0xe2, 0x82, 0x62, 0xf0, 0x9f, 0x98]);
    assert.deepEqual(await ack(s, "text", input), [
      { bytes: Array.from(bytes), back: new TextDecoder().decode(bytes), invalid: new TextDecoder().decode(invalid) },
    ]);
  });

  test("a counter's delta that is not a whole number from 0 is refused with a StorageError", async (t) => {
    const s = await connected(t, JS);
    for (const delta of [-1, 1.5, 2 ** 53]) {
      const [answer] = await ack(s, "bad-delta", delta);
      assert.equal(answer.storageError, true, JSON.stringify(answer));
      assert.match(answer.error, /delta must be a whole number/);
    }
    assert.deepEqual(await ack(s, "bad-delta", 2), [{ value: 2 }]);
    assert.ok(s.connected, "no fault");
  });

  test("each instance draws its own random numbers and counts time from its own start", async (t) => {
    // Two tenants of one component: two instances from the same snapshot.
    const [one, two] = await Promise.all([connected(t, JS), connected(t, JS2)]);
    const [[a], [b]] = await Promise.all([ack(one, "random"), ack(two, "random")]);
    for (const drawn of [a, b]) {
      assert.ok(drawn.random >= 0 && drawn.random < 1, JSON.stringify(drawn));
      assert.match(drawn.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.ok(drawn.now >= 0 && drawn.now < 60_000, `performance.now() = ${drawn.now}`);
    }
    assert.notEqual(a.random, b.random);
    assert.notEqual(a.uuid, b.uuid);
    assert.notDeepEqual(a.values, b.values);
    const [again] = await ack(one, "random");
    assert.notEqual(again.random, a.random);
  });
});

describe("the Python SDK", () => {
  test("a session is kept per socket from connect on, and session() saves what it changes", async (t) => {
    const ada = await connected(t, PY, { auth: { name: "ada" } });
    assert.deepEqual(await ack(ada, "visit"), [1]);
    assert.deepEqual(await ack(ada, "visit"), [2]);
    assert.deepEqual(await ack(ada, "whoami"), [{ visits: 2, name: "ada" }]);
    const bob = await connected(t, PY, { auth: { name: "bob" } });
    assert.deepEqual(await ack(bob, "visit"), [1]);
    assert.deepEqual(await ack(bob, "whoami"), [{ visits: 1, name: "bob" }]);
  });

  test("the * handler gets an event nobody handles, its name first", async (t) => {
    const s = await connected(t, PY);
    assert.deepEqual(await ack(s, "nothing-here", 1, { a: [2] }), [
      { unhandled: "nothing-here", args: [1, { a: [2] }] },
    ]);
  });

  test("send reaches a room as `message`; close_room empties the room", async (t) => {
    const a = await connected(t, PY);
    const b = await connected(t, PY);
    const [rooms] = await ack(a, "enter", "r");
    assert.deepEqual(rooms, [a.id, "r"].sort());
    await ack(b, "enter", "r");
    const heard = record(b, "message");
    assert.deepEqual(await ack(a, "announce", "r", "one"), [true]);
    await until(b, "message", heard, 1);
    assert.deepEqual(await ack(a, "close", "r"), [true]);
    await ack(a, "announce", "r", "two");
    // What the room still reached would come before this, from the same tenant.
    await ack(b, "enter", "r2");
    await ack(a, "announce", "r2", "three");
    await until(b, "message", heard, 2);
    assert.deepEqual(heard, [["one"], ["three"]]);
  });

  test("emit with a callback to a room asks every socket in it and gathers the answers", async (t) => {
    const asker = await connected(t, PY);
    const yes = await connected(t, PY);
    const no = await connected(t, PY);
    const silent = await connected(t, PY);
    for (const s of [asker, yes, no, silent]) await ack(s, "enter", "voters");
    yes.on("question", (q, answer) => answer("yes"));
    no.on("question", (q, answer) => answer("no", "ignored"));
    silent.on("question", () => {});
    // The silent socket never answers: the timeout ends the poll with the others' answers.
    const [partial] = await ack(asker, "poll", "voters", 0.3);
    assert.equal(partial.complete, false);
    assert.deepEqual(partial.answers.sort(), ["no", "yes"]);
    silent.off("question");
    silent.on("question", (q, answer) => answer("maybe"));
    const [whole] = await ack(asker, "poll", "voters", 2);
    assert.equal(whole.complete, true);
    assert.deepEqual(whole.answers.sort(), ["maybe", "no", "yes"]);
  });
});

describe("the Rust SDK", () => {
  test("App::on_any_incoming and on_any_outgoing hear every event in and out of a socket, before its handler; on_any takes the unhandled", async (t) => {
    const s = await connected(t, RS);
    const pong = once(s, "pong");
    assert.deepEqual(await ack(s, "ping", 1, { two: [2] }), [true]);
    assert.deepEqual(await pong, [1, { two: [2] }]);
    assert.deepEqual(await ack(s, "whatever", "x"), [["unhandled", "whatever"]]);
    assert.deepEqual(await ack(s, "heard"), [
      [
        ["in", "ping", [1, { two: [2] }]],
        ["out", "pong", [1, { two: [2] }]],
        ["out", "pong-volatile", [1, { two: [2] }]],
        ["in", "whatever", ["x"]],
        ["in", "heard", []],
      ],
    ]);
  });
});
