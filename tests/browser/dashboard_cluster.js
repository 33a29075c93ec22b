'use strict';
// The cluster view of the dashboard (ui/), against a real cluster the
// Python side started (tests/integration/test_ui.py). Arguments:
//   url        the dashboard, http://<controller>/ui/
//   nginx      the cluster's public address, for the burst of writes
//   shards     [{id, replicas}] the page must show
//   kill_pid   the pid of shard 0's primary: SIGKILLed, the page must show
//              the new primary, the new epoch and the failover, unreloaded
//   pause_pid  the pid of another shard's primary: SIGSTOPped during a
//              burst of writes, which the queue's depth and rate show
//   shots      the directory screenshots go to
const path = require('path');
const { launch, openPage, waitFor, screenshot, main } = require('./lib');

const shardState = (id) => {
  const c = document.querySelector(`#shards [data-shard="${id}"]`);
  return c && { primary: c.dataset.primary, epoch: Number(c.dataset.epoch),
                rows: c.querySelectorAll('tbody tr').length,
                alive: c.querySelectorAll('tbody tr[data-alive="1"]').length };
};

async function burst(nginx, n, prefix) {
  let next = 0, failed = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const r = await fetch(`${nginx}/kv/${prefix}${i}`, { method: 'PUT', body: 'v' });
      if (r.status !== 202 && r.status !== 200) failed++;
      await r.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  if (failed) throw new Error(`${failed} of ${n} burst writes were refused`);
}

main(async (a) => {
  const browser = await launch();
  const page = await openPage(browser, a.url);

  // Every shard and replica, all alive.
  for (const sh of a.shards) {
    await waitFor(page, (id, n) => {
      const c = document.querySelector(`#shards [data-shard="${id}"]`);
      return c && c.querySelectorAll('tbody tr[data-alive="1"]').length === n;
    }, 20000, `shard ${sh.id} with ${sh.replicas} live replicas`, sh.id, sh.replicas);
  }
  const shown = await page.evaluate(() => document.querySelectorAll('#shards [data-shard]').length);
  if (shown !== a.shards.length) throw new Error(`${shown} shards shown, want ${a.shards.length}`);
  await screenshot(page, path.join(a.shots, 'dashboard-cluster.png'));

  // SIGKILL shard 0's primary: a new primary and epoch, and the event.
  const before = await page.evaluate(shardState, 0);
  process.kill(a.kill_pid, 'SIGKILL');
  const after = await waitFor(page, (id, was, epoch) => {
    const c = document.querySelector(`#shards [data-shard="${id}"]`);
    const ev = document.querySelector('#events li[data-kind="failover"]');
    return c && c.dataset.primary && c.dataset.primary !== was &&
           Number(c.dataset.epoch) > epoch && ev &&
           { primary: c.dataset.primary, epoch: Number(c.dataset.epoch), event: ev.textContent };
  }, 30000, 'the new primary of shard 0 and the failover event', 0, before.primary, before.epoch);
  console.log(`failover shown: ${before.primary} -> ${after.primary}, epoch ${before.epoch} -> ` +
              `${after.epoch}: ${after.event}`);
  await screenshot(page, path.join(a.shots, 'dashboard-failover.png'));

  // A burst of writes while another shard's primary is paused: they wait
  // in the queue, and the depth and the admitted rate show it.
  process.kill(a.pause_pid, 'SIGSTOP');
  try {
    await burst(a.nginx, a.burst || 2000, `burst-${Date.now()}-`);
    await waitFor(page, () => Math.max(...window.kvSeries('q.main')) > 0 &&
                  Math.max(...window.kvSeries('q.admitted')) > 0,
                  20000, 'the burst in the queue depth and admitted charts');
    await screenshot(page, path.join(a.shots, 'dashboard-burst.png'));
  } finally {
    process.kill(a.pause_pid, 'SIGCONT');
  }
  await waitFor(page, () => {
    const m = document.querySelector('[data-metric="MAIN depth"] .value');
    return m && m.textContent === '0';
  }, 30000, 'the queue to drain after the burst');

  if (page.kvErrors.length) throw new Error(`page errors:\n${page.kvErrors.join('\n')}`);
});
