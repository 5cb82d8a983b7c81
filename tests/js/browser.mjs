// Headless Chromium for the browser suites: the distribution's package, driven by
// puppeteer-core; screenshots go to ARTIFACTS_DIR when the harness gives one.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.ARTIFACTS_DIR;

/** A browser closed when the test `t` ends. */
export async function launch(t) {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root in a container: no sandbox of Chromium's own (the pages are ours).
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  t.after(() => browser.close());
  return browser;
}

/** Resolves once the element `selector`'s text has `text` in it; else says what it shows. */
export async function shows(page, selector, text, timeout = 20_000) {
  try {
    // Polled by time: a page in the background gets no animation frames.
    await page.waitForFunction((sel, wanted) => document.querySelector(sel)?.textContent.includes(wanted), { timeout, polling: 50 }, selector, text);
  } catch (error) {
    const shown = await page.evaluate((sel) => document.querySelector(sel)?.textContent, selector);
    throw new Error(`${selector} never showed ${JSON.stringify(text)}; it shows ${JSON.stringify(shown)}`, { cause: error });
  }
}

/** Saves a screenshot of `page` as `name`.png among the artifacts, if they are kept. */
export async function screenshot(page, name) {
  if (!ARTIFACTS) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
