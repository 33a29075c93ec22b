'use strict';
// The lab view of the dashboard (ui/), served by kv-controller --lab on
// :7000, against a real lab the Python side started (test_lab.py: two
// followers, W = 2, auto-spawn). Arguments: url (http://127.0.0.1:7000/ui/),
// shots (the screenshots' directory). Every step is a click on the page.
const path = require('path');
const { launch, openPage, waitFor, screenshot, main } = require('./lib');

const card = (id) => {
  const c = document.querySelector(`#nodes [data-node="${id}"]`);
  const w = document.querySelector('[data-metric="can_write"] .value');
  return c && { status: c.dataset.status, inc: Number(c.dataset.incarnation),
                canWrite: w && w.textContent };
};

main(async (a) => {
  const browser = await launch();
  const page = await openPage(browser, a.url);

  await waitFor(page, () => document.querySelectorAll('#nodes [data-node][data-status="alive"]').length === 3,
                30000, 'the leader and both followers alive');
  await waitFor(page, () => document.querySelectorAll('#events li').length > 0, 10000, 'the events');
  await screenshot(page, path.join(a.shots, 'dashboard-lab.png'));
  const before = await page.evaluate(card, 'follower-1');

  // Kill follower-1: its card turns dead and, with W = 2 of 2, writes stop.
  await page.click('#nodes [data-node="follower-1"] [data-action="kill"]');
  await waitFor(page, () => {
    const c = document.querySelector('#nodes [data-node="follower-1"]');
    const w = document.querySelector('[data-metric="can_write"] .value');
    return c && c.dataset.status === 'dead' && w && w.textContent === 'no';
  }, 15000, 'follower-1 dead and can_write no');
  await screenshot(page, path.join(a.shots, 'dashboard-lab-killed.png'));
  // Auto-spawn brings a new incarnation, and writes come back.
  const back = await waitFor(page, (inc) => {
    const c = document.querySelector('#nodes [data-node="follower-1"]');
    const w = document.querySelector('[data-metric="can_write"] .value');
    return c && Number(c.dataset.incarnation) > inc && c.dataset.status === 'alive' &&
           w && w.textContent === 'yes' && Number(c.dataset.incarnation);
  }, 30000, 'a new incarnation of follower-1, alive, and can_write yes', before.inc);
  console.log(`follower-1: incarnation ${before.inc} killed, ${back} alive`);

  // Pause follower-2 (2 s): the card says paused, then alive again.
  await page.click('#nodes [data-node="follower-2"] [data-action="pause"]');
  await waitFor(page, () => {
    const c = document.querySelector('#nodes [data-node="follower-2"]');
    return c && c.dataset.status === 'paused';
  }, 5000, 'follower-2 paused');
  await screenshot(page, path.join(a.shots, 'dashboard-lab-paused.png'));
  await waitFor(page, () => {
    const c = document.querySelector('#nodes [data-node="follower-2"]');
    const w = document.querySelector('[data-metric="can_write"] .value');
    return c && c.dataset.status === 'alive' && w && w.textContent === 'yes';
  }, 30000, 'follower-2 alive again after its pause');

  // A write and a read from the page: the version, then served_by.
  await page.$eval('#lab-key', (e) => { e.value = ''; });
  await page.type('#lab-key', 'cart:ui');
  await page.$eval('#lab-value', (e) => { e.value = ''; });
  await page.type('#lab-value', 'apple');
  await page.click('[data-action="write"]');
  const wrote = await waitFor(page, () => {
    const t = document.getElementById('lab-out').textContent;
    return t.startsWith('200 /write') && /"version":\s*\d+/.test(t) && t;
  }, 20000, 'the write answered with its version');
  const version = Number(/"version":\s*(\d+)/.exec(wrote)[1]);
  await page.click('[data-action="read"]');
  const read = await waitFor(page, () => {
    const t = document.getElementById('lab-out').textContent;
    return t.startsWith('200 GET /read/') && /"served_by"/.test(t) && t;
  }, 20000, 'the read answered with served_by');
  const got = JSON.parse(read.slice(read.indexOf('\n') + 1));
  if (got.version !== version || got.value !== 'apple') {
    throw new Error(`read ${JSON.stringify(got)} after writing version ${version}`);
  }
  console.log(`write version ${version}, read served by ${got.served_by}`);
  await screenshot(page, path.join(a.shots, 'dashboard-lab-readwrite.png'));

  if (page.kvErrors.length) throw new Error(`page errors:\n${page.kvErrors.join('\n')}`);
});
