#!/usr/bin/env python3
"""make test-docker: the compose deployment end to end, DEMO.md as assertions.

    python3 tests/docker/run.py --build build/release [-k PATTERN] [--keep]

1. A Docker engine: the one DOCKER_HOST (or the default socket) names when it
   answers; else this script starts its own (`dockerd --iptables=false
   --storage-driver=vfs`, data and sockets in a temporary directory) and
   stops it at the end (tests/docker/dockertest.py). docker.io and
   docker-compose are installed with apt-get when missing (as root).
2. The image: tests/docker/mkimage.py assembles the Dockerfile's layout
   from this machine's files (no registry here to pull debian:bookworm-slim)
   and `docker import`s it; KV_IMAGE points the compose file at it, so
   nothing is built.
3. docker-compose.yml, unchanged, under a project name of its own, nginx
   published on a free port of 127.0.0.1 (KV_HTTP_PORT): every test below is
   a step of DEMO.md, run against the containers (each test names its
   section). With --iptables=false published ports go through docker-proxy
   and containers reach each other on the compose network; both are used.
4. Cleanup, also on failure or Ctrl-C: `docker-compose --profile grow down
   -v` (containers, those of the grow profile too, network, volumes), the lab containers, the image, and the engine if this
   script started it.

Every wait polls with a deadline. One line per test, "PASS name (s)" or
"FAIL name: reason", and as the last line "N passed, M failed". Exit status
1 when anything failed. Python 3 standard library only.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import dockertest  # noqa: E402
import mkimage  # noqa: E402
from dockertest import Engine, log, run, wait_until, wait_until_matches  # noqa: E402

COMPOSE_FILE = os.path.join(REPO, "docker-compose.yml")
# --------------------------------------------------------------- cluster --

class Stack:
    """docker-compose.yml under its own project name."""

    def __init__(self, engine, image, port):
        self.engine = engine
        self.image = image
        self.port = port
        self.project = "kvtest%d" % os.getpid()
        self.settings = {}  # the environment of the last `up`

    def env(self, settings=None):
        e = dict(self.engine.env)
        for k in ("MAX_QUEUE_SIZE", "WORKER_COUNT", "DISPATCH_RATE",
                  "MAX_KEY_RATE", "KV_HTTP_PORT", "KV_IMAGE", "KV_HTTP_BIND"):
            e.pop(k, None)
        e.update(KV_IMAGE=self.image, KV_HTTP_PORT=str(self.port),
                 KV_HTTP_BIND="127.0.0.1", COMPOSE_PROJECT_NAME=self.project,
                 COMPOSE_INTERACTIVE_NO_CLI="1")
        e.update(settings if settings is not None else self.settings)
        return e

    def compose(self, *args, timeout=240, check=True, settings=None):
        return run(["docker-compose", "-f", COMPOSE_FILE, "-p", self.project]
                   + list(args), timeout, env=self.env(settings), check=check)

    def up(self, *extra, settings=None):
        if settings is not None:
            self.settings = dict(settings)
        self.compose("up", "-d", "--no-build", *extra, timeout=300)

    def exec(self, service, *argv, timeout=60, check=True):
        return self.compose("exec", "-T", service, *argv, timeout=timeout,
                            check=check)

    def sh(self, script, timeout=120):
        """A DEMO.md command line as a user types it: port 8000 is the
        test's port, `docker compose` is docker-compose (1.29 here; the
        subcommands used are the same)."""
        script = script.replace("localhost:8000", "localhost:%d" % self.port)
        if "$TOKEN" in script:  # DEMO.md 4 sets it once for what follows
            script = ("TOKEN=$(docker compose exec -T controller cat "
                      "/secret/token); " + script)
        script = script.replace("docker compose ", "docker-compose ")
        r = subprocess.run(["bash", "-o", "pipefail", "-c", script],
                           capture_output=True, env=self.env(),
                           timeout=timeout, cwd=REPO, check=False)
        return (r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace"))

    def container(self, service, index=1):
        return "%s_%s_%d" % (self.project, service, index)

    def docker(self, *args, timeout=60, check=True, input_bytes=None):
        return run(["docker"] + list(args), timeout, env=self.engine.env,
                   check=check, input_bytes=input_bytes)

    def healthy(self, service):
        _, out, _ = self.compose("ps", "-q", service)
        ids = out.split()
        if not ids:
            return False
        for cid in ids:
            _, st, _ = self.docker("inspect", "-f", "{{.State.Health.Status}}",
                                   cid, check=False)
            if st.strip() != "healthy":
                return False
        return True

    def wait_healthy(self, services, timeout=120):
        for s in services:
            wait_until(lambda s=s: self.healthy(s), timeout,
                       "%s to be healthy" % s, 0.5)

    def down(self, volumes):
        # --profile grow: docker compose v2 leaves the containers of a
        # profile it is not given (1.29 takes every service either way)
        args = ["--profile", "grow", "down", "--remove-orphans", "-t", "5"] + \
            (["-v"] if volumes else [])
        self.compose(*args, timeout=180, check=False)


STORES = ["store-0-0", "store-0-1", "store-1-0", "store-1-1"]
ALL = ["controller"] + STORES + ["queue", "api", "nginx"]


class Client:
    """HTTP/1.1 with keep-alive to nginx, the way curl behaves: a request
    whose reused connection turns out closed before any answer (nginx's
    graceful reload closes idle keep-alive connections) is sent again once
    on a fresh connection; it never reached a server. `reconnects` counts
    those."""

    def __init__(self, port, timeout=15):
        self.port = port
        self.timeout = timeout
        self.conn = None
        self.used = False
        self.reconnects = 0

    def _fresh(self):
        if self.conn:
            self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                               timeout=self.timeout)
        self.used = False

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self._fresh()
            reused = self.used
            try:
                self.conn.request(method, path, body=body,
                                  headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                self.used = True
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if hdrs.get("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, hdrs, data
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError):
                self.conn.close()
                self.conn = None
                if not reused or attempt:
                    raise
                self.reconnects += 1
        raise AssertionError("unreachable")

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def jget(c, path):
    st, _, b = c.request("GET", path)
    assert st == 200, (path, st, b[:300])
    return json.loads(b)


class Background:
    """Client threads (self.threads, running self._run) started by `with`
    and stopped (stop_ev) and joined when it ends."""

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        for t in self.threads:
            t.join(60)


class Load(Background):
    """Background clients through nginx, each writing its own key with
    ?sync=1 and reading it back, every answer checked (200, and the value
    just written). Reports answers by status, the api replicas seen
    (X-KV-Api) and the failures."""

    def __init__(self, port, threads=3):
        self.port = port
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.codes = {}
        self.apis = {}
        self.failures = []
        self.reconnects = 0
        self.threads = [threading.Thread(target=self._run, args=(i,),
                                         daemon=True) for i in range(threads)]

    def _run(self, i):
        c = Client(self.port)
        n = 0
        while not self.stop_ev.is_set():
            n += 1
            try:
                if n % 2:
                    st, h, b = c.request("PUT", "/kv/load:%d?sync=1" % i,
                                         body=b"v%d" % n)
                    ok = st == 200
                else:
                    st, h, b = c.request("GET", "/kv/load:%d" % i)
                    ok = st == 200 and b == b"v%d" % (n - 1)
                with self.lock:
                    self.codes[st] = self.codes.get(st, 0) + 1
                    api = h.get("x-kv-api", "")
                    self.apis[api] = self.apis.get(api, 0) + 1
                    if not ok:
                        self.failures.append((st, b[:200]))
            except Exception as e:  # noqa: BLE001 -- every failure is reported
                with self.lock:
                    self.failures.append(repr(e))
            time.sleep(0.01)
        with self.lock:
            self.reconnects += c.reconnects
        c.close()


    def summary(self):
        with self.lock:
            return ("%d answers %s, %d failed, %d keep-alive reconnects"
                    % (sum(self.codes.values()), self.codes,
                       len(self.failures), self.reconnects))


# ----------------------------------------------------------------- tests --
# Each test is one section of DEMO.md (named in its docstring) and runs its
# commands; they share one stack and run in this order.

def test_up_and_health(st, c):
    """DEMO 1: up, every service healthy, /health through nginx."""
    st.up(settings={})
    st.wait_healthy(ALL)
    rc, out, _ = st.sh("curl -s localhost:8000/health")
    assert rc == 0 and out.strip() == '{"status":"ok"}', out
    rc, out, _ = st.sh("curl -s localhost:8000/ready")
    assert out.strip() == '{"status":"ready"}', out
    # the X-KV-Api header names the replica that answered
    rc, out, _ = st.sh("curl -si localhost:8000/health | grep -i '^x-kv-api'")
    assert re.match(r"(?i)x-kv-api: [0-9.]+:7010\s*$", out), out
    # only nginx is published
    _, ports, _ = st.compose("ps")
    assert ports.count("->") == 1 and "127.0.0.1:%d->8000/tcp" % st.port \
        in ports, ports
    # the controller watches the containers by service name
    rc, out, _ = st.sh("docker compose exec -T controller kvctl status")
    assert rc == 0, out
    for s in STORES:
        assert re.search(r"%s\s+(primary|secondary)\s+external\s+-\s+\d+\s+yes"
                         % s, out), out
    assert "epoch 1, ready" in out, out


def test_crud_through_nginx(st, c):
    """DEMO 2: writes and reads through nginx."""
    st.sh("curl -s -X DELETE localhost:8000/kv/greeting")
    rc, out, _ = st.sh("curl -s -X PUT --data-binary '2 apples' "
                       "'localhost:8000/kv/cart:42?sync=1'")
    j = json.loads(out)
    assert j["status"] == "applied" and j["key"] == "cart:42", out
    rc, out, _ = st.sh("curl -s localhost:8000/kv/cart:42")
    assert out == "2 apples", out
    rc, out, _ = st.sh("curl -s -H 'Accept: application/json' "
                       "localhost:8000/kv/cart:42")
    j = json.loads(out)
    assert j["value"] == "2 apples" and j["shard"] == 0 and \
        j["served_by"] == "http://store-0-0:7100", out
    rc, out, _ = st.sh("curl -s -X PUT --data-binary hello "
                       "localhost:8000/kv/greeting")
    j = json.loads(out)
    assert j["status"] == "queued" and j["job"], out
    job = j["job"]
    wait_until(lambda: json.loads(st.sh("curl -s localhost:8000/jobs/%s"
                                        % job)[1])["status"] == "applied",
               20, "job %s applied" % job)
    assert st.sh("curl -s localhost:8000/kv/greeting")[1] == "hello"
    rc, out, _ = st.sh("curl -s -X DELETE localhost:8000/kv/greeting")
    assert json.loads(out)["status"] == "queued", out

    # a tombstone reads "deleted" until every replica passed it, then it is
    # collected and the key reads "not_found"
    def gone():
        o = st.sh("curl -s -w ' %{http_code}' localhost:8000/kv/greeting")[1]
        return o.endswith(" 404") and json.loads(o[:-4])["error"] in \
            ("deleted", "not_found") and o
    wait_until(gone, 20, "greeting deleted")
    before = json.loads(st.sh("curl -s localhost:8000/counter/visits")[1])
    rc, out, _ = st.sh("curl -s -X POST localhost:8000/counter/visits/increment")
    assert json.loads(out) == {"key": "visits", "status": "queued"}, out
    rc, out, _ = st.sh("curl -s -X POST "
                       "'localhost:8000/kv/visits/incr?by=5&sync=1'")
    assert json.loads(out)["status"] == "applied", out
    wait_until(lambda: json.loads(st.sh("curl -s localhost:8000/counter/visits"
                                        )[1])["value"] == before["value"] + 6,
               20, "visits + 6")
    # nginx keeps /internal/ to itself and answers JSON
    rc, out, _ = st.sh("curl -s -w ' %{http_code}' "
                       "localhost:8000/internal/kv/cart:42")
    assert out.endswith(" 404") and json.loads(out[:-4])["error"] == \
        "not_found", out


def test_two_clients_one_cart(st, c):
    """DEMO 2: two clients edit one cart with If-Match; the second gets 412,
    re-reads and retries on the new version."""
    def etag():
        rc, out, _ = st.sh("curl -s -i localhost:8000/kv/cart:5 | grep -i '^etag'")
        assert rc == 0 and out.lower().startswith("etag: \""), out
        return out.split(":", 1)[1].strip()
    rc, out, _ = st.sh("curl -s -X PUT --data-binary '2 apples' "
                       "'localhost:8000/kv/cart:5?sync=1'")
    assert json.loads(out)["status"] == "applied", out
    first = etag()
    put = ("curl -s -X PUT -H 'If-Match: %s' --data-binary '%s' "
           "'localhost:8000/kv/cart:5?sync=1'")
    j = json.loads(st.sh(put % (first, "3 apples"))[1])
    assert j["status"] == "applied", j
    j2 = json.loads(st.sh(put % (first, "2 apples, 1 pear"))[1])
    assert j2["error"] == "precondition_failed" and \
        j2["current_version"] == j["version"], j2
    second = etag()
    assert second == '"%d"' % j["version"], (second, j)
    assert st.sh("curl -s localhost:8000/kv/cart:5")[1] == "3 apples"
    j3 = json.loads(st.sh(put % (second, "3 apples, 1 pear"))[1])
    assert j3["status"] == "applied", j3
    assert st.sh("curl -s localhost:8000/kv/cart:5")[1] == "3 apples, 1 pear"


def test_session_expires(st, c):
    """DEMO 2: a session written with ?ttl=2 reads with its expiry, then is
    404 once it passed: "expired" (the record, or the reaper's tombstone),
    or "not_found" once that tombstone was collected, a second or so later:
    a poll may come after that."""
    rc, out, _ = st.sh("curl -s -X PUT --data-binary 'user=7' "
                       "'localhost:8000/kv/session:abc?ttl=2&sync=1'")
    assert json.loads(out)["status"] == "applied", out
    rc, out, _ = st.sh("curl -s -i localhost:8000/kv/session:abc | "
                       "grep -i '^x-kv-expires-at'")
    exp = int(out.split(":", 1)[1])
    assert time.time() * 1000 < exp <= time.time() * 1000 + 2500, (out, time.time())

    def expired():
        o = st.sh("curl -s -w '\\n%{http_code}' localhost:8000/kv/session:abc")[1]
        body, _, code = o.strip().rpartition("\n")
        return code == "404" and json.loads(body).get("error") in ("expired", "not_found") and o
    wait_until(expired, 10, "the session to expire")
    assert time.time() * 1000 >= exp


def test_sharding_ring(st, c):
    """DEMO 3: which shard owns a key, and why."""
    rc, out, _ = st.sh("curl -s 'localhost:8000/ring?key=cart:42'")
    j = json.loads(out)
    assert j == {"key": "cart:42", "shard": 0, "epoch": 1,
                 "primary": "http://store-0-0:7100",
                 "secondaries": ["http://store-0-1:7101"]}, out
    rc, out, _ = st.sh("curl -s 'localhost:8000/ring?key=cart:7'")
    j = json.loads(out)
    assert j["shard"] == 1 and j["primary"] == "http://store-1-0:7110", out
    # a GET says the same shard
    for key in ("cart:42", "cart:7", "user:1", "user:2", "session:9"):
        st_, _, _ = c.request("PUT", "/kv/%s?sync=1" % key, body=b"x")
        assert st_ == 200
        ring = jget(c, "/ring?key=" + key)
        s2, h, _ = c.request("GET", "/kv/" + key)
        assert s2 == 200 and int(h["x-kv-shard"]) == ring["shard"] and \
            h["x-kv-served-by"] == ring["primary"], (key, h, ring)


def test_replication_same_value(st, c):
    """DEMO 4: the same value on primary and secondary."""
    st.sh("curl -s -X PUT --data-binary '{\"items\":[1,2]}' "
          "'localhost:8000/kv/cart:7?sync=1'")

    def both():
        a = st.sh("docker compose exec -T store-1-0 curl -s --oauth2-bearer $TOKEN "
                  "localhost:7110/internal/kv/cart:7")[1]
        b = st.sh("docker compose exec -T store-1-1 curl -s --oauth2-bearer $TOKEN "
                  "localhost:7111/internal/kv/cart:7")[1]
        return a == b == '{"items":[1,2]}' and (a, b)
    wait_until(both, 20, "cart:7 on both replicas of shard 1")
    rc, out, _ = st.sh("docker compose exec -T store-1-1 curl -s "
                       "localhost:7111/health")
    j = json.loads(out)
    assert j["role"] == "secondary" and \
        j["primary"] == "http://store-1-0:7110", out
    wait_until(lambda: st.sh("docker compose exec -T controller kvctl parity"
                             )[0] == 0, 20, "kvctl parity identical")
    rc, out, _ = st.sh("docker compose exec -T controller kvctl parity")
    assert re.search(r"^shard 0: 2 replicas, \d+ keys: identical$", out, re.M) \
        and re.search(r"^shard 1: 2 replicas, \d+ keys: identical$", out,
                      re.M), out


SCALE_CHECK = ("for i in $(seq 12); do curl -s -o /dev/null -D - "
               "localhost:8000/health | grep -i '^x-kv-api' | tr -d '\\r'; "
               "done | sort | uniq -c")


# Every internal and admin route of every service (the route tables of
# store/store_http.c, queue/queue_http.c, api/api_http.c and
# controller/controller_http.c); /internal/nope stands for unknown ones.
ROUTES = ([(m, "http://store-%d-%d:71%d%d%s" % (s, r, s, r, p))
           for s in (0, 1) for r in (0, 1)
           for m, p in (("GET", "/internal/kv/k"), ("PUT", "/internal/kv/k"),
                        ("DELETE", "/internal/kv/k"), ("POST", "/internal/batch"),
                        ("POST", "/internal/replicate"),
                        ("GET", "/internal/changes?since=0"),
                        ("POST", "/internal/repair"),
                        ("POST", "/internal/topology-changed"),
                        ("GET", "/internal/nope"))] +
          [(m, "http://queue:7001" + p)
           for m, p in (("PUT", "/internal/kv/k"), ("DELETE", "/internal/kv/k"),
                        ("POST", "/internal/kv/k/incr"),
                        ("POST", "/internal/topology-changed"),
                        ("GET", "/internal/nope"))] +
          [("POST", "http://api:7010/internal/topology-changed"),
           ("GET", "http://api:7010/internal/nope"),
           ("POST", "http://controller:7000/shards"),
           ("DELETE", "http://controller:7000/shards/9")])


def test_internal_routes_need_the_token(st, c):
    """DEMO 4 (start), issue 11 finding 1: the controller made a token on
    its first start (/secret/token, 64 hex digits, in the volume
    cluster-secret), and every internal and admin route of every service
    answers 401 without it, or with a wrong one, and not 401 with it."""
    rc, out, err = st.sh("docker compose exec -T controller cat /secret/token")
    tok = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", tok), (out, err)
    rc, out, _ = st.sh("docker compose exec -T store-1-0 curl -s "
                       "localhost:7110/internal/kv/cart:7")
    assert json.loads(out)["error"] == "unauthorized", out
    wrong = ("0" if tok[0] != "0" else "1") + tok[1:]
    script = "; ".join(
        "curl -s -o /dev/null -w '%%{http_code} ' -X %s %s'%s'" % (m, h, u)
        for m, u in ROUTES
        for h in ("", "-H 'Authorization: Bearer %s' " % wrong,
                  "-H 'Authorization: Bearer %s' " % tok))
    rc, out, err = st.exec("controller", "sh", "-c", script, timeout=120)
    codes = out.split()
    assert len(codes) == 3 * len(ROUTES), (out, err)
    for i, (m, u) in enumerate(ROUTES):
        none, bad, good = codes[3 * i:3 * i + 3]
        assert none == bad == "401" and good != "401", (m, u, none, bad, good)


def test_dashboard(st, c):
    """DEMO 12: the dashboard through nginx. A browser on the host reaches
    the controller through nginx's container, not from the controller's
    own loopback, so the page and its state need the token."""
    rc, out, _ = st.sh("curl -s -o /dev/null -w '%{http_code}\\n' localhost:8000/ui/")
    assert out.strip() == "401", out
    rc, out, _ = st.sh("curl -s -o /dev/null -w '%{http_code}\\n' "
                       "-H \"Authorization: Bearer $TOKEN\" localhost:8000/ui/")
    assert out.strip() == "200", out
    rc, out, err = st.sh("curl -s -H \"Authorization: Bearer $TOKEN\" localhost:8000/ui/state")
    j = json.loads(out)
    assert j["mode"] == "cluster" and len(j["status"]["shards"]) == 2, out[:300]
    assert j["queue"] is not None and j["queue"]["depth"]["main"] >= 0, out[:300]


def test_scale_api_to_3_and_back(st, c):
    """DEMO 5: docker compose up -d --scale api=3, and back to 1, while
    clients read and write: every replica serves, no request fails."""
    with Load(st.port) as load:
        time.sleep(1)
        st.up("--scale", "api=3")
        st.wait_healthy(["api"])
        wait_until(lambda: len([a for a in load.apis if "," not in a
                                and a]) >= 3, 30,
                   "three api replicas to answer through nginx")
        # what the DEMO shows: twelve requests, three replicas answering
        # (nginx balances per worker process, so a few rounds at most)
        wait_until(lambda: len(st.sh(SCALE_CHECK)[1].strip().splitlines())
                   == 3, 20, "three X-KV-Api values in one round")
        out = st.sh(SCALE_CHECK)[1]
        assert all(re.match(r"^\s+\d+ X-KV-Api: [0-9.]+:7010$", ln)
                   for ln in out.rstrip().splitlines()), out
        seen3 = set(load.apis)
        rc, out, _ = st.sh("docker compose logs --no-log-prefix nginx | "
                           "grep upstream")
        assert re.search(r"^kv-nginx: api upstream: [0-9.]+ \(port 7010\)$",
                         out, re.M) and \
            re.search(r"^kv-nginx: api upstream: [0-9.]+ [0-9.]+ [0-9.]+ "
                      r"\(was: .*\); reloaded$", out, re.M), out
        st.up("--scale", "api=1")

        def one_left():
            got = set()
            for _ in range(12):
                _, h, _ = c.request("GET", "/health")
                got.add(h.get("x-kv-api"))
            return len(got) == 1 and got
        wait_until(one_left, 30, "nginx to use the one api left")
        time.sleep(1)
    log("scale: " + load.summary())
    assert len([a for a in seen3 if a and "," not in a]) >= 3, seen3
    assert not load.failures, load.failures[:5]
    assert load.codes.get(200, 0) > 50, load.codes


def test_nginx_own_errors_are_json(st, c):
    """DEMO 5 (end): with no api replica, nginx's own 502 is JSON."""
    st.compose("stop", "api")
    seen = {}
    try:
        # a stopped replica first times out (504), then the name stops
        # resolving and the upstream is empty (502): both JSON
        def bad_gateway():
            s, h, b = c.request("GET", "/health")
            if s != 200:
                seen[s] = (h.get("retry-after"), json.loads(b)["error"])
            return s == 502
        wait_until(bad_gateway, 40, "nginx to answer 502 without api")
        rc, out, _ = st.sh("curl -s -D - localhost:8000/kv/cart:42 | grep -E "
                           "'^HTTP|^Retry-After|error' | tr -d '\\r'")
        assert out == ('HTTP/1.1 502 Bad Gateway\nRetry-After: 1\n'
                       '{"error":"bad_gateway","message":"no api process '
                       'answered"}\n'), out
    finally:
        st.compose("start", "api")
    st.wait_healthy(["api"])
    wait_until(lambda: c.request("GET", "/health")[0] == 200, 30,
               "nginx to find the api again")
    assert seen[502] == ("1", "bad_gateway"), seen
    assert set(seen) <= {502, 504} and seen.get(504, ("1", "gateway_timeout"))\
        == ("1", "gateway_timeout"), seen


BURST = ("seq 300 | xargs -P 20 -I{} curl -s -o /dev/null -w '%{http_code}\\n' "
         "-X PUT --data-binary x localhost:8000/kv/burst:{} | sort | uniq -c")


BURST_429 = ("seq 300 | xargs -P 20 -I{} curl -s -D - -X PUT --data-binary x "
             "localhost:8000/kv/burst:{} | grep -oE "
             "'Retry-After: [0-9]+|\"error\":\"[a-z_]+\"' | sort | uniq -c")


def burst_counts(out):
    return {int(code): int(n) for n, code in
            (ln.split() for ln in out.strip().splitlines())}


def test_backpressure_small_queue(st, c):
    """DEMO 6: MAX_QUEUE_SIZE=100 WORKER_COUNT=1 (shards taking 20 writes/s):
    a burst gets 429 with Retry-After, as JSON."""
    st.up(settings={"MAX_QUEUE_SIZE": "100", "WORKER_COUNT": "1",
                    "DISPATCH_RATE": "20"})
    st.wait_healthy(["queue", "api", "nginx"])
    rc, out, _ = st.sh(BURST)
    counts = burst_counts(out)
    assert set(counts) == {202, 429} and counts[202] >= 100 and \
        counts[429] >= 30, out
    # what the refused ones carry: Retry-After and the JSON error
    rc, out, _ = st.sh(BURST_429)
    got = {ln.strip().split(None, 1)[1]: int(ln.split()[0])
           for ln in out.strip().splitlines()}
    assert set(got) == {'"error":"queue_full"', "Retry-After: 1"} and \
        got["Retry-After: 1"] == got['"error":"queue_full"'] >= 30, out


def test_no_backpressure_large_queue(st, c):
    """DEMO 6: the same burst with MAX_QUEUE_SIZE=100000: all 202."""
    st.up(settings={"DISPATCH_RATE": "20"})
    st.wait_healthy(["queue", "api", "nginx"])
    rc, out, _ = st.sh(BURST)
    assert burst_counts(out) == {202: 300}, out


def test_hot_key_spills_to_excess(st, c):
    """DEMO 7: a hot key over MAX_KEY_RATE spills to EXCESS while other
    keys keep flowing."""
    st.up(settings={"MAX_KEY_RATE": "20"})
    st.wait_healthy(["queue", "api", "nginx"])
    before = json.loads(st.sh("curl -s localhost:8000/counter/hot")[1])["value"]
    hot = subprocess.Popen(
        ["bash", "-c", "seq 400 | xargs -P 10 -I{} curl -s -o /dev/null -X "
         "POST localhost:%d/counter/hot/increment" % st.port],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: int(re.search(r'^"spilled_excess":(\d+)$', st.sh(
            "docker compose exec -T queue curl -s localhost:7001/stats | "
            "grep -oE '\"spilled_excess\":[0-9]+'")[1]).group(1)) > 0, 30,
            "the hot key to spill to EXCESS")
        rc, out, _ = st.sh("curl -s -o /dev/null -w '%{http_code} in "
                           "%{time_total} s\\n' -X PUT --data-binary calm "
                           "'localhost:8000/kv/calm?sync=1'")
        m = re.match(r"^200 in ([0-9.]+) s\n$", out)
        assert m and float(m.group(1)) < 2.0, out
        for i in range(20):
            t = time.monotonic()
            s, _, b = c.request("PUT", "/kv/calm:%d?sync=1" % i, body=b"x")
            took = time.monotonic() - t
            assert s == 200 and took < 2.0, (s, b, took)
    finally:
        hot.wait(120)
    rc, out, _ = st.sh("docker compose exec -T queue curl -s "
                       "localhost:7001/stats | grep -o '\"spilled_excess\":[0-9]*'")
    assert int(out.split(":")[1]) > 0, out
    wait_until(lambda: json.loads(st.sh("curl -s localhost:8000/counter/hot"
                                        )[1])["value"] == before + 400, 60,
               "all 400 hot increments applied")
    st.up(settings={})
    st.wait_healthy(["queue", "api", "nginx"])


def test_failover_keeps_reads_and_writes(st, c):
    """DEMO 8: stop the primary of cart:42's shard: reads and writes go on;
    it comes back as a secondary."""
    with Load(st.port) as load:
        time.sleep(1)
        rc, out, err = st.sh("docker compose stop store-0-0")
        assert rc == 0, err
        wait_until(lambda: jget(c, "/ring?key=cart:42")["primary"] ==
                   "http://store-0-1:7101", 30, "store-0-1 promoted")
        rc, out, _ = st.sh("curl -s 'localhost:8000/ring?key=cart:42'")
        assert json.loads(out) == {
            "key": "cart:42", "shard": 0, "epoch": 2,
            "primary": "http://store-0-1:7101",
            "secondaries": ["http://store-0-0:7100"]}, out
        rc, out, _ = st.sh("curl -s -X PUT --data-binary '3 apples' "
                           "'localhost:8000/kv/cart:42?sync=1'")
        assert json.loads(out)["status"] == "applied", out
        rc, out, _ = st.sh("curl -s -H 'Accept: application/json' "
                           "localhost:8000/kv/cart:42")
        j = json.loads(out)
        assert j["value"] == "3 apples" and \
            j["served_by"] == "http://store-0-1:7101", out
        rc, out, _ = st.sh("docker compose logs --no-log-prefix controller | "
                           "grep promoted")
        assert re.search(r"WARN failover: shard 0: promoted store-0-1 "
                         r"\(replica 1, applied_seq \d+\) in place of "
                         r"store-0-0; shard epoch 2, topology epoch 2, "
                         r"handoff_seq \d+$", out, re.M), out
        time.sleep(1)
    log("failover: " + load.summary())
    assert not load.failures, load.failures[:5]
    rc, out, err = st.sh("docker compose start store-0-0")
    assert rc == 0, err

    def rejoined():
        o = st.sh("docker compose exec -T store-0-0 curl -s "
                  "localhost:7100/health")[1]
        j = json.loads(o)
        return j["role"] == "secondary" and j["epoch"] == 2 and \
            j["state"] == "secondary" and j
    wait_until(rejoined, 60, "store-0-0 back as a secondary at epoch 2")
    wait_until(lambda: st.sh("docker compose exec -T store-0-0 curl -s --oauth2-bearer $TOKEN "
                             "localhost:7100/internal/kv/cart:42")[1] ==
               "3 apples", 30, "store-0-0 to hold the write of the outage")
    # The controller's health probes see store-0-0 back within a round or two.
    wait_until_matches(lambda: st.sh("docker compose exec -T controller kvctl status")[1],
                       [r"store-0-0\s+secondary\s+external\s+-\s+7100\s+yes",
                        r"store-0-1\s+primary\s+external\s+-\s+7101\s+yes",
                        r"epoch 2, ready"],
                       30, "kvctl status: store-0-0 a healthy secondary, epoch 2")


def test_controller_restart_keeps_state(st, c):
    """DEMO 8 (end): the failover survives a controller restart (its state
    is on the controller-state volume)."""
    rc, out, err = st.sh("docker compose restart controller")
    assert rc == 0, err
    st.wait_healthy(["controller"])
    topo = json.loads(st.sh("docker compose exec -T controller curl -s "
                            "localhost:7000/topology")[1])
    assert topo["epoch"] == 2 and \
        topo["shards"][0]["primary"] == "http://store-0-1:7101" and \
        topo["shards"][0]["epoch"] == 2, topo
    wait_until(lambda: c.request("PUT", "/kv/after-ctl?sync=1",
                                 body=b"ok")[0] == 200, 30,
               "a write after the controller restart")


def test_store_restart_keeps_data(st, c):
    """DEMO 9: restart a store: the data is on its volume (it resumes from
    its own position, no full copy)."""
    _, out, _ = st.exec("store-1-1", "curl", "-s", "localhost:7111/health")
    keys = json.loads(out)["keys"]
    assert keys > 0, out
    rc, out, err = st.sh("docker compose restart store-1-1")
    assert rc == 0, err
    st.wait_healthy(["store-1-1"])
    rc, out, _ = st.sh("docker compose exec -T store-1-1 curl -s --oauth2-bearer $TOKEN "
                       "localhost:7111/internal/kv/cart:7")
    assert out == '{"items":[1,2]}', out
    rc, out, _ = st.sh("docker compose exec -T store-1-1 curl -s "
                       "localhost:7111/stats | grep -oE "
                       "'\"(full_resyncs|catchups)\":[0-9]+' | head -2")
    m = re.match(r'^"full_resyncs":0\n"catchups":(\d+)\n$', out)
    assert m and int(m.group(1)) > 0, out
    stats = json.loads(st.exec("store-1-1", "curl", "-s",
                               "localhost:7111/stats")[1])
    assert stats["keys"] >= keys, stats


def test_down_up_keeps_data(st, c):
    """DEMO 9: docker compose down, then up: the volumes keep every value
    and the topology."""
    c.close()
    rc, out, err = st.sh("docker compose down")
    assert rc == 0, err
    rc, out, _ = st.sh("docker volume ls | grep %s_" % st.project)
    vols = sorted(ln.split()[1] for ln in out.strip().splitlines())
    want = ["cluster-secret", "controller-state", "queue-journal", "store-0-0",
            "store-0-1", "store-1-0", "store-1-1"]
    # docker-compose 1.29 creates every volume of the file at `up`, those
    # of the grow profile's stores too (empty until they start)
    if "%s_store-2-0" % st.project in vols:
        want = sorted(want + ["store-2-0", "store-2-1"])
    assert [ln.split()[0] for ln in out.strip().splitlines()] == \
        ["local"] * len(want) and \
        vols == ["%s_%s" % (st.project, v) for v in want], out
    st.up()
    st.wait_healthy(ALL)
    rc, out, _ = st.sh("curl -s localhost:8000/kv/cart:42")
    assert out == "3 apples", out
    rc, out, _ = st.sh("curl -s localhost:8000/kv/cart:7")
    assert out == '{"items":[1,2]}', out
    rc, out, _ = st.sh("curl -s 'localhost:8000/ring?key=cart:42'")
    assert json.loads(out) == {
        "key": "cart:42", "shard": 0, "epoch": 2,
        "primary": "http://store-0-1:7101",
        "secondaries": ["http://store-0-0:7100"]}, out


def test_cloudcart_lab(st, c):
    """DEMO 10: the CloudCart lab in a container of the image."""
    name = st.project + "-lab"
    st.docker("rm", "-f", name, check=False)
    st.docker("run", "--rm", "-d", "--name", name, st.image, "kvctl", "lab",
              "--config", "student_config.json")
    try:
        wait_until(lambda: "ready" in st.docker("logs", name)[1].split(),
                   60, "the lab to print ready")
        _, out, _ = st.docker("exec", name, "curl", "-s",
                              "localhost:7000/status")
        j = json.loads(out)
        assert j["quorum"]["W"] == 4 and j["quorum"]["R"] == 1 and \
            len(j["followers"]) == 5 and j["leader"]["status"] == "alive", j
        _, out, _ = st.docker(
            "exec", name, "curl", "-s", "-X", "POST",
            "localhost:8000/write", "-H", "Content-Type: application/json",
            "-d", '{"key": "cart:42", "value": "2 apples"}')
        j = json.loads(out)
        assert j["status"] == "success" and j["sync_acks"] == 4, out
        # R = 1 reads follower-5, outside the sync set: the write reaches
        # it about 5 s later (INC-3)
        _, out, _ = st.docker("exec", name, "curl", "-s",
                              "localhost:8000/read/cart:42")
        j = json.loads(out)
        assert j.get("value") == "2 apples" or \
            j["detail"]["error"] == "Key not found", out
        wait_until(lambda: json.loads(st.docker(
            "exec", name, "curl", "-s", "localhost:8000/read/cart:42")[1]
        ).get("served_by") == "follower-5", 20, "follower-5 to have cart:42")
        _, out, _ = st.docker("exec", name, "curl", "-s", "-X", "POST",
                              "localhost:7000/kill/follower-1")
        j = json.loads(out)
        assert j["status"] == "stopped" and j["node_id"] == "follower-1", out
        _, out, _ = st.docker("exec", name, "curl", "-s", "-X", "POST",
                              "localhost:7000/spawn")
        assert json.loads(out)["status"] == "spawned", out
        _, out, _ = st.docker("exec", name, "curl", "-s", "-X", "POST",
                              "localhost:7000/pause/follower-2?ms=2000")
        assert json.loads(out)["status"] == "paused", out
        st.docker("stop", name, timeout=60)
        wait_until(lambda: st.docker("inspect", name, check=False)[0] != 0, 30,
                   "the lab container to be removed (--rm)")
    finally:
        st.docker("rm", "-f", name, check=False)


def test_cloudcart_assess(st, c):
    """DEMO 10: kvctl assess grades the incident file: 38/100."""
    cmd = ("docker run --rm kv kvctl assess --config student_config.json | "
           "grep -E '^INC-[0-9/]+ |^Score|^W \\+ R|^Cost'")
    rc, got, err = st.sh(cmd.replace(" kv ", " %s " % st.image), timeout=300)
    # below 100 assess exits 1 (pipefail passes it on)
    assert rc == 1, (rc, got, err[-2000:])
    want = """INC-0    Basic Operations                 15/15
INC-1    Gateway Flood (Rate Limiting)     8/15
INC-3    Stale Cart Data (Consistency)     2/25
INC-4    Write Outage (Fault Tolerance)    5/25
INC-2/5  Recovery & Right-Sizing           8/20
Score: 38/100, grade F
W + R vs N: 4 + 1 = 5, not more than N = 5 (reads can miss the latest write: INC-3)
Cost: 6 nodes x $10/h = $60/h, over the $50/h budget (INC-5)
"""
    assert got == want, got + err[-2000:]


GROW_KEYS = 1000
GROW_WRITE = ("seq 1000 | xargs -P 8 -I{} curl -s -o /dev/null -w "
              "'%{http_code}\\n' -X PUT --data-binary v{} "
              "'localhost:8000/kv/grow:{}?sync=1' | sort | uniq -c")
# every key read through nginx, one curl in sequence (keep-alive): "shard
# N" for a key that has its value, else the answer itself
GROW_CHECK = ("curl -s -H 'Accept: application/json' -w '\\n' "
              "'localhost:8000/kv/grow:[1-1000]' | sed -E "
              "'s/^\\{\"key\":\"grow:([0-9]+)\",\"value\":\"v\\1\",.*"
              "\"shard\":([0-9]+),.*$/shard \\2/' | sort | uniq -c")
GROW_ADD = ("docker compose exec -T controller kvctl shard add --primary "
            "http://store-2-0:7120 --secondary http://store-2-1:7121")


class Readers(Background):
    """Background clients through nginx reading the grow:i keys over and
    over, every answer checked (200 and its value). Counts reads and keeps
    the failures."""

    def __init__(self, port, keys, threads=2):
        self.port = port
        self.keys = keys
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.reads = 0
        self.failures = []
        self.threads = [threading.Thread(target=self._run, args=(i, threads),
                                         daemon=True) for i in range(threads)]

    def _run(self, i, n):
        c = Client(self.port)
        k = i
        while not self.stop_ev.is_set():
            key = 1 + k % self.keys
            k += n
            try:
                st_, _, b = c.request("GET", "/kv/grow:%d" % key)
                ok = st_ == 200 and b == b"v%d" % key
                with self.lock:
                    self.reads += 1
                    if not ok:
                        self.failures.append((key, st_, b[:200]))
            except Exception as e:  # noqa: BLE001 -- every failure is reported
                with self.lock:
                    self.failures.append((key, repr(e)))
        c.close()


def grow_shares(st):
    """GROW_CHECK run: {shard: keys} of the keys that read back their
    value; AssertionError on any other line."""
    rc, out, err = st.sh(GROW_CHECK, timeout=180)
    log("grow: GROW_CHECK printed:\n" + out)
    got = {}
    for ln in out.strip().splitlines():
        m = re.match(r"^\s*(\d+) shard (\d+)$", ln)
        assert m, "a key did not read back its value: %r\n%s" % (ln, out)
        got[int(m.group(2))] = int(m.group(1))
    assert rc == 0 and sum(got.values()) == GROW_KEYS, (rc, out, err)
    return got


def grow_rebalance(st):
    return json.loads(st.exec("controller", "curl", "-s",
                              "localhost:7000/rebalance")[1])


def grow_migrate(st, cmd, what):
    """Run a kvctl shard command (it waits for the end) while readers and
    writers go through nginx; what it printed (stderr, stdout), every
    answer checked."""
    with Readers(st.port, GROW_KEYS) as readers, Load(st.port) as load:
        time.sleep(0.5)
        before = readers.reads
        rc, out, err = st.sh(cmd, timeout=180)
        during = readers.reads - before
        time.sleep(0.5)
    log("%s: %s: %d reads of the grow keys while kvctl ran, %d in all; "
        "load %s" % (what, cmd.split("kvctl ")[1], during, readers.reads,
                     load.summary()))
    log("%s: kvctl printed:\n%s%s" % (what, err, out))
    assert rc == 0, (rc, out, err)
    # kvctl's "started" line is on stderr; docker-compose 1.29's exec -T
    # passes it on stdout
    out = err + out
    assert during > 0, "no read while kvctl ran"
    assert not readers.failures, readers.failures[:5]
    assert not load.failures, load.failures[:5]
    return out


def test_grow_the_cluster(st, c):
    """DEMO 11: a third shard from the grow profile takes its share of the
    keys while reads and writes go on; then shard 0 is removed."""
    rc, out, _ = st.sh(GROW_WRITE, timeout=180)
    log("grow: GROW_WRITE printed:\n" + out)
    assert out.split() == ["1000", "200"], out
    before = grow_shares(st)
    assert set(before) == {0, 1}, before

    # the new shard's stores, before the controller knows them
    rc, out, err = st.sh("docker compose --profile grow up -d", timeout=300)
    assert rc == 0, err
    st.wait_healthy(["store-2-0", "store-2-1"])
    for svc, port in (("store-2-0", 7120), ("store-2-1", 7121)):
        h = json.loads(st.sh("docker compose exec -T %s curl -s "
                             "localhost:%d/health" % (svc, port))[1])
        log("grow: %s before the add: %s" % (svc, json.dumps(h)))
        assert h["status"] == "ok" and h["shard"] == 2 and h["keys"] == 0 \
            and h["epoch"] == 0, h
    _, out, _ = st.exec("controller", "kvctl", "status")
    assert "store-2-" not in out, out

    out = grow_migrate(st, GROW_ADD, "add")
    m = re.match(r"^migration (\d+) \(add shard 2\) started: predicted to "
                 r"move [0-9.]+ % of the keys\n", out)
    assert m, out
    add_id = int(m.group(1))
    assert re.search(r"^migration %d \(add shard 2\): done, started \S+, "
                     r"ended \S+ \([0-9.]+ s\)$" % add_id, out, re.M), out
    rb = grow_rebalance(st)
    assert rb["id"] == add_id and rb["phase"] == "done" and \
        rb["kind"] == "add" and rb["shard"] == 2 and \
        rb["from"] == [0, 1] and rb["to"] == [0, 1, 2] and \
        0.2 < rb["share"] < 0.45, rb
    after = grow_shares(st)
    log("grow: grow keys by shard before %s, after the add %s" % (before,
                                                                  after))
    share = after.get(2, 0) / GROW_KEYS
    # 1000 keys: the ring's share give or take 5 standard deviations
    assert set(after) == {0, 1, 2} and abs(share - rb["share"]) < 0.08, \
        (after, rb["share"])
    # keys only move to the new shard, and every one there was copied
    assert after[0] <= before[0] and after[1] <= before[1], (before, after)
    assert rb["totals"]["sent"] >= after[2], rb
    out = st.sh("curl -s 'localhost:8000/ring?key=grow:1'")[1]
    log("grow: ring of grow:1: " + out)
    ring = json.loads(out)
    s_, h, b = c.request("GET", "/kv/grow:1")
    assert s_ == 200 and b == b"v1" and \
        int(h["x-kv-shard"]) == ring["shard"] and \
        h["x-kv-served-by"] == ring["primary"], (ring, h)
    wait_until(lambda: re.search(r"^shard 2: 2 replicas, \d+ keys: "
                                 r"identical$", st.sh(
                                     "docker compose exec -T controller "
                                     "kvctl parity")[1], re.M), 30,
               "kvctl parity: shard 2 identical")
    rc, out, _ = st.sh("docker compose exec -T controller kvctl status")
    assert re.search(r"store-2-0\s+primary\s+external\s+-\s+7120\s+yes", out)\
        and re.search(r"store-2-1\s+secondary\s+external\s+-\s+7121\s+yes",
                      out), out

    # shrink: shard 0's keys go to shards 1 and 2
    out = grow_migrate(st, "docker compose exec -T controller kvctl shard "
                       "remove 0", "remove")
    assert re.match(r"^migration %d \(remove shard 0\) started: " %
                    (add_id + 1), out), out
    assert re.search(r"^migration %d \(remove shard 0\): done, " %
                     (add_id + 1), out, re.M), out
    rb = grow_rebalance(st)
    assert rb["id"] == add_id + 1 and rb["phase"] == "done" and \
        rb["kind"] == "remove" and rb["shard"] == 0 and \
        rb["to"] == [1, 2], rb
    final = grow_shares(st)
    log("grow: grow keys by shard after the remove %s" % final)
    assert set(final) == {1, 2} and final[1] >= after[1] and \
        final[2] >= after[2], (after, final)
    topo = json.loads(st.exec("controller", "curl", "-s",
                              "localhost:7000/topology")[1])
    assert [s["id"] for s in topo["shards"]] == [1, 2] and \
        "migration" not in topo, topo
    # the controller does not stop what it does not supervise: it says so
    wait_until(lambda: all(re.search(
        r"reshard: %s \(http://%s:%d\) is out of the topology: stop it$"
        % (n, n, p), st.sh("docker compose logs --no-log-prefix controller")
        [1], re.M) for n, p in (("store-0-0", 7100), ("store-0-1", 7101))),
        30, "the controller to name store-0-* as out of the topology")
    log("grow: " + st.sh("docker compose logs --no-log-prefix controller | "
                         "grep 'out of the topology'")[1])
    rc, out, err = st.sh("docker compose stop store-0-0 store-0-1")
    assert rc == 0, err
    assert grow_shares(st) == final
    rc, out, _ = st.sh("docker compose exec -T controller kvctl status | "
                       "tail -7")
    log("grow: kvctl status:\n" + out)
    rows = [ln.split()[0] for ln in out.strip().splitlines()[2:]]
    assert out.startswith("controller http://controller:7000: epoch %d, "
                          "ready\n" % topo["epoch"]) and \
        sorted(rows) == ["queue", "store-1-0", "store-1-1", "store-2-0",
                         "store-2-1"] and \
        re.search(r"store-2-0\s+primary\s+external\s+-\s+7120\s+yes",
                  out), out


TESTS = [test_up_and_health, test_crud_through_nginx, test_two_clients_one_cart,
         test_session_expires,
         test_sharding_ring,
         test_internal_routes_need_the_token, test_dashboard,
         test_replication_same_value, test_scale_api_to_3_and_back,
         test_nginx_own_errors_are_json, test_backpressure_small_queue,
         test_no_backpressure_large_queue, test_hot_key_spills_to_excess,
         test_failover_keeps_reads_and_writes,
         test_controller_restart_keeps_state, test_store_restart_keeps_data,
         test_down_up_keeps_data, test_cloudcart_lab, test_cloudcart_assess,
         test_grow_the_cluster]


# ------------------------------------------------------------------ main --

def main():
    a = dockertest.arguments(__doc__, "starts the stack", "the stack")
    build = a.build
    passed = failed = 0
    engine = Engine()
    stack = None
    image = None
    dockertest.interrupt_on_signals()
    try:
        try:
            engine.start()
            image = "kvtest%d:latest" % os.getpid()
            data = mkimage.assemble(build)
            mkimage.docker_import(data, image, env=engine.env)
            log("image %s: %.1f MiB" % (image, len(data) / 1048576))
            stack = Stack(engine, image, free_port())
            log("compose project %s, nginx on 127.0.0.1:%d"
                % (stack.project, stack.port))
        except (Exception, SystemExit) as e:  # noqa: BLE001 -- a failed setup
            failed += 1
            dockertest.print_failure("setup", e, lines=12)
        if stack:
            cur = {"c": Client(stack.port)}

            def after_failure(i):
                cur["c"].close()
                cur["c"] = Client(stack.port)
                if i == 0:
                    _, logs, _ = stack.compose("logs", "--no-color", "--tail",
                                               "30", check=False)
                    print("\n".join("    " + ln for ln in
                                    logs.splitlines()[-120:]), flush=True)
            p, f = dockertest.run_tests(TESTS, lambda t: t(stack, cur["c"]),
                                        a.pattern, after_failure)
            passed, failed = passed + p, failed + f
            cur["c"].close()
    except KeyboardInterrupt as e:
        failed += 1
        print("FAIL interrupted: %s" % e, flush=True)
    finally:
        if stack and not a.keep:
            stack.down(volumes=True)
            log("compose down -v done")
        if image and not a.keep:
            run(["docker", "rmi", "-f", image], 120, env=engine.env,
                check=False)
        if not a.keep:
            engine.stop()
    log("done")
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
