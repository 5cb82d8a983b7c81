// The demo page at `/` (what `nsbox serve` shows a newcomer) in headless Chromium (the
// distribution's package, driven by puppeteer-core): the page loads the official client
// from the server itself, echoes through the `t1` tenant, and two visitors chat through
// the `acme` tenant; what one of them sends as markup shows as text. Screenshots go to
// ARTIFACTS_DIR.
import { test } from "node:test";
import assert from "node:assert/strict";
import { URL } from "./helpers.mjs";
import { launch, shows, screenshot } from "./browser.mjs";

/** Types `text` into the form `form`'s input `name` and sends it with Enter. */
async function submit(page, form, name, text) {
  const input = await page.waitForSelector(`#${form} input[name=${name}]:not([disabled])`, { visible: true, timeout: 20_000 });
  await input.type(text);
  await input.press("Enter");
}

test("the demo page in Chromium: echo through a tenant, and two visitors chatting", { timeout: 120_000 }, async (t) => {
  const browser = await launch(t);
  const open = async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 800 });
    const elsewhere = [];
    // What the page says of itself, shown if the test fails.
    page.on("console", (message) => t.diagnostic(`page: ${message.text()}`));
    page.on("pageerror", (error) => t.diagnostic(`page error: ${error.message}`));
    page.on("request", (req) => {
      if (!req.url().startsWith(URL) && !req.url().startsWith(URL.replace("http", "ws"))) elsewhere.push(req.url());
    });
    await page.goto(`${URL}/`, { waitUntil: "domcontentloaded" });
    return { page, elsewhere };
  };
  const shot = (page, name) => screenshot(page, `demo-${name}`);
  const alice = await open();
  const bob = await open();
  for (const { page } of [alice, bob]) {
    // The client came from this server, and the echo tenant let the page in.
    assert.equal(await page.evaluate(() => typeof io), "function");
    await shows(page, "#echo-status", "Connected");
  }

  // Echo: the answer comes back through the tenant's sandbox.
  await submit(alice.page, "ask", "text", "hello sandbox");
  await shows(alice.page, "#echoes", "hello sandbox");

  // Chat between the two.
  await submit(alice.page, "join", "nickname", "alice");
  await shows(alice.page, "#chat-status", "Joined as alice");
  await submit(bob.page, "join", "nickname", "bob");
  await shows(bob.page, "#chat-status", "Joined as bob");
  await shows(bob.page, "#members", "alice");
  await shows(alice.page, "#members", "bob");
  await submit(alice.page, "say", "text", "hi bob");
  await shows(bob.page, "#messages", "hi bob");

  // Markup from another visitor is shown as text and runs nothing.
  const attack = `<img src=x onerror="window.pwned=1">`;
  await submit(alice.page, "say", "text", attack);
  await shows(bob.page, "#messages", attack);
  assert.equal(await bob.page.evaluate(() => window.pwned), undefined);
  assert.equal(await bob.page.evaluate(() => document.querySelectorAll("#messages img").length), 0);

  // The sandbox button: the hostile tenant traps and is stopped; the chat goes on.
  // Clicked in the page: puppeteer's click waits for frames a background page does not get.
  await alice.page.$eval("#boom", (button) => button.click());
  await shows(alice.page, "#faults", "crash: trap");
  await submit(alice.page, "say", "text", "still here");
  await shows(bob.page, "#messages", "still here");
  await submit(alice.page, "ask", "text", "after the crash");
  await shows(alice.page, "#echoes", "after the crash");
  await shot(alice.page, "alice");
  await shot(bob.page, "bob");
  assert.deepEqual([...alice.elsewhere, ...bob.elsewhere], [], "nothing loaded from elsewhere");
});
