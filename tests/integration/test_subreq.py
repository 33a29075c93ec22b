"""Sub-requests (lib/subreq.h, docs/PROTOCOL.md "Sub-requests"): a store and
the queue answer each request of a batch exactly as they answer it alone,
refuse a batch that is not one, and the api sends the reads and writes that
wait together as batches, every answer still right."""

import re
import struct
import threading

from cluster import json_of, quote_key, request, wait_until

TOKEN = "subreq-test-token"
CLUSTER_CONFIG = {"cluster": {"token": TOKEN}, "api": {"rate_limit": 0}}
AUTH = "Authorization: Bearer " + TOKEN
CTYPE = "application/x-kv-subreq"


def frame(head, body=b""):
    head = head.encode() if isinstance(head, str) else head
    return struct.pack("<II", len(head), len(body)) + head + body


def sub(method, target, headers=(), body=b""):
    head = "%s %s\r\n" % (method, target) + "".join(h + "\r\n" for h in headers)
    return frame(head, body)


def frames(body):
    """[(status, {header: value}, body)] of a batch answer."""
    out, off = [], 0
    while off < len(body):
        hl, bl = struct.unpack_from("<II", body, off)
        head = body[off + 8:off + 8 + hl].decode()
        lines = head.split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            if ln:
                k, v = ln.split(":", 1)
                hdrs[k.lower()] = v.strip()
        out.append((int(lines[0]), hdrs, body[off + 8 + hl:off + 8 + hl + bl]))
        off += 8 + hl + bl
    assert off == len(body), (off, len(body))
    return out


def batch(url, parts, headers=None):
    hdrs = {"Authorization": "Bearer " + TOKEN, "Content-Type": CTYPE}
    hdrs.update(headers or {})
    return request("POST", url + "/internal/subreq", body=b"".join(parts),
                   headers=hdrs)


def epoch_hdr(cluster, shard):
    return "X-KV-Epoch: %d" % cluster.shard_topology(shard)["epoch"]


def test_store_answers_each_as_alone(cluster):
    key = "subreq-one"
    st, _, _ = cluster.request("PUT", "/kv/%s?sync=1" % key, body=b"apples",
                               timeout=15)
    assert st == 200
    ring = json_of(cluster.request("GET", "/ring?key=" + key)[2])
    prim, shard = ring["primary"], ring["shard"]
    ep = epoch_hdr(cluster, shard)
    path = "/internal/kv/" + quote_key(key)
    asked = [
        ("GET", path, [AUTH, ep]),                            # the value
        ("GET", "/internal/kv/subreq-none", [AUTH, ep]),       # 404
        ("GET", path, [AUTH, "X-KV-Epoch: 99"]),               # a newer epoch
        ("GET", path, [ep]),                                   # 401
        ("HEAD", path, [AUTH, ep]),
        ("DELETE", "/internal/nothing-here", [AUTH]),          # 404 route
    ]
    st, h, body = batch(prim, [sub(m, t, hs) for m, t, hs in asked])
    assert st == 200 and h["content-type"] == CTYPE, (st, h, body[:300])
    got = frames(body)
    assert len(got) == len(asked), got
    for (m, t, hs), (gst, gh, gbody) in zip(asked, got):
        alone = dict(ln.split(": ", 1) for ln in hs)
        ast, ah, abody = request(m, prim + t, headers=alone)
        assert (gst, gbody) == (ast, abody), (m, t, hs, gst, gbody, ast, abody)
        for name in ("content-type", "x-kv-version", "x-kv-epoch"):
            assert gh.get(name) == ah.get(name), (m, t, name, gh, ah)
    assert got[0][0] == 200 and got[0][2] == b"apples"
    assert [g[0] for g in got[1:]] == [404, 200, 401, 200, 404], got
    assert got[4][2] == b"" and got[4][1]["x-kv-version"] == \
        got[0][1]["x-kv-version"], got[4]


def test_queue_admits_each_write(cluster):
    """Writes to the queue in one batch: each gets its own job, in order,
    and ?sync=1 waits for its own apply."""
    q = cluster.queue
    parts = [sub("PUT", "/internal/kv/subreq-w%d" % i, [AUTH],
                 body=b"v%d" % i) for i in range(5)]
    parts.append(sub("PUT", "/internal/kv/subreq-w5?sync=1", [AUTH], body=b"v5"))
    st, _, body = batch(q, parts)
    assert st == 200, (st, body[:300])
    got = frames(body)
    assert [g[0] for g in got] == [202] * 5 + [200], got
    jobs = [json_of(g[2])["job"] for g in got]
    assert len(set(jobs)) == 6, jobs
    for i in range(6):
        wait_until(lambda i=i: cluster.request("GET", "/kv/subreq-w%d" % i)[2]
                   == b"v%d" % i, 20, "subreq-w%d applied" % i)


def test_malformed_batches_are_refused(cluster):
    prim = cluster.shard_topology(0)["primary"]
    ok = sub("GET", "/internal/kv/x", [AUTH])
    st, _, body = request("GET", prim + "/internal/subreq",
                          headers={"Authorization": "Bearer " + TOKEN})
    assert st == 405 and json_of(body)["error"] == "method_not_allowed", body
    st, _, body = batch(prim, [ok], headers={"Authorization": "Bearer nope"})
    assert st == 401, (st, body)
    for bad in (b"", b"\x05\x00\x00", ok[:-3], frame("GET /x"),
                frame("GET /x\r\n\x00\r\n"), b"".join([ok] * 33)):
        st, _, body = batch(prim, [bad])
        assert st == 400 and json_of(body)["error"] == "bad_request", (bad[:40], st, body)
    # a frame that is not a request is that request's 400, not the batch's
    st, _, body = batch(prim, [frame("NOSPACE\r\n"), frame("GET  /a\r\n"),
                               frame("GET x\r\n"), frame("GET /x\r\nno colon\r\n"),
                               ok])
    assert st == 200, (st, body)
    got = frames(body)
    assert [g[0] for g in got[:4]] == [400] * 4, got
    assert got[4][0] in (404, 409, 421), got  # answered as a request


def api_metric(cluster, api, name):
    st, _, body = cluster.internal("GET", api + "/metrics")
    assert st == 200
    m = re.search(r"^%s (\d+)" % name, body.decode(), re.M)
    return int(m.group(1)) if m else 0


def test_api_batches_what_waits_together(cluster):
    """Many clients at once: the api carries their reads and writes in
    batches (its counters say so), and every answer is the right one."""
    api = cluster.apis[0]
    for i in range(40):
        assert request("PUT", "%s/kv/subreq-r%d?sync=1" % (api, i),
                       body=b"r%d" % i, timeout=15)[0] == 200
    b0 = api_metric(cluster, api, "kv_httpc_subreq_batches_total")
    c0 = api_metric(cluster, api, "kv_httpc_subreq_requests_total")
    errors, lock = [], threading.Lock()

    def client(t):
        for n in range(60):
            i = (t * 7 + n) % 40
            try:
                if n % 4 == 3:
                    st, _, b = request("PUT", "%s/kv/subreq-x%d-%d" % (api, t, n),
                                       body=b"x", timeout=15)
                    ok = st == 202
                else:
                    st, _, b = request("GET", "%s/kv/subreq-r%d" % (api, i))
                    ok = st == 200 and b == b"r%d" % i
            except Exception as e:  # noqa: BLE001 -- every failure counts
                st, b, ok = 0, repr(e).encode(), False
            if not ok:
                with lock:
                    errors.append((t, n, st, b[:100]))
    threads = [threading.Thread(target=client, args=(t,)) for t in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    batches = api_metric(cluster, api, "kv_httpc_subreq_batches_total") - b0
    carried = api_metric(cluster, api, "kv_httpc_subreq_requests_total") - c0
    print("    (24 clients x 60 requests: %d batches carried %d requests)"
          % (batches, carried))
    assert batches > 0 and carried >= 2 * batches, (batches, carried)


def test_a_lone_request_goes_alone(cluster):
    api = cluster.apis[0]
    b0 = api_metric(cluster, api, "kv_httpc_subreq_batches_total")
    for i in range(20):
        st, _, b = request("GET", "%s/kv/subreq-r%d" % (api, i))
        assert st == 200 and b == b"r%d" % i
    assert api_metric(cluster, api, "kv_httpc_subreq_batches_total") == b0
