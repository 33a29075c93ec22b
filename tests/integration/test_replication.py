"""Replication, reconciliation, write quorum and fencing of the stores
(docs/PROTOCOL.md "Replication, quorums and failover"),
against real processes.

The module's cluster: 2 shards x primary + 2 secondaries, W = 0. Tests that
need another shape (W = 1, a fast failover) start their own cluster. Faults
are SIGKILL and SIGSTOP; every wait polls with a deadline.
"""

import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

from cluster import (WIRE_PUT, WriteLoad, assert_json_error, default_build, encode_wire_op,
                     get_json, json_of, keys_by_shard, own_cluster, pick_ports,
                     quote_key, request, wait_until)

CLUSTER_CONFIG = {
    "cluster": {"shards": 2, "replicas": 3},
    "store": {"reconcile_interval_ms": 500},
    "api": {"rate_limit": 0, "topology_poll_ms": 200},
    "queue": {"wait_max_ms": 10000},
}
TEST_TIMEOUT = 300


def ukey(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def shard_key(c, shard, prefix):
    """A fresh key that shard owns: stores answer 421 for the others."""
    return keys_by_shard(c, 1, ukey(prefix) + "-")[shard][0]


def put_sync(c, key, value, timeout=15):
    st, _, body = c.request("PUT", "/kv/%s?sync=1" % quote_key(key), body=value,
                            timeout=timeout)
    assert st == 200, "PUT %s?sync=1 -> %s %r" % (key, st, body[:200])
    return json_of(body)


def stats(url):
    st, _, body = request("GET", url + "/stats")
    assert st == 200, (url, st, body[:200])
    return json_of(body)


# --------------------------------------------------------------------------
# from the earlier test_api.py, back now that replication exists

def test_secondaries_converge(cluster):
    key = ukey("repl")
    put_sync(cluster, key, b"replicated")
    _, _, body = cluster.request("GET", "/ring?key=" + quote_key(key))
    r = json_of(body)
    assert r["secondaries"], r
    for sec in r["secondaries"]:
        wait_until(lambda sec=sec: cluster.internal("GET", sec + "/internal/kv/" + quote_key(key))[2]
                   == b"replicated", 15, "secondary %s to have %s" % (sec, key))


# --------------------------------------------------------------------------
# convergence

def test_convergence_10k_mixed_puts_and_deletes(cluster):
    """10 000 mixed puts and deletes through nginx from 16 threads; then every
    replica of every shard holds the same live records, and exactly the ones
    the writers left behind."""
    nthreads, per_thread, keys_per_thread = 16, 625, 40
    tag = uuid.uuid4().hex[:8]
    expected = {}           # key -> value bytes, or None when deleted last
    lock = threading.Lock()
    errors = []

    def writer(t):
        rng = random.Random(t)
        mine = ["cv-%s-%d-%d" % (tag, t, i) for i in range(keys_per_thread)]
        last = {}
        try:
            for i in range(per_thread):
                key = rng.choice(mine)
                url = "/kv/%s?sync=1" % quote_key(key)
                if key in last and last[key] is not None and rng.random() < 0.3:
                    st, _, body = cluster.request("DELETE", url, timeout=20)
                    val = None
                else:
                    val = ("%d-%d-%s" % (t, i, "x" * rng.randrange(0, 200))).encode()
                    st, _, body = cluster.request("PUT", url, body=val, timeout=20)
                if st != 200:
                    raise AssertionError("%s %s -> %s %r" % (
                        "DELETE" if val is None else "PUT", key, st, body[:200]))
                last[key] = val
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append("writer %d: %s" % (t, e))
        with lock:
            expected.update(last)

    t0 = time.monotonic()
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(240)
    assert not any(th.is_alive() for th in threads), "writers still running"
    assert not errors, errors[:5]
    took = time.monotonic() - t0
    print("    (10 000 writes through nginx in %.1f s)" % took)

    for s in range(cluster.shards):
        cluster.wait_parity(s, 60)
    live = {}
    for s in range(cluster.shards):
        data = cluster.shard_live_data(s)
        live.update(next(iter(data.values())))
    wrong = []
    for key, val in expected.items():
        got = live.get(key.encode())
        if val is None and got is not None:
            wrong.append("%s: deleted last but holds %r" % (key, got[1][:40]))
        elif val is not None and (got is None or got[1] != val):
            wrong.append("%s: wrote %r last, replicas hold %r" % (
                key, val[:40], got and got[1][:40]))
    assert not wrong, "%d keys differ from what was written, e.g. %s" % (len(wrong), wrong[:5])


# --------------------------------------------------------------------------
# a secondary killed during a write load catches up from its seq

def test_secondary_sigkill_catches_up_from_its_seq(cluster):
    shard = 1
    topo = cluster.shard_topology(shard)
    sec_url = topo["secondaries"][0]
    name = cluster.store_name(shard, cluster.replica_of(shard, sec_url))
    keys = keys_by_shard(cluster, 30, "kill-%s-" % uuid.uuid4().hex[:6])
    load = WriteLoad(cluster, keys[0] + keys[1], threads=4).start()
    try:
        cluster.wait_until(lambda: load.n_acked() >= 100, 30, "100 writes before the kill")
        wait_until(lambda: stats(sec_url)["applied_seq"] > 0, 10,
                   "%s to have applied something" % name)
        old_pid = cluster.pid(name)
        cluster.kill(name, signal.SIGKILL)
        n = load.n_acked()
        cluster.wait_until(lambda: load.n_acked() >= n + 100, 30,
                           "100 more writes while %s is down or restarting" % name)

        def restarted():
            c = cluster.child(name)
            return c.get("pid") not in (None, old_pid) and c.get("state") == "running"
        cluster.wait_until(restarted, 20, "the supervisor to restart %s" % name)
        cluster.wait_until(lambda: cluster.store_health(sec_url), 20,
                           "%s to answer /health" % name)
        n = load.n_acked()
        cluster.wait_until(lambda: load.n_acked() >= n + 100, 30,
                           "100 more writes after the restart")
    finally:
        load.stop()
    load.resolve_jobs()
    st = stats(sec_url)
    rec = st["reconcile"]
    assert rec["resumed_from"] > 0, "the restarted secondary started from seq 0: %r" % rec
    assert st["full_resyncs"] == 0, "the restarted secondary did a full resync: %r" % rec
    assert st["catchups"] >= 1, "no incremental catch-up after the restart: %r" % rec
    for s in range(cluster.shards):
        cluster.wait_parity(s, 60)
    problems = load.missing_acked()
    assert not problems, problems[:5]
    # and the primary shows the secondary as alive, with its acked seq and lag
    prim = stats(topo["primary"])
    peers = {p["url"]: p for p in prim["secondaries"]}
    assert sec_url in peers, prim["secondaries"]
    wait_until(lambda: [p for p in stats(topo["primary"])["secondaries"]
                        if p["url"] == sec_url and p["alive"] and p["lag"] == 0],
               10, "the primary to see %s alive with lag 0" % sec_url)
    _, _, body = request("GET", topo["primary"] + "/metrics")
    assert ('kv_store_repl_acked_seq{secondary="%s"}' % sec_url).encode() in body, body[-800:]


# --------------------------------------------------------------------------
# fencing and the replication protocol, by hand

def test_older_epoch_is_fenced_and_applies_nothing(cluster):
    shard = 0
    topo = cluster.shard_topology(shard)
    epoch = int(topo["epoch"])
    assert epoch >= 1, topo
    prim, sec = topo["primary"], topo["secondaries"][0]
    old = str(epoch - 1)
    key = shard_key(cluster, shard, "fenced")
    body = encode_wire_op(WIRE_PUT, key, b"from-the-past", version=0)

    r = cluster.internal("POST", prim + "/internal/batch", body=body,
                headers={"X-KV-Epoch": old, "Content-Type": "application/octet-stream"})
    j = assert_json_error(r, 409, "stale_epoch", "batch from an older epoch")
    assert j.get("epoch") == epoch, j

    r = cluster.internal("PUT", prim + "/internal/kv/" + quote_key(key), body=b"x",
                headers={"X-KV-Epoch": old})
    assert assert_json_error(r, 409, "stale_epoch", "PUT from an older epoch")["epoch"] == epoch

    last = stats(sec)["applied_seq"]
    rep = encode_wire_op(WIRE_PUT, key, b"from-the-past", version=12345, seq=last + 1)
    r = cluster.internal("POST", sec + "/internal/replicate", body=rep,
                headers={"X-KV-Epoch": old, "X-KV-Since": str(last),
                         "X-KV-Upto": str(last + 1)})
    assert assert_json_error(r, 409, "stale_epoch", "replicate from an older epoch")["epoch"] == epoch

    r = cluster.internal("POST", prim + "/internal/repair", body=rep, headers={"X-KV-Epoch": old})
    assert_json_error(r, 409, "stale_epoch", "repair from an older epoch")

    # nothing of it landed anywhere
    for url in cluster.stores[shard]:
        st, _, b = cluster.internal("GET", url + "/internal/kv/" + quote_key(key))
        assert st == 404, "%s holds the fenced key: %s %r" % (url, st, b[:100])

    # a newer epoch is not applied either: the store re-reads the topology
    r = cluster.internal("POST", prim + "/internal/batch", body=body,
                headers={"X-KV-Epoch": str(epoch + 5)})
    assert_json_error(r, 503, "epoch_pending", "batch from a newer epoch")
    st, _, b = cluster.internal("GET", prim + "/internal/kv/" + quote_key(key))
    assert st == 404, (st, b[:100])


def test_secondary_refuses_client_writes(cluster):
    topo = cluster.shard_topology(0)
    sec = topo["secondaries"][0]
    key = shard_key(cluster, 0, "nope")
    r = cluster.internal("PUT", sec + "/internal/kv/" + quote_key(key), body=b"x",
                headers={"X-KV-Epoch": str(topo["epoch"])})
    j = assert_json_error(r, 409, "not_primary", "PUT to a secondary")
    assert j.get("primary") == topo["primary"], j
    r = cluster.internal("POST", sec + "/internal/batch",
                body=encode_wire_op(WIRE_PUT, key, b"x"))
    j = assert_json_error(r, 409, "not_primary", "batch to a secondary")
    assert j.get("primary") == topo["primary"], j
    st, _, _ = cluster.internal("GET", sec + "/internal/kv/" + quote_key(key))
    assert st == 404


def test_replicate_protocol_gap_heartbeat_and_health(cluster):
    topo = cluster.shard_topology(0)
    sec, prim, epoch = topo["secondaries"][1], topo["primary"], str(topo["epoch"])
    # a heartbeat (no X-KV-Upto) answers the position
    st, _, body = cluster.internal("POST", sec + "/internal/replicate", body=b"",
                          headers={"X-KV-Epoch": epoch})
    assert st == 200, (st, body)
    applied = json_of(body)["applied_seq"]
    # a batch that does not continue from our position is refused: nothing
    # applied, and the answer says where to resend from
    key = shard_key(cluster, 0, "gap")
    far = applied + 1000000
    rep = encode_wire_op(WIRE_PUT, key, b"gap", version=99, seq=far + 1)
    st, _, body = cluster.internal("POST", sec + "/internal/replicate", body=rep,
                          headers={"X-KV-Epoch": epoch, "X-KV-Since": str(far),
                                   "X-KV-Upto": str(far + 1)})
    assert st == 200, (st, body)
    j = json_of(body)
    assert j["applied_seq"] < far and j.get("gap") is True, j
    assert cluster.internal("GET", sec + "/internal/kv/" + quote_key(key))[0] == 404
    # a primary refuses to be replicated to
    r = cluster.internal("POST", prim + "/internal/replicate", body=b"", headers={"X-KV-Epoch": epoch})
    assert_json_error(r, 409, "not_secondary")
    # what /health shows
    h = cluster.store_health(sec)
    assert h["role"] == "secondary" and h["primary"] == prim and h["epoch"] == int(epoch), h
    assert "applied_seq" in h, h
    h = cluster.store_health(prim)
    assert h["role"] == "primary" and len(h["secondaries"]) == 2, h
    for p in h["secondaries"]:
        assert {"url", "acked_seq", "lag", "alive"} <= set(p), p
    # changes past the last seq: the asker holds another history
    r = cluster.internal("GET", prim + "/internal/changes?since=%d" % (h["seq"] + 1000))
    assert assert_json_error(r, 409, "seq_ahead")["seq"] >= h["seq"]


def test_repair_on_a_secondary_does_not_move_its_position(cluster):
    topo = cluster.shard_topology(1)
    sec, epoch = topo["secondaries"][0], str(topo["epoch"])
    key = shard_key(cluster, 1, "repair")
    before = stats(sec)["applied_seq"]
    # a version ahead of the clock (within store.max_version_skew_ms: 5 s),
    # so nothing the stream sends meanwhile overtakes it
    ver = int(time.time() * 1e6) - 1577836800000000 + 2 * 10 ** 6
    st, _, body = cluster.internal("POST", sec + "/internal/repair",
                          body=encode_wire_op(WIRE_PUT, key, b"repaired", version=ver),
                          headers={"X-KV-Epoch": epoch})
    assert st == 200 and len(body) == 24, (st, body)
    st, hd, val = cluster.internal("GET", sec + "/internal/kv/" + quote_key(key))
    assert st == 200 and val == b"repaired" and int(hd["X-KV-Version"]) == ver, (st, val)
    s = stats(sec)
    assert s["applied_seq"] == before, "a repair moved applied_seq %d -> %d" % (
        before, s["applied_seq"])
    assert s["unstamped"] >= 1, s
    # an older version is a no-op (208) on any role
    st, _, body = cluster.internal("POST", topo["primary"] + "/internal/repair",
                          body=encode_wire_op(WIRE_PUT, key, b"newer", version=ver + 1),
                          headers={"X-KV-Epoch": epoch})
    assert st == 200, (st, body)
    # the primary took it as a write of its own: it streams it, and the
    # secondary's unstamped copy is replaced by the stream's
    wait_until(lambda: cluster.internal("GET", sec + "/internal/kv/" + quote_key(key))[2] == b"newer",
               10, "the secondary to get the primary's repaired record")
    st, _, body = cluster.internal("POST", sec + "/internal/repair",
                          body=encode_wire_op(WIRE_PUT, key, b"older", version=ver),
                          headers={"X-KV-Epoch": epoch})
    assert st == 200 and decode_result_status(body) == 208, (st, body)


def test_keys_of_another_shard_are_421_moved(cluster):
    """Outside a migration a store serves only the keys its shard owns: the
    others are 421 moved naming the owner, per op in batches and repairs,
    on every role; and /health shows no migration object."""
    ks = keys_by_shard(cluster, 3, ukey("own") + "-")
    topo = cluster.shard_topology(0)
    prim, sec, epoch = topo["primary"], topo["secondaries"][0], str(topo["epoch"])
    mine, theirs = ks[0], ks[1]
    body = b"".join(encode_wire_op(WIRE_PUT, k, b"v") for k in (mine[0], theirs[0], mine[1], theirs[1]))
    st, _, res = cluster.internal("POST", prim + "/internal/batch", body=body,
                         headers={"X-KV-Epoch": epoch})
    assert st == 200 and len(res) == 4 * 24, (st, res[:200])
    statuses = [int.from_bytes(res[i * 24:i * 24 + 2], "little") for i in range(4)]
    owners = [int.from_bytes(res[i * 24 + 16:i * 24 + 24], "little", signed=True) for i in (1, 3)]
    assert statuses == [200, 421, 200, 421] and owners == [1, 1], (statuses, owners)
    for k in (theirs[0], theirs[1]):
        st, _, b = cluster.internal("GET", cluster.shard_topology(1)["primary"] + "/internal/kv/"
                                    + quote_key(k))
        assert st == 404, ("a refused op was applied somewhere", k, st, b[:100])
    r = cluster.internal("PUT", prim + "/internal/kv/" + quote_key(theirs[2]), body=b"x",
                headers={"X-KV-Epoch": epoch})
    j = assert_json_error(r, 421, "moved", "PUT of another shard's key")
    assert j["shard"] == 1 and r[1].get("X-KV-Shard") == "1", (j, dict(r[1]))
    rep = encode_wire_op(WIRE_PUT, theirs[2], b"r", version=777) + \
        encode_wire_op(WIRE_PUT, mine[2], b"r", version=777)
    st, hd, res = cluster.internal("POST", sec + "/internal/repair", body=rep,
                          headers={"X-KV-Epoch": epoch})
    assert st == 200 and [decode_result_status(res[i * 24:]) for i in (0, 1)] == [421, 200], (st, res)
    assert int(hd["X-KV-Last-Seq"]) >= 0, dict(hd)
    wait_until(lambda: cluster.internal("GET", sec + "/internal/kv/" + quote_key(mine[0]))[0] == 200,
               10, "the secondary to hold the batch's own key")
    r = cluster.internal("GET", sec + "/internal/kv/" + quote_key(theirs[0]))
    assert assert_json_error(r, 421, "moved", "GET on a secondary")["shard"] == 1
    for url in (prim, sec):
        h = get_json(url + "/health")[1]
        assert "migration" not in h, h
    assert stats(prim)["requests"]["moved"] >= 3, stats(prim)["requests"]


def decode_result_status(body):
    return int.from_bytes(body[0:2], "little")


def test_tombstones_collected_once_every_secondary_passed_them(cluster):
    shard = 0
    topo = cluster.shard_topology(shard)
    key = keys_by_shard(cluster, 1, "tomb-%s-" % uuid.uuid4().hex[:6])[shard][0]
    put_sync(cluster, key, b"soon gone")
    st, _, body = cluster.request("DELETE", "/kv/%s?sync=1" % quote_key(key), timeout=15)
    assert st == 200, (st, body)
    prim = topo["primary"]

    def collected():
        for url in cluster.stores[shard]:
            d = cluster.changes_dump(url)
            if key.encode() in d:
                return False
        return True
    wait_until(collected, 20, "the tombstone of %s to be collected on every replica" % key)
    s = stats(prim)
    assert s["gc_seq"] > 0, s
    for url in cluster.stores[shard]:
        assert cluster.internal("GET", url + "/internal/kv/" + quote_key(key))[0] == 404


# --------------------------------------------------------------------------
# write quorum W = 1 with the only secondary paused

def test_new_cluster_secondaries_resync_once_not_every_round():
    """A cluster with no writes yet: each secondary does one full resync (of
    nothing) and then incremental rounds, not a wipe and a "full resync" log
    line every round until the first write arrives."""
    cfg = {"cluster": {"shards": 1, "replicas": 3},
           "store": {"reconcile_interval_ms": 100},
           "api": {"topology_poll_ms": 200}}
    with own_cluster(cfg, "empty-resync") as cl:
        secs = cl.shard_topology(0)["secondaries"]
        assert len(secs) == 2, secs

        def rounds_done(n):
            return all(stats(u)["reconcile"]["rounds"] >= n for u in secs)
        cl.wait_until(lambda: rounds_done(10), 30, "10 reconcile rounds on each secondary")
        for u in secs:
            assert stats(u)["full_resyncs"] == 1, (u, stats(u)["reconcile"])
        key = ukey("first")
        put_sync(cl, key, b"first write")
        for u in secs:
            wait_until(lambda u=u: cl.internal("GET", u + "/internal/kv/" + quote_key(key))[2]
                       == b"first write", 15, "%s to have the first write" % u)
        start = {u: stats(u)["reconcile"]["rounds"] for u in secs}
        cl.wait_until(lambda: all(stats(u)["reconcile"]["rounds"] >= start[u] + 5
                                  for u in secs), 30, "5 more rounds")
        for u in secs:
            assert stats(u)["full_resyncs"] == 1, (u, stats(u)["reconcile"])
        for p in cl.log_files():
            if os.path.basename(p).startswith("store-"):
                with open(p, errors="replace") as f:
                    n = f.read().count("wiping the local copy")
                assert n <= 1, "%s logged %d full resyncs" % (p, n)


def test_write_quorum_w1_sigstop_secondary():
    cfg = {"cluster": {"shards": 1, "replicas": 2, "write_quorum": 1},
           "store": {"quorum_timeout_ms": 1000, "reconcile_interval_ms": 500},
           "api": {"topology_poll_ms": 200},
           "queue": {"wait_max_ms": 3000}}
    with own_cluster(cfg, "w1") as cl:
        topo = cl.shard_topology(0)
        prim, sec = topo["primary"], topo["secondaries"][0]
        sec_name = cl.store_name(0, cl.replica_of(0, sec))

        def direct_put(key, val, timeout=10):
            return cl.internal("PUT", prim + "/internal/kv/" + quote_key(key), body=val,
                           timeout=timeout)
        key = ukey("w1")
        cl.wait_until(lambda: direct_put(key, b"before")[0] == 200, 15,
                      "a W=1 write to be acknowledged")
        put_sync(cl, ukey("w1-nginx"), b"before")

        cl.pause(sec_name)
        try:
            seen = set()
            t0 = time.monotonic()
            # every write is refused: 504 while the secondary still looks
            # alive, then 503 quorum_unavailable once it is known gone
            while time.monotonic() - t0 < 30 and 503 not in seen:
                st, hd, body = direct_put(key, b"while-stopped")
                assert st in (503, 504), "W=1 write with the secondary stopped -> %s %r" % (
                    st, body[:200])
                j = json_of(body)
                if st == 503:
                    assert j["error"] == "quorum_unavailable", j
                    assert j["alive"] == 0 and j["required"] == 1, j
                else:
                    assert j["error"] == "quorum_timeout", j
                seen.add(st)
            assert 503 in seen, "never answered 503 quorum_unavailable: %r" % seen
            # through nginx: not acknowledged either (the queue holds it)
            st, _, body = cl.request("PUT", "/kv/%s?sync=1" % quote_key(ukey("w1-held")),
                                     body=b"held", timeout=15)
            assert st != 200, "write acknowledged with W=1 and no live secondary: %r" % body
        finally:
            cl.resume(sec_name)
        cl.wait_until(lambda: direct_put(key, b"after")[0] == 200, 20,
                      "W=1 writes to be acknowledged again after SIGCONT")
        st, _, val = cl.internal("GET", sec + "/internal/kv/" + quote_key(key))
        assert st == 200 and val == b"after", (st, val)
        put_sync(cl, ukey("w1-nginx"), b"after")


# --------------------------------------------------------------------------
# rejoin: an old primary hands its unreplicated tail to the new primary

def test_old_primary_rejoins_and_hands_off_its_tail():
    """The secondary is killed (and stays down a while: restart backoff 2 s),
    the primary takes writes that reach nobody, then the primary hangs
    (SIGSTOP): the restarted secondary is promoted with a handoff_seq below
    those writes. When the old primary resumes it finds itself a secondary
    at a newer epoch, hands its tail to the new primary, resyncs, follows."""
    cfg = {"cluster": {"shards": 1, "replicas": 2},
           "controller": {"health_interval_ms": 100, "failover_after_ms": 1000,
                          "restart_backoff_ms": 2000, "restart_backoff_max_ms": 2000},
           "store": {"reconcile_interval_ms": 300},
           "api": {"topology_poll_ms": 200}}
    with own_cluster(cfg, "rejoin") as cl:
        topo = cl.shard_topology(0)
        old, new = topo["primary"], topo["secondaries"][0]
        old_name = cl.store_name(0, cl.replica_of(0, old))
        new_name = cl.store_name(0, cl.replica_of(0, new))
        base = ukey("base")
        put_sync(cl, base, b"base")
        wait_until(lambda: cl.internal("GET", new + "/internal/kv/" + quote_key(base))[2] == b"base",
                   10, "the secondary to have the base key")

        epoch0 = cl.topology_epoch()
        new_pid = cl.kill(new_name, signal.SIGKILL)
        tail = [ukey("tail") for _ in range(20)]
        t0 = time.monotonic()
        for k in tail:
            st, _, body = cl.internal("PUT", old + "/internal/kv/" + quote_key(k), body=k.encode())
            assert st == 200, (st, body)
        assert time.monotonic() - t0 < 1.5, "the tail took too long to write"
        cl.pause(old_name)
        t, _ = cl.wait_epoch_change(epoch0, 30)
        sh = t["shards"][0]
        assert sh["primary"] == new, sh
        assert old in sh["secondaries"], sh
        assert int(sh["handoff_seq"]) < len(tail), sh
        assert cl.pid(new_name) != new_pid
        for k in tail:
            st, _, _ = cl.internal("GET", new + "/internal/kv/" + quote_key(k))
            assert st == 404, "%s reached the new primary before the handoff" % k
        # the old primary comes back, finds itself a secondary: hands off
        # its tail, resyncs, follows
        cl.resume(old_name)

        def tail_there():
            return all(cl.internal("GET", new + "/internal/kv/" + quote_key(k))[2] == k.encode()
                       for k in tail)
        wait_until(tail_there, 30, "the new primary to hold the old primary's tail")
        wait_until(lambda: (cl.store_health(old) or {}).get("state") == "secondary", 30,
                   "the old primary to follow as a secondary")
        s = stats(old)
        assert s["role"] == "secondary" and s["primary"] == new, s
        assert s["reconcile"]["handoffs"] >= 1 and s["reconcile"]["handoff_ops"] >= len(tail), \
            s["reconcile"]
        assert s["full_resyncs"] >= 1, s["reconcile"]
        cl.wait_parity(0, 30)
        # and writes go on at the new primary, streamed to the old one
        k = ukey("after")
        cl.wait_until(lambda: cl.request("PUT", "/kv/%s?sync=1" % quote_key(k), body=b"after",
                                         timeout=15)[0] == 200, 20, "writes after the failover")
        wait_until(lambda: cl.internal("GET", old + "/internal/kv/" + quote_key(k))[2] == b"after",
                   10, "the old primary to replicate new writes")


# --------------------------------------------------------------------------
# persistence: kill -9 loses nothing under any fsync policy

TOKEN = "persist-test-token-0123456789"
AUTH = {"Authorization": "Bearer " + TOKEN}


def test_store_sigkill_keeps_data_and_seq_under_each_fsync_policy():
    """A store alone (no controller) takes 300 acknowledged writes and
    deletes, is killed with SIGKILL and restarted on the same directory: every
    write is there, with the same seq, under fsync always, everysec and no
    (a process crash loses nothing; only a power loss may cost "no" and
    "everysec" their last second)."""
    build = os.environ.get("KV_BUILD") or default_build()
    exe = os.path.join(build, "bin", "kv-store")
    base, _, locks = pick_ports()
    tmp = tempfile.mkdtemp(prefix="kvtest-persist-")
    procs = []
    try:
        for i, policy in enumerate(("always", "everysec", "no")):
            port = base + 100 + i
            url = "http://127.0.0.1:%d" % port
            data = os.path.join(tmp, policy)
            argv = [exe, "--port", str(port), "--data", data, "--role", "primary",
                    "--set", "store.fsync=" + policy, "--set", "cluster.bind=127.0.0.1"]
            # A store alone has no controller to make a token: it is given one.
            env = dict(os.environ, KV_TOKEN=TOKEN)

            def start():
                log = open(os.path.join(tmp, policy + ".log"), "ab")
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env)
                log.close()
                procs.append(p)
                wait_until(lambda: request("GET", url + "/health", timeout=1)[0] == 200, 15,
                           "kv-store (fsync %s) to answer" % policy)
                return p
            p = start()
            expect = {}
            for n in range(300):
                key = "p-%d" % (n % 120)
                if n % 7 == 6:
                    st, _, body = request("DELETE", url + "/internal/kv/" + key, headers=AUTH)
                    expect[key] = None
                else:
                    val = ("%s-%d" % (policy, n)).encode()
                    st, _, body = request("PUT", url + "/internal/kv/" + key, body=val,
                                           headers=AUTH)
                    expect[key] = val
                assert st == 200, (policy, st, body)
            _, h = get_json(url + "/health")
            seq = int(h["seq"])
            p.kill()
            p.wait()
            p = start()
            _, h2 = get_json(url + "/health")
            assert int(h2["seq"]) == seq, "fsync %s: seq %s after kill -9, %d before" % (
                policy, h2["seq"], seq)
            for key, val in expect.items():
                st, _, body = request("GET", url + "/internal/kv/" + key, headers=AUTH)
                if val is None:
                    assert st == 404, (policy, key, st)
                else:
                    assert st == 200 and body == val, (policy, key, st, body[:50])
            p.terminate()
            p.wait(10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for lk in locks:
            lk.release()
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_store_that_has_not_heard_the_topology_is_no_primary_yet():
    """A store started with its controller out of reach (the controller's
    port answers nothing), over data that says it was primary: it may have
    been replaced while it was down, so until the topology says what it is
    it takes no write and no read meant for the primary (409 not_primary,
    naming none), and says "starting" in /health. A plain read (a
    secondary's) is served."""
    build = os.environ.get("KV_BUILD") or default_build()
    exe = os.path.join(build, "bin", "kv-store")
    base, _, locks = pick_ports()
    tmp = tempfile.mkdtemp(prefix="kvtest-starting-")
    url = "http://127.0.0.1:%d" % (base + 100)
    p = None
    try:
        argv = [exe, "--port", str(base + 100), "--data", os.path.join(tmp, "d"),
                "--role", "primary", "--controller", "http://127.0.0.1:%d" % base,
                "--set", "cluster.bind=127.0.0.1"]
        with open(os.path.join(tmp, "store.log"), "ab") as log:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=dict(os.environ, KV_TOKEN=TOKEN))
        wait_until(lambda: request("GET", url + "/health", timeout=1)[0] == 200, 15,
                   "kv-store to answer /health")
        _, h = get_json(url + "/health")
        assert h["role"] == "primary" and h["state"] == "starting", h
        primary_read = dict(AUTH, **{"X-KV-Read-Primary": "1"})
        resp = request("GET", url + "/internal/kv/k", headers=primary_read)
        body = assert_json_error(resp, 409, "not_primary", "a read for the primary")
        assert body["primary"] is None and "just started" in body["message"], body
        resp = request("PUT", url + "/internal/kv/k", body=b"v", headers=AUTH)
        assert_json_error(resp, 409, "not_primary", "a write")
        st, _, _ = request("GET", url + "/internal/kv/k", headers=AUTH)
        assert st == 404, st
        assert p.poll() is None
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        for lk in locks:
            lk.release()
        shutil.rmtree(tmp, ignore_errors=True)
