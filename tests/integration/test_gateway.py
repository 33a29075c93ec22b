"""kv-api --lab, the CloudCart lab gateway (lab/README.md), against a fake lab
controller written here (http.server on a free port), so the tests need no
lab cluster: forwarding of POST /write, GET /read/{key} and GET
/cluster-status (status and JSON body passed through), /health, /stats, 404
and 405 answers, and the fixed-window limiter per client address (a burst
over the limit gets 429 with its body and headers, a new window starts at the
first request after the old one expired, clients on 127.0.0.2 and 127.0.0.3
have their own windows, X-Real-IP is not trusted).

Each test starts its own gateway (and fake controller) and stops it."""

import contextlib
import http.server
import json
import os
import signal
import socketserver
import subprocess
import threading
import time
import urllib.parse

from cluster import (SANITIZER_MARKERS, assert_json_error, default_build,
                     json_of, pick_ports, request, tail, wait_until)

TEST_TIMEOUT = 90


# --------------------------------------------------------------------------
# the fake lab controller

STATUS = {"leader": {"node_id": "leader", "url": "http://127.0.0.1:7001",
                     "status": "alive"},
          "followers": [{"node_id": "follower-%d" % i,
                         "url": "http://127.0.0.1:%d" % (7001 + i),
                         "status": "alive"} for i in (1, 2, 3)],
          "quorum": {"W": 2, "R": 2, "total_alive": 3, "can_write": True,
                     "can_read": True}}


class FakeController:
    """POST /write, GET /read/{key}, GET /status with the lab's shapes. Key
    "quorum-down" answers 503 like a lab without W followers; a key starting
    with "slow" takes SLOW_S to answer. Every request is recorded."""

    SLOW_S = 1.5

    def __init__(self):
        self.data = {}
        self.seen = []         # (method, raw path, headers dict, body bytes)
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body=b""):
                with fake.lock:
                    fake.seen.append((self.command, self.path,
                                      {k.lower(): v for k, v in self.headers.items()},
                                      body))

            def do_GET(self):
                self._record()
                if self.path == "/status":
                    self._send(200, STATUS)
                elif self.path.startswith("/read/"):
                    key = urllib.parse.unquote(self.path[len("/read/"):])
                    if key.startswith("slow"):
                        time.sleep(fake.SLOW_S)
                    with fake.lock:
                        rec = fake.data.get(key)
                    if rec is None:
                        self._send(404, {"detail": "Key not found"})
                    else:
                        self._send(200, {"key": key, "value": rec[0], "version": rec[1],
                                         "served_by": "follower-1",
                                         "quorum_responses": 2})
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                self._record(body)
                if self.path != "/write":
                    self._send(404, {"detail": "Not Found"})
                    return
                try:
                    j = json.loads(body)
                    key, value = j["key"], j["value"]
                except (ValueError, KeyError, TypeError):
                    self._send(422, {"detail": "bad body"})
                    return
                if key == "quorum-down":
                    self._send(503, {"detail": {"error": "Write quorum not available",
                                                "alive": 1, "required": 2}})
                    return
                if key.startswith("slow"):
                    time.sleep(fake.SLOW_S)
                with fake.lock:
                    version = fake.data.get(key, (None, 0))[1] + 1
                    fake.data[key] = (value, version)
                self._send(200, {"status": "success", "key": key, "value": value,
                                 "version": version, "sync_acks": 2, "quorum": 2})

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.srv = Server(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()

    def requests(self):
        with self.lock:
            return list(self.seen)


# --------------------------------------------------------------------------
# the gateway under test

class Gateway:
    def __init__(self, controller_url, rate_limit=0, window_ms=60000, extra=()):
        self.base, _, self._locks = pick_ports(block=10)
        self.url = "http://127.0.0.1:%d" % self.base
        build = os.environ.get("KV_BUILD") or default_build()
        exe = os.path.join(build, "bin", "kv-api")
        assert os.access(exe, os.X_OK), "%s is missing: build it first (make)" % exe
        self.log_path = "/tmp/kvtest-gateway-%d.log" % self.base
        self._log = open(self.log_path, "wb")
        argv = [exe, "--lab", "--controller", controller_url, "--port", str(self.base),
                "--set", "api.rate_limit=%d" % rate_limit,
                "--set", "api.rate_window_ms=%d" % window_ms] + list(extra)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(self._up, 10, "kv-api --lab to answer on %s" % self.url)
        except BaseException:
            self.stop()
            raise

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError("kv-api --lab exited %s:\n%s"
                                 % (self.proc.returncode, tail(self.log_path)))
        try:
            # a fresh source address, so that this probe uses no client's budget
            request("GET", self.url + "/health", timeout=1, keepalive=False,
                    source="127.0.0.250")
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("kv-api --lab did not stop on SIGTERM")
        self._log.close()
        for lk in self._locks:
            lk.release()
        rc = self.proc.returncode
        assert rc == 0, "kv-api --lab exited %s:\n%s" % (rc, tail(self.log_path))
        with open(self.log_path, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        bad = [m for m in SANITIZER_MARKERS if m in log]
        assert not bad, "sanitizer report in the gateway's log:\n%s" % tail(self.log_path, 60)
        os.unlink(self.log_path)

    def req(self, method, path, body=None, source="127.0.0.1", headers=None,
            timeout=20):
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        return request(method, self.url + path, body=body, headers=h,
                       timeout=timeout, keepalive=False, source=source)


@contextlib.contextmanager
def lab(rate_limit=0, window_ms=60000, controller=True, extra=()):
    fake = FakeController() if controller else None
    gw = None
    try:
        url = fake.url if fake else "http://127.0.0.1:%d" % closed_port()
        gw = Gateway(url, rate_limit, window_ms, extra)
        yield gw, fake
    finally:
        try:
            if gw is not None:
                gw.stop()
        finally:
            if fake is not None:
                fake.stop()


def closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rl_headers(hd):
    lim, rem = hd.get("X-RateLimit-Limit"), hd.get("X-RateLimit-Remaining")
    return (int(lim) if lim is not None else None,
            int(rem) if rem is not None else None)


def check_429(resp, limit, window_s):
    st, hd, body = resp
    assert st == 429, "expected 429, got %s %r" % (st, body[:200])
    assert "json" in hd.get("Content-Type", ""), hd.get("Content-Type")
    j = json_of(body)
    assert j.get("error") == "Too Many Requests", j
    assert isinstance(j.get("message"), str) and j["message"], j
    ra = hd.get("Retry-After")
    assert ra is not None and ra.isdigit(), "Retry-After %r" % ra
    assert 1 <= int(ra) <= window_s + 1, "Retry-After %s, window %s s" % (ra, window_s)
    assert isinstance(j.get("retry_after"), (int, float)) and j["retry_after"] == int(ra), \
        "body retry_after %r vs Retry-After %s" % (j.get("retry_after"), ra)
    assert rl_headers(hd) == (limit, 0), "X-RateLimit-* %r" % (rl_headers(hd),)
    return int(ra)


# --------------------------------------------------------------------------
# forwarding

def test_forwarding_write_read_status():
    with lab() as (gw, fake):
        st, hd, body = gw.req("POST", "/write", {"key": "cart:1", "value": "apple"})
        assert st == 200, (st, body)
        assert json_of(body) == {"status": "success", "key": "cart:1", "value": "apple",
                                 "version": 1, "sync_acks": 2, "quorum": 2}
        assert "json" in hd.get("Content-Type", "")
        # no limiter: no X-RateLimit headers
        assert rl_headers(hd) == (None, None), rl_headers(hd)
        m, path, h, b = [r for r in fake.requests() if r[0] == "POST"][-1]
        assert path == "/write" and json.loads(b) == {"key": "cart:1", "value": "apple"}
        assert "json" in h.get("content-type", ""), h

        st, _, body = gw.req("GET", "/read/cart:1")
        assert st == 200, (st, body)
        j = json_of(body)
        assert (j["key"], j["value"], j["version"]) == ("cart:1", "apple", 1), j
        assert j["served_by"] == "follower-1" and j["quorum_responses"] == 2, j

        # the key segment goes on as the client sent it (%-encoded)
        gw.req("POST", "/write", {"key": "a/b c", "value": "x"})
        st, _, body = gw.req("GET", "/read/a%2Fb%20c")
        assert st == 200 and json_of(body)["value"] == "x", (st, body)
        assert any(r[1] == "/read/a%2Fb%20c" for r in fake.requests()), fake.requests()

        # the controller's own error answers pass through unchanged
        st, _, body = gw.req("GET", "/read/nope")
        assert st == 404 and json_of(body) == {"detail": "Key not found"}, (st, body)
        st, _, body = gw.req("POST", "/write", {"key": "quorum-down", "value": "v"})
        assert st == 503, (st, body)
        assert json_of(body)["detail"]["error"] == "Write quorum not available", body
        st, _, body = gw.req("POST", "/write", "not json",
                             headers={"Content-Type": "application/json"})
        assert st == 422, (st, body)

        st, _, body = gw.req("GET", "/cluster-status")
        assert st == 200 and json_of(body) == STATUS, (st, body)
        assert fake.requests()[-1][:2] == ("GET", "/status")

        st, _, body = gw.req("GET", "/health")
        assert st == 200 and json_of(body) == {"status": "ok"}, (st, body)

        st, _, body = gw.req("GET", "/stats")
        assert st == 200, (st, body)
        s = json_of(body)
        g = s["gateway"]
        assert g["forwarded"] == 8 and g["errors"] == 1, g   # the 503 is an error
        assert g["requests"] == 11, g
        rl = s["rate_limiter"]
        assert rl["strategy"] == "fixed_window" and rl["enabled"] is False, rl
        assert rl["max_requests"] == 0, rl


def test_unknown_routes_and_methods():
    with lab() as (gw, fake):
        for path in ("/nope", "/kv/x", "/read", "/read/a/b", "/write/x", "/"):
            assert_json_error(gw.req("GET", path), 404, "not_found", what="GET " + path)
        for method, path, allow in (("GET", "/write", "POST"),
                                    ("PUT", "/write", "POST"),
                                    ("POST", "/read/k", "GET"),
                                    ("DELETE", "/read/k", "GET"),
                                    ("POST", "/health", "GET"),
                                    ("POST", "/stats", "GET"),
                                    ("PUT", "/cluster-status", "GET")):
            r = gw.req(method, path, body="" if method in ("POST", "PUT") else None)
            assert_json_error(r, 405, "method_not_allowed", what="%s %s" % (method, path))
            assert r[1].get("Allow") == allow, (method, path, r[1].get("Allow"))
        assert_json_error(gw.req("GET", "/read/%zz"), 400, "bad_key")
        # none of these reached the controller
        assert fake.requests() == [], fake.requests()


def test_controller_down_is_503_json():
    with lab(controller=False) as (gw, _):
        r = gw.req("POST", "/write", {"key": "k", "value": "v"})
        assert_json_error(r, 503, "controller_unavailable")
        assert r[1].get("Retry-After") == "1"
        assert_json_error(gw.req("GET", "/cluster-status"), 503, "controller_unavailable")
        st, _, body = gw.req("GET", "/health")
        assert st == 200
        g = json_of(gw.req("GET", "/stats")[2])["gateway"]
        assert g["errors"] == 2 and g["forwarded"] == 0, g


def test_slow_writes_do_not_hold_server_threads():
    # One server thread: forwarded calls must wait on the httpc loops, not
    # on it, or /health would queue behind the slow writes.
    with lab(extra=("--set", "api.threads=1")) as (gw, fake):
        out = []

        def slow(i):
            out.append(gw.req("POST", "/write", {"key": "slow-%d" % i, "value": "v"}))

        ths = [threading.Thread(target=slow, args=(i,)) for i in range(3)]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        wait_until(lambda: sum(1 for r in fake.requests() if r[0] == "POST") == 3, 5,
                   "three slow writes at the controller")
        st, _, _ = gw.req("GET", "/health", timeout=5)
        t_health = time.monotonic() - t0
        for t in ths:
            t.join(10)
        assert st == 200
        assert t_health < FakeController.SLOW_S, \
            "/health took %.2f s behind slow writes" % t_health
        assert [r[0] for r in out] == [200, 200, 200], [r[0] for r in out]


# --------------------------------------------------------------------------
# the limiter

def test_burst_limited_and_window_restarts_at_first_request():
    limit, window_ms = 5, 2000
    w = window_ms / 1000.0
    src = "127.0.0.2"
    with lab(rate_limit=limit, window_ms=window_ms) as (gw, fake):
        gw.req("POST", "/write", {"key": "k", "value": "v"}, source="127.0.0.9")
        t0 = time.monotonic()
        resps = [gw.req("GET", "/read/k", source=src) for _ in range(limit + 3)]
        burst_s = time.monotonic() - t0
        assert burst_s < w / 2, "burst took %.2f s" % burst_s
        sts = [r[0] for r in resps]
        assert sts == [200] * limit + [429] * 3, sts
        for i, r in enumerate(resps[:limit]):
            assert rl_headers(r[1]) == (limit, limit - 1 - i), (i, rl_headers(r[1]))
        for r in resps[limit:]:
            check_429(r, limit, w)
        # every path counts, /health and /stats included
        check_429(gw.req("GET", "/health", source=src), limit, w)
        check_429(gw.req("GET", "/stats", source=src), limit, w)
        check_429(gw.req("GET", "/nope", source=src), limit, w)
        n_forwarded = sum(1 for r in fake.requests() if r[1] == "/read/k")
        assert n_forwarded == limit, "%d reads reached the controller" % n_forwarded

        # Past the window, at 1.5 windows after the first request: the next
        # request opens a new window of its own (a window aligned on the
        # first one would end 0.5 windows later).
        time.sleep(max(0.0, t0 + 1.5 * w - time.monotonic()))
        t1 = time.monotonic()
        r = gw.req("GET", "/read/k", source=src)
        assert r[0] == 200 and rl_headers(r[1]) == (limit, limit - 1), (r[0], rl_headers(r[1]))
        for i in range(limit - 1):
            assert gw.req("GET", "/read/k", source=src)[0] == 200, i
        ra = check_429(gw.req("GET", "/read/k", source=src), limit, w)
        assert ra == int(w), "Retry-After %d just after the window opened (%s s)" % (ra, w)
        time.sleep(max(0.0, t1 + 0.75 * w - time.monotonic()))
        r = gw.req("GET", "/health", source=src)
        assert r[0] == 429, "allowed %.2f s into a %.1f s window: %s" % (
            time.monotonic() - t1, w, r[0])
        assert int(r[1]["Retry-After"]) == 1, r[1]["Retry-After"]
        time.sleep(max(0.0, t1 + w + 0.1 - time.monotonic()))
        r = gw.req("GET", "/health", source=src)
        assert r[0] == 200 and rl_headers(r[1]) == (limit, limit - 1), (r[0], rl_headers(r[1]))


def test_clients_by_peer_address():
    limit = 3
    with lab(rate_limit=limit, window_ms=30000) as (gw, _):
        a, b = "127.0.0.2", "127.0.0.3"
        assert [gw.req("GET", "/health", source=a)[0] for _ in range(limit + 1)] == \
            [200] * limit + [429]
        # another address has its own window
        assert [gw.req("GET", "/health", source=b)[0] for _ in range(limit)] == [200] * limit
        check_429(gw.req("GET", "/health", source=b), limit, 30)
        # X-Real-IP is not trusted: the peer address decides
        r = gw.req("GET", "/health", source=a, headers={"X-Real-IP": "127.0.0.77"})
        assert r[0] == 429, r[0]
        r = gw.req("GET", "/health", source="127.0.0.4", headers={"X-Real-IP": a})
        assert r[0] == 200 and rl_headers(r[1]) == (limit, limit - 1), (r[0], rl_headers(r[1]))


def test_stats_shape():
    limit, window_ms = 4, 2500
    with lab(rate_limit=limit, window_ms=window_ms) as (gw, _):
        gw.req("POST", "/write", {"key": "k", "value": "v"}, source="127.0.0.2")
        for _ in range(limit + 2):
            gw.req("GET", "/read/k", source="127.0.0.3")
        st, hd, body = gw.req("GET", "/stats", source="127.0.0.5")
        assert st == 200, (st, body)
        assert rl_headers(hd) == (limit, limit - 1), rl_headers(hd)
        s = json_of(body)
        g, rl = s["gateway"], s["rate_limiter"]
        for k in ("requests", "forwarded", "errors"):
            assert isinstance(g.get(k), int), (k, g)
        # the health probe of startup, the write, the reads and this /stats
        assert g["requests"] == 1 + 1 + (limit + 2) + 1, g
        assert g["forwarded"] == 1 + limit and g["errors"] == 0, g
        assert g["rate_limited"] == 2, g
        assert rl["strategy"] == "fixed_window" and rl["enabled"] is True, rl
        assert rl["max_requests"] == limit, rl
        assert rl["window_seconds"] == window_ms / 1000.0, rl
        assert rl["clients"] == 4, rl        # .250 (startup probe), .2, .3, .5
        assert rl["allowed"] == 1 + 1 + limit + 1 and rl["denied"] == 2, rl
