"""Conditional writes (issue 12): GET gives ETag: "<version>"; PUT, DELETE
and incr take If-Match: "<version>" or *, and If-None-Match: *, judged by
the shard primary in the write's own transaction (lib/precond.h, lib/wire.h
WIRE_F_IF_*). A failed condition is 412 precondition_failed with the
current version when the client waits, and a failed job otherwise; the
queue never coalesces a conditional write. Two workloads show what it is
for: read-modify-write of one cart by 20 clients loses nothing with
If-Match (and loses updates without), and of 10 clients creating one key
with If-None-Match: * exactly one wins."""

import json
import threading
import uuid

from cluster import get_json, json_of, quote_key, wait_until

# Paused primaries must not fail over while a test holds writes in the queue.
CLUSTER_CONFIG = {"controller": {"failover_after_ms": 600000},
                  "api": {"rate_limit": 0}}


def ukey(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def path(key, sub=""):
    return "/kv/%s%s" % (quote_key(key), sub)


def get(cl, key):
    """(status, body, version from the ETag)."""
    st, hd, body = cl.request("GET", path(key))
    etag = hd.get("etag") or hd.get("ETag")
    if st == 200:
        assert etag and etag.startswith('"') and etag.endswith('"'), hd
        assert etag.strip('"') == (hd.get("x-kv-version") or hd.get("X-KV-Version")), hd
        return st, body, int(etag.strip('"'))
    return st, body, None


def put(cl, key, value, hdrs=None, sync=True, method="PUT", sub=""):
    q = "?sync=1" if sync else ""
    if sub and sync:
        q = "&sync=1" if "?" in sub else "?sync=1"
    st, _, body = cl.request(method, path(key, sub) + q, body=value, headers=hdrs,
                             timeout=20)
    return st, json_of(body) if body else {}


def assert_412(st, j, current, what):
    assert st == 412, "%s: %d %r" % (what, st, j)
    assert j["error"] == "precondition_failed" and j["current_version"] == current, (what, j)


def test_etag_if_match_and_if_none_match(cluster):
    key = ukey("cond")
    st, j = put(cluster, key, b"one", {"If-None-Match": "*"})
    assert st == 200 and j["status"] == "applied", (st, j)
    st, body, v1 = get(cluster, key)
    assert (st, body, v1) == (200, b"one", j["version"]), (st, body, v1, j)
    st, j = put(cluster, key, b"again", {"If-None-Match": "*"})
    assert_412(st, j, v1, "If-None-Match on a live key")
    st, j = put(cluster, key, b"two", {"If-Match": '"%d"' % v1})
    assert st == 200 and j["status"] == "applied", (st, j)
    v2 = j["version"]
    st, j = put(cluster, key, b"three", {"If-Match": '"%d"' % v1})
    assert_412(st, j, v2, "If-Match on an old version")
    assert get(cluster, key)[:2] == (200, b"two")
    st, j = put(cluster, key, None, {"If-Match": '"%d"' % v1}, method="DELETE")
    assert_412(st, j, v2, "DELETE If-Match on an old version")
    st, j = put(cluster, key, None, {"If-Match": "*"}, method="DELETE")
    assert st == 200, (st, j)
    assert get(cluster, key)[0] == 404
    # Deleted: no live record, so If-Match: * fails and If-None-Match holds.
    st, j = put(cluster, key, b"x", {"If-Match": "*"})
    assert_412(st, j, 0, "If-Match: * on a deleted key")
    st, j = put(cluster, key, None, {"If-None-Match": "*"}, method="POST", sub="/incr?by=5")
    assert st == 200 and j.get("value") == 5, (st, j)
    st, j = put(cluster, key, None, {"If-Match": '"%d"' % v2}, method="POST", sub="/incr")
    assert st == 412 and j["error"] == "precondition_failed", (st, j)


def test_malformed_conditions_are_400(cluster):
    """Refused where they enter, at the api, the queue and the store alike,
    and nothing is written."""
    key = ukey("bad-cond")
    bad = [{"If-Match": '"1", "2"'}, {"If-Match": 'W/"1"'}, {"If-Match": "1"},
           {"If-Match": '"0"'}, {"If-None-Match": '"1"'},
           {"If-Match": '"1"', "If-None-Match": "*"}]
    store = cluster.primary(0)
    for hdrs in bad:
        st, j = put(cluster, key, b"v", hdrs)
        assert st == 400 and j["error"] == "bad_precondition", (hdrs, st, j)
        for url in (cluster.queue, store):
            st, _, body = cluster.internal("PUT", "%s/internal/kv/%s" % (url, key),
                                           body=b"v", headers=hdrs)
            assert st == 400 and json_of(body)["error"] == "bad_precondition", (url, hdrs, st)
    assert get(cluster, key)[0] == 404


def test_async_conditional_write_ends_failed(cluster):
    key = ukey("cond-async")
    assert put(cluster, key, b"v")[0] == 200
    version = get(cluster, key)[2]
    st, j = put(cluster, key, b"w", {"If-Match": '"%d"' % (version - 1)}, sync=False)
    assert st == 202, (st, j)

    def ended():
        st, job = get_json(cluster.nginx + "/jobs/" + j["job"])
        return job if st == 200 and job["status"] != "queued" else None
    job = wait_until(ended, 15, "the conditional job to end")
    assert job["status"] == "failed" and job["error"] == "precondition_failed", job
    assert job["code"] == 412 and job["current_version"] == version, job


def test_store_direct_conditional_write(cluster):
    """The store's own route takes the same headers (412 with the live
    version), so the rule lives in one place: the engine."""
    key = ukey("cond-store")
    shard, _ = store_of(cluster, key)
    url = "%s/internal/kv/%s" % (cluster.primary(shard), key)
    st, _, body = cluster.internal("PUT", url, body=b"a", headers={"If-None-Match": "*"})
    assert st == 200, (st, body)
    v = json_of(body)["version"]
    st, _, body = cluster.internal("PUT", url, body=b"b", headers={"If-None-Match": "*"})
    assert st == 412 and json_of(body)["current_version"] == v, (st, body)


def read_modify_write(cl, key, per_client, clients, conditional):
    """clients threads each add 1 to the cart's item count per_client times
    (read, change, write back); with conditional, If-Match on what they
    read and again after a 412. Returns (final count, 412s seen)."""
    conflicts = [0]
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client():
        start.wait()
        for _ in range(per_client):
            while True:
                st, body, version = get(cl, key)
                assert st == 200, (st, body)
                cart = json.loads(body)
                cart["items"] += 1
                hdrs = {"If-Match": '"%d"' % version} if conditional else None
                st, j = put(cl, key, json.dumps(cart).encode(), hdrs)
                # superseded: the write lost to a newer version (last
                # writer wins): done without If-Match, to be redone with it
                if st == 200 and (j["status"] == "applied" or not conditional):
                    break
                if st == 200 and j["status"] == "superseded":
                    continue
                if st == 412:
                    with lock:
                        conflicts[0] += 1
                    continue
                with lock:
                    errors.append((st, j))
                return
    ts = [threading.Thread(target=client) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(240)
    assert not errors, errors[:5]
    return json.loads(get(cl, key)[1])["items"], conflicts[0]


def test_cart_read_modify_write_loses_nothing_with_if_match(cluster):
    key = ukey("cart")
    assert put(cluster, key, b'{"items": 0}')[0] == 200
    items, conflicts = read_modify_write(cluster, key, 50, 20, True)
    print("    (20 x 50 updates with If-Match: %d items, %d retries after 412)"
          % (items, conflicts))
    assert items == 1000 and conflicts > 0, (items, conflicts)


def test_cart_read_modify_write_loses_updates_without(cluster):
    """The same workload without If-Match: concurrent writers overwrite
    each other (last writer wins), so updates are lost. This is what the
    test above would see if the condition did nothing."""
    key = ukey("cart-lww")
    assert put(cluster, key, b'{"items": 0}')[0] == 200
    items, _ = read_modify_write(cluster, key, 50, 20, False)
    print("    (20 x 50 updates without If-Match: %d items)" % items)
    assert items < 1000, items


def test_if_none_match_has_one_creator(cluster):
    key = ukey("create")
    n = 10
    start = threading.Barrier(n)
    out = []
    lock = threading.Lock()

    def creator(i):
        start.wait()
        st, j = put(cluster, key, b"by %d" % i, {"If-None-Match": "*"})
        with lock:
            out.append((st, j))
    ts = [threading.Thread(target=creator, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    won = [j for st, j in out if st == 200]
    lost = [j for st, j in out if st == 412]
    assert len(won) == 1 and len(lost) == n - 1, out
    assert all(j["current_version"] == won[0]["version"] for j in lost), out
    assert get(cluster, key)[2] == won[0]["version"]


def test_conditional_writes_are_never_coalesced(cluster):
    """With the primary paused, an unconditional write and then an If-Match
    write on the version both clients read wait in the queue together.
    Merged, the second would carry its condition for both and succeed; kept
    apart, the first applies and the second fails on its version."""
    key = ukey("no-merge")
    assert put(cluster, key, b"v0")[0] == 200
    v0 = get(cluster, key)[2]
    name = cluster.store_name(*store_of(cluster, key))
    before = get_json(cluster.queue + "/stats")[1]["coalesced"]
    cluster.pause(name)
    try:
        st, a = put(cluster, key, b"A", sync=False)
        assert st == 202, (st, a)
        st, b = put(cluster, key, b"B", {"If-Match": '"%d"' % v0}, sync=False)
        assert st == 202, (st, b)
    finally:
        cluster.resume(name)

    def job(j):
        def ended():
            st, o = get_json(cluster.nginx + "/jobs/" + j["job"])
            return o if st == 200 and o["status"] != "queued" else None
        return wait_until(ended, 20, "job %s to end" % j["job"])
    ja, jb = job(a), job(b)
    assert ja["status"] == "applied" and "coalesced_into" not in ja, ja
    assert jb["status"] == "failed" and jb["current_version"] == a["version"], jb
    assert get(cluster, key)[:2] == (200, b"A")
    assert get_json(cluster.queue + "/stats")[1]["coalesced"] == before


def store_of(cl, key):
    """(shard, replica) of the key's primary store."""
    _, _, body = cl.request("GET", "/ring?key=" + quote_key(key))
    ring = json_of(body)
    return int(ring["shard"]), cl.replica_of(int(ring["shard"]), ring["primary"])


test_cart_read_modify_write_loses_nothing_with_if_match.timeout = 300
test_cart_read_modify_write_loses_updates_without.timeout = 300


def test_kvctl_if_match_and_if_absent(cluster):
    key = ukey("kvctl-cond")
    rc, out, err = cluster.kvctl("--wait", "--if-absent", "put", key, "one")
    assert rc == 0 and "applied" in out, (rc, out, err)
    rc, out, err = cluster.kvctl("--wait", "--if-absent", "put", key, "two")
    assert rc == 1 and "412" in err and "precondition_failed" in err, (rc, out, err)
    rc, out, _ = cluster.kvctl("--json", "get", key)
    version = json.loads(out)["version"]
    rc, out, err = cluster.kvctl("--wait", "--if-match", str(version), "put", key, "two")
    assert rc == 0 and "applied" in out, (rc, out, err)
    rc, out, err = cluster.kvctl("--wait", "--if-match", str(version), "del", key)
    assert rc == 1 and "precondition_failed" in err, (rc, out, err)
    assert get(cluster, key)[:2] == (200, b"two")
    rc, _, err = cluster.kvctl("--if-match", "x", "put", key, "v")
    assert rc == 2 and "--if-match" in err, (rc, err)
    rc, _, err = cluster.kvctl("--if-match", "5", "--if-absent", "put", key, "v")
    assert rc == 2, (rc, err)


def test_conditions_survive_a_queue_sigkill(cluster):
    """Conditional writes held in the queue (their primary paused) when the
    queue is SIGKILLed come back from its journal with their conditions:
    of two If-Match writes on one version, the first applies and the second
    fails on it; an If-None-Match: * on a live key fails. Every job keeps
    its id, and each ends as its condition says."""
    key, live = ukey("jrnl-cond"), ukey("jrnl-live")
    assert put(cluster, key, b"v0")[0] == 200
    v0 = get(cluster, key)[2]
    names = {cluster.store_name(*store_of(cluster, k)) for k in (key, live)}
    assert put(cluster, live, b"here")[0] == 200
    for n in names:
        cluster.pause(n)
    try:
        jobs = []
        for val, hdrs, k in ((b"first", {"If-Match": '"%d"' % v0}, key),
                             (b"second", {"If-Match": '"%d"' % v0}, key),
                             (b"dup", {"If-None-Match": "*"}, live)):
            st, j = put(cluster, k, val, hdrs, sync=False)
            assert st == 202, (st, j)
            jobs.append(j)
        old = cluster.kill("queue")
    finally:
        for n in names:
            cluster.resume(n)
    cluster.wait_until(lambda: cluster.child("queue").get("pid") not in (None, old)
                       and cluster.child("queue").get("state") == "running",
                       20, "the queue restarted")

    def ended(j):
        def f():
            st, o = get_json(cluster.nginx + "/jobs/" + j["job"], timeout=2)
            return o if st == 200 and o["status"] != "queued" else None
        return wait_until(f, 30, "job %s to end after the restart" % j["job"])
    first, second, dup = [ended(j) for j in jobs]
    assert first["status"] == "applied", first
    assert second["status"] == "failed" and second["error"] == "precondition_failed" \
        and second["current_version"] == jobs[0]["version"], second
    assert dup["status"] == "failed" and dup["error"] == "precondition_failed", dup
    assert get(cluster, key)[:2] == (200, b"first")
    assert get(cluster, live)[:2] == (200, b"here")
