"""Read and write quorums (docs/PROTOCOL.md "Replication, quorums and failover"), through nginx with real
processes; each scenario runs its own one-shard cluster.

  - W + R > N: N = 3 secondaries (cluster.replicas = 4), W = R = 2, policies
    `ordered` and `any`: while one secondary is paused with SIGSTOP and
    writes go on, no read started after an acknowledged write returns an
    older version. Every read of the concurrent workload is checked.
  - W = 1, R = 1 with a lagging secondary: a read can return an older
    version than an acknowledged write (the same check fails).
  - Read repair: a stale secondary (its replication stream held back by
    store.repl_delay_ms, reconciliation off) is repaired by the first quorum
    read that covers it, values and tombstones. (Pausing it during a write
    does not make it reliably stale: on SIGCONT it first applies the batch
    the primary sent while it was stopped, before any read gets there.)
  - R answers are required (503 quorum_unavailable naming answered and
    required), none has the key: 404; R = 0 falls back to a secondary when
    the primary does not answer.
"""

import collections
import random
import threading
import time
import uuid

from cluster import (assert_json_error, encode_wire_op, json_of, own_cluster, quote_key,
                     request, wait_until)

TEST_TIMEOUT = 240
NO_RECONCILE_MS = 3600000     # reconciliation out of the way


def config(replicas, w, r, policy, **more):
    cfg = {
        "cluster": {"shards": 1, "replicas": replicas, "write_quorum": w,
                    "read_quorum": r, "quorum_policy": policy},
        # a paused secondary must not hold a read or a write long
        "api": {"upstream_timeout_ms": 500},
        "store": {"quorum_timeout_ms": 1000},
        "queue": {"wait_max_ms": 5000},
        # the tests pause secondaries only; no failover of the primary
        "controller": {"failover_after_ms": 60000},
    }
    for k, v in more.items():
        cfg.setdefault(k.split(".")[0], {})[k.split(".")[1]] = v
    return cfg


def kv_url(cl, key):
    return "%s/kv/%s" % (cl.nginx, quote_key(key))


def put_sync(cl, key, value, timeout=15):
    st, _, body = request("PUT", kv_url(cl, key) + "?sync=1", body=value, timeout=timeout)
    return st, (json_of(body) if st in (200, 202) else body)


class Workload:
    """Writers (PUT ?sync=1) and readers (GET) on a few keys through nginx.
    Records every acknowledged write (key, version, t_ack) and every read
    (key, t_start, status, version)."""

    def __init__(self, cl, keys, writers=2, readers=3):
        self.cl, self.keys = cl, keys
        self.acks, self.reads = [], []
        self.write_fail = collections.Counter()
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.writer, args=(i,), daemon=True)
                        for i in range(writers)]
        self.threads += [threading.Thread(target=self.reader, args=(i,), daemon=True)
                         for i in range(readers)]

    def writer(self, wid):
        rng, i = random.Random(wid), 0
        while not self.stop_ev.is_set():
            key = rng.choice(self.keys)
            i += 1
            try:
                st, body = put_sync(self.cl, key, b"w%d-%d" % (wid, i))
            except Exception as e:  # noqa: BLE001 -- not acknowledged
                st, body = type(e).__name__, None
            t = time.monotonic()
            with self.lock:
                if st == 200:
                    self.acks.append((key, int(body["version"]), t))
                else:
                    self.write_fail[st] += 1

    def reader(self, rid):
        rng = random.Random(1000 + rid)
        while not self.stop_ev.is_set():
            key = rng.choice(self.keys)
            t0 = time.monotonic()
            try:
                st, hd, _ = request("GET", kv_url(self.cl, key), timeout=10)
                ver = int(hd.get("X-KV-Version") or 0)
            except Exception as e:  # noqa: BLE001 -- recorded
                st, ver = type(e).__name__, 0
            with self.lock:
                self.reads.append((key, t0, st, ver, time.monotonic()))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads)


def stale_reads(acks, reads):
    """Every read that started after an acknowledged write of its key and
    returned an older version (or nothing). [(key, read version, acked
    version)]."""
    by_key = collections.defaultdict(list)
    for key, ver, t in acks:
        by_key[key].append((t, ver))
    for v in by_key.values():
        v.sort()
    bad = []
    for key, t0, st, ver, _ in reads:
        if st not in (200, 404):
            continue
        need = max((v for t, v in by_key.get(key, ()) if t < t0), default=0)
        if need and (st != 200 or ver < need):
            bad.append((key, ver, need))
    return bad


def quorum_holds_while_paused(policy, paused_replica):
    with own_cluster(config(4, 2, 2, policy), "quorum-w2r2-" + policy) as cl:
        cl.wait_stores_settled()
        keys = ["q-%s-%d" % (uuid.uuid4().hex[:6], i) for i in range(8)]
        for k in keys:
            st, body = put_sync(cl, k, b"init")
            assert st == 200, (st, body)
        wl = Workload(cl, keys).start()
        try:
            time.sleep(0.5)   # load before the fault (not an assertion)
            name = cl.store_name(0, paused_replica)
            cl.pause(name)
            t_pause = time.monotonic()
            n_acks = len(wl.acks)
            cl.wait_until(lambda: len(wl.acks) >= n_acks + 30, 30,
                          "30 acknowledged writes while %s is paused" % name)
            cl.wait_until(lambda: sum(1 for r in wl.reads if r[1] > t_pause) >= 100, 30,
                          "100 reads while %s is paused" % name)
            # keep it paused past the store's liveness window (2 s), so that
            # the sync set changes too (not an assertion)
            time.sleep(max(0.0, 3.0 - (time.monotonic() - t_pause)))
            t_resume = time.monotonic()
            cl.resume(name)
            time.sleep(0.5)   # load after the fault (not an assertion)
        finally:
            wl.stop()
        during = [r for r in wl.reads if t_pause < r[1] < t_resume]
        ok = [r for r in wl.reads if r[2] in (200, 404)]
        bad = stale_reads(wl.acks, wl.reads)
        print("    (%s: %d writes acknowledged, %d not %s; %d reads, %d while paused, "
              "%d answered)" % (policy, len(wl.acks), sum(wl.write_fail.values()),
                                dict(wl.write_fail), len(wl.reads), len(during), len(ok)))
        assert not bad, "%d reads returned an older version than an acknowledged write " \
            "(W=R=2, N=3, %s), e.g. %r" % (len(bad), policy, bad[:5])
        others = collections.Counter(r[2] for r in wl.reads if r[2] not in (200, 404))
        assert len(ok) >= 0.95 * len(wl.reads), \
            "too many reads without an answer: %r of %d" % (dict(others), len(wl.reads))
        checked = sum(1 for key, t0, st, ver, _ in wl.reads
                      if any(k == key and t < t0 for k, _, t in wl.acks))
        assert checked >= 100, "only %d reads followed an acknowledged write" % checked


def test_w2_r2_n3_ordered_no_stale_read_while_secondary_paused():
    # ordered: sync set = first 2 live by id {1,2}, read set = last 2 {3,2}:
    # replica 2 is in both
    quorum_holds_while_paused("ordered", 2)


def test_w2_r2_n3_any_no_stale_read_while_secondary_paused():
    quorum_holds_while_paused("any", 3)


def test_w1_r1_lagging_secondary_reads_stale():
    """W = 1, R = 1, ordered: writes are acknowledged by replica 1 (the sync
    set), reads go to replica 3 (the read set). The same concurrent workload
    and check as above, while replica 3 lags (paused and resumed a few
    times: after each resume it serves reads while it catches up): reads
    that started after an acknowledged write return older versions, so the
    check fails (W + R = 2 is not > N = 3)."""
    cfg = config(4, 1, 1, "ordered", **{"store.reconcile_interval_ms": NO_RECONCILE_MS})
    with own_cluster(cfg, "quorum-w1r1") as cl:
        cl.wait_stores_settled()
        keys = ["lag-%s-%d" % (uuid.uuid4().hex[:6], i) for i in range(8)]
        for k in keys:
            assert put_sync(cl, k, b"init")[0] == 200
        lagging = cl.store_name(0, 3)
        wl = Workload(cl, keys, writers=3, readers=3).start()
        bad = []
        try:
            for cycle in range(8):
                cl.pause(lagging)
                time.sleep(1.5)   # the fault (not an assertion)
                cl.resume(lagging)
                time.sleep(0.5)
                with wl.lock:
                    bad = stale_reads(list(wl.acks), list(wl.reads))
                if bad:
                    break
        finally:
            wl.stop()
        bad = stale_reads(wl.acks, wl.reads)
        print("    (W=1 R=1: %d of %d reads were older than an acknowledged write, "
              "after %d pause cycles)" % (len(bad), len(wl.reads), cycle + 1))
        assert bad, "no stale read with W=1, R=1 and a lagging secondary"


def test_read_repair_fixes_stale_secondary():
    """N = 2, R = 2: replica 2 is stale while replica 1 has the newest
    version, and neither the replication stream (store.repl_delay_ms holds
    every batch for 20 s) nor reconciliation (off) can fix it: the first
    quorum read returns the newest version and repairs replica 2 in the
    background (POST /internal/repair; its answer shows it changed the
    replica). Replica 1 gets the write the same way a repair would bring it,
    through POST /internal/repair (applied by version on any role)."""
    cfg = config(3, 0, 2, "ordered", **{"store.reconcile_interval_ms": NO_RECONCILE_MS,
                                        "store.repl_delay_ms": 20000})
    with own_cluster(cfg, "quorum-repair") as cl:
        cl.wait_stores_settled()
        key = "rr-%s" % uuid.uuid4().hex[:8]
        st, body = put_sync(cl, key, b"newest")
        assert st == 200, (st, body)
        ver = int(body["version"])
        r1, r2 = cl.stores[0][1], cl.stores[0][2]

        def on(url):
            s2, h2, b2 = cl.internal("GET", url + "/internal/kv/" + quote_key(key))
            return s2, int(h2.get("X-KV-Version") or 0), b2
        assert on(r2)[0] == 404, "replica 2 got the write already: %r" % (on(r2),)
        hdrs = {"Content-Type": "application/octet-stream",
                "X-KV-Epoch": str(cl.shard_topology(0)["epoch"])}
        st, _, res = cl.internal("POST", r1 + "/internal/repair",
                                 body=encode_wire_op(1, key, b"newest", version=ver),
                                 headers=hdrs)
        assert st == 200, (st, res[:200])
        assert on(r1) == (200, ver, b"newest")

        applied0 = cl.api_metric("kv_api_read_repairs_applied_total")
        st, hd, got = request("GET", kv_url(cl, key), timeout=10)
        assert st == 200 and got == b"newest", (st, got)
        assert int(hd.get("X-KV-Version")) == ver
        assert hd.get("X-KV-Served-By") == r1, dict(hd)
        q = hd.get("X-KV-Quorum", "")
        assert "answered=2" in q and "required=2" in q and "repairs=1" in q, q
        wait_until(lambda: on(r2) == (200, ver, b"newest"), 5,
                   "the read repair to bring replica 2 the newest version")
        wait_until(lambda: cl.api_metric("kv_api_read_repairs_applied_total") > applied0,
                   5, "the api to count the repair as applied")
        # a second read finds both replicas current: nothing to repair
        st, hd, got = request("GET", kv_url(cl, key), timeout=10)
        assert st == 200 and "repairs=0" in hd.get("X-KV-Quorum", ""), dict(hd)

        # a tombstone is repaired too: delete on the primary, bring the
        # tombstone to replica 1 only, read
        st, _, body = request("DELETE", kv_url(cl, key) + "?sync=1")
        assert st == 200, (st, body)
        dver = int(json_of(body)["version"])
        st, _, res = cl.internal("POST", r1 + "/internal/repair",
                                 body=encode_wire_op(2, key, version=dver), headers=hdrs)
        assert st == 200, (st, res[:200])
        st, hd, got = request("GET", kv_url(cl, key), timeout=10)
        assert st == 404, (st, got)
        assert "repairs=1" in hd.get("X-KV-Quorum", ""), dict(hd)
        wait_until(lambda: on(r2)[:2] == (404, dver), 5,
                   "the read repair to bring replica 2 the tombstone")


def test_quorum_unavailable_and_not_found():
    """N = 2, R = 2: one secondary paused -> 503 quorum_unavailable with
    answered 1, required 2; both answer and neither has the key -> 404."""
    with own_cluster(config(3, 0, 2, "any"), "quorum-503") as cl:
        cl.wait_stores_settled()
        key = "qa-%s" % uuid.uuid4().hex[:8]
        r = request("GET", kv_url(cl, key))
        assert_json_error(r, 404, what="GET of a key no replica has")
        assert put_sync(cl, key, b"x")[0] == 200
        wait_until(lambda: request("GET", kv_url(cl, key))[0] == 200, 10,
                   "the key to reach both secondaries")
        cl.pause(cl.store_name(0, 1))
        try:
            r = request("GET", kv_url(cl, key), timeout=10)
            j = assert_json_error(r, 503, "quorum_unavailable", what="R=2 with one secondary paused")
            assert j.get("answered") == 1 and j.get("required") == 2, j
            assert r[1].get("Retry-After"), dict(r[1])
        finally:
            cl.resume(cl.store_name(0, 1))
        wait_until(lambda: request("GET", kv_url(cl, key))[0] == 200, 10, "reads to work again")


def test_r0_falls_back_to_secondary():
    """R = 0 reads the primary; when the primary does not answer, a
    secondary serves the read and X-KV-Served-By says so."""
    with own_cluster(config(2, 1, 0, "any"), "quorum-r0") as cl:
        cl.wait_stores_settled()
        key = "r0-%s" % uuid.uuid4().hex[:8]
        assert put_sync(cl, key, b"val")[0] == 200
        st, hd, body = request("GET", kv_url(cl, key))
        assert st == 200 and hd.get("X-KV-Served-By") == cl.stores[0][0], dict(hd)
        cl.pause(cl.store_name(0, 0))
        try:
            st, hd, body = request("GET", kv_url(cl, key), timeout=10)
            assert st == 200 and body == b"val", (st, body)
            by = hd.get("X-KV-Served-By", "")
            assert by.startswith(cl.stores[0][1]) and "fallback" in by, by
            st, hd, body = request("GET", kv_url(cl, key), timeout=10,
                                   headers={"Accept": "application/json"})
            assert st == 200 and "fallback" in json_of(body)["served_by"], body
        finally:
            cl.resume(cl.store_name(0, 0))
