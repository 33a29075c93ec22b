'use strict';
// The infrastructure's own check: load args.url, wait until args.ready (an
// expression in the page, default: the document has loaded) holds, then fail
// on any error the page recorded. Optional args.screenshot: a PNG path.
const { launch, openPage, waitFor, screenshot, main } = require('./lib');

main(async (args) => {
  if (!args.url) throw new Error('smoke.js needs {"url": ...}');
  const browser = await launch();
  const page = await openPage(browser, args.url);
  const ready = args.ready || "document.readyState === 'complete'";
  await waitFor(page, ready, args.ready_ms || 10000, `the page to be ready (${ready})`);
  if (args.screenshot) await screenshot(page, args.screenshot);
  if (page.kvErrors.length) {
    throw new Error(`${args.url} recorded ${page.kvErrors.length} error(s):\n  ${page.kvErrors.join('\n  ')}`);
  }
});
