#!/usr/bin/env python3
"""Throughput and latency of the real cluster with wrk, on loopback only.

    python3 tests/bench/bench.py [--build build/release] [--duration 8]
                                 [--rows ceiling,get_nginx,...] [--out reports/bench.json]

Rows (see ROWS below; add one by appending a Row):
  ceiling    a bare nginx answering `return 200 "ok"` (same worker count): the
             most this machine's loopback + nginx can do; ratio = rps / ceiling
  get_nginx  GET /kv/<key> through the cluster's nginx
  get_api    GET /kv/<key> straight to one api process
  get_store  GET <primary store>/internal/kv/<key>
  put_queue  PUT /kv/<key> through nginx (202 queued), rotating over many keys
  put_ttl    the same with ?ttl=3600 on every write (the expiry's cost)
  put_w0_n2  PUT /kv/<key>?sync=1 through nginx, N = 2 secondaries, W = 0
             (answered once the primary applied it)
  put_w1_n2  the same with W = 1 (one secondary acknowledged)
  put_w2_n3  the same with N = 3, W = 2
  get_r2_n3  GET /kv/<key> through nginx with N = 3, R = 2 (two secondaries
             in parallel, newest wins)
  reap       --reap-keys records (500 000) expiring at one millisecond on one
             shard (N = 1): GET /kv/<key> through nginx while the reaper
             turns them into tombstones, beside the same GETs just before
             (idle); reports keys/s reaped and both p99s (the row's p99 is
             the one during the reap, p99_idle_ms the other)
N counts secondaries: cluster.replicas = N + 1.

The all-nginx chains: a row marked with a chain length L (the servers its
request crosses in a row, a parallel fan-out counting once; Row.chain) also
runs, just before and just after itself and half as long each, the chain of
L servers: one nginx whose server blocks proxy to each other over keep-alive
upstreams, the last to the row's cluster's primary store, GET
/internal/kv/<key> crossing L - 1 nginx hops and the store. vs_chain is the
row's req/s over the mean of those two runs (chain_rps): what our servers do
against nginx doing nothing but forward, on the same machine at the same
time (a shared machine changes within seconds).

Every row runs `wrk -t2 -c64 -d8s --latency`. A row whose wrk run reports
non-2xx responses or socket errors is a failure (printed; exit status 1).
The ceiling runs first and again last (these machines are shared: other
work comes and goes during a run); the ceiling row and every ratio use the
mean of the two, and both runs are in the report (ceiling_first/_last).
Writes reports/bench.json:
  {"rows":[{"name","rps","p50_ms","p99_ms","ratio","chain","chain_rps",
            "vs_chain",...}],
   "machine":{"cores","date",...}}
The whole run stays under 5 minutes. Python 3 standard library + wrk + nginx.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import cluster as kvc  # noqa: E402

TIME_BUDGET_S = 290          # whole run, under 5 minutes
PRELOAD_KEYS = 200
VALUE_BYTES = 100
REAP_KEYS = 500000           # --reap-keys
REAP_BATCH = 5000            # records per POST /internal/batch while loading

# --------------------------------------------------------------------------
# wrk

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    m = re.match(r"^\s*([0-9.]+)\s*(us|ms|s|m|h)\s*$", text)
    if not m:
        raise ValueError("bad wrk latency %r" % text)
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(out):
    """Requests/sec, the 50%/99% latency lines (ms), total requests, non-2xx,
    socket errors from wrk's --latency output."""
    r = {"rps": None, "p50_ms": None, "p99_ms": None, "requests": None,
         "non_2xx": 0, "socket_errors": 0}
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", out, re.M)
    if m:
        r["rps"] = float(m.group(1))
    for pct, field in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s*%s(?:\.0+)?%%\s+([0-9.]+\s*(?:us|ms|s|m|h))\s*$" % pct, out, re.M)
        if m:
            r[field] = round(to_ms(m.group(1)), 3)
    m = re.search(r"^\s*(\d+) requests in ", out, re.M)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        r["non_2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    return r


def run_wrk(url, args, script=None, tmp=None, headers=None, duration=None):
    duration = duration or args.duration
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections,
           "-d%ds" % duration, "--latency", "--timeout", "5s"]
    for k, v in (headers or {}).items():
        cmd += ["-H", "%s: %s" % (k, v)]
    if script:
        path = os.path.join(tmp, "row-%d.lua" % (abs(hash(script)) % 10 ** 8))
        with open(path, "w") as f:
            f.write(script)
        cmd += ["-s", path]
    cmd.append(url)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=duration + 30, text=True)
    if p.returncode != 0:
        raise RuntimeError("wrk exited %d:\n%s" % (p.returncode, p.stdout))
    return p.stdout


def lua_put(prefix, keys, value_bytes, query=""):
    """PUT /kv/<prefix><i><query> rotating over `keys` keys, a fixed body."""
    return """
local n = 0
local body = string.rep("v", %d)
local hdrs = {["Content-Type"] = "application/octet-stream"}
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) %% 100000)
  n = math.random(0, %d)
end
function request()
  n = n + 1
  return wrk.format("PUT", "/kv/%s" .. (n %% %d) .. "%s", hdrs, body)
end
""" % (value_bytes, keys, prefix, keys, query)


def lua_put_sync(prefix, keys, value_bytes):
    """PUT /kv/<prefix><i>?sync=1: each request waits for its write."""
    return """
local n = 0
local body = string.rep("v", %d)
local hdrs = {["Content-Type"] = "application/octet-stream"}
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) %% 100000)
  n = math.random(0, %d)
end
function request()
  n = n + 1
  return wrk.format("PUT", "/kv/%s" .. (n %% %d) .. "?sync=1", hdrs, body)
end
""" % (value_bytes, keys, prefix, keys)


def lua_get_rotating(prefix, keys):
    return """
local n = 0
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) %% 100000)
  n = math.random(0, %d)
end
function request()
  n = n + 1
  return wrk.format("GET", "/kv/%s" .. (n %% %d))
end
""" % (keys, prefix, keys)


# --------------------------------------------------------------------------
# the ceiling: a bare nginx

class BenchNginx:
    """An nginx of its own (workers as the cluster's, keep-alive without
    limit) serving the server blocks given: the ceiling's, or a chain's."""

    CONF = """worker_processes %(workers)s;
daemon off;
master_process on;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
%(servers)s
}
"""

    def __init__(self, name, workers, tmp, nports, servers):
        """servers(ports) -> the server blocks, for nports ports of ours."""
        d = self.dir = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        base, _, self.locks = kvc.pick_ports(block=nports)
        self.ports = list(range(base, base + nports))
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.CONF % {"workers": workers if workers else "auto",
                                 "d": d, "servers": servers(self.ports)})
        self.proc = subprocess.Popen(
            [kvc.find_nginx(), "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(d, "stderr.log"), "wb"), start_new_session=True)
        self.url = "http://127.0.0.1:%d" % self.ports[0]

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("%s nginx exited: %s" % (
                    name, kvc.tail(os.path.join(d, "error.log"))))
            return kvc.request("GET", self.url + "/", timeout=1)[0] != 0
        kvc.wait_until(up, 10, "the %s nginx to answer" % name)

    def stop(self):
        kvc.close_connections()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for lk in self.locks:
            lk.release()


def bare_nginx(workers, tmp):
    """The ceiling: `return 200 "ok"`."""
    return BenchNginx("ceiling", workers, tmp, 1, lambda ports: """
    server {
        listen 127.0.0.1:%d;
        location / { return 200 "ok"; }
    }""" % ports[0])


# The all-nginx chains: CHAIN_MAX - 1 server blocks of one nginx, each
# proxying to the next over keep-alive upstreams, the last to the cluster's
# primary store (with the token). chainN enters at the block N - 1 hops from
# the store: N servers in a row, the store included, as a project row of N
# servers crosses.
CHAIN_MAX = 5


def nginx_chain(workers, tmp, store, auth):
    def servers(ports):
        blocks = []
        for i, port in enumerate(ports):
            nxt = ("127.0.0.1:%d" % ports[i - 1]) if i else store.split("//", 1)[1]
            blocks.append("""
    upstream hop%(i)d {
        server %(nxt)s;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            proxy_pass http://hop%(i)d;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            %(auth)s
        }
    }""" % {"i": i, "nxt": nxt, "port": port,
                "auth": 'proxy_set_header Authorization "%s";' % auth if auth and not i else ""})
        return "".join(blocks)
    return BenchNginx("chain", workers, tmp, CHAIN_MAX - 1, servers)


# --------------------------------------------------------------------------
# rows

class Row:
    """name; cluster: key of CLUSTERS (None: the bare nginx); url(ctx) -> the
    wrk URL; script(ctx) -> optional lua; internal: the row calls a
    store's own route, with the cluster token; run(ctx, url, args, tmp) ->
    (wrk output, extra result fields): a row that does more around its wrk
    run than running it."""

    def __init__(self, name, cluster, url, script=None, note="", internal=False,
                 run=None, chain=None):
        """chain: how many servers a request crosses in a row (a parallel
        fan-out counts once): the row is also reported as a fraction of the
        all-nginx chain of that length (vs_chain)."""
        self.name, self.cluster, self.url, self.script, self.note = name, cluster, url, script, note
        self.internal, self.run, self.chain = internal, run, chain


def reap_row(ctx, url, args, tmp):
    """--reap-keys records written straight to the one primary (wire
    batches with an expiry, REAP_BATCH a request) all expiring at one
    millisecond; once the secondary has them, wrk GETs a plain key through
    nginx before that moment (idle) and from it on (during), while /stats
    counts the reaped records."""
    cl, prim, nkeys = ctx["cluster"], ctx["store"], args.reap_keys
    t_load = time.time()
    # Far enough ahead for the load, the replication and the idle run
    # (checked below): 10 s for 500 000 keys here.
    expires_at = int((t_load + 3 + args.duration + nkeys / 50000) * 1000)
    hdrs = {"Content-Type": "application/octet-stream"}
    value = b"r" * VALUE_BYTES
    for start in range(0, nkeys, REAP_BATCH):
        body = b"".join(kvc.encode_wire_op(kvc.WIRE_PUT, "reap-%d" % i, value,
                                           expires_at=expires_at)
                        for i in range(start, min(start + REAP_BATCH, nkeys)))
        st, _, res = cl.internal("POST", prim + "/internal/batch", body=body,
                                 headers=hdrs, timeout=60)
        if st != 200:
            raise RuntimeError("reap load: POST /internal/batch -> %s %r" % (st, res[:200]))
    load_s = time.time() - t_load
    sec = cl.shard_topology(0)["secondaries"][0]

    def caught_up():  # the idle run is idle: the secondary has every record
        seq = kvc.get_json(prim + "/stats", headers=cl.internal_headers())[1]["seq"]
        return kvc.get_json(sec + "/stats", headers=cl.internal_headers())[1]["applied_seq"] >= seq
    kvc.wait_until(caught_up, 60, "the secondary to catch up with the reap load")

    def reaped():
        return kvc.get_json(prim + "/stats", headers=cl.internal_headers())[1]["requests"]["reaped"]
    base = reaped()
    idle = parse_wrk(run_wrk(url, args, None, tmp))
    if time.time() * 1000 >= expires_at:
        raise RuntimeError("reap: the load (%.1f s) and the idle run outlasted the "
                           "expiry; raise the margin" % load_s)
    kvc.wait_until(lambda: time.time() * 1000 >= expires_at, 30, "the reap keys' expiry")
    t_exp = time.time()
    done = {}

    def watch():
        def all_reaped():
            return reaped() - base >= nkeys
        try:
            kvc.wait_until(all_reaped, args.duration + 120, "the reaper", interval=0.02)
            done["t"] = time.time()
        except AssertionError as e:
            done["error"] = str(e)
    th = threading.Thread(target=watch)
    th.start()
    out = run_wrk(url, args, None, tmp)
    th.join()
    if "error" in done:
        raise RuntimeError("reap: %s" % done["error"])
    took = done["t"] - t_exp
    during = parse_wrk(out)
    print("  %-12s   %d keys reaped in %.2f s (%.0f keys/s); GET p99 %.2f ms during, "
          "%.2f ms idle (%.2fx); loaded in %.1f s"
          % ("reap", nkeys, took, nkeys / took, during["p99_ms"], idle["p99_ms"],
             during["p99_ms"] / idle["p99_ms"], load_s), flush=True)
    return out, {"reaped_keys_per_s": round(nkeys / took), "reap_s": round(took, 2),
                 "p99_idle_ms": idle["p99_ms"], "rps_idle": round(idle["rps"], 1),
                 "p99_vs_idle": round(during["p99_ms"] / idle["p99_ms"], 2)}


# Cluster configurations rows can run against (overrides of the config).
# The limiter is on but never denies: its cost is part of the numbers.
_RL = {"rate_limit": 1000000000, "rate_window_ms": 1000}
CLUSTERS = {
    "default": {"api": dict(_RL)},
    # the same, fresh: put_ttl must not run behind put_queue's backlog
    "default_ttl": {"api": dict(_RL)},
    # N = secondaries per shard: cluster.replicas = N + 1
    "w0_n2": {"api": dict(_RL), "cluster": {"replicas": 3, "write_quorum": 0}},
    "w1_n2": {"api": dict(_RL), "cluster": {"replicas": 3, "write_quorum": 1}},
    # W and R do not affect each other's path: one cluster for both rows
    "w2r2_n3": {"api": dict(_RL), "cluster": {"replicas": 4, "write_quorum": 2,
                                              "read_quorum": 2}},
    # every reaped key on one primary, replicated to one secondary
    "reap": {"api": dict(_RL), "cluster": {"shards": 1, "replicas": 2}},
}

ROWS = [
    Row("ceiling", None, lambda ctx: ctx["ceiling"] + "/",
        note="bare nginx return 200"),
    Row("get_nginx", "default", lambda ctx: ctx["nginx"] + "/kv/" + ctx["key"],
        note="GET through nginx -> api -> primary", chain=3),
    Row("get_api", "default", lambda ctx: ctx["api"] + "/kv/" + ctx["key"],
        note="GET straight to one api", chain=2),
    Row("get_store", "default", lambda ctx: ctx["store"] + "/internal/kv/" + ctx["key"],
        note="GET straight to the primary store", internal=True),
 
    Row("put_queue", "default", lambda ctx: ctx["nginx"] + "/",
        script=lambda ctx: lua_put("bench-put-", 10000, VALUE_BYTES),
        note="PUT through nginx -> api -> queue (202)", chain=4),
    Row("put_ttl", "default_ttl", lambda ctx: ctx["nginx"] + "/",
        script=lambda ctx: lua_put("bench-ttl-", 10000, VALUE_BYTES, "?ttl=3600"),
        note="put_queue with ?ttl=3600 on every write", chain=4),
    Row("put_w0_n2", "w0_n2", lambda ctx: ctx["nginx"] + "/",
        script=lambda ctx: lua_put_sync("bench-w0-", 10000, VALUE_BYTES),
        note="PUT ?sync=1 through nginx, N=2, W=0", chain=4),
    Row("put_w1_n2", "w1_n2", lambda ctx: ctx["nginx"] + "/",
        script=lambda ctx: lua_put_sync("bench-w1-", 10000, VALUE_BYTES),
        note="PUT ?sync=1 through nginx, N=2, W=1", chain=5),
    Row("put_w2_n3", "w2r2_n3", lambda ctx: ctx["nginx"] + "/",
        script=lambda ctx: lua_put_sync("bench-w2-", 10000, VALUE_BYTES),
        note="PUT ?sync=1 through nginx, N=3, W=2", chain=5),
    Row("get_r2_n3", "w2r2_n3", lambda ctx: ctx["nginx"] + "/kv/" + ctx["key"],
        note="GET through nginx, N=3, R=2 (2 secondaries in parallel)", chain=3),
    Row("reap", "reap", lambda ctx: ctx["nginx"] + "/kv/" + ctx["key"], run=reap_row,
        note="GET through nginx while keys expiring at once are reaped"),
]


def prepare_cluster(cl):
    """Preload keys; returns the context rows build their URLs from."""
    value = b"v" * VALUE_BYTES
    for i in range(PRELOAD_KEYS):
        st, _, body = kvc.request("PUT", "%s/kv/bench-%d?sync=1" % (cl.nginx, i),
                                  body=value, timeout=15)
        if st != 200:
            raise RuntimeError("preload PUT bench-%d -> %s %r" % (i, st, body[:200]))
    key = "bench-0"
    st, _, body = kvc.request("GET", cl.nginx + "/ring?key=" + key)
    if st != 200:
        raise RuntimeError("GET /ring -> %s %r" % (st, body[:200]))
    ring = json.loads(body)
    ctx = {"nginx": cl.nginx, "api": cl.apis[0], "store": ring["primary"], "key": key,
           "cluster": cl}
    for name, url in (("get_nginx", ctx["nginx"] + "/kv/" + key),
                      ("get_api", ctx["api"] + "/kv/" + key),
                      ("get_store", ctx["store"] + "/internal/kv/" + key)):
        st, _, body = cl.internal("GET", url)
        if st != 200 or body != value:
            raise RuntimeError("%s check: GET %s -> %s %r" % (name, url, st, body[:100]))
    return ctx


def chain_paired(ctx, r, url, script, args, tmp):
    """The row's wrk run between two half-length runs of the all-nginx
    chain of its length (chain, row, chain): both see the same machine,
    which on a shared one changes within seconds. The chain's req/s is the
    mean of its two runs."""
    curl = ctx["chain"][r.chain] + "/internal/kv/" + ctx["key"]
    half = max(1, args.duration // 2)
    before = parse_wrk(run_wrk(curl, args, None, tmp, duration=half))
    out = run_wrk(url, args, script, tmp)
    after = parse_wrk(run_wrk(curl, args, None, tmp, duration=half))
    if before["non_2xx"] or after["non_2xx"] or before["socket_errors"] or \
            after["socket_errors"]:
        raise RuntimeError("chain%d: non-2xx answers or socket errors" % r.chain)
    rps = (before["rps"] + after["rps"]) / 2
    print("  %-12s %10.1f req/s (chain%d, around %s: %.1f and %.1f)"
          % ("chain%d" % r.chain, rps, r.chain, r.name, before["rps"], after["rps"]),
          flush=True)
    return out, {"chain_rps": round(rps, 1),
                 "chain_p99_ms": max(before["p99_ms"], after["p99_ms"])}


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "date": datetime.datetime.now(datetime.timezone.utc)
            .replace(microsecond=0).isoformat(), "cpu": cpu, "kernel": platform.release()}


def queue_apply_row(cl):
    """Admission-to-apply latency of the queue's jobs, read from its /stats
    once the put_queue load has drained (the journal on, as always)."""
    def drained():
        st, q = kvc.get_json(cl.queue + "/stats")
        return q if st == 200 and sum(q["depth"].values()) == 0 else None
    q = kvc.wait_until(drained, 60, "the queue to drain after put_queue")
    print("  %-12s   p50 %.1f ms, p99 %.1f ms (admission to apply)"
          % ("queue_apply", q["apply_p50_ms"], q["apply_p99_ms"]), flush=True)
    return {"name": "queue_apply_p99_ms", "rps": None, "p50_ms": q["apply_p50_ms"],
            "p99_ms": q["apply_p99_ms"], "ratio": None, "ok": True,
            "note": "queue admission to apply, at the put_queue load"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=None, help="build dir (default: where bin/ points)")
    ap.add_argument("--duration", type=int, default=8, help="seconds per row (default 8)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rows", default=None, help="comma-separated row names (default: all)")
    ap.add_argument("--nginx-workers", type=int, default=0,
                    help="nginx worker processes for both nginx (0 = auto)")
    ap.add_argument("--reap-keys", type=int, default=REAP_KEYS,
                    help="records the reap row expires at once (default %d)" % REAP_KEYS)
    ap.add_argument("--out", default=os.path.join(REPO, "reports", "bench.json"))
    args = ap.parse_args()

    t0 = time.monotonic()
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (scripts/deps.sh installs it)", file=sys.stderr)
        return 2
    build = os.path.abspath(args.build) if args.build else kvc.default_build()
    want = args.rows.split(",") if args.rows else [r.name for r in ROWS]
    unknown = set(want) - {r.name for r in ROWS}
    if unknown:
        print("bench: unknown rows %s (have %s)" % (sorted(unknown), [r.name for r in ROWS]),
              file=sys.stderr)
        return 2
    rows = [r for r in ROWS if r.name in want]
    tmp = tempfile.mkdtemp(prefix="kvbench-")
    results, failed = [], []
    ceiling_rps = None
    ctx = {}
    clusters = {}
    ceiling = chain = None
    try:
        # the ceiling always runs first: every ratio needs it
        ceiling = bare_nginx(args.nginx_workers, tmp)
        ctx["ceiling"] = ceiling.url
        if not any(r.cluster is None for r in rows):
            rows.insert(0, ROWS[0])
        # rows in order, grouped by cluster so that each cluster starts once
        order = []
        for r in rows:
            if r.cluster not in order:
                order.append(r.cluster)
        for group in order:
            gctx = dict(ctx)
            cl = chain = None
            if group is not None:
                over = json.loads(json.dumps(CLUSTERS[group]))
                kvc.deep_merge(over, {"nginx": {"workers": args.nginx_workers}})
                # the production defaults, in the `make run` topology
                cl = kvc.Cluster(over, build=build, name="bench-" + group,
                                 defaults={"cluster": {"bind": "127.0.0.1", "shards": 2,
                                                       "replicas": 2},
                                           "api": {"count": 2}})
                clusters[group] = cl
                gctx.update(prepare_cluster(cl))
                if any(r.chain for r in rows if r.cluster == group):
                    chain = nginx_chain(args.nginx_workers, tmp, gctx["store"],
                                        cl.internal_headers().get("Authorization"))
                    gctx["chain"] = {n: "http://127.0.0.1:%d" % chain.ports[n - 2]
                                     for n in range(2, CHAIN_MAX + 1)}
                    for n, base in sorted(gctx["chain"].items()):
                        url = base + "/internal/kv/" + gctx["key"]
                        st, _, body = kvc.request("GET", url)
                        if st != 200 or body != b"v" * VALUE_BYTES:
                            raise RuntimeError("chain%d check: GET %s -> %s %r"
                                               % (n, url, st, body[:100]))
            for r in (r for r in rows if r.cluster == group):
                left = TIME_BUDGET_S - (time.monotonic() - t0)
                if left < args.duration + 15:
                    print("bench: skipping %s: time budget (%d s) spent" % (r.name, TIME_BUDGET_S))
                    failed.append(r.name)
                    continue
                url = r.url(gctx)
                script = r.script(gctx) if r.script else None
                extra = {}
                try:
                    if r.run:
                        out, extra = r.run(gctx, url, args, tmp)
                    elif r.chain:
                        out, extra = chain_paired(gctx, r, url, script, args, tmp)
                    else:
                        out = run_wrk(url, args, script, tmp,
                                      cl.internal_headers() if r.internal else None)
                except Exception as e:  # noqa: BLE001
                    print("bench: row %s failed: %s" % (r.name, e))
                    failed.append(r.name)
                    continue
                m = parse_wrk(out)
                if m["rps"] is None:
                    print("bench: row %s: cannot parse wrk output:\n%s" % (r.name, out))
                    failed.append(r.name)
                    continue
                if r.name == "ceiling":
                    ceiling_rps = m["rps"]
                ok = m["non_2xx"] == 0 and m["socket_errors"] == 0
                if not ok:
                    print("bench: row %s FAILED: %d non-2xx responses, %d socket errors of %s requests"
                          % (r.name, m["non_2xx"], m["socket_errors"], m["requests"]))
                    failed.append(r.name)
                print("  %-12s %10.1f req/s" % (r.name, m["rps"]), flush=True)
                results.append({"name": r.name, "chain": r.chain,
                                "rps": round(m["rps"], 1), "p50_ms": m["p50_ms"],
                                "p99_ms": m["p99_ms"], "ratio": None, "requests": m["requests"],
                                "non_2xx": m["non_2xx"], "socket_errors": m["socket_errors"],
                                "ok": ok, "note": r.note, **extra})
            if cl is not None and any(r.name == "put_queue" for r in rows
                                      if r.cluster == group):
                results.append(queue_apply_row(cl))
            if chain is not None:
                chain.stop()
                chain = None
            if cl is not None:
                cl.stop()
                cl.cleanup()
        # the ceiling again: the mean of both runs is what ratios divide by
        if ceiling_rps is not None:
            try:
                last = parse_wrk(run_wrk(ctx["ceiling"] + "/", args, None, tmp))["rps"]
            except Exception as e:  # noqa: BLE001
                print("bench: second ceiling run failed: %s" % e)
                last = None
            if last:
                print("  %-12s %10.1f req/s (again, at the end)" % ("ceiling", last), flush=True)
                first = ceiling_rps
                ceiling_rps = (first + last) / 2
                for row in results:
                    if row["name"] == "ceiling":
                        row.update({"rps": round(ceiling_rps, 1),
                                    "ceiling_first": round(first, 1),
                                    "ceiling_last": round(last, 1)})
    finally:
        if chain is not None:
            chain.stop()
        for cl in clusters.values():
            try:
                cl.stop()
            except AssertionError as e:
                print("bench: %s" % e)
                failed.append("cluster-stop")
            if cl.failed:
                print("bench: cluster logs kept in %s:\n%s" % (cl.tmp, cl.log_tails(20)))
            cl.cleanup()
        if ceiling is not None:
            ceiling.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    for row in results:
        if ceiling_rps and row["rps"] is not None:
            row["ratio"] = round(row["rps"] / ceiling_rps, 3)
        ref = row.get("chain_rps")
        row["vs_chain"] = round(row["rps"] / ref, 3) if ref and row["rps"] else None
    print()
    print("%-12s %12s %9s %9s %7s %14s %9s  %s" % ("row", "req/s", "p50 ms", "p99 ms",
                                                 "ratio", "chain req/s", "vs chain", ""))
    for row in results:
        print("%-12s %12s %9s %9s %7s %14s %9s  %s" % (
            row["name"], "%.1f" % row["rps"] if row["rps"] is not None else "-",
            "%.3f" % row["p50_ms"] if row["p50_ms"] is not None else "-",
            "%.3f" % row["p99_ms"] if row["p99_ms"] is not None else "-",
            "%.3f" % row["ratio"] if row["ratio"] is not None else "-",
            "%.1f (%d)" % (row["chain_rps"], row["chain"]) if row.get("chain_rps") else "-",
            "%.3f" % row["vs_chain"] if row["vs_chain"] else "-",
            "" if row["ok"] else "FAILED (%d non-2xx, %d socket errors)"
            % (row["non_2xx"], row["socket_errors"])))
    report = {"rows": results, "machine": machine(),
              "wrk": {"threads": args.threads, "connections": args.connections,
                      "duration_s": args.duration}}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print("wrote %s (%.0f s)" % (os.path.relpath(args.out, os.getcwd()), time.monotonic() - t0))
    if failed:
        print("failed rows: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
