'use strict';
// Keeps one dashboard page open for hold_s seconds (tests/bench/ui_cost.py
// measures what it costs): prints "open" once the page has polled twice.
const { launch, openPage, waitFor, main } = require('./lib');

main(async (a) => {
  const browser = await launch();
  const page = await openPage(browser, a.url);
  await waitFor(page, () => Number(document.body.dataset.polls || 0) >= 2, 20000, 'two polls');
  console.log('open');
  await new Promise((resolve) => setTimeout(resolve, a.hold_s * 1000));
  if (page.kvErrors.length) throw new Error(page.kvErrors.join('\n'));
});
