"""A real local cluster for the integration tests and the benchmark.

Cluster(overrides) picks free loopback ports, writes a temporary JSON
configuration (sections as lib/config.h documents), starts
`<build>/bin/kv-controller --config FILE` and waits until nginx and the
controller answer. Everything lives in a temporary directory: the config, the
data dirs, the controller's log and the sanitizer logs. stop() sends SIGTERM to
the controller and checks that no child process survives.

Python 3 standard library only.
"""

import errno
import fcntl
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Ports below the kernel's ephemeral range, so that outgoing connections never
# take a port a cluster is about to listen on.
PORT_LO, PORT_HI = 10000, 32000
BLOCK = 200          # controller = base, queue = base+1, api i = base+10+i,
                     # store (s, r) = base+100+10s+r
LOCK_DIR = os.path.join(tempfile.gettempdir(), "kvtest-ports")

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "WARNING: ThreadSanitizer",
    "ERROR: ThreadSanitizer",
    "runtime error:",          # UBSan
    "SUMMARY: AddressSanitizer",
    "SUMMARY: UndefinedBehaviorSanitizer",
)


class ClusterError(Exception):
    pass


# --------------------------------------------------------------------------
# helpers

def deep_merge(base, over):
    """Merge over into base (dicts, recursively). Keys of over may be dotted
    paths ("api.rate_limit") or nested dicts."""
    for k, v in over.items():
        if "." in k:
            sect, _, rest = k.partition(".")
            deep_merge(base.setdefault(sect, {}), {rest: v})
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def port_free(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class PortLock:
    """An flock on /tmp/kvtest-ports/<port>.lock, held while a cluster runs,
    so that concurrent test runs on one machine never pick the same ports."""

    def __init__(self, port):
        os.makedirs(LOCK_DIR, exist_ok=True)
        self.path = os.path.join(LOCK_DIR, "%d.lock" % port)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = -1
            raise

    def release(self):
        if self.fd >= 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1


def pick_ports(block=BLOCK, tries=200):
    """(base_port, nginx_port, locks): a block of `block` free ports and one
    more free port outside it."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(PORT_LO, PORT_HI - block - 1, 10)
        try:
            lock = PortLock(base)
        except OSError:
            continue
        if all(port_free(p) for p in range(base, base + block)):
            nginx_port = base + block  # just past the block
            if port_free(nginx_port):
                return base, nginx_port, [lock]
        lock.release()
    raise ClusterError("no free block of %d loopback ports found" % block)


def find_nginx():
    for cand in (shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx",
                 "/usr/local/nginx/sbin/nginx"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return "nginx"


def default_build():
    """build/<variant> from $KV_BUILD, else the target of the bin/ link, else
    build/release."""
    env = os.environ.get("KV_BUILD")
    if env:
        return os.path.abspath(env)
    link = os.path.join(REPO, "bin")
    if os.path.islink(link):
        target = os.path.realpath(link)
        return os.path.dirname(target)
    return os.path.join(REPO, "build", "release")


def tail(path, lines=40, max_bytes=64 * 1024):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def proc_alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


def proc_session(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        fields = stat[stat.rfind(")") + 2:].split()
        return int(fields[3])   # state ppid pgrp session
    except (OSError, ValueError, IndexError):
        return None


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def session_members(sid):
    """Live processes whose session id is sid (the controller is started in a
    new session, and every process it spawns inherits it unless it calls
    setsid itself)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if proc_session(pid) == sid and proc_alive(pid):
            out.append(pid)
    return out


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a truthy value (returned) or the deadline
    passes (AssertionError naming `what` and the last value/exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 -- reported on timeout
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


# --------------------------------------------------------------------------
# HTTP

_local = threading.local()


def _conns():
    c = getattr(_local, "conns", None)
    if c is None:
        c = _local.conns = {}
    return c


def _split(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        raise ValueError("only http:// URLs: %r" % url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def request(method, url, body=None, headers=None, timeout=5, keepalive=True,
            source=None):
    """One HTTP request. Returns (status, headers, body bytes); headers is an
    http.client.HTTPMessage (case-insensitive .get()). Connections are kept
    alive per thread and per host:port; a request that fails on a reused
    connection because the server closed it is retried once on a new one.
    source: a local address to connect from ("127.0.0.2": another client)."""
    host, port, path = _split(url)
    hdrs = dict(headers or {})
    if isinstance(body, str):
        body = body.encode()
    if body is None and method in ("PUT", "POST", "PATCH"):
        body = b""
    if not keepalive:
        hdrs.setdefault("Connection", "close")
    key = (host, port, source)
    pool = _conns()
    for attempt in (0, 1):
        conn = pool.pop(key, None) if keepalive else None
        reused = conn is not None
        if conn is None:
            conn = http.client.HTTPConnection(
                host, port, timeout=timeout,
                source_address=(source, 0) if source else None)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.RemoteDisconnected, BrokenPipeError,
                ConnectionResetError, http.client.BadStatusLine) as e:
            conn.close()
            if reused and attempt == 0 and not isinstance(e, socket.timeout):
                continue  # stale keep-alive connection: the server closed it
            raise
        except Exception:
            conn.close()
            raise
        if keepalive and not resp.will_close:
            pool[key] = conn
        else:
            conn.close()
        return resp.status, resp.headers, data
    raise AssertionError("unreachable")


def close_connections():
    for c in _conns().values():
        c.close()
    _conns().clear()


def get_json(url, timeout=5, headers=None):
    st, hd, body = request("GET", url, headers=headers, timeout=timeout)
    try:
        return st, json.loads(body.decode("utf-8")) if body else None
    except (ValueError, UnicodeDecodeError):
        return st, body


def quote_key(key):
    if isinstance(key, str):
        key = key.encode("utf-8")
    return urllib.parse.quote(key, safe="")


def json_of(body):
    """body bytes -> parsed JSON, or AssertionError showing the body."""
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AssertionError("body is not JSON: %r" % (body[:300],))


def assert_json_error(resp, status, code=None, what=""):
    """resp = (status, headers, body): the status is `status` (an int or a
    tuple of allowed ones) and the body is {"error": str, "message": str}
    with a JSON content type. Returns the parsed body."""
    st, hd, body = resp
    allowed = status if isinstance(status, tuple) else (status,)
    pre = (what + ": ") if what else ""
    assert st in allowed, "%sstatus %s, expected %s; body %r" % (
        pre, st, " or ".join(map(str, allowed)), body[:300])
    ctype = hd.get("Content-Type", "")
    assert "json" in ctype, "%serror with Content-Type %r, not JSON; body %r" % (
        pre, ctype, body[:300])
    j = json_of(body)
    assert isinstance(j, dict) and isinstance(j.get("error"), str) and j["error"] \
        and isinstance(j.get("message"), str) and j["message"], \
        "%serror body lacks \"error\"/\"message\" strings: %r" % (pre, j)
    if code is not None:
        assert j["error"] == code, "%serror %r, expected %r (%r)" % (pre, j["error"], code, j)
    return j


# --------------------------------------------------------------------------
# the cluster

class Cluster:
    # Test defaults; overrides win. Only fields that lib/config.h documents.
    DEFAULTS = {
        "cluster": {"shards": 2, "replicas": 2, "bind": "127.0.0.1"},
        "store": {"fsync": "no"},
        "api": {"count": 2, "rate_limit": 0},
        "controller": {"restart_backoff_ms": 100, "restart_backoff_max_ms": 1000},
        "nginx": {"workers": 1},
    }

    def __init__(self, config_overrides=None, build=None, name="cluster",
                 start=True, start_timeout=30, env=None, keep=None, defaults=None):
        self.build = os.path.abspath(build) if build else default_build()
        self.name = name
        self.keep = keep if keep is not None else bool(os.environ.get("KV_KEEP"))
        self.tmp = tempfile.mkdtemp(prefix="kvtest-%s-" % name)
        self.base_port, self.nginx_port, self._locks = pick_ports()
        cfg = json.loads(json.dumps(self.DEFAULTS if defaults is None else defaults))
        deep_merge(cfg, {
            "cluster": {"base_port": self.base_port,
                        "data_dir": os.path.join(self.tmp, "data")},
            "nginx": {"port": self.nginx_port, "bin": find_nginx()},
        })
        deep_merge(cfg, config_overrides or {})
        self.config = cfg
        self.config_path = os.path.join(self.tmp, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.log_path = os.path.join(self.tmp, "controller.log")
        self.san_dir = os.path.join(self.tmp, "san")
        self.extra_env = env or {}
        self.proc = None
        self._log = None
        self.sid = None
        self.seen_pids = {}      # pid -> name, every child pid ever seen
        self.stopped = False
        self.failed = False      # set by the runner to keep the tempdir
        if start:
            try:
                self.start(start_timeout)
            except BaseException:
                try:
                    self.stop()
                except BaseException:  # noqa: BLE001 -- the start error matters more
                    pass
                raise

    # ---- layout
    @property
    def host(self):
        return self.config["cluster"].get("bind", "127.0.0.1") or "127.0.0.1"

    def _url(self, port):
        h = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        return "http://%s:%d" % (h, port)

    @property
    def shards(self):
        return int(self.config["cluster"]["shards"])

    @property
    def replicas(self):
        return int(self.config["cluster"]["replicas"])

    @property
    def api_count(self):
        return int(self.config["api"]["count"])

    @property
    def nginx(self):
        return "http://127.0.0.1:%d" % self.nginx_port

    @property
    def controller(self):
        return self._url(self.base_port)

    @property
    def queue(self):
        return self._url(self.base_port + 1)

    @property
    def apis(self):
        return [self._url(self.base_port + 10 + i) for i in range(self.api_count)]

    @property
    def stores(self):
        """stores[shard][replica] -> url (replica 0 starts as the primary)."""
        return [[self._url(self.base_port + 100 + 10 * s + r)
                 for r in range(self.replicas)] for s in range(self.shards)]

    # ---- lifecycle
    def env(self):
        e = dict(os.environ)
        san = os.path.basename(self.build).startswith("san-")
        if san:
            os.makedirs(self.san_dir, exist_ok=True)
            e["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1:log_path=%s" % \
                os.path.join(self.san_dir, "asan")
            e["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:log_path=%s" % \
                os.path.join(self.san_dir, "ubsan")
            e["LSAN_OPTIONS"] = e.get("LSAN_OPTIONS", "")
        e.update(self.extra_env)
        return e

    def start(self, timeout=30):
        exe = os.path.join(self.build, "bin", "kv-controller")
        if not os.access(exe, os.X_OK):
            raise ClusterError("%s is missing: build it first (make)" % exe)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [exe, "--config", self.config_path],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self.tmp, env=self.env(), start_new_session=True)
        self.sid = self.proc.pid
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.failed = True
            raise

    def _check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise ClusterError("kv-controller exited with status %s; log tail:\n%s"
                               % (self.proc.returncode, tail(self.log_path)))

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout

        def left():
            return max(0.1, deadline - time.monotonic())

        def ok(pred):
            def f():
                self._check_running()
                return pred()
            return f

        def topo_ok():
            st, t = get_json(self.controller + "/topology", timeout=2)
            if st != 200 or not isinstance(t, dict):
                return False
            shards = t.get("shards") or []
            return len(shards) == self.shards and all(s.get("primary") for s in shards)

        try:
            wait_until(ok(topo_ok), left(), "controller GET /topology with every shard's primary")
            wait_until(ok(lambda: request("GET", self.nginx + "/health", timeout=2)[0] == 200),
                       left(), "nginx GET /health -> 200")
            for a in self.apis:
                wait_until(ok(lambda a=a: request("GET", a + "/health", timeout=2)[0] == 200),
                           left(), "api %s GET /health -> 200" % a)
            wait_until(ok(lambda: request("GET", self.queue + "/health", timeout=2)[0] == 200),
                       left(), "queue GET /health -> 200")
            for row in self.stores:
                for s in row:
                    wait_until(ok(lambda s=s: request("GET", s + "/health", timeout=2)[0] == 200),
                               left(), "store %s GET /health -> 200" % s)
            wait_until(ok(lambda: all(c.get("state") == "running" for c in self.children())),
                       left(), "every child in controller /status running")
            wait_until(ok(lambda: (lambda s: not isinstance(s, dict) or s.get("ready", True))(
                self.status())), left(), "controller /status ready")
        except ClusterError:
            raise
        except AssertionError as e:
            self._check_running()
            raise ClusterError("%s\ncontroller log tail:\n%s" % (e, tail(self.log_path)))

    # ---- controller views
    def topology(self):
        st, t = get_json(self.controller + "/topology")
        if st != 200:
            raise ClusterError("GET /topology -> %s %r" % (st, t))
        return t

    def primary(self, shard):
        for s in self.topology()["shards"]:
            if int(s["id"]) == shard:
                return s["primary"]
        raise KeyError(shard)

    def status(self):
        st, body = get_json(self.controller + "/status")
        if st != 200:
            raise ClusterError("GET /status -> %s %r" % (st, body))
        return body

    def children(self):
        """The controller's children as a list of dicts (name, role, pid,
        port, url, state, ...). Accepts a bare list, {"children": [...]},
        {"processes": [...]} or any list of objects with a pid."""
        body = self.status()
        lst = None
        if isinstance(body, list):
            lst = body
        elif isinstance(body, dict):
            for k in ("children", "processes", "procs"):
                if isinstance(body.get(k), list):
                    lst = body[k]
                    break
            if lst is None:
                for v in body.values():
                    if isinstance(v, list) and v and isinstance(v[0], dict) and "pid" in v[0]:
                        lst = v
                        break
        if lst is None:
            raise ClusterError("cannot find the children in /status: %r" % (body,))
        for c in lst:
            pid = c.get("pid")
            if isinstance(pid, int) and pid > 0:
                self.seen_pids[pid] = c.get("name")
        return lst

    def child(self, name):
        for c in self.children():
            if c.get("name") == name:
                return c
        raise KeyError("no child named %r in /status (have %s)"
                       % (name, [c.get("name") for c in self.children()]))

    def children_by_role(self, role):
        return [c for c in self.children() if c.get("role") == role]

    def pid(self, name):
        return int(self.child(name)["pid"])

    def kill(self, name, sig=signal.SIGKILL):
        """Send sig to the child called name (pid from /status). Returns the pid."""
        pid = self.pid(name)
        os.kill(pid, sig)
        return pid

    # ---- http shorthands
    def request(self, method, url, body=None, headers=None, timeout=5):
        if url.startswith("/"):
            url = self.nginx + url
        return request(method, url, body=body, headers=headers, timeout=timeout)

    def wait_until(self, pred, timeout, what):
        def f():
            self._check_running()
            return pred()
        return wait_until(f, timeout, what)

    # ---- logs
    def log_files(self):
        out = []
        for root, _dirs, files in os.walk(self.tmp):
            for fn in files:
                p = os.path.join(root, fn)
                if fn.endswith(".log") or root.startswith(self.san_dir) or fn.startswith(("asan", "ubsan")):
                    out.append(p)
        return sorted(out)

    def log_tails(self, lines=40):
        parts = []
        for p in self.log_files():
            parts.append("==> %s <==\n%s" % (p, tail(p, lines)))
        return "\n".join(parts)

    def _whose(self, path):
        """The process a sanitizer log file (asan.<pid>) belongs to."""
        ext = path.rsplit(".", 1)[-1]
        if not ext.isdigit():
            return "?"
        pid = int(ext)
        if self.proc is not None and pid == self.proc.pid:
            return "kv-controller"
        return self.seen_pids.get(pid, "pid %d" % pid)

    def sanitizer_reports(self):
        """[(file, excerpt)] for every sanitizer report in the logs."""
        found = []
        for p in self.log_files():
            try:
                with open(p, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            for m in SANITIZER_MARKERS:
                i = text.find(m)
                if i >= 0:
                    start = text.rfind("\n", 0, max(0, i - 200)) + 1
                    found.append(("%s (%s)" % (p, self._whose(p)), text[start:start + 3000]))
                    break
        return found

    # ---- stop
    def stop(self, timeout=10):
        """SIGTERM the controller, wait up to timeout s, SIGKILL. Raises
        AssertionError when a child survives (and then kills the survivors by
        pid)."""
        if self.stopped:
            return
        self.stopped = True
        close_connections()
        survivors = []
        if self.proc is not None:
            try:
                self.children()  # remember the latest pids
            except Exception:  # noqa: BLE001 -- the controller may be dead already
                pass
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except Exception:  # subprocess.TimeoutExpired
                    self.proc.kill()
                    self.proc.wait()
                    survivors.append("kv-controller ignored SIGTERM for %d s" % timeout)
            # children may need a moment to be reaped after the controller exits
            def leftover():
                pids = set(session_members(self.sid))
                pids |= {p for p in self.seen_pids if proc_alive(p) and
                         proc_session(p) == self.sid}
                return sorted(pids)
            try:
                wait_until(lambda: not leftover(), 2, "children to exit")
            except AssertionError:
                pass
            left = leftover()
            for p in left:
                survivors.append("pid %d (%s) %s" % (p, self.seen_pids.get(p, "?"),
                                                     proc_cmdline(p)))
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        if self._log is not None:
            self._log.close()
        for lk in self._locks:
            lk.release()
        if survivors:
            self.failed = True
            raise AssertionError("processes survived the controller's stop: "
                                 + "; ".join(survivors))

    def cleanup(self):
        """Remove the tempdir unless a failure or KV_KEEP asks to keep it."""
        if self.failed or self.keep:
            return False
        shutil.rmtree(self.tmp, ignore_errors=True)
        return True

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.failed = True
        try:
            self.stop()
        finally:
            self.cleanup()
        return False
