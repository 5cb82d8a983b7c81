// The console at `/` of the admin listener, in headless Chromium (the distribution's
// package, driven by puppeteer-core): signing in with the operator's token and with a
// tenant's, the tenant list, a deploy watched going live, a refused upload's error, a
// rollback, the log followed live, and markup a client got into a tenant's log and
// storage shown as text, running nothing. Screenshots go to ARTIFACTS_DIR. The harness
// gives ADMIN_URL, ADMIN_TOKEN, EXAMPLES_DIR and FORBIDDEN_COMPONENT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { io } from "socket.io-client";
import { URL } from "./helpers.mjs";
import { launch, shows, screenshot } from "./browser.mjs";

const ADMIN_URL = process.env.ADMIN_URL;
const OPERATOR = process.env.ADMIN_TOKEN;
const wasm = (name) => join(process.env.EXAMPLES_DIR, `${name}.wasm`);

/** The names in the tenant list, once it shows `expected` of them. */
async function listed(page, expected) {
  await page.waitForFunction((n) => document.querySelectorAll("#tenants tbody tr").length === n, { timeout: 20_000, polling: 50 }, expected);
  return page.$$eval("#tenants tbody tr", (rows) => rows.map((row) => row.dataset.tenant));
}

async function signIn(page, token) {
  await page.goto(`${ADMIN_URL}/`, { waitUntil: "domcontentloaded" });
  const input = await page.waitForSelector("#signin input[name=token]", { visible: true, timeout: 20_000 });
  await input.type(token);
  await input.press("Enter");
}

async function api(method, path, body) {
  const res = await fetch(`${ADMIN_URL}${path}`, { method, headers: { authorization: `Bearer ${OPERATOR}` }, body });
  return { status: res.status, body: await res.json() };
}

test("the console in Chromium: sign in, tenants, deploy, rollback, log, and no tenant's markup runs", { timeout: 180_000 }, async (t) => {
  const browser = await launch(t);
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const errors = [];
  page.on("console", (message) => t.diagnostic(`page: ${message.text()}`));
  page.on("pageerror", (error) => errors.push(error.message));
  const shot = (name) => screenshot(page, `console-${name}`);

  // A wrong token is refused with the API's word for it.
  await signIn(page, "not-a-token-at-all");
  await shows(page, "#signin-error", "unauthorized");

  // The operator sees every tenant; the token is kept in the session, not in the URL.
  await page.$eval("#signin input[name=token]", (input) => (input.value = ""));
  await page.type("#signin input[name=token]", OPERATOR);
  await page.keyboard.press("Enter");
  await shows(page, "#who", "operator");
  const all = await api("GET", "/v1/tenants?limit=1000");
  const names = await listed(page, all.body.total);
  assert.deepEqual(names, all.body.tenants.map((tenant) => tenant.name));
  assert.ok(!page.url().includes(OPERATOR));
  assert.equal(await page.evaluate(() => sessionStorage.getItem("nsbox-console-token")), OPERATOR);
  // Host-wide charts, for the operator: drawn from the second sample on.
  await page.waitForSelector('#host-charts figure[data-chart="events"] svg', { timeout: 20_000 });
  await shot("tenants");

  // Search, and sort by a column, both done by the server.
  await page.type("#search", "t1");
  assert.deepEqual(await listed(page, 1), ["t1"]);
  await page.$eval("#search", (input) => (input.value = ""));
  await page.type("#search", " ");
  await listed(page, all.body.total);
  await page.click('#tenants th button[data-sort="name"]');
  await page.waitForFunction(() => document.querySelector('#tenants th button[data-sort="name"]').getAttribute("aria-sort") === "descending", { polling: 50 });
  assert.deepEqual(await listed(page, all.body.total), [...names].sort().reverse());

  // A tenant that keeps trapping is quarantined: the list says so, and its page says why.
  for (let i = 0; i < 5; i++) {
    const fragile = io(`${URL}/fragile`, { transports: ["websocket"], forceNew: true, reconnection: false });
    await new Promise((resolve, reject) => {
      fragile.on("connect", resolve);
      fragile.on("connect_error", reject);
    });
    const gone = new Promise((resolve) => fragile.on("disconnect", resolve));
    fragile.emit("boom");
    await gone;
    fragile.close();
  }
  await shows(page, '#tenants tr[data-tenant="fragile"]', "quarantined");
  await page.click('#tenants tr[data-tenant="fragile"] a');
  await shows(page, "#summary", "quarantined");
  await shows(page, "#log", "quarantined after 5 faults, until a new version is uploaded");
  await shows(page, "#summary", "trap ×5");
  await shot("quarantined");
  await page.click("header h1 a");
  await listed(page, all.body.total);

  // A tenant name is letters, digits and _ only: markup in one, in the address or the
  // form, opens nothing and runs nothing.
  const markupName = "<img src=x onerror=pwned=3>";
  await page.goto(`${ADMIN_URL}/#/tenants/${encodeURIComponent(markupName)}`, { waitUntil: "domcontentloaded" });
  await shows(page, "#who", "operator");
  assert.equal(await page.$eval("#tenant-view", (view) => view.hidden), true);
  await listed(page, all.body.total);
  await page.type("#open-tenant input[name=name]", markupName);
  await page.keyboard.press("Enter");
  assert.equal(await page.$eval("#open-tenant input[name=name]", (input) => input.validity.valid), false);
  assert.equal(await page.$eval("#tenant-view", (view) => view.hidden), true);
  await page.$eval("#open-tenant input[name=name]", (input) => (input.value = ""));
  assert.equal((await fetch(`${ADMIN_URL}/v1/tenants/${encodeURIComponent(markupName)}`, { headers: { authorization: `Bearer ${OPERATOR}` } })).status, 400);
  assert.equal(await page.evaluate(() => window.pwned), undefined);

  // A new tenant: deploy a component and watch it go live.
  await page.type("#open-tenant input[name=name]", "gallery");
  await page.keyboard.press("Enter");
  await shows(page, "#tenant-name", "gallery");
  await shows(page, "#tenant-missing", "No such tenant");
  const chooser = await page.waitForSelector("#component");
  await chooser.uploadFile(wasm("echo"));
  await shows(page, "#deploy-status", "Version 1 is live");
  await shows(page, "#summary", "live version");
  await shows(page, '#versions tr[data-version="1"]', "live");

  // The next version, then a refused upload whose error names the import.
  await (await page.$("#component")).uploadFile(wasm("chat"));
  await shows(page, "#deploy-status", "Version 2 is live");
  await shows(page, '#versions tr[data-version="2"]', "live");
  await (await page.$("#component")).uploadFile(process.env.FORBIDDEN_COMPONENT);
  await shows(page, "#deploy-status", "forbidden_import");
  await shows(page, "#deploy-status", "wasi:http/outgoing-handler");
  await shot("refused");

  // Markup a client gets into the tenant's log (the chat logs who connected) and into
  // its storage (its history) is shown as text.
  const attack = "<img src=x onerror=pwned=1>";
  const client = io(`${URL}/gallery`, { auth: { nickname: attack }, transports: ["websocket"] });
  t.after(() => client.close());
  await new Promise((resolve, reject) => {
    client.on("welcome", resolve);
    client.on("connect_error", reject);
  });
  await shows(page, "#log", `${attack} connected`);
  const sent = await client.timeout(5000).emitWithAck("message", "#general", attack);
  assert.ok(sent.ok, JSON.stringify(sent));
  // Storage is read when asked (a page of values may be large): the history is there.
  await page.click("#kv-reload");
  await shows(page, "#kv", attack);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.evaluate(() => document.querySelectorAll("#log img, #kv img").length), 0);
  await shot("log");

  // Roll back to version 1: it is live again, and the log, followed, says so.
  await page.$eval('#versions tr[data-version="1"] button', (button) => button.click());
  await shows(page, '#versions tr[data-version="1"]', "live");
  await shows(page, "#log", "version 1 now serves");
  assert.equal((await api("GET", "/v1/tenants/gallery")).body.version, 1);
  client.close();

  // Its configuration: a value, and a secret shown masked.
  const setConfig = async (name, value, secret) => {
    await page.$eval("#config-form", (form) => form.reset());
    await page.type("#config-form input[name=name]", name);
    await page.type("#config-form input[name=value]", value);
    if (secret) await page.click("#config-form input[name=secret]");
    await page.click("#config-form button[name=set]");
    await shows(page, "#config-status", `Set ${name}.`);
  };
  await setConfig("greeting", "hello", false);
  await setConfig("api_key", "s3cret-value", true);
  await shows(page, "#config", "greeting");
  await shows(page, "#config", "api_key (secret)********");
  assert.ok(!(await page.$eval("#config", (dl) => dl.textContent)).includes("s3cret-value"));

  // Its own limits: the API's refusal comes back as text, markup and all; then a small
  // message limit is saved.
  const ownLimits = async (json) => {
    await page.$eval("#own-limits", (area) => (area.value = ""));
    await page.type("#own-limits", json);
    await page.click("#limits-form button[type=submit]");
  };
  const markupKey = "<img src=x onerror=pwned=2>";
  await ownLimits(JSON.stringify({ [markupKey]: 1 }));
  await shows(page, "#manage-status", `invalid_limits: unknown field \`${markupKey}\``);
  assert.equal(await page.evaluate(() => document.querySelectorAll("#manage-status img").length), 0);
  await ownLimits(JSON.stringify({ max_message_bytes: 200 }));
  await shows(page, "#manage-status", "Limits saved");
  await shows(page, "#limits", "max_message_bytes (own)200");

  // Traffic moves the tenant's charts; a message over the limit trips it, and the page
  // says which limit and when.
  const echo = io(`${URL}/gallery`, { auth: { token: "ok" }, transports: ["websocket"] });
  t.after(() => echo.close());
  await new Promise((resolve, reject) => {
    echo.on("connect", resolve);
    echo.on("connect_error", reject);
  });
  const moving = () => page.$eval('#tenant-charts figure[data-chart="events"]', (figure) => Number(figure.dataset.in || 0) > 0);
  // Traffic until a sample (every 2 s) has seen some: bounded by time, not by a count
  // of echoes, which may all fall between two samples.
  const until = Date.now() + 20_000;
  while (!(await moving()) && Date.now() < until) await echo.timeout(5000).emitWithAck("echo", "tick");
  assert.ok(await moving(), "the events chart never moved");
  assert.ok(await page.$eval('#tenant-charts figure[data-chart="events"] polyline', (line) => line.getAttribute("points").includes(",")));
  await shows(page, '#tenant-charts figure[data-chart="cpu"] figcaption', "p50");
  echo.timeout(5000).emitWithAck("echo", "x".repeat(500)).catch(() => {});
  await shows(page, "#trips", "message-size", 20_000);
  await shot("charts");
  assert.equal(await page.evaluate(() => window.pwned), undefined);

  // A deploy token minted here, shown once; with it the console shows its tenant only.
  await page.click("#mint");
  await page.waitForFunction(() => document.querySelector("#minted").value.startsWith("nsbox_"), { polling: 50 });
  const minted = await page.$eval("#minted", (input) => input.value);
  await page.click("#signout");
  await page.waitForSelector("#signin input[name=token]", { visible: true });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("nsbox-console-token")), null);
  await page.type("#signin input[name=token]", minted);
  await page.keyboard.press("Enter");
  await shows(page, "#who", "tenant gallery");
  assert.deepEqual(await listed(page, 1), ["gallery"]);
  assert.equal(await page.$eval("#open-tenant", (form) => form.hidden), true);
  assert.equal(await page.$eval("#host-charts", (box) => box.hidden), true);
  await page.click('#tenants tr[data-tenant="gallery"] a');
  await shows(page, "#tenant-name", "gallery");
  assert.equal(await page.$eval("#manage", (box) => box.hidden), true);
  // The tenant's author deploys: the live version's bytes again change nothing, new
  // bytes are the next version.
  await (await page.$("#component")).uploadFile(wasm("echo"));
  await shows(page, "#deploy-status", "Unchanged: version 1 is these bytes");
  await (await page.$("#component")).uploadFile(wasm("chat"));
  await shows(page, "#deploy-status", "Version 3 is live");
  await shows(page, '#versions tr[data-version="3"]', "live");
  await shows(page, "#log", "version 3 now serves");
  await shot("tenant-token");

  // The operator deletes the tenant, once they say so.
  await page.click("#signout");
  await page.waitForSelector("#signin input[name=token]", { visible: true });
  await page.type("#signin input[name=token]", OPERATOR);
  await page.keyboard.press("Enter");
  await shows(page, "#who", "operator");
  await page.goto(`${ADMIN_URL}/#/tenants/gallery`, { waitUntil: "domcontentloaded" });
  await shows(page, "#summary", "live version");
  page.once("dialog", (dialog) => dialog.accept());
  await page.click("#delete");
  await page.waitForFunction(() => location.hash === "#/", { polling: 50 });
  assert.equal((await api("GET", "/v1/tenants/gallery")).status, 404);
  assert.deepEqual((await listed(page, all.body.total)).sort(), [...names].sort());
  assert.deepEqual(errors, []);
});
