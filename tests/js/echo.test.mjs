// The echo tenant's behaviour (examples/README.md), event by event, through the official
// client. The same suite runs against every echo: the Rust example (`examples/echo`),
// and the JavaScript and Python ones (`examples/js/echo`, `examples/python/echo`),
// each served as two tenants, ECHO_A and ECHO_B (/t1 and /t2 unless set), configured
// with `greeting = "hello"`.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { URL, once, client, connected, ack, refused, record } from "./helpers.mjs";

const A = process.env.ECHO_A ?? "/t1";
const B = process.env.ECHO_B ?? "/t2";
const OK = { auth: { token: "ok" } };
const ask = (socket, event, ...args) => socket.timeout(5000).emitWithAck(event, ...args);

describe("echo tenant", () => {
  test("the middleware chain runs in order and sets the trail", async (t) => {
    const s = await connected(t, A, OK);
    assert.deepEqual(await ack(s, "whoami"), [{ nsp: A, trail: ["m1", "m2", "m3"] }]);
  });

  test("the second middleware refuses a bad token with message and data", async (t) => {
    for (const auth of [{ token: "nope" }, {}]) {
      const [message, data] = await refused(client(t, A, { auth }));
      assert.equal(message, "unauthorized");
      assert.deepEqual(data, { reason: "bad token" });
    }
  });

  test("refusal works over websocket only too", async (t) => {
    const [message] = await refused(client(t, B, { transports: ["websocket"] }));
    assert.equal(message, "unauthorized");
  });

  test("hello goes to the whole namespace with the newcomer's id", async (t) => {
    const first = await connected(t, A, OK);
    // The first hello `first` hears about somebody else (its own may come after it connected).
    const heardByFirst = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no hello for the newcomer within 3 s")), 3000);
      first.on("hello", (hello) => {
        if (hello.id === first.id) return;
        clearTimeout(timer);
        resolve(hello);
      });
    });
    const second = client(t, A, OK);
    const [own] = await once(second, "hello");
    assert.deepEqual(own, { nsp: A, id: second.id });
    assert.deepEqual(await heardByFirst, { nsp: A, id: second.id });
  });

  test("echo acks exactly its arguments, binary at depth included", async (t) => {
    for (const transports of [["polling"], ["websocket"]]) {
      const s = await connected(t, A, { ...OK, transports });
      const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
      const answer = await ack(s, "echo", "a", 1.5, null, { deep: [bin, { x: bin }] }, bin);
      assert.deepEqual(answer, ["a", 1.5, null, { deep: [bin, { x: bin }] }, bin]);
      assert.ok(Buffer.isBuffer(answer[4]));
      assert.deepEqual(await ack(s, "echo"), []);
    }
  });

  test("broadcast reaches the namespace, sender included, and never the other tenant", async (t) => {
    const a = await connected(t, A, OK);
    const b = await connected(t, A, OK);
    const other = await connected(t, B, OK);
    const leaked = record(other, "msg");
    const atB = once(b, "msg");
    const atA = once(a, "msg");
    a.emit("broadcast", "x", { n: 1 });
    assert.deepEqual(await atB, ["x", { n: 1 }]);
    assert.deepEqual(await atA, ["x", { n: 1 }]);
    // B runs the same component in its own instance: its own broadcast arrives, A's never did.
    const own = once(other, "msg");
    other.emit("broadcast", "t2");
    assert.deepEqual(await own, ["t2"]);
    assert.deepEqual(leaked, [["t2"]]);
    assert.deepEqual(await ack(other, "whoami"), [{ nsp: B, trail: ["m1", "m2", "m3"] }]);
  });

  test("join, leave and to-room (sender excepted)", async (t) => {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => connected(t, A, OK)));
    assert.deepEqual(await ack(a, "join", "r"), ["r"]);
    assert.deepEqual(await ack(b, "join", "r"), ["r"]);
    const atA = record(a, "msg");
    const atC = record(c, "msg");
    const atB = once(b, "msg");
    a.emit("to-room", "r", "hi", { bin: Buffer.from([7]) });
    assert.deepEqual(await atB, ["hi", { bin: Buffer.from([7]) }]);
    assert.deepEqual(await ack(b, "leave", "r"), ["r"]);
    const atBAfter = record(b, "msg");
    a.emit("to-room", "r", "again");
    // The tenant handles these after the to-room, and answers each socket on its own
    // connection after anything the to-room sent it.
    await Promise.all([ack(a, "echo"), ack(b, "echo"), ack(c, "echo")]);
    assert.deepEqual(atBAfter, []);
    assert.deepEqual(atA, []);
    assert.deepEqual(atC, []);
  });

  test("bye disconnects from the server side", async (t) => {
    const s = await connected(t, A, OK);
    const gone = once(s, "disconnect");
    s.emit("bye");
    assert.deepEqual((await gone)[0], "io server disconnect");
  });

  test("ask: the client's answer comes back through the tenant", async (t) => {
    const s = await connected(t, A, OK);
    s.on("question", (q, reply) => reply(`pong to ${q}`));
    assert.deepEqual(await ack(s, "ask"), [{ answer: "pong to ping?" }]);
  });

  test("ask: no answer within 2 s gives timeout", async (t) => {
    const s = await connected(t, A, OK);
    s.on("question", () => {});
    const started = Date.now();
    const answer = await new Promise((resolve) => s.emit("ask", resolve));
    assert.deepEqual(answer, { error: "timeout" });
    assert.ok(Date.now() - started >= 1900, "the timeout is 2 s");
  });

  test("volatile: sent when the connection can send it at once", async (t) => {
    const s = await connected(t, A, { ...OK, transports: ["websocket"] });
    const got = record(s, "msg");
    // An idle WebSocket sends it; one busy that very moment (a heartbeat's ping going
    // out) drops it, as Node does: of a few tries, the idle ones arrive, in order.
    for (let i = 0; i < 5 && got.length === 0; i++) {
      assert.deepEqual(await ack(s, "volatile", "v", i), [true]);
    }
    assert.ok(got.length > 0, "no volatile message arrived over an idle WebSocket");
    assert.equal(got[0][0], "v");
  });

  test("volatile: dropped when packets wait ahead of it", async (t) => {
    // A raw long-polling client that has no poll out: a broadcast queues `x` for it,
    // then the volatile `v` finds the queue busy and is dropped; the ack is not volatile.
    // No poll goes out before the tenant has handled both: `witness`'s echo, asked
    // after them, is answered after them (a tenant handles its events in order).
    const witness = await connected(t, A, { ...OK, transports: ["websocket"] });
    const base = `${URL}/socket.io/?EIO=4&transport=polling`;
    const { sid } = JSON.parse((await (await fetch(base)).text()).slice(1));
    const url = `${base}&sid=${sid}`;
    const post = (body) => fetch(url, { method: "POST", body }).then((r) => r.text());
    assert.equal(await post(`40${A},{"token":"ok"}`), "ok");
    let seen = "";
    while (!seen.includes(`40${A},`)) seen += await (await fetch(url)).text();
    assert.equal(await post(`42${A},["broadcast","x"]\x1e42${A},0["volatile","v"]`), "ok");
    assert.deepEqual(await ack(witness, "echo", "after"), ["after"]);
    seen = "";
    while (!seen.includes(`43${A},0[true]`)) seen += "\x1e" + (await (await fetch(url)).text());
    assert.ok(seen.includes(`42${A},["msg","x"]`), seen);
    assert.ok(!seen.includes('"v"'), seen);
    await post("1");
  });

  test("poll asks the room's other sockets at once and gathers their first answers", async (t) => {
    const [asker, x, y, z] = await Promise.all([0, 1, 2, 3].map(() => connected(t, A, OK)));
    for (const s of [asker, x, y, z]) await ack(s, "join", "pollroom");
    let askedTheAsker = false;
    asker.on("question", () => (askedTheAsker = true));
    x.on("question", (answer) => answer("x", "ignored"));
    y.on("question", (answer) => answer({ y: Buffer.from([9]) }));
    // z says nothing: the poll ends at its timeout with the others' answers.
    z.on("question", () => {});
    const [partial] = await ack(asker, "poll", "pollroom", 300);
    assert.equal(partial.complete, false);
    assert.equal(partial.answers.length, 2);
    assert.ok(partial.answers.includes("x"));
    assert.deepEqual(Buffer.from(partial.answers.find((a) => a?.y).y), Buffer.from([9]));
    z.off("question");
    z.on("question", (answer) => answer(3));
    const [whole] = await ack(asker, "poll", "pollroom", 2000);
    assert.equal(whole.complete, true);
    assert.equal(whole.answers.length, 3);
    assert.ok(whole.answers.includes(3));
    assert.equal(askedTheAsker, false);
    // Nobody in the room: complete at once, no answers.
    assert.deepEqual(await ack(asker, "poll", "nobody-here", 5000), [{ answers: [], complete: true }]);
  });

  test("an event the tenant does not handle is ignored and the socket stays", async (t) => {
    const s = await connected(t, A, OK);
    s.emit("no-such-event", 1);
    assert.deepEqual(await ack(s, "echo", 2), [2]);
  });
});

describe("socket queries and bulk operations (echo)", () => {
  test("fetch, sockets-join and kick act on the sockets a room selects, in the tenant's namespace only", async (t) => {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => connected(t, B, OK)));
    const other = await connected(t, A, OK);
    assert.deepEqual(await ack(other, "join", "q"), ["q"]);
    assert.deepEqual(await ack(a, "join", "q"), ["q"]);
    assert.deepEqual(await ack(b, "join", "q"), ["q"]);
    // The sockets in room q of B: a and b (they connected at once: in either order);
    // A's is not there.
    const ids = async (...args) => (await ack(c, "fetch", ...args))[0].sort();
    assert.deepEqual(await ids("q"), [a.id, b.id].sort());
    const everyone = (await ack(c, "fetch"))[0];
    for (const s of [a, b, c]) assert.ok(everyone.includes(s.id));
    assert.ok(!everyone.includes(other.id));
    // Everyone in q joins r: a broadcast to r reaches a and b, not c.
    assert.deepEqual(await ack(c, "sockets-join", "q", "r"), [2]);
    assert.deepEqual(await ids("r"), [a.id, b.id].sort());
    const atA = once(a, "msg");
    c.emit("to-room", "r", "to r");
    assert.deepEqual(await atA, ["to r"]);
    // Kick q: a and b are disconnected by the server; c and A's socket stay.
    const goneA = once(a, "disconnect");
    const goneB = once(b, "disconnect");
    assert.deepEqual(await ack(c, "kick", "q"), [2]);
    assert.equal((await goneA)[0], "io server disconnect");
    assert.equal((await goneB)[0], "io server disconnect");
    assert.ok(c.connected && other.connected);
    assert.deepEqual(await ack(c, "fetch", "q"), [[]]);
  });

  test("sockets-leave takes the room's sockets out of it", async (t) => {
    const [a, b] = await Promise.all([1, 2].map(() => connected(t, A, OK)));
    await ack(a, "join", "sl");
    await ack(b, "join", "sl");
    assert.deepEqual(await ack(a, "sockets-leave", "sl"), [2]);
    assert.deepEqual(await ack(a, "fetch", "sl"), [[]]);
  });

  test("fetch-all on one node: this node's sockets, sorted, complete", async (t) => {
    const [a, b] = await Promise.all([1, 2].map(() => connected(t, A, OK)));
    await ack(b, "join", "fa");
    assert.deepEqual(await ack(a, "fetch-all", "fa"), [{ ids: [b.id], complete: true }]);
    const { ids } = (await ack(a, "fetch-all"))[0];
    assert.deepEqual(ids, [...ids].sort());
    assert.ok(ids.includes(a.id) && ids.includes(b.id));
  });
});

describe("the cluster, on one node", () => {
  test("server-emit succeeds and nobody hears it; server-heard is empty", async (t) => {
    const s = await connected(t, A, OK);
    assert.deepEqual(await ack(s, "server-emit", "note", 1, { b: Buffer.from([1]) }), [true]);
    assert.deepEqual(await ack(s, "server-heard"), [[]]);
  });
});

describe("storage and configuration", () => {
  test("get, set, delete, counters, compare-and-swap and keys by prefix", async (t) => {
    const s = await connected(t, A, OK);
    assert.deepEqual(await ask(s, "load", "ops/missing"), { ok: true, value: null });
    assert.deepEqual(await ask(s, "store", "ops/a", { n: 1, list: [1, "two"] }), { ok: true, value: null });
    assert.deepEqual(await ask(s, "load", "ops/a"), { ok: true, value: { n: 1, list: [1, "two"] } });
    assert.deepEqual(await ask(s, "count", "ops/n", 5), { ok: true, value: 5 });
    assert.deepEqual(await ask(s, "count", "ops/n", 37), { ok: true, value: 42 });
    // A counter is its digits: it reads back as a number.
    assert.deepEqual(await ask(s, "load", "ops/n"), { ok: true, value: 42 });
    assert.deepEqual(await ask(s, "swap", "ops/lock", null, "mine"), { ok: true, value: true });
    assert.deepEqual(await ask(s, "swap", "ops/lock", null, "theirs"), { ok: true, value: false });
    assert.deepEqual(await ask(s, "swap", "ops/lock", "mine", null), { ok: true, value: true });
    assert.deepEqual(await ask(s, "load", "ops/lock"), { ok: true, value: null });
    await ask(s, "store", "ops/b", "b");
    await ask(s, "store", "other", "x");
    assert.deepEqual(await ask(s, "keys", "ops/"), { ok: true, value: ["ops/a", "ops/b", "ops/n"] });
    assert.deepEqual(await ask(s, "forget", "ops/b"), { ok: true, value: null });
    assert.deepEqual(await ask(s, "keys", "ops/"), { ok: true, value: ["ops/a", "ops/n"] });
    const notCounter = await ask(s, "count", "ops/a", 1);
    assert.equal(notCounter.ok, false);
    assert.match(notCounter.error, /counter/);
  });

  test("no key of one tenant is visible to another", async (t) => {
    const [one, two] = await Promise.all([connected(t, A, OK), connected(t, B, OK)]);
    await ask(one, "store", "mine", "t1's");
    assert.deepEqual(await ask(two, "load", "mine"), { ok: true, value: null });
    const listed = await ask(two, "keys", "");
    assert.ok(!listed.value.includes("mine"), JSON.stringify(listed));
    await ask(two, "store", "mine", "t2's");
    assert.deepEqual(await ask(one, "load", "mine"), { ok: true, value: "t1's" });
  });

  test("config answers one value, null for none, and every value without a name", async (t) => {
    const s = await connected(t, A, OK);
    assert.deepEqual(await ack(s, "config", "greeting"), ["hello"]);
    assert.deepEqual(await ack(s, "config", "no-such-name"), [null]);
    const [all] = await ack(s, "config");
    assert.equal(all.greeting, "hello");
  });
});
