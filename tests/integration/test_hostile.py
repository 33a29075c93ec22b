"""Hostile clients straight at each process (lib/httpd.h, lib/httpd_conns.h):
request heads refused before their body is read, malformed targets and
framing refused with JSON, and floods of idle or slow connections that must
not starve the requests that matter (no failover, writes and reads go on).

The shared cluster has a token (so that 401 can be seen) and a short
header timeout; the flood tests start their own cluster with health checks
and failover as a real deployment has them."""

import os
import resource
import socket
import time

from cluster import (json_of, keys_by_shard, own_cluster, quote_key,
                     request, wait_until)

TOKEN = "hostile-test-token"
HEADER_TIMEOUT_MS = 1500
CLUSTER_CONFIG = {
    "cluster": {"token": TOKEN},
    "api": {"rate_limit": 0},
    "limits": {"header_timeout_ms": HEADER_TIMEOUT_MS},
}
AUTH = {"Authorization": "Bearer " + TOKEN}


def addr(url):
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def raw(url, data, timeout=5, source=None):
    """Send data on a new connection; read the answer until the server
    closes or the answer is whole. Returns (status, headers dict, body)."""
    s = socket.create_connection(addr(url), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    try:
        s.sendall(data)
        return read_answer(s)
    finally:
        s.close()


def read_answer(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            raise AssertionError("connection closed before an answer: %r" % buf[:200])
        buf += b
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    want = int(hdrs.get("content-length", "0"))
    while len(body) < want:
        b = s.recv(65536)
        if not b:
            break
        body += b
    return status, hdrs, body[:want]


def assert_raw_json_error(ans, status, code, what):
    st, hd, body = ans
    assert st == status, "%s: %d, wanted %d: %r" % (what, st, status, body[:200])
    assert hd.get("content-type", "").startswith("application/json"), (what, hd)
    j = json_of(body)
    assert j.get("error") == code and isinstance(j.get("message"), str), (what, j)


def servers(cl):
    """Every process that serves HTTP, by name: URL."""
    out = {"controller": cl.controller, "queue": cl.queue}
    for i, u in enumerate(cl.apis):
        out["api-%d" % i] = u
    for s, urls in enumerate(cl.stores):
        for r, u in enumerate(urls):
            out[cl.store_name(s, r)] = u
    return out


def still_up(cl):
    """No process restarted: each answers /health, and the supervisor
    restarted none of its children (nginx among them)."""
    for name, url in servers(cl).items():
        st, _, body = request("GET", url + "/health", timeout=5)
        assert st == 200, "%s /health: %d %r" % (name, st, body[:200])
    for c in cl.children():
        assert c.get("restarts") == 0 and c.get("state") == "running", c


def test_bad_request_targets_are_json_400(cluster):
    """A space, a control byte, DEL or a raw NUL in the request target: 400
    bad_request in JSON from every process (before the fix a NUL cut the
    key short there and a space ended up in it)."""
    bad = [b"/kv/ab\x00cd", b"/kv/ab cd", b"/kv/ab\x01cd", b"/kv/ab\tcd",
           b"/kv/ab\x7fcd", b"/internal/kv/a\x00b", b"/health\x00"]
    for name, url in servers(cluster).items():
        for target in bad:
            ans = raw(url, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" +
                      b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
            assert_raw_json_error(ans, 400, "bad_request", "%s %r" % (name, target))
    still_up(cluster)


def test_duplicate_or_conflicting_framing_is_json_400(cluster):
    """Two Content-Length headers (the first used to win), or one beside
    Transfer-Encoding (request smuggling): 400, nothing written."""
    store = cluster.primary(0)
    key = keys_by_shard(cluster, 1, "dup-cl-%d-" % os.getpid())[0][0]
    cases = [
        b"Content-Length: 1\r\nContent-Length: 5\r\n\r\nhello",
        b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ]
    for name, url in [("store", store), ("queue", cluster.queue),
                      ("api", cluster.apis[0])]:
        path = ("/internal/kv/" if name != "api" else "/kv/") + quote_key(key)
        for c in cases:
            ans = raw(url, b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" +
                      b"Authorization: Bearer " + TOKEN.encode() + b"\r\n" + c)
            assert_raw_json_error(ans, 400, "bad_request", "%s %r" % (name, c))
    st, _, _ = request("GET", "%s/internal/kv/%s" % (store, quote_key(key)),
                       headers=AUTH)
    assert st == 404, "a refused write was applied: %d" % st


def head_only(url, path, headers, length):
    """Send a request head announcing a body of length bytes, and none of
    the body: the answer must come anyway (decided from the head)."""
    s = socket.create_connection(addr(url), timeout=5)
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
                   % (path, length, "".join("%s: %s\r\n" % kv for kv in headers.items())))
                  .encode())
        t0 = time.monotonic()
        ans = read_answer(s)
        return ans, time.monotonic() - t0
    finally:
        s.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_refused_from_the_head_before_the_body(cluster):
    """Without the token, a 60 MB POST to an internal route gets 401 before
    one body byte is sent (it used to be read whole first: 38 -> 236 MB of
    RSS for three); an announced length over the limit gets 413 the same
    way, token or not."""
    store = cluster.primary(0)
    routes = [("store", store, "/internal/batch"),
              ("store", store, "/internal/replicate"),
              ("queue", cluster.queue, "/internal/kv/x"),
              ("api", cluster.apis[0], "/internal/topology-changed")]
    pid = cluster.pid(cluster.store_name(0, cluster.primary_replica(0)))
    before = rss_kb(pid)
    for name, url, path in routes:
        for _ in range(3):
            ans, took = head_only(url, path, {}, 60 * 1024 * 1024)
            assert_raw_json_error(ans, 401, "unauthorized", "%s %s" % (name, path))
            assert took < 2, "%s %s: 401 after %.1f s" % (name, path, took)
    for name, url, path in routes[:3] + [("api", cluster.apis[0], "/kv/x")]:
        ans, _ = head_only(url, path, AUTH, 1 << 40)
        assert_raw_json_error(ans, 413, "too_large", "%s %s" % (name, path))
    grew = rss_kb(pid) - before
    assert grew < 20 * 1024, "the store's RSS grew by %d KiB" % grew
    still_up(cluster)


def test_slow_head_is_cut_at_the_header_timeout(cluster):
    """A connection that sends its head a byte at a time (slowloris), or
    nothing at all, is closed once limits.header_timeout_ms has passed since
    it was accepted; one that asked in time keeps being served."""
    url = cluster.primary(0)
    slow = socket.create_connection(addr(url), timeout=10)
    silent = socket.create_connection(addr(url), timeout=10)
    t0 = time.monotonic()
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1000
    closed_at = None
    try:
        for i in range(len(head)):
            try:
                slow.sendall(head[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - t0
                break
            slow.settimeout(0.1)
            try:
                if slow.recv(1) == b"":
                    closed_at = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_at = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 10:
                break
        assert closed_at is not None, "the slow head was not cut in 10 s"
        assert HEADER_TIMEOUT_MS / 1000 - 0.2 <= closed_at <= HEADER_TIMEOUT_MS / 1000 + 2, \
            "cut after %.2f s, header timeout %d ms" % (closed_at, HEADER_TIMEOUT_MS)
        silent.settimeout(3)
        assert silent.recv(1) == b"", "the silent connection got data"
    finally:
        slow.close()
        silent.close()
    st, _, _ = request("GET", url + "/health")
    assert st == 200


def open_idle(url, n, source=None):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    socks = []
    for _ in range(n):
        s = socket.socket()
        if source:
            s.bind((source, 0))
        s.settimeout(5)
        s.connect(addr(url))
        socks.append(s)
    return socks


def closed_by_server(s):
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


FLOOD_CONFIG = {
    "cluster": {"shards": 2, "replicas": 2},
    "controller": {"health_interval_ms": 200, "failover_after_ms": 2000},
    "api": {"rate_limit": 0, "topology_poll_ms": 200, "upstream_timeout_ms": 2000},
    "limits": {"max_connections_per_ip": 256},
}


def test_idle_flood_causes_no_failover():
    """4 300 connections to a shard primary that send nothing (more than
    libmicrohttpd's 4096 / workers + 1 per worker): before, the store's
    /health timed out and the controller failed the shard over within 6 s.
    Now the flood only replaces itself (256 per address at most), the
    controller's checks and the api's calls get through, the epoch stays,
    and every write acknowledged during the flood reads back."""
    with own_cluster(FLOOD_CONFIG, "flood") as cl:
        cl.wait_stores_settled()
        epoch = cl.topology_epoch()
        primary = cl.primary(0)
        socks = open_idle(primary, 4300)
        try:
            acked = {}
            errors = []
            t0 = time.monotonic()
            i = 0
            # Longer than failover_after_ms, twice.
            while time.monotonic() - t0 < 5:
                key = "flood-%d" % i
                st, _, body = request("PUT", "%s/kv/%s?sync=1" % (cl.nginx, key),
                                      body=b"v%d" % i, timeout=10)
                if st == 200:
                    acked[key] = b"v%d" % i
                else:
                    errors.append((key, st, body[:200]))
                i += 1
            assert not errors, "writes failed during the flood: %r" % errors[:5]
            assert len(acked) >= 20, "only %d writes in 5 s" % len(acked)
            assert cl.topology_epoch() == epoch, "the shard failed over"
            for key, val in acked.items():
                st, _, body = request("GET", "%s/kv/%s" % (cl.nginx, key))
                assert (st, body) == (200, val), (key, st, body[:100])
            # The flood's connections beyond the per-address limit were
            # closed; those kept are closed at the header timeout.
            gone = sum(closed_by_server(s) for s in socks)
            assert gone >= 4300 - 256, "only %d flood connections closed" % gone
        finally:
            for s in socks:
                s.close()


test_idle_flood_causes_no_failover.timeout = 120


def test_per_address_limit_spares_other_clients(cluster):
    """Connections from one address past limits.max_connections_per_ip
    (1024 by default) close that address's own oldest idle connections, not
    anyone else's: a keep-alive client on another address keeps its
    connection and is served."""
    url = cluster.primary(1)
    other = socket.create_connection(addr(url), timeout=5,
                                     source_address=("127.0.0.3", 0))
    try:
        other.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(other)[0] == 200
        socks = open_idle(url, 1100, source="127.0.0.2")
        try:
            # The newest ones ask at once (the header timeout spares them).
            for s in socks[-100:]:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            for s in socks[-100:]:
                s.setblocking(True)
                s.settimeout(5)
                assert read_answer(s)[0] == 200
            wait_until(lambda: sum(closed_by_server(s) for s in socks[:76]) == 76,
                       5, "the oldest 76 of 1100 connections from 127.0.0.2 to close")
            other.settimeout(5)
            other.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(other)[0] == 200, "the other client lost its connection"
        finally:
            for s in socks:
                s.close()
    finally:
        other.close()


def test_library_answers_are_the_documented_exceptions(cluster):
    """The malformed requests libmicrohttpd answers itself, before our code
    (docs/PROTOCOL.md lists them): the status it documents, the connection
    closed, and the process still up (under the sanitizers: the request
    objects made for them are freed, which the cluster's stop checks)."""
    cases = [
        (b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nh", 400),
        (b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\nh", 400),
        (b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\na\r\n0\r\n\r\n", 400),
        (b"GET /health\r\n\r\n", 400),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n" +
         b"".join(b"X-%d: y\r\n" % i for i in range(10000)) + b"\r\n", 431),
        (b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ]
    for name, url in servers(cluster).items():
        for data, status in cases:
            try:
                st, hd, _ = raw(url, data)
            except (ConnectionResetError, BrokenPipeError):
                # closed while we still sent: allowed where the head is over
                # the buffer, not for the short cases
                assert status in (414, 431), "%s %r: reset, wanted %d" % (name, data[:40], status)
                continue
            assert st == status, "%s %r: %d, wanted %d" % (name, data[:40], st, status)
            assert hd.get("connection", "").lower() == "close", (name, data[:40], hd)
    still_up(cluster)


def nginx_cases(token):
    """Malformed and disguised requests for the public port: (what, raw
    request, status, error). nginx answers most itself, with the JSON pages
    of nginx/nginx.conf.template; the rest reach an api, which answers JSON
    too. /internal/ stays closed in every spelling nginx normalises, token
    or not."""
    auth = b"Authorization: Bearer " + token.encode() + b"\r\n"
    get = lambda target, extra=b"": (b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" +
                                     extra + b"\r\n")
    put = lambda key, extra: b"PUT /kv/" + key + b" HTTP/1.1\r\nHost: x\r\n" + extra
    cases = [(b"internal " + t, get(t, auth), 404, "not_found") for t in [
        b"/internal/kv/x", b"/%69nternal/kv/x", b"//internal/kv/x",
        b"/kv/../internal/kv/x", b"/kv/%2e%2e/internal/kv/x",
        b"/kv/..%2finternal%2fkv%2fx", b"/./internal/changes?since=0",
        b"http://x/internal/kv/x", b"/INTERNAL/kv/x"]]
    cases += [
        (b"topology poke", b"POST /internal/topology-changed HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 0\r\n" + auth + b"\r\n", 404, "not_found"),
        (b"raw NUL", get(b"/kv/a\x00b"), 400, "bad_request"),
        (b"control byte", get(b"/kv/a\x01b"), 400, "bad_request"),
        (b"space", get(b"/kv/a b"), 400, "bad_request"),
        (b"%00", get(b"/kv/a%00b"), 400, "bad_request"),
        (b"bad %", get(b"/kv/a%zzb"), 400, "bad_request"),
        (b"empty key", get(b"/kv/"), 400, "bad_key"),
        (b"long key", get(b"/kv/" + b"k" * 2000), 414, "key_too_long"),
        (b"deep path", get(b"/kv/a/b/c"), 404, "not_found"),
        (b"two lengths", put(b"ng-dup", b"Content-Length: 1\r\nContent-Length: 5\r\n\r\nhello"),
         400, "bad_request"),
        (b"length and chunked", put(b"ng-clte", b"Content-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400, "bad_request"),
        (b"bad chunk", put(b"ng-chunk", b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
         400, "bad_request"),
        (b"gzip coding", put(b"ng-gzip", b"Transfer-Encoding: gzip\r\n\r\n"), 501, "not_implemented"),
        (b"length 1x", put(b"ng-1x", b"Content-Length: 1x\r\n\r\nh"), 400, "bad_request"),
        (b"length -1", put(b"ng-neg", b"Content-Length: -1\r\n\r\nh"), 400, "bad_request"),
        (b"length 1e11", put(b"ng-huge", b"Content-Length: 99999999999\r\n\r\nh"), 413, "too_large"),
        (b"body 2 MB", put(b"ng-big", b"Content-Length: 2000000\r\n\r\n"), 413, "too_large"),
        (b"no Host", b"GET /health HTTP/1.1\r\n\r\n", 400, "bad_request"),
        (b"NUL in Host", b"GET /health HTTP/1.1\r\nHost: x\x00y\r\n\r\n", 400, "bad_request"),
        (b"HTTP/2.0", b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
        (b"HTTP/1.x", b"GET /health HTTP/1.x\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (b"method FOO", b"FOO /kv/x HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"),
        (b"method get", b"get /kv/x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (b"TRACE", b"TRACE /kv/x HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"),
        (b"CONNECT", b"CONNECT x:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (b"header space", get(b"/health", b"Bad Header: y\r\n"), 400, "bad_request"),
        (b"folded header", get(b"/health", b"X-A: y\r\n z\r\n"), 400, "bad_request"),
        (b"20 kB header", get(b"/health", b"X-A: " + b"a" * 20000 + b"\r\n"), 431, "header_too_large"),
        (b"3000 headers", get(b"/health", b"".join(b"X-%d: y\r\n" % i for i in range(3000))),
         431, "header_too_large"),
        (b"40 kB target", get(b"/" + b"a" * 40000), 414, "uri_too_long"),
        (b"incr 1e99", b"POST /kv/ng-incr/incr?by=1e99 HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 0\r\n\r\n", 400, "bad_increment"),
    ]
    return cases


def test_through_nginx_malformed_requests_get_json(cluster):
    """The campaign of the direct tests above, at the public port: every
    malformed or disguised request gets the status and JSON error of
    nginx_cases, none writes anything, a chunked PUT still works, and no
    process restarts or logs a crash."""
    for what, data, status, code in nginx_cases(TOKEN):
        assert_raw_json_error(raw(cluster.nginx, data), status, code, what.decode("latin-1"))
    for key in ["ng-dup", "ng-clte", "ng-chunk", "ng-gzip", "ng-1x", "ng-neg", "ng-huge",
                "ng-big", "ng-incr"]:
        st, _, body = cluster.request("GET", "/kv/" + key)
        assert st == 404, "a refused request wrote %s: %d %r" % (key, st, body[:100])
    st, _, body = raw(cluster.nginx, b"PUT /kv/ng-chunked?sync=1 HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert st == 200, (st, body[:200])
    assert cluster.request("GET", "/kv/ng-chunked")[::2] == (200, b"hello")
    still_up(cluster)
    with open(os.path.join(cluster.config["cluster"]["data_dir"], "run",
                           "nginx-error.log"), errors="replace") as f:
        bad = [ln for ln in f if any(w in ln for w in ("[crit]", "[alert]", "[emerg]"))]
    assert not bad, "nginx logged: %r" % bad[:5]


def test_through_nginx_slow_head_is_cut(cluster):
    """nginx closes a connection whose head comes a byte at a time at
    limits.header_timeout_ms, as the servers behind it do (it used to wait
    60 s)."""
    s = socket.create_connection(addr(cluster.nginx), timeout=10)
    s.settimeout(0.1)
    t0 = time.monotonic()
    cut = None
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        while cut is None and time.monotonic() - t0 < 10:
            try:
                s.sendall(b"a")
                if s.recv(65536) == b"":
                    cut = time.monotonic() - t0
            except socket.timeout:
                pass
            except (BrokenPipeError, ConnectionResetError):
                cut = time.monotonic() - t0
    finally:
        s.close()
    assert cut is not None, "nginx kept a slow head for 10 s"
    assert HEADER_TIMEOUT_MS / 1000 - 0.2 <= cut <= HEADER_TIMEOUT_MS / 1000 + 2, \
        "cut after %.2f s, header timeout %d ms" % (cut, HEADER_TIMEOUT_MS)
