"""The public HTTP API through nginx, against real processes (one cluster for
the module: 2 shards x primary + secondary, queue, 2 api, nginx; rate limit
off)."""

import os
import re
import threading
import time
import uuid

from cluster import (assert_json_error, json_of, quote_key, request,
                     wait_until)

CLUSTER_CONFIG = {"api": {"rate_limit": 0}}

MIB = 1024 * 1024


def ukey(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def kv(key):
    return "/kv/" + quote_key(key)


def put(c, key, value, sync=False, headers=None):
    return c.request("PUT", kv(key) + ("?sync=1" if sync else ""), body=value,
                     headers=headers, timeout=15)


def get(c, key, headers=None):
    return c.request("GET", kv(key), headers=headers)


def wait_job(c, job, timeout=20):
    """Poll GET /jobs/{id} through nginx until the job is applied."""
    def applied():
        st, _, body = c.request("GET", "/jobs/%s" % job)
        assert st == 200, "GET /jobs/%s -> %s %r" % (job, st, body[:200])
        j = json_of(body)
        assert j.get("status") != "failed", "job %s failed: %r" % (job, j)
        return j if j.get("status") == "applied" else None
    return wait_until(applied, timeout, "job %s to be applied" % job)


def short(key):
    """A key for messages: long keys cut, with their length."""
    return repr(key) if len(key) <= 40 else "%r...(%d chars)" % (key[:30], len(key))


def put_async(c, key, value):
    st, hd, body = put(c, key, value)
    assert st == 202, "PUT %s -> %s %r" % (short(key), st, body[:200])
    return json_of(body)


def put_sync(c, key, value):
    st, hd, body = put(c, key, value, sync=True)
    assert st == 200, "PUT %s?sync=1 -> %s %r" % (short(key), st, body[:200])
    return json_of(body)


# --------------------------------------------------------------------------

def test_health_ready_stats_metrics(cluster):
    st, hd, body = cluster.request("GET", "/health")
    assert st == 200, (st, body)
    st, hd, body = cluster.request("GET", "/ready")
    assert st == 200, ("/ready", st, body)
    st, hd, body = cluster.request("GET", "/stats")
    assert st == 200 and isinstance(json_of(body), dict), ("/stats", st, body[:200])
    st, hd, body = cluster.request("GET", "/metrics")
    assert st == 200, ("/metrics", st, body[:200])
    assert hd.get("Content-Type", "").startswith("text/plain"), \
        "/metrics Content-Type %r" % hd.get("Content-Type")
    assert b"# TYPE" in body, "/metrics has no '# TYPE' line: %r" % body[:200]


def test_put_get_all_byte_values(cluster):
    key = ukey("bin")
    value = bytes(range(256)) * 4
    put_sync(cluster, key, value)
    st, hd, body = get(cluster, key)
    assert st == 200, (st, body[:200])
    assert body == value, "GET returned %d bytes, not the %d written (first diff at %s)" % (
        len(body), len(value),
        next((i for i, (a, b) in enumerate(zip(body, value)) if a != b), min(len(body), len(value))))


def test_empty_value(cluster):
    key = ukey("empty")
    put_sync(cluster, key, b"")
    st, hd, body = get(cluster, key)
    assert st == 200 and body == b"", (st, body[:100])


def test_key_with_special_bytes(cluster):
    # '/', space, '?', '#', '%', UTF-8 and a control byte survive as one key
    key = "a/b c?d#e%f\u00e9\u4e2d\x01" + uuid.uuid4().hex[:6]
    put_sync(cluster, key, b"special")
    st, hd, body = get(cluster, key)
    assert st == 200 and body == b"special", (st, body[:200])
    st, _, body = cluster.request("GET", "/ring?key=" + quote_key(key))
    assert st == 200 and json_of(body).get("key") == key, (st, body[:200])


def test_one_mib_value_and_over_limit(cluster):
    key = ukey("big")
    value = os.urandom(MIB)
    put_sync(cluster, key, value)
    st, hd, body = get(cluster, key)
    assert st == 200, (st, body[:200])
    assert len(body) == MIB and body == value, "1 MiB value came back as %d bytes" % len(body)

    key2 = ukey("toobig")
    r = put(cluster, key2, os.urandom(MIB + 1))
    assert_json_error(r, 413, what="PUT of 1 MiB + 1")
    r = get(cluster, key2)
    assert_json_error(r, 404, "not_found", what="GET after a refused 413 PUT")


def test_version_shard_served_by_headers(cluster):
    key = ukey("hdr")
    w = put_sync(cluster, key, b"v1")
    st, hd, body = get(cluster, key)
    assert st == 200, (st, body)
    ver, shard, by = hd.get("X-KV-Version"), hd.get("X-KV-Shard"), hd.get("X-KV-Served-By")
    assert ver and ver.isdigit(), "X-KV-Version %r" % ver
    assert shard is not None and shard.isdigit(), "X-KV-Shard %r" % shard
    assert by, "X-KV-Served-By missing"
    assert int(ver) == w["version"], "X-KV-Version %s != the write's version %s" % (ver, w["version"])
    _, _, rb = cluster.request("GET", "/ring?key=" + quote_key(key))
    assert int(shard) == json_of(rb)["shard"], "X-KV-Shard %s, /ring says %s" % (shard, rb)
    # a newer write has a newer version
    w2 = put_sync(cluster, key, b"v2")
    assert w2["version"] > w["version"], "second write's version %s <= first %s" % (
        w2["version"], w["version"])
    st, hd, body = get(cluster, key)
    assert body == b"v2" and int(hd.get("X-KV-Version")) == w2["version"], (body, dict(hd))


def test_get_accept_json(cluster):
    key = ukey("json")
    w = put_sync(cluster, key, b"hello world")
    st, hd, body = get(cluster, key, headers={"Accept": "application/json"})
    assert st == 200, (st, body)
    assert "json" in hd.get("Content-Type", ""), hd.get("Content-Type")
    j = json_of(body)
    assert set(j) >= {"key", "value", "version", "shard", "served_by"}, j
    assert j["key"] == key and j["value"] == "hello world", j
    assert isinstance(j["version"], int) and j["version"] == w["version"], j
    assert isinstance(j["shard"], int) and not isinstance(j["shard"], bool), j
    assert isinstance(j["served_by"], str) and j["served_by"], j


def test_delete_vs_never_written(cluster):
    key = ukey("del")
    put_sync(cluster, key, b"x")
    st, hd, body = cluster.request("DELETE", kv(key) + "?sync=1")
    assert st == 200, ("DELETE ?sync=1", st, body)
    assert_json_error(get(cluster, key), 404, "deleted", what="GET of a deleted key")
    assert_json_error(get(cluster, ukey("never")), 404, "not_found",
                      what="GET of a never-written key")
    # async delete
    key2 = ukey("del2")
    put_sync(cluster, key2, b"y")
    st, hd, body = cluster.request("DELETE", kv(key2))
    assert st == 202, ("DELETE", st, body)
    j = json_of(body)
    assert j.get("status") == "queued" and "job" in j, j
    wait_job(cluster, j["job"])
    assert_json_error(get(cluster, key2), 404, "deleted", what="GET after async DELETE")


def test_async_write_then_job_applied(cluster):
    key = ukey("async")
    st, hd, body = put(cluster, key, b"later")
    assert st == 202, (st, body)
    j = json_of(body)
    assert j.get("key") == key and j.get("status") == "queued", j
    assert "job" in j and isinstance(j.get("version"), int), j
    job = wait_job(cluster, j["job"])
    for f in ("job", "key", "op", "status", "version", "attempts"):
        assert f in job, "GET /jobs/%s lacks %r: %r" % (j["job"], f, job)
    assert job["key"] == key and job["version"] == j["version"], job
    st, hd, body = get(cluster, key)
    assert st == 200 and body == b"later", (st, body)
    assert int(hd.get("X-KV-Version")) == j["version"]
    assert_json_error(cluster.request("GET", "/jobs/" + "0" * 32), 404,
                      "no_such_job", what="GET /jobs of an unknown id")


JOB_ID = re.compile(r"[0-9a-f]{32}\Z")


def test_job_ids_are_unguessable(cluster):
    """A job id is 128 random bits as 32 lowercase hex digits, unique, and
    not the version (which stays a field of its own): knowing one client's
    write, or the clock, does not name another client's job. An id of
    another shape is a JSON 400, an unknown one a JSON 404, through nginx
    and straight at the queue."""
    answers = []
    for i in range(20):
        key = ukey("jobid%02d" % i)
        st, _, body = put(cluster, key, b"v", sync=i % 2 == 0)
        assert st in (200, 202), (st, body)
        answers.append(json_of(body))
    ids = [a["job"] for a in answers]
    for a in answers:
        assert isinstance(a["job"], str) and JOB_ID.match(a["job"]), \
            "job id %r is not 32 lowercase hex digits: %r" % (a["job"], a)
        v = a["version"]
        assert isinstance(v, int) and v > 0, a
        assert int(a["job"], 16) != v and str(v) not in a["job"] \
            and "%x" % v not in a["job"], "job id %r derives from version %d" % (a["job"], v)
    assert len(set(ids)) == len(ids), "duplicate job ids: %r" % ids
    # Consecutive writes: versions a few microseconds apart, ids unrelated
    # (a shared prefix of 8+ hex digits among 20 random ids: p < 1e-7).
    prefixes = [i[:8] for i in ids]
    assert len(set(prefixes)) == len(prefixes), "job ids share prefixes: %r" % ids
    # Each id names its own write, version and key included.
    for a in answers[:4]:
        j = wait_job(cluster, a["job"])
        assert j["job"] == a["job"] and j["version"] == a["version"] \
            and j["key"] == a["key"], (a, j)
    # The old shape (the version itself) and other malformed ids: 400;
    # well-formed but unknown: 404. Both JSON, at nginx and at the queue.
    bad = [str(answers[0]["version"]), "1", "x", ids[0][:31], ids[0] + "0",
           ids[0].upper(), ids[0][:31] + "g", "%20" + ids[0][:29], "%00",
           "-" + ids[0][:31], "a" * 200]
    for base, req in (("nginx", cluster.request),
                      ("queue", lambda m, p: request(m, cluster.queue + p))):
        for b in bad:
            # nginx refuses an escaped NUL itself (its own JSON 400).
            code = "bad_request" if b == "%00" and base == "nginx" else "bad_job_id"
            assert_json_error(req("GET", "/jobs/" + b), 400, code,
                              what="%s GET /jobs/%s" % (base, b))
        unknown = "%032x" % (int(ids[0], 16) ^ 1)
        assert_json_error(req("GET", "/jobs/" + unknown), 404, "no_such_job",
                          what="%s GET /jobs of an unknown id" % base)


def test_sync_write_answers_200(cluster):
    key = ukey("sync")
    st, hd, body = put(cluster, key, b"now", sync=True)
    assert st == 200, (st, body)
    j = json_of(body)
    assert j.get("key") == key and j.get("status") == "applied", j
    assert "job" in j and isinstance(j.get("version"), int), j
    st, hd, body = get(cluster, key)
    assert st == 200 and body == b"now", (st, body)
    # incr with ?sync=1 answers the new value
    ck = ukey("synci")
    st, hd, body = cluster.request("POST", kv(ck) + "/incr?by=5&sync=1")
    assert st == 200, (st, body)
    j = json_of(body)
    assert j.get("status") == "applied", j
    if "value" in j:
        assert int(j["value"]) == 5, j


def test_prefer_wait_bounded(cluster):
    """Prefer: wait=N is whole or decimal seconds, capped at
    queue.wait_max_ms like ?sync=1 (a huge N waits, it is not "no wait");
    anything else (1e17, inf, nan, -1, garbage) is 400 bad_request, through
    the api and straight to the queue (issue 11, finding 8)."""
    errs = []
    for wait in ("5", "0.5", "100000000000000000", "99999999999999999999999"):
        key = ukey("wait")
        st, _, body = put(cluster, key, b"w", headers={"Prefer": "wait=" + wait})
        if st != 200 or json_of(body).get("status") != "applied":
            errs.append("Prefer: wait=%s -> %s %r, expected 200 applied"
                        % (wait, st, body[:200]))
    for wait in ("1e17", "inf", "nan", "-1", "abc", "", "0x10"):
        h = {"Prefer": "respond-async, wait=" + wait}
        soft(errs, assert_json_error, put(cluster, ukey("badwait"), b"x", headers=h),
             400, "bad_request", what="api Prefer: wait=" + wait)
        url = cluster.queue + "/internal/kv/" + quote_key(ukey("badwaitq"))
        soft(errs, assert_json_error,
             cluster.internal("PUT", url, body=b"x", headers=h, timeout=15),
             400, "bad_request", what="queue Prefer: wait=" + wait)
    assert not errs, "%d Prefer checks failed:\n" % len(errs) + "\n".join(errs)


def test_version_in_future_refused(cluster):
    """A direct write with a version far past the store's clock is 400
    version_in_future, and the key keeps taking later writes (before, one
    ?version=2^53-1 froze it for good: issue 11, finding 2)."""
    key = ukey("future")
    _, _, body = cluster.request("GET", "/ring?key=" + quote_key(key))
    url = json_of(body)["primary"] + "/internal/kv/" + quote_key(key)
    for v in (9007199254740991, int((time.time() - 1577836800) * 1e6) + 3600 * 10**6):
        assert_json_error(cluster.internal("PUT", url + "?version=%d" % v, body=b"frozen"),
                          400, "version_in_future", what="PUT ?version=%d" % v)
    for value in (b"one", b"two"):
        st, _, body = put(cluster, key, value, sync=True)
        assert st == 200, ("PUT", value, st, body[:200])
        st, _, body = get(cluster, key)
        assert st == 200 and body == value, (value, st, body[:200])


def test_incr_concurrent_exact(cluster):
    key = ukey("ctr")
    clients, per = 20, 50
    errors, jobs = [], []
    lock = threading.Lock()

    def worker():
        mine = []
        for _ in range(per):
            try:
                st, hd, body = cluster.request("POST", kv(key) + "/incr", timeout=15)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append("%s: %s" % (type(e).__name__, e))
                continue
            if st not in (200, 202):
                with lock:
                    errors.append("%s %r" % (st, body[:200]))
            else:
                mine.append(json_of(body).get("job"))
        with lock:
            jobs.extend(mine)

    ths = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    assert not any(t.is_alive() for t in ths), "incr clients still running after 60 s"
    total = clients * per
    if errors:
        # say where the counter ends, so a failed request that was applied
        # anyway (a retry would then double count) shows up
        last, end = None, time.monotonic() + 10
        while time.monotonic() < end:   # until unchanged for 1 s
            st, _, body = get(cluster, key)
            if body == last:
                break
            last = body
            time.sleep(1)
        st, _, body = get(cluster, key)
        raise AssertionError("%d of %d increments failed (counter ends at %r, %d jobs accepted), "
                             "e.g. %s" % (len(errors), total, body[:20], len(jobs), errors[:3]))

    def reached():
        st, hd, body = get(cluster, key)
        if st == 404:
            return False
        assert st == 200, (st, body)
        v = int(body)
        assert v <= total, "counter overshot: %d > %d" % (v, total)
        return v == total
    wait_until(reached, 30, "counter %s to reach %d" % (key, total))
    # every job applied, then the value is exactly the total
    for job in jobs:
        def applied(job=job):
            st, _, body = request("GET", "%s/jobs/%s" % (cluster.queue, job))
            assert st == 200, ("queue GET /jobs", job, st, body[:200])
            j = json_of(body)
            assert j.get("status") != "failed", j
            return j.get("status") == "applied"
        wait_until(applied, 15, "job %s applied" % job)
    st, hd, body = get(cluster, key)
    assert st == 200 and int(body) == total, "final counter %r, expected %d" % (body, total)


def test_incr_by_and_not_integer(cluster):
    key = ukey("by")
    for by in (7, -2, 10):
        st, _, body = cluster.request("POST", kv(key) + "/incr?by=%d&sync=1" % by)
        assert st == 200, (by, st, body)
    st, hd, body = get(cluster, key)
    assert st == 200 and body == b"15", (st, body)
    # incr of a non-integer value fails with 409 not_integer
    k2 = ukey("text")
    put_sync(cluster, k2, b"hello")
    r = cluster.request("POST", kv(k2) + "/incr?sync=1")
    assert_json_error(r, 409, "not_integer", what="incr of a text value (sync)")


def test_counter_routes(cluster):
    key = ukey("cnt")
    st, hd, body = cluster.request("GET", "/counter/" + quote_key(key))
    assert st == 200, (st, body)
    j = json_of(body)
    assert j == {"key": key, "value": 0} or (j.get("key") == key and j.get("value") == 0), j
    assert type(j["value"]) is int, "value is %s, not an integer: %r" % (type(j["value"]).__name__, j)
    n = 12
    for _ in range(n):
        st, hd, body = cluster.request("POST", "/counter/%s/increment" % quote_key(key))
        assert st == 202, (st, body)
        j = json_of(body)
        assert j.get("key") == key and j.get("status") == "queued", j

    def done():
        st, hd, body = cluster.request("GET", "/counter/" + quote_key(key))
        assert st == 200, (st, body)
        j = json_of(body)
        assert type(j.get("value")) is int, "counter value not an int: %r" % j
        assert j["value"] <= n, "counter overshot: %r" % j
        return j["value"] == n
    wait_until(done, 20, "counter to reach %d" % n)


def soft(errs, fn, *args, **kw):
    """Run one check; collect its AssertionError instead of stopping."""
    try:
        return fn(*args, **kw)
    except AssertionError as e:
        errs.append(str(e))


def test_malformed_input(cluster):
    errs = []
    for path, want, what in (
            ("/kv/%zz", 400, "bad percent-escape"),
            ("/kv/ab%4", 400, "truncated percent-escape"),
            ("/kv/a%00b", 400, "percent-encoded NUL"),
    ):
        soft(errs, assert_json_error, cluster.request("GET", path), want,
             what="GET " + what + " " + path)
        soft(errs, assert_json_error, cluster.request("PUT", path, body=b"x"), want,
             what="PUT " + what + " " + path)
    # empty key
    soft(errs, assert_json_error, cluster.request("GET", "/kv/"), (400, 404),
         what="GET /kv/ (empty key)")
    soft(errs, assert_json_error, cluster.request("PUT", "/kv/", body=b"x"), (400, 404, 405),
         what="PUT /kv/ (empty key)")
    # key length: 1024 bytes is fine, 1025 is 414
    k1024 = ("k" * 1014) + uuid.uuid4().hex[:10]
    soft(errs, put_sync, cluster, k1024, b"longkey")
    st, _, body = get(cluster, k1024)
    if not (st == 200 and body == b"longkey"):
        errs.append("GET of a 1024-byte key -> %s %r" % (st, body[:200]))
    k1025 = "k" * 1025
    soft(errs, assert_json_error, get(cluster, k1025), 414, what="GET of a 1025-byte key")
    soft(errs, assert_json_error, put(cluster, k1025, b"x"), 414, what="PUT of a 1025-byte key")
    # incr by a non-number
    for q in ("by=abc", "by=1.5", "by=99999999999999999999999"):
        soft(errs, assert_json_error, cluster.request("POST", kv(ukey("bad")) + "/incr?" + q),
             400, what="incr ?" + q)
    assert not errs, "%d malformed-input checks failed:\n" % len(errs) + "\n".join(errs)


def test_max_key_fully_percent_encoded(cluster):
    # 1024-byte keys whose every byte is percent-encoded: 3 KiB of URL path,
    # through nginx, the api and on to the queue and the store
    for kenc in ("\u00e9" * 512, "/" * 1000 + uuid.uuid4().hex[:24]):
        assert len(kenc.encode()) == 1024
        w = put_sync(cluster, kenc, b"enc")
        assert w.get("key") == kenc, "write answered key %s" % short(w.get("key", ""))
        st, _, body = get(cluster, kenc)
        assert st == 200 and body == b"enc", ("GET 1024-byte encoded key", st, body[:200])
        st, _, body = cluster.request("POST", kv(kenc) + "/incr?sync=1")
        assert_json_error((st, _, body), 409, "not_integer", what="incr of the long key")


def test_unknown_route_and_wrong_method(cluster):
    errs = []
    for path in ("/nope", "/kv", "/kv/x/y/z", "/counter", "/jobs"):
        soft(errs, assert_json_error, cluster.request("GET", path), 404, what="GET " + path)
    for method, path in (("PATCH", "/kv/x"), ("POST", "/kv/x"), ("PUT", "/ring?key=x"),
                         ("DELETE", "/counter/x"), ("PUT", "/counter/x/increment"),
                         ("GET", "/kv/x/incr"), ("POST", "/health"), ("DELETE", "/jobs/1"),
                         ("POST", "/stats")):
        r = cluster.request(method, path, body=b"" if method in ("PUT", "POST", "PATCH") else None)
        soft(errs, assert_json_error, r, 405, what="%s %s" % (method, path))
    assert not errs, "%d route/method checks failed:\n" % len(errs) + "\n".join(errs)


def test_ring_shape(cluster):
    st, _, body = cluster.request("GET", "/ring?key=abc")
    assert st == 200, (st, body)
    j = json_of(body)
    for f in ("key", "shard", "epoch", "primary", "secondaries"):
        assert f in j, "/ring lacks %r: %r" % (f, j)
    assert j["key"] == "abc" and isinstance(j["shard"], int) and 0 <= j["shard"] < cluster.shards, j
    assert isinstance(j["secondaries"], list) and len(j["secondaries"]) == cluster.replicas - 1, j
    assert j["primary"].startswith("http://"), j
    assert_json_error(cluster.request("GET", "/ring"), 400, what="GET /ring without key")


def test_keys_land_on_ring_shard(cluster):
    keys = [ukey("ring%02d" % i) for i in range(50)]
    jobs = [put_async(cluster, k, ("value-of-" + k).encode())["job"] for k in keys]
    for j in jobs:
        wait_job(cluster, j)
    topo = cluster.topology()
    primaries = {int(s["id"]): s["primary"] for s in topo["shards"]}
    seen = set()
    for k in keys:
        st, _, body = cluster.request("GET", "/ring?key=" + quote_key(k))
        assert st == 200, (st, body)
        r = json_of(body)
        shard, prim = r["shard"], r["primary"]
        seen.add(shard)
        assert prim == primaries[shard], "/ring primary %s != topology's %s" % (prim, primaries[shard])
        st, hd, body = cluster.internal("GET", prim + "/internal/kv/" + quote_key(k))
        assert st == 200 and body == ("value-of-" + k).encode(), \
            "key %s not on its shard %d primary %s: %s %r" % (k, shard, prim, st, body[:200])
        for other, url in primaries.items():
            if other == shard:
                continue
            # Another shard does not serve it: 421 names the owner.
            st, hd, body = cluster.internal("GET", url + "/internal/kv/" + quote_key(k))
            assert st == 421 and hd.get("X-KV-Shard") == str(shard) and \
                json_of(body)["shard"] == shard, \
                "key %s (shard %d) asked of shard %d at %s: %s %r" % (
                    k, shard, other, url, st, body[:200])
    assert seen == set(range(cluster.shards)), "50 keys all on shards %s" % sorted(seen)
