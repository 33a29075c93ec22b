"""TTL (issue 12): PUT /kv/{key}?ttl=SECONDS (and incr) stores an absolute
expiry with the record (Unix ms, made at the queue's admission); it
replicates with it, so every replica agrees. GET answers X-KV-Expires-At
and JSON expires_at; from that time on no read returns the value, through
nginx or from any replica's /internal/kv, across a failover too. An
increment keeps the key's TTL; a put without ttl clears it. The primary's
reaper turns expired records into tombstones of their own version, which
replicate and are collected like deletes."""

import threading
import time
import uuid

from cluster import WIRE_F_REAPED, decode_wire_ops, json_of, own_cluster, quote_key, wait_until

CLUSTER_CONFIG = {"cluster": {"shards": 2, "replicas": 3},
                  "api": {"rate_limit": 0}}
TTL_S = 3


def ukey(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def write_all(cl, keys, ttl, threads=8):
    """PUT ?sync=1 (with ?ttl= when ttl) every key, its name as the value;
    raises on any answer but 200 applied."""
    errors, lock, it = [], threading.Lock(), iter(keys)

    def worker():
        while True:
            with lock:
                k = next(it, None)
            if k is None:
                return
            q = "?sync=1" + ("&ttl=%d" % ttl if ttl else "")
            st, _, body = cl.request("PUT", "/kv/%s%s" % (quote_key(k), q),
                                     body=k.encode(), timeout=20)
            if st != 200 or json_of(body).get("status") != "applied":
                with lock:
                    errors.append((k, st, body[:200]))
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:5]


def read(cl, url, key, internal=False):
    path = ("/internal/kv/" if internal else "/kv/") + quote_key(key)
    if internal:
        return cl.internal("GET", url + path)
    return cl.request("GET", path)


def gone_on_replica(cl, url, key):
    """A replica's answer for an expired key: 404 "expired" with the
    version (the record, or the reaper's tombstone), or 404 once the
    tombstone was collected."""
    st, hd, body = read(cl, url, key, internal=True)
    err = json_of(body).get("error")
    if err == "expired":
        return st == 404 and int(hd.get("X-KV-Version", 0)) > 0
    return st == 404 and err == "not_found"


def reaped_total(cl):
    """Records reaped by every store of the topology (new shards too)."""
    urls = [u for sh in cl.topology()["shards"]
            for u in [sh["primary"]] + sh["secondaries"] if u]
    return sum(json_of(cl.internal("GET", u + "/stats")[2])["requests"]["reaped"]
               for u in urls)


def test_ttl_keys_expire_everywhere_the_others_stay(cluster):
    ttl_keys = [ukey("ttl") for _ in range(1000)]
    plain = [ukey("keep") for _ in range(1000)]
    reaped0 = reaped_total(cluster)
    t0 = time.time()
    write_all(cluster, ttl_keys, TTL_S)
    # Every TTL key was admitted by now: none expires later than this + TTL.
    t_written = time.time()
    write_all(cluster, plain, 0)
    # Before it passes: the value, with its expiry (made at admission, so
    # between the first write's start and now, plus the TTL).
    for k in ttl_keys[:50] + ttl_keys[-50:]:
        st, hd, body = cluster.request("GET", "/kv/" + quote_key(k))
        exp = int(hd.get("X-KV-Expires-At", 0))
        if st == 404:
            assert time.time() * 1000 >= exp > 0, (k, hd)
            continue
        assert st == 200 and body == k.encode(), (k, st, body)
        assert t0 * 1000 + TTL_S * 1000 <= exp + 5 <= time.time() * 1000 + TTL_S * 1000 + 10, \
            (k, exp, t0)
    last = (t_written + TTL_S) * 1000 + 1  # the latest possible expiry

    def all_expired():
        return all(cluster.request("GET", "/kv/" + quote_key(k))[0] == 404 for k in ttl_keys)
    wait_until(lambda: time.time() * 1000 >= last, TTL_S + 30, "the last TTL to pass")
    # Once its time has passed, every TTL key is gone through nginx...
    assert all_expired(), "a TTL key still read after its expiry"
    # ...and on every replica of its shard
    shard_of = {k: int(json_of(cluster.request("GET", "/ring?key=" + quote_key(k))[2])["shard"])
                for k in ttl_keys}
    for k in ttl_keys:
        for url in cluster.stores[shard_of[k]]:
            assert gone_on_replica(cluster, url, k), (k, url, read(cluster, url, k, True))
    for k in plain:
        st, hd, body = cluster.request("GET", "/kv/" + quote_key(k))
        assert st == 200 and body == k.encode() and "X-KV-Expires-At" not in hd, (k, st, hd)
    # The primaries reaped every one of them (a tombstone each, with a new
    # seq), and every replica collected the tombstones: no record is left.
    wait_until(lambda: reaped_total(cluster) - reaped0 >= len(ttl_keys), 30,
               "the primaries to reap the TTL keys")
    want = {k.encode() for k in ttl_keys}

    def collected():
        for urls in cluster.stores:
            for url in urls:
                if want & set(cluster.changes_dump(url)):
                    return False
        return True
    wait_until(collected, 60, "the reaped tombstones to be collected on every replica")
    for k in plain[:100]:
        assert cluster.request("GET", "/kv/" + quote_key(k))[0] == 200, k
    for s in range(len(cluster.stores)):
        cluster.wait_parity(s, 20)


def test_reaped_tombstones_replicate_at_the_records_version(cluster):
    """The reaper's tombstone has the expired record's version and the
    reaped flag, on the primary and through the stream. One secondary is
    paused meanwhile: no replica collects a tombstone the paused one has
    not acked, so the others keep it long enough to be looked at."""
    key = ukey("ttl-watch")
    shard = int(json_of(cluster.request("GET", "/ring?key=" + key)[2])["shard"])
    prim_replica = cluster.primary_replica(shard)
    paused = next(r for r in range(cluster.replicas) if r != prim_replica)
    prim = cluster.primary(shard)
    since = json_of(cluster.internal("GET", prim + "/stats")[2])["seq"]
    watched = [u for r, u in enumerate(cluster.stores[shard]) if r != paused]
    cluster.pause(cluster.store_name(shard, paused))
    try:
        st, _, body = cluster.request("PUT", "/kv/%s?ttl=1&sync=1" % key, body=b"v")
        assert st == 200, (st, body)
        version = json_of(body)["version"]
        seen = {}

        def tombstone_seen():
            # Only what changed since the write: cheap enough to poll often.
            for url in watched:
                st, _, body = cluster.internal(
                    "GET", "%s/internal/changes?since=%d&limit=10000" % (url, since))
                for op in decode_wire_ops(body) if st == 200 else []:
                    if op["key"] == key.encode() and op["op"] == 2:
                        seen[url] = op
            return len(seen) == len(watched)
        wait_until(tombstone_seen, 30, "the reaped tombstone of %s on %s" % (key, watched))
    finally:
        cluster.resume(cluster.store_name(shard, paused))
    for url, op in seen.items():
        assert op["version"] == version and op["flags"] == WIRE_F_REAPED, (url, op, version)


def test_incr_keeps_the_ttl_and_put_clears_it(cluster):
    key, counter = ukey("ttl-put"), ukey("ttl-incr")
    st, _, _ = cluster.request("PUT", "/kv/%s?ttl=600&sync=1" % key, body=b"v")
    assert st == 200
    st, hd, body = cluster.request("GET", "/kv/" + key, headers={"Accept": "application/json"})
    j = json_of(body)
    assert j["expires_at"] == int(hd["X-KV-Expires-At"]) > time.time() * 1000 + 590000, (j, hd)
    st, _, _ = cluster.request("PUT", "/kv/%s?sync=1" % key, body=b"w")
    st, hd, body = cluster.request("GET", "/kv/" + key, headers={"Accept": "application/json"})
    assert "expires_at" not in json_of(body) and "X-KV-Expires-At" not in hd, (body, hd)
    st, _, _ = cluster.request("POST", "/kv/%s/incr?ttl=600&sync=1" % counter)
    assert st == 200
    exp = int(cluster.request("GET", "/kv/" + counter)[1]["X-KV-Expires-At"])
    st, _, body = cluster.request("POST", "/kv/%s/incr?by=4&sync=1" % counter)
    assert st == 200 and json_of(body)["value"] == 5, body
    st, hd, body = cluster.request("GET", "/kv/" + counter)
    assert (st, body, int(hd["X-KV-Expires-At"])) == (200, b"5", exp), (st, body, hd)


def test_bad_ttl_is_400(cluster):
    key = ukey("ttl-bad")
    for q in ("ttl=0", "ttl=-1", "ttl=1.5", "ttl=abc", "ttl=", "ttl=999999999999"):
        st, _, body = cluster.request("PUT", "/kv/%s?%s&sync=1" % (key, q), body=b"v")
        assert st == 400 and json_of(body)["error"] == "bad_ttl", (q, st, body)
        st, _, body = cluster.internal("PUT", "%s/internal/kv/%s?%s" % (cluster.queue, key, q),
                                       body=b"v")
        assert st == 400 and json_of(body)["error"] == "bad_ttl", (q, st, body)
    assert cluster.request("GET", "/kv/" + key)[0] == 404


def test_expired_stays_expired_after_failover_and_restart():
    """R = N (every secondary asked) and a SIGKILLed primary: the promoted
    secondary, and every replica after a restart, hold the expiry."""
    cfg = {"cluster": {"shards": 1, "replicas": 3, "read_quorum": 2},
           # The killed primary stays down long enough to be replaced.
           "controller": {"health_interval_ms": 100, "failover_after_ms": 800,
                          "restart_backoff_ms": 3000, "restart_backoff_max_ms": 3000}}
    with own_cluster(cfg, "ttl-failover") as cl:
        keys = [ukey("ttl-f") for _ in range(100)]
        write_all(cl, keys, 2)
        cl.wait_parity(0, 20)
        wait_until(lambda: all(cl.request("GET", "/kv/" + quote_key(k))[0] == 404
                               for k in keys), 20, "the TTL keys to expire (R = N)")
        epoch = cl.topology_epoch()
        cl.kill(cl.store_name(0, cl.primary_replica(0)))
        cl.wait_epoch_change(epoch, 20)
        promoted = cl.primary(0)
        for k in keys:
            assert gone_on_replica(cl, promoted, k), (k, read(cl, promoted, k, True))
        # The killed store restarts (a secondary now): R = 2 reads again.
        cl.wait_stores_settled(30)
        wait_until(lambda: cl.request("GET", "/kv/" + quote_key(keys[0]))[0] == 404,
                   20, "R = 2 reads after the restart")
        for k in keys:
            st, _, body = cl.request("GET", "/kv/" + quote_key(k))
            assert st == 404, (k, st, body)
        for url in cl.stores[0]:
            for k in keys:
                assert gone_on_replica(cl, url, k), (url, k, read(cl, url, k, True))
        cl.wait_parity(0, 20)


test_ttl_keys_expire_everywhere_the_others_stay.timeout = 240
test_expired_stays_expired_after_failover_and_restart.timeout = 180


def test_kvctl_ttl(cluster):
    key = ukey("kvctl-ttl")
    rc, out, err = cluster.kvctl("--wait", "--ttl", "600", "put", key, "v")
    assert rc == 0 and "applied" in out, (rc, out, err)
    rc, out, err = cluster.kvctl("--json", "get", key)
    assert rc == 0 and json_of(out.encode())["expires_at"] > time.time() * 1000, (rc, out)
    rc, out, err = cluster.kvctl("--wait", "--ttl", "600", "incr", key + "-n", "3")
    assert rc == 0, (rc, out, err)
    assert "X-KV-Expires-At" in cluster.request("GET", "/kv/" + key + "-n")[1]
    rc, _, err = cluster.kvctl("--ttl", "0", "put", key, "v")
    assert rc == 2 and "--ttl" in err, (rc, err)


def test_ttls_move_with_their_keys_in_a_migration():
    """`kvctl shard add` with TTL keys: a long TTL arrives on its new shard
    with the same expiry, a short one expires everywhere and is reaped by
    whichever primary owns it then, and parity holds."""
    cfg = {"cluster": {"shards": 2, "replicas": 2},
           "api": {"topology_poll_ms": 200, "rate_limit": 0}}
    with own_cluster(cfg, "ttl-migrate", start_timeout=60) as cl:
        long_keys = [ukey("ttl-long") for _ in range(300)]
        short = [ukey("ttl-short") for _ in range(300)]
        write_all(cl, long_keys, 600)
        write_all(cl, short, 4)
        t_short = time.time()
        expiry = {k: int(cl.request("GET", "/kv/" + quote_key(k))[1]["X-KV-Expires-At"])
                  for k in long_keys}
        reaped0 = reaped_total(cl)
        rc, out, err = cl.kvctl("--json", "shard", "add")
        assert rc == 0, (rc, out[-2000:], err[-2000:])
        wait_until(lambda: "migration" not in cl.topology(), 60, "the migration to end")
        moved = 0
        for k in long_keys:
            st, hd, body = cl.request("GET", "/kv/" + quote_key(k))
            assert st == 200 and body == k.encode(), (k, st, body)
            assert int(hd["X-KV-Expires-At"]) == expiry[k], (k, hd, expiry[k])
            shard = int(json_of(cl.request("GET", "/ring?key=" + quote_key(k))[2])["shard"])
            moved += shard == 2
        assert moved > 0, "no long-TTL key moved to the new shard"
        wait_until(lambda: time.time() > t_short + 4.1, 30, "the short TTLs to pass")
        for k in short:
            assert cl.request("GET", "/kv/" + quote_key(k))[0] == 404, k
        wait_until(lambda: reaped_total(cl) - reaped0 >= len(short), 30,
                   "the owners to reap the short-TTL keys")
        rc, out, err = cl.kvctl("parity")
        assert rc == 0, (out[-3000:], err[-2000:])


test_ttls_move_with_their_keys_in_a_migration.timeout = 240


def test_parity_counts_an_expired_record_and_its_tombstone_the_same():
    """A slow stream (store.repl_delay_ms, and no reconcile rounds to
    catch up meanwhile) holds the reaper's tombstones back: the primary
    holds them while its secondary still holds the expired records, and
    `kvctl parity` finds the two identical. Pending data waits the delay
    and is then read, so the records (TTL 3 s) go out before they expire,
    and their tombstones a delay after the reap: that is the window; a try
    that misses it (checked before and after) goes again."""
    cfg = {"cluster": {"shards": 1, "replicas": 2},
           "store": {"repl_delay_ms": 2000, "reconcile_interval_ms": 600000}}
    with own_cluster(cfg, "ttl-parity") as cl:
        prim, sec = cl.primary(0), cl.shard_topology(0)["secondaries"][0]

        def kinds(url, want):
            return {v[0] for k, v in cl.changes_dump(url).items() if k in want}
        # The stream is up (not the first resync).
        warm = ukey("ttl-warm")
        write_all(cl, [warm], 0)
        wait_until(lambda: kinds(sec, {warm.encode()}) == {"put"}, 30, "the stream")
        for attempt in range(3):
            keys = [ukey("ttl-p") for _ in range(20)]
            want = {k.encode() for k in keys}
            write_all(cl, keys, 3)
            wait_until(lambda: kinds(sec, want) == {"put"}, 30, "the secondary to hold the records")
            wait_until(lambda: kinds(prim, want) == {"del"}, 30, "the primary to reap them")
            if kinds(sec, want) != {"put"}:
                continue  # the tombstones came too soon to test
            rc, out, err = cl.kvctl("parity")
            if kinds(sec, want) == {"put"}:
                break
        else:
            raise AssertionError("no try caught the secondary behind the primary's reap")
        assert rc == 0 and "identical" in out, (rc, out, err)
        # The same record still live on one replica only is a difference.
        st, _, body = cl.internal("PUT", prim + "/internal/kv/%s?ttl=600" % keys[0], body=b"x")
        assert st == 200, (st, body)
        rc, out, err = cl.kvctl("parity")
        assert rc == 1 and "DIFFERENT" in out, (rc, out, err)
