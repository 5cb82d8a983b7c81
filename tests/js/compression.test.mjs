// Long-polling compression (Node's httpCompression, on by default from 1,024 bytes):
// nsbox against Node's socket.io 4.8.4 running the same reference app in the same run,
// for each Accept-Encoding a client may send.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Server } from "socket.io";
import { URL } from "./helpers.mjs";

const BIG = "x".repeat(3000);

/** One polling session on `base`'s reference app that asks for `message-back` with
 * `text`, then polls for it with `acceptEncoding`: the answer's encoding and body. */
async function pollBack(base, text, acceptEncoding) {
  const path = `${base}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(path)).text();
  const { sid } = JSON.parse(open.slice(1));
  const post = (body) => fetch(`${path}&sid=${sid}`, { method: "POST", body }).then((r) => r.text());
  const get = (headers = {}) => fetch(`${path}&sid=${sid}`, { headers });
  assert.equal(await post("40"), "ok");
  // The CONNECT answer and the `auth` event.
  let seen = "";
  while (!seen.includes('42["auth"')) seen += await (await get()).text();
  assert.equal(await post(`42${JSON.stringify(["message", text])}`), "ok");
  const headers = acceptEncoding === undefined ? { "accept-encoding": "identity" } : { "accept-encoding": acceptEncoding };
  const res = await get(headers);
  const body = await res.text();
  await post("1");
  return { encoding: res.headers.get("content-encoding"), body };
}

describe("long-polling compression, as Node's", () => {
  let node;
  before(async () => {
    const http = createServer();
    const io = new Server(http);
    io.of("/").on("connection", (socket) => {
      socket.emit("auth", socket.handshake.auth);
      socket.on("message", (...args) => socket.emit("message-back", ...args));
    });
    await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
    node = { io, base: `http://127.0.0.1:${http.address().port}` };
  });
  after(() => new Promise((resolve) => node.io.close(() => resolve())));

  for (const [accept, text, expected] of [
    ["gzip, deflate", BIG, "gzip"],
    ["deflate", BIG, "deflate"],
    ["deflate, gzip", BIG, "deflate"],
    ["gzip;q=0.5, deflate", BIG, "deflate"],
    ["br, *", BIG, "gzip"],
    ["gzip, deflate", "small", null],
    [undefined, BIG, null],
    ["br", BIG, null],
  ]) {
    test(`Accept-Encoding ${accept ?? "identity"}, ${text.length} characters: ${expected ?? "as is"}`, async () => {
      const ours = await pollBack(URL, text, accept);
      const theirs = await pollBack(node.base, text, accept);
      assert.equal(theirs.encoding, expected, "Node's choice");
      assert.equal(ours.encoding, theirs.encoding);
      assert.equal(ours.body, theirs.body);
      assert.equal(ours.body, `42${JSON.stringify(["message-back", text])}`);
    });
  }
});

// The client's browser builds, served as Node's socket.io serves them (serveClient, on by
// default): the files of the pinned `socket.io` package, with the same headers.
const require = createRequire(import.meta.url);
const CLIENT_DIST = join(dirname(require.resolve("socket.io/package.json")), "client-dist");
const CLIENT_FILES = [
  "socket.io.js",
  "socket.io.js.map",
  "socket.io.min.js",
  "socket.io.min.js.map",
  "socket.io.esm.min.js",
  "socket.io.esm.min.js.map",
  "socket.io.msgpack.min.js",
  "socket.io.msgpack.min.js.map",
];

/** One GET: the status, the headers Node sets, and the body as sent, decoded. */
async function fetchFile(base, file, headers) {
  const res = await fetch(`${base}/socket.io/${file}`, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  const pick = ["content-type", "etag", "cache-control", "content-encoding"];
  return { status: res.status, headers: Object.fromEntries(pick.map((h) => [h, res.headers.get(h)])), body };
}

describe("the client's browser builds, as Node's serveClient", () => {
  let node;
  before(async () => {
    const http = createServer();
    const io = new Server(http);
    await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
    node = { io, base: `http://127.0.0.1:${http.address().port}` };
  });
  after(() => new Promise((resolve) => node.io.close(() => resolve())));

  for (const file of CLIENT_FILES) {
    test(`${file}: the pinned package's bytes, each encoding as Node chooses it`, async () => {
      const pinned = readFileSync(join(CLIENT_DIST, file));
      for (const accept of ["identity", "gzip, deflate, br", "br, gzip", "br", "gzip", "deflate", "br;q=0.5, gzip", "gzip;q=0.5, deflate", "*"]) {
        const headers = { "accept-encoding": accept };
        const [ours, theirs] = [await fetchFile(URL, file, headers), await fetchFile(node.base, file, headers)];
        assert.deepEqual([ours.status, ours.headers], [theirs.status, theirs.headers], accept);
        assert.ok(ours.body.equals(pinned), `${file} (${accept}) is the pinned file`);
      }
    });
  }

  test("a known version is not sent again (304), strong or weak; another is", async () => {
    for (const [etag, status] of [['"4.8.4"', 304], ['W/"4.8.4"', 304], ['"4.8.3"', 200]]) {
      const headers = { "if-none-match": etag, "accept-encoding": "identity" };
      const [ours, theirs] = [await fetchFile(URL, "socket.io.min.js", headers), await fetchFile(node.base, "socket.io.min.js", headers)];
      assert.equal(theirs.status, status, `Node, ${etag}`);
      assert.equal(ours.status, status, etag);
      assert.equal(ours.body.length, theirs.body.length);
    }
  });
});
