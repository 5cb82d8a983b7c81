// The chat tenant's behaviour (examples/chat/src/lib.rs), through the official client.
// The same suite runs against the Rust chat and the JavaScript one
// (`examples/js/chat`), served as CHAT (/acme unless set).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { once, client, connected, pollingSession, post, ack, refused } from "./helpers.mjs";

const CHAT = process.env.CHAT ?? "/acme";

describe("chat tenant", () => {
  const chat = (t, nickname) => connected(t, CHAT, { auth: { nickname } });

  test("a nickname is required and unique", async (t) => {
    assert.equal((await refused(client(t, CHAT)))[0], "nickname required");
    assert.equal((await refused(client(t, CHAT, { auth: { nickname: "  " } })))[0], "nickname required");
    await chat(t, "ann-unique");
    const [message, data] = await refused(client(t, CHAT, { auth: { nickname: "ann-unique" } }));
    assert.equal(message, "nickname taken");
    assert.deepEqual(data, { nickname: "ann-unique" });
  });

  test("welcome, channels, messages, history, typing, members", async (t) => {
    const ann = client(t, CHAT, { auth: { nickname: "ann" } });
    const [welcome] = await once(ann, "welcome");
    assert.equal(welcome.nickname, "ann");
    assert.ok(welcome.channels.includes("#general"));

    const bob = await chat(t, "bob");
    const [state] = await ack(ann, "join", "#rust");
    assert.deepEqual(state, { channel: "#rust", members: ["ann"], history: [] });
    const joined = once(ann, "joined");
    await ack(bob, "join", "#rust");
    assert.deepEqual((await joined)[0], { channel: "#rust", nickname: "bob" });

    const seenByAnn = once(ann, "message");
    const seenByBob = once(bob, "message");
    assert.deepEqual(await ack(ann, "message", "#rust", "hello"), [{ ok: true }]);
    const [[m1], [m2]] = await Promise.all([seenByAnn, seenByBob]);
    assert.equal(m1.text, "hello");
    assert.equal(m1.nickname, "ann");
    assert.deepEqual(m1, m2);
    assert.ok(m1.at > 1.6e12, "a real timestamp");

    const typing = once(bob, "typing");
    ann.emit("typing", "#rust", true);
    assert.deepEqual((await typing)[0], { channel: "#rust", nickname: "ann", typing: true });

    const [history] = await ack(bob, "history", "#rust");
    assert.deepEqual(history.map((m) => m.text), ["hello"]);
    assert.deepEqual((await ack(bob, "members", "#rust"))[0].sort(), ["ann", "bob"]);
    assert.deepEqual(await ack(bob, "message", "#elsewhere", "x"), [{ ok: false, error: "not a member" }]);
    assert.deepEqual(await ack(bob, "join", "nohash"), [{ error: "a channel is # and 1 to 31 characters" }]);

    const left = once(bob, "left");
    ann.close();
    assert.deepEqual((await left)[0].nickname, "ann");
    assert.deepEqual((await ack(bob, "members", "#rust"))[0], ["bob"]);
  });

  test("a client gone before its middleware finished still gets on-disconnect", async (t) => {
    // CONNECT and close in one payload: the session is gone before the tenant answers, so
    // the socket is never accepted. The tenant hears on-disconnect anyway and frees the
    // nickname its middleware took; otherwise "ghost" would stay taken forever.
    for (let i = 0; i < 3; i++) {
      const sid = await pollingSession("/socket.io/");
      const res = await post(sid, `40${CHAT},{"nickname":"ghost"}\x1e1`, "/socket.io/");
      assert.equal(res.status, 200);
      await res.text();
    }
    // The tenant hears those departures after their middleware: "ghost" is freed soon,
    // not never (each try within ack's bounds, 40 tries at most).
    let s = null;
    for (let i = 0; i < 40 && !s; i++) {
      s = await chat(t, "ghost").catch((err) => {
        assert.equal(err.message, "nickname taken");
        return null;
      });
    }
    assert.ok(s, "the nickname was freed");
    // No ghost left behind: one "ghost" in #general, this socket. (The earlier tests'
    // sockets, closed as they ended, may not have been heard leaving yet: they are not
    // what this test is about.)
    const [members] = await ack(s, "members", "#general");
    assert.deepEqual(members.filter((m) => m === "ghost"), ["ghost"]);
  });

  test("history keeps the last 50 messages of a channel", async (t) => {
    const s = await chat(t, "historian");
    await ack(s, "join", "#long");
    for (let i = 0; i < 55; i++) await ack(s, "message", "#long", `m${i}`);
    const [history] = await ack(s, "history", "#long");
    assert.equal(history.length, 50);
    assert.equal(history[0].text, "m5");
    assert.equal(history.at(-1).text, "m54");
  });

  test("a poll asks the channel's other members at once and gathers their answers", async (t) => {
    const [cat, dan, eve, fay] = await Promise.all(["cat", "dan", "eve", "fay"].map((n) => chat(t, n)));
    for (const s of [cat, dan, eve, fay]) await ack(s, "join", "#poll");
    const asked = [];
    dan.on("poll", (question, answer) => {
      asked.push(question);
      answer("yes");
    });
    eve.on("poll", (question, answer) => answer({ vote: "no" }, "ignored"));
    // fay says nothing at first: the poll ends at its timeout with the others' answers.
    fay.on("poll", () => {});
    const [partial] = await ack(cat, "poll", "#poll", "lunch?", 300);
    assert.equal(partial.ok, true);
    assert.equal(partial.complete, false);
    assert.deepEqual(partial.answers.map(JSON.stringify).sort(), ['"yes"', '{"vote":"no"}']);
    assert.deepEqual(asked, [{ channel: "#poll", nickname: "cat", question: "lunch?" }]);
    fay.off("poll");
    fay.on("poll", (question, answer) => answer(Buffer.from([1, 2])));
    const [whole] = await ack(cat, "poll", "#poll", "tea?", 3000);
    assert.equal(whole.complete, true);
    assert.equal(whole.answers.length, 3);
    assert.ok(whole.answers.some((a) => a instanceof Buffer || a instanceof ArrayBuffer || ArrayBuffer.isView(a)));
    // Not a member: refused.
    assert.deepEqual(await ack(cat, "poll", "#elsewhere", "?"), [{ ok: false, error: "not a member" }]);
  });
});
