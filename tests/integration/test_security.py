"""Secure by default (lib/token.h): the cluster as `make run` starts it, with
no token configured, makes one, keeps it out of command lines, config copies
and logs, and every internal and admin route of every process refuses a
request without it (and only those: the public API and health checks stay
open)."""

import glob
import os
import re
import stat
import subprocess
import tempfile

from cluster import json_of, request

# The default configuration: no cluster.token, so the controller makes one.
CLUSTER_CONFIG = {}


def routes(cl):
    """Every internal and admin route of every process: (name, method,
    URL). The route tables are store/store_http.c store_http_routes,
    queue/queue_http.c, api/api_http.c and controller/controller_http.c;
    /internal/nope stands for the unknown ones (401, not 404, so a stranger
    learns nothing)."""
    out = []
    for s, urls in enumerate(cl.stores):
        for r, u in enumerate(urls):
            n = cl.store_name(s, r)
            out += [(n, "GET", u + "/internal/kv/k"),
                    (n, "PUT", u + "/internal/kv/k"),
                    (n, "DELETE", u + "/internal/kv/k"),
                    (n, "POST", u + "/internal/batch"),
                    (n, "POST", u + "/internal/replicate"),
                    (n, "GET", u + "/internal/changes?since=0"),
                    (n, "POST", u + "/internal/repair"),
                    (n, "POST", u + "/internal/topology-changed"),
                    (n, "GET", u + "/internal/nope")]
    q = cl.queue
    out += [("queue", "PUT", q + "/internal/kv/k"),
            ("queue", "DELETE", q + "/internal/kv/k"),
            ("queue", "POST", q + "/internal/kv/k/incr"),
            ("queue", "POST", q + "/internal/topology-changed"),
            ("queue", "GET", q + "/internal/nope")]
    for i, a in enumerate(cl.apis):
        out += [("api-%d" % i, "POST", a + "/internal/topology-changed"),
                ("api-%d" % i, "GET", a + "/internal/nope")]
    c = cl.controller
    out += [("controller", "POST", c + "/shards"),
            ("controller", "DELETE", c + "/shards/9")]
    return out


# A body that every route refuses (400) once the token lets it in: the
# check "not 401 with the token" must not add a shard to this cluster.
NOT_JSON = b"{not json"


def test_token_is_made_and_kept_secret(cluster):
    """64 hex digits in <data_dir>/run/token, mode 0600; on no command line
    of any process, in no config copy and no log line."""
    path = os.path.join(cluster.config["cluster"]["data_dir"], "run", "token")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    tok = cluster.token()
    assert re.fullmatch(r"[0-9a-f]{64}", tok), tok
    pids = [cluster.proc.pid] + [c["pid"] for c in cluster.children() if c.get("pid")]
    for pid in pids:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            assert tok.encode() not in f.read(), "token on the command line of %d" % pid
    for p in glob.glob(os.path.join(cluster.tmp, "**", "*"), recursive=True):
        if os.path.isfile(p) and os.path.abspath(p) != os.path.abspath(path):
            assert tok.encode() not in file_data(p), "token written to %s" % p


def file_data(path):
    """A file's bytes without its holes: the stores' LMDB maps are sparse
    files of gigabytes, and reading their zeros took a minute."""
    out = []
    with open(path, "rb") as f:
        fd, pos = f.fileno(), 0
        while True:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data past pos
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            os.lseek(fd, start, os.SEEK_SET)
            out.append(f.read(end - start))
            pos = end
    return b"".join(out)


def test_every_internal_and_admin_route_needs_the_token(cluster):
    """Without the token, or with a wrong one of the same length: 401
    unauthorized (JSON). With it: anything but 401."""
    tok = cluster.token()
    wrong = ("0" if tok[0] != "0" else "1") + tok[1:]
    for name, method, url in routes(cluster):
        for hdrs in ({}, {"Authorization": "Bearer " + wrong},
                     {"Authorization": tok}):
            st, hd, body = request(method, url, body=NOT_JSON, headers=hdrs)
            assert st == 401, "%s %s %s with %r: %d %r" % (name, method, url, hdrs, st, body[:200])
            j = json_of(body)
            assert j["error"] == "unauthorized", (name, url, j)
        st, _, body = request(method, url, body=NOT_JSON,
                              headers={"Authorization": "Bearer " + tok})
        assert st != 401, "%s %s %s with the token: 401 %r" % (name, method, url, body[:200])


# Where each process's routes are written, and the process the name in
# routes() starts with.
ROUTE_SOURCES = {"store": ["store/store_http.c"], "queue": ["queue/queue_http.c"],
                 "api": ["api/api_http.c"], "controller": ["controller/controller_http.c"]}


def test_the_route_list_covers_every_internal_route_in_the_code(cluster):
    """routes() is written by hand: every "/internal/..." path and the
    controller's "/shards" in the route tables must be in it, so that a new
    route cannot be added without the token check being tested for it."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    have = {}
    for name, _, url in routes(cluster):
        kind = name.split("-")[0]
        have.setdefault(kind, set()).add(url.split("//", 1)[1].split("/", 1)[1].split("?")[0])
    missing = []
    for kind, files in ROUTE_SOURCES.items():
        for f in files:
            with open(os.path.join(root, f)) as fh:
                paths = set(re.findall(r'"(/internal/[a-z-]*|/shards)', fh.read()))
            assert paths, "no route found in %s: has the table moved?" % f
            for p in paths:
                if not any(("/" + h).startswith(p) for h in have.get(kind, ())):
                    missing.append((kind, p))
    assert not missing, "routes() lacks %r" % missing


def test_public_and_health_routes_stay_open(cluster):
    """The public API through nginx and every process's /health need no
    token (a client of the store is not a member of the cluster)."""
    st, _, _ = request("PUT", cluster.nginx + "/kv/open-key?sync=1", body=b"v")
    assert st == 200
    st, _, body = request("GET", cluster.nginx + "/kv/open-key")
    assert (st, body) == (200, b"v")
    urls = [cluster.controller, cluster.queue] + list(cluster.apis) + \
        [u for urls in cluster.stores for u in urls]
    for u in urls:
        st, _, _ = request("GET", u + "/health")
        assert st == 200, u
    for path in ("/topology", "/status", "/rebalance"):
        st, _, _ = request("GET", cluster.controller + path)
        assert st == 200, path


def test_kvctl_uses_the_token_it_finds(cluster):
    """kvctl finds the token where the servers do (here KV_DATA_DIR's
    run/token); without it a mutating command is told 401 and exits 1."""
    rc, out, err = cluster.kvctl("shard", "remove", "9")
    assert rc == 1 and "404 not_found" in err, (rc, out, err)
    env = dict(cluster.env(), KV_DATA_DIR=tempfile.gettempdir() + "/kv-no-such-dir")
    p = subprocess.run([os.path.join(cluster.build, "bin", "kvctl"), "--controller",
                        cluster.controller, "shard", "remove", "9"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30, env=env)
    assert p.returncode == 1 and "401 unauthorized" in p.stderr, (p.returncode, p.stderr)


def test_a_server_without_a_token_refuses_to_start(cluster):
    """A store started by hand with no token anywhere (and auth not off)
    exits at once and says where the token comes from; auth=off is refused
    on a bind that is not loopback."""
    exe = os.path.join(cluster.build, "bin", "kv-store")
    with tempfile.TemporaryDirectory(prefix="kvtest-notoken-") as tmp:
        env = {k: v for k, v in cluster.env().items() if not k.startswith("KV_")}
        for sets, want in (([], "no cluster token"),
                           (["--set", "cluster.auth=off", "--set", "cluster.bind=0.0.0.0"],
                            "cluster.auth")):
            argv = [exe, "--port", "1", "--data", os.path.join(tmp, "d"),
                    "--set", "cluster.data_dir=" + tmp] + sets
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=30, env=env)
            assert p.returncode != 0 and want in p.stderr, (sets, p.returncode, p.stderr)
