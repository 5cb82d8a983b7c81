// The Socket.IO Admin UI itself (the built files of the pinned @socket.io/admin-ui,
// served here) in headless Chromium (the distribution's package, driven by
// puppeteer-core), logging in to nsbox's `[admin_ui]` and showing the tenants'
// namespaces and a client's socket and rooms. Screenshots go to ARTIFACTS_DIR. The server
// agrees to permessage-deflate here, which Chromium offers: the UI's traffic is compressed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { readFileSync, existsSync } from "node:fs";
import { dirname, extname, join, normalize } from "node:path";
import { URL, connected } from "./helpers.mjs";
import { launch, screenshot } from "./browser.mjs";

const require = createRequire(import.meta.url);
const UI = join(dirname(require.resolve("@socket.io/admin-ui/package.json")), "ui", "dist");
const OK = { auth: { token: "ok" } };
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml" };

/** The UI's files over HTTP on a port of their own, as an operator would serve them. */
async function serveUi(t) {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new globalThis.URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    const file = join(UI, path === "/" ? "index.html" : path);
    if (!file.startsWith(UI) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  return `http://127.0.0.1:${server.address().port}/`;
}

/** Resolves once the page's text has `text` in it. */
const shows = (page, text, timeout = 20_000) =>
  page.waitForFunction((wanted) => document.body.innerText.includes(wanted), { timeout }, text);

test("the Admin UI in Chromium logs in, and shows the tenants' namespaces and a client's socket and rooms", { timeout: 120_000 }, async (t) => {
  const member = await connected(t, "/t1", OK);
  assert.equal(await member.timeout(2000).emitWithAck("join", "blue"), "blue");
  await connected(t, "/t2", OK);
  const site = await serveUi(t);
  const browser = await launch(t);
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  // What the browser's WebSockets agreed to, as its DevTools see their handshakes.
  const extensions = [];
  const devtools = await page.createCDPSession();
  await devtools.send("Network.enable");
  devtools.on("Network.webSocketHandshakeResponseReceived", ({ response }) => {
    const headers = Object.fromEntries(Object.entries(response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    extensions.push(headers["sec-websocket-extensions"] ?? null);
  });
  const shot = (name) => screenshot(page, `admin-ui-${name}`);
  // Where the UI connects, as its connection form saves it: nsbox's URL, the admin
  // namespace, WebSocket only (the UI's polling sends credentials, which a page from
  // another origin may only with cors_credentials).
  await page.evaluateOnNewDocument((server) => {
    if (!localStorage.getItem("server_url")) {
      localStorage.setItem("server_url", server);
      localStorage.setItem("namespace", "/nsbox-admin");
      localStorage.setItem("ws_only", "true");
    }
  }, URL);
  await page.goto(site, { waitUntil: "domcontentloaded" });

  // No session yet: the UI shows its login form. Username, then password, then Enter.
  const password = await page.waitForSelector("form input[type=password]", { visible: true, timeout: 20_000 });
  const inputs = await page.$$("form input");
  const fields = await Promise.all(inputs.map((input) => input.evaluate((el) => el.type)));
  const username = inputs[fields.indexOf("password") - 1];
  await username.type("admin");
  await password.type("secret");
  await shot("login");
  await password.press("Enter");

  // Logged in: the dashboard lists the namespaces, each tenant's among them.
  await shows(page, "/t1");
  await shows(page, "/t2");
  await shot("dashboard");

  // The client's socket, with its room.
  await page.goto(`${site}#/n/${encodeURIComponent("/t1")}/sockets/${member.id}`, { waitUntil: "domcontentloaded" });
  await shows(page, member.id);
  await shows(page, "blue");
  await shot("socket");
  const text = await page.evaluate(() => document.body.innerText);
  assert.match(text, /websocket|polling/);
  // Chromium's offer, answered as Node's ws answers it.
  assert.ok(extensions.length > 0, "the UI's WebSocket handshakes seen");
  assert.ok(extensions.every((e) => e === "permessage-deflate"), JSON.stringify(extensions));
});
