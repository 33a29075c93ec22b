'use strict';
// What the page tests share: Debian's Chromium under puppeteer-core, pages
// that keep their own errors, waits that poll instead of sleeping, and a
// main() that always ends, with the browser closed. No dependency beyond
// puppeteer-core and node's standard library.

const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const WIDTH = 1280;
const HEIGHT = 800;
// One bound for starting the browser, for any single DevTools call and for a
// navigation: long enough for a loaded 2-core machine, short enough that a
// hung browser fails its test well before the Python side's timeout.
const STEP_MS = 30000;

const browsers = new Set(); // what main() must close, however it ends

async function launch() {
  const browser = await puppeteer.launch({
    // No browser download is reachable: always Debian's package.
    executablePath: process.env.KV_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Over a pipe, Chromium exits on its own when node dies, even by SIGKILL,
    // and no DevTools port is left open on the machine.
    pipe: true,
    args: [
      '--no-sandbox', // the tests run as root, where the sandbox refuses to start
      '--disable-gpu',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-dev-shm-usage', // /dev/shm is small in containers
      `--window-size=${WIDTH},${HEIGHT}`,
    ],
    defaultViewport: { width: WIDTH, height: HEIGHT },
    timeout: STEP_MS,
    protocolTimeout: STEP_MS,
  });
  browsers.add(browser);
  browser.once('disconnected', () => browsers.delete(browser));
  return browser;
}

async function openPage(browser, url) {
  const page = await browser.newPage();
  await page.setViewport({ width: WIDTH, height: HEIGHT });
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);
  // Listeners go on before the navigation so that nothing the first script
  // does is missed. Chromium itself logs a console error for every resource
  // that answers 4xx/5xx, so those are caught here too.
  const errors = [];
  page.kvErrors = errors;
  page.on('console', (msg) => {
    const at = msg.location() || {};
    if (msg.type() !== 'error' || isFavicon(at.url)) return;
    const line = at.lineNumber !== undefined ? `:${at.lineNumber + 1}` : '';
    errors.push(`console.error: ${msg.text()}` + (at.url ? ` (${at.url}${line})` : ''));
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err && err.message ? err.message : err}`));
  page.on('requestfailed', (req) => {
    if (isFavicon(req.url())) return;
    const why = req.failure() ? req.failure().errorText : 'failed';
    errors.push(`request failed: ${req.method()} ${req.url()}: ${why}`);
  });
  const resp = await page.goto(url, { waitUntil: 'load' });
  if (!resp) throw new Error(`no response for ${url}`);
  if (!resp.ok()) throw new Error(`${url} answered HTTP ${resp.status()}`);
  return page;
}

// Chromium asks every origin for /favicon.ico on its own; its 404 says
// nothing about the page under test.
function isFavicon(url) {
  try {
    return new URL(url).pathname === '/favicon.ico';
  } catch (e) {
    return false;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function show(v) {
  let s;
  try {
    s = JSON.stringify(v);
  } catch (e) {
    s = String(v);
  }
  if (s === undefined) s = String(v);
  return s.length > 300 ? s.slice(0, 300) + '...' : s;
}

// page === null runs fn in node; otherwise fn (a function or an expression
// string) runs in the page with args. Returns fn's first truthy value.
async function waitFor(page, fn, timeoutMs, what, ...args) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let interval = 20;
  for (;;) {
    try {
      const v = page ? await page.evaluate(fn, ...args) : await fn(...args);
      if (v) return v;
      last = v;
    } catch (e) {
      // A page mid-navigation throws for a moment; a closed one never recovers.
      if (page && page.isClosed()) throw new Error(`page closed while waiting for ${what}`);
      last = `${e.name}: ${e.message}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${show(last)})`);
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
    interval = Math.min(interval * 2, 250);
  }
}

async function screenshot(page, file) {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  await page.screenshot({ path: file, type: 'png' });
  return file;
}

async function closeAll() {
  // A browser that does not close in time is killed by puppeteer's exit
  // handler when the process exits right after.
  await Promise.race([
    Promise.allSettled([...browsers].map((b) => b.close())),
    sleep(5000),
  ]);
}

function main(fn) {
  let ended = false;
  const end = async (err) => {
    if (ended) return;
    ended = true;
    await closeAll();
    if (err) {
      console.error((err && err.stack) || `Error: ${err}`);
      process.exit(1);
    }
    console.log('ok');
    process.exit(0);
  };

  let args;
  try {
    args = JSON.parse(process.argv[2] || '{}');
    if (args === null || typeof args !== 'object' || Array.isArray(args)) {
      throw new Error('not a JSON object');
    }
  } catch (e) {
    console.error(`error: the argument must be a JSON object (${e.message}): ${process.argv[2]}`);
    process.exit(1);
  }
  const timeoutMs = args.timeout_ms || 60000;
  // Not unref'd: it also keeps node alive, which would otherwise exit 0
  // without "ok" when fn awaits a promise that nothing will ever settle.
  setTimeout(() => end(new Error(`not done within the deadline of ${timeoutMs} ms (timeout_ms)`)),
    timeoutMs);
  process.on('SIGTERM', () => end(new Error('terminated (SIGTERM)')));
  process.on('SIGINT', () => end(new Error('interrupted (SIGINT)')));
  process.on('unhandledRejection', (e) => end(e));
  process.on('uncaughtException', (e) => end(e));
  Promise.resolve()
    .then(() => fn(args))
    .then(() => end(null), (e) => end(e));
}

module.exports = { launch, openPage, waitFor, screenshot, main, WIDTH, HEIGHT };
