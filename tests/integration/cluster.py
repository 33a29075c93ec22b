"""A real local cluster for the integration tests and the benchmark.

Cluster(overrides) picks free loopback ports, writes a temporary JSON
configuration (sections as lib/config.h documents), starts
`<build>/bin/kv-controller --config FILE` and waits until nginx and the
controller answer. Everything lives in a temporary directory: the config, the
data dirs, the controller's log and the sanitizer logs. stop() sends SIGTERM to
the controller and checks that no child process survives.

Python 3 standard library only.
"""

import collections
import contextlib
import fcntl
import http.client
import json
import os
import random
import shutil
import signal
import socket
import struct
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


class Skip(Exception):
    """Raised by a test that cannot run on this machine (a tool that cannot
    be installed here); tests/run.py prints "SKIP name: reason" and counts it
    as skipped, neither passed nor failed."""


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


def port_bindable(port):
    """Can a server bind 127.0.0.1:port now, with SO_REUSEADDR as ours do
    (connections in TIME_WAIT from an earlier run do not count)?"""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


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


def stop_process(pid, timeout=5):
    """SIGSTOP pid and wait until every one of its threads is stopped.
    kill() returns once the signal is queued: the kernel wakes one thread,
    which then stops the others, and until they have run (a busy 2-core
    machine may take milliseconds) the rest of the process goes on serving
    (a paused secondary was seen to ack a write after kill() returned)."""
    os.kill(pid, signal.SIGSTOP)

    def stopped():
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except FileNotFoundError:
            return True  # gone: nothing of it runs
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that just ended
            if state not in ("T", "t", "Z", "X"):
                return False
        return True
    wait_until(stopped, timeout, "pid %d to stop (SIGSTOP)" % pid, interval=0.001)


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
# lib/wire.h framing

WIRE_OP = struct.Struct("<BBHIIIQQ")   # op, flags, -, key_len, val_len, -, version, seq


WIRE_PUT, WIRE_DEL, WIRE_INCR = 1, 2, 3
WIRE_F_IF_MATCH, WIRE_F_EXPIRES, WIRE_F_REAPED = 0x01, 0x08, 0x10


def decode_wire_ops(buf):
    """The ops of a lib/wire.h body: [{"op","flags","version","seq","key",
    "value","if_match","expires_at"}] (key and value as bytes; the last two
    0 when their flag is not set)."""
    ops, off = [], 0
    while off < len(buf):
        if len(buf) - off < WIRE_OP.size:
            raise AssertionError("truncated wire op at %d of %d" % (off, len(buf)))
        op, flags, _, klen, vlen, _, version, seq = WIRE_OP.unpack_from(buf, off)
        off += WIRE_OP.size
        ext = {}
        for name, bit in (("if_match", WIRE_F_IF_MATCH), ("expires_at", WIRE_F_EXPIRES)):
            ext[name] = 0
            if flags & bit:
                if off + 8 > len(buf):
                    raise AssertionError("wire op cut in its %s at %d" % (name, off))
                ext[name] = struct.unpack_from("<Q", buf, off)[0]
                off += 8
        if off + klen + vlen > len(buf):
            raise AssertionError("wire op past the end at %d" % off)
        key = bytes(buf[off:off + klen])
        val = bytes(buf[off + klen:off + klen + vlen])
        off += klen + vlen
        ops.append(dict(ext, op=op, flags=flags, version=version, seq=seq,
                        key=key, value=val))
    return ops


def encode_wire_op(op, key, value=b"", version=0, seq=0, flags=0, expires_at=0):
    """One lib/wire.h op; expires_at (Unix ms) sets WIRE_F_EXPIRES."""
    if isinstance(key, str):
        key = key.encode()
    ext = b""
    if expires_at:
        flags |= WIRE_F_EXPIRES
        ext = struct.pack("<Q", expires_at)
    return WIRE_OP.pack(op, flags, 0, len(key), len(value), 0, version, seq) + ext + key + value


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
        self.paused = {}         # pid -> name, stopped with SIGSTOP by pause()
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
        state = {}

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
            # The stored shard list is the controller's (kvctl shard add and
            # remove change it): at least one shard, every one with a primary.
            shards = t.get("shards") or []
            state["topology"] = t
            return len(shards) >= 1 and all(s.get("primary") for s in shards)

        try:
            wait_until(ok(topo_ok), left(), "controller GET /topology with every shard's primary")
            wait_until(ok(lambda: request("GET", self.nginx + "/health", timeout=2)[0] == 200),
                       left(), "nginx GET /health -> 200")
            for a in self.apis:
                wait_until(ok(lambda a=a: request("GET", a + "/health", timeout=2)[0] == 200),
                           left(), "api %s GET /health -> 200" % a)
            wait_until(ok(lambda: request("GET", self.queue + "/health", timeout=2)[0] == 200),
                       left(), "queue GET /health -> 200")
            for sh in state["topology"]["shards"]:
                for s in [sh["primary"]] + sh.get("secondaries", []):
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
        """Send sig to the child called name (pid from /status); for SIGSTOP,
        wait until it is stopped (stop_process). Returns the pid."""
        pid = self.pid(name)
        if sig == signal.SIGSTOP:
            stop_process(pid)
        else:
            os.kill(pid, sig)
        return pid

    # ---- http shorthands
    def request(self, method, url, body=None, headers=None, timeout=5):
        if url.startswith("/"):
            url = self.nginx + url
        return request(method, url, body=body, headers=headers, timeout=timeout)

    def internal(self, method, url, body=None, headers=None, timeout=5):
        """A request to an internal or admin route, as a member of the
        cluster: with its token (and any other headers given)."""
        hdrs = dict(self.internal_headers())
        hdrs.update(headers or {})
        return request(method, url, body=body, headers=hdrs, timeout=timeout)

    def kvctl(self, *args, timeout=600):
        """Run kvctl against this cluster as its operator would: it finds
        the token the controller made from KV_DATA_DIR. (rc, stdout,
        stderr)."""
        env = self.env()
        env["KV_DATA_DIR"] = self.config["cluster"]["data_dir"]
        p = subprocess.run([os.path.join(self.build, "bin", "kvctl"), "--url", self.nginx,
                            "--controller", self.controller] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           env=env)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def wait_until(self, pred, timeout, what):
        def f():
            self._check_running()
            return pred()
        return wait_until(f, timeout, what)

    # ---- faults, topology and replica data (replication tests)
    @staticmethod
    def store_name(shard, replica):
        return "store-%d-%d" % (shard, replica)

    def pause(self, name):
        """SIGSTOP the child called name; stop() resumes it if the test does
        not. Returns the pid."""
        pid = self.pid(name)
        stop_process(pid)
        self.paused[pid] = name
        return pid

    def resume(self, name_or_pid):
        """SIGCONT a child paused with pause() (by name or pid)."""
        pids = [p for p, n in self.paused.items() if name_or_pid in (p, n)]
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except OSError:
                pass
            self.paused.pop(p, None)
        return pids

    def resume_all(self):
        for p in list(self.paused):
            self.resume(p)

    def topology_epoch(self):
        return int(self.topology()["epoch"])

    def shard_topology(self, shard):
        for s in self.topology()["shards"]:
            if int(s["id"]) == shard:
                return s
        raise KeyError(shard)

    def replica_of(self, shard, url):
        """The replica id of a store URL of shard, from its port (any shard
        id, also one added after the start)."""
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        r = port - (self.base_port + 100 + 10 * shard)
        if not 0 <= r < self.replicas:
            raise ValueError("%s is not a store of shard %d" % (url, shard))
        return r

    def primary_replica(self, shard):
        return self.replica_of(shard, self.primary(shard))

    def wait_epoch_change(self, epoch, timeout, interval=0.01):
        """Poll /topology until its epoch differs from epoch. Returns
        (topology, seconds waited)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            self._check_running()
            try:
                t = self.topology()
                if int(t["epoch"]) != epoch:
                    return t, time.monotonic() - t0
            except (OSError, ClusterError, http.client.HTTPException):
                pass
            if time.monotonic() >= deadline:
                raise AssertionError("topology epoch still %d after %.1f s"
                                     % (epoch, timeout))
            time.sleep(interval)

    def store_health(self, url, timeout=2):
        st, body = get_json(url + "/health", timeout=timeout)
        return body if st == 200 and isinstance(body, dict) else None

    def wait_stores_settled(self, timeout=30):
        """Wait until every store serves: its /health shows the epoch of its
        shard in the topology, no full resync under way and, when it reports
        one, a state of primary or secondary (a store that just started
        answers 503 epoch_pending or resyncing until then)."""
        def settled():
            topo = self.topology()
            for sh in topo["shards"]:
                for url in [sh["primary"]] + list(sh["secondaries"]):
                    h = self.store_health(url)
                    if not h or int(h.get("epoch", -1)) != int(sh["epoch"]):
                        return False
                    if h.get("resyncing") or h.get("state", "secondary") not in (
                            "primary", "secondary"):
                        return False
            return True
        self.wait_until(settled, timeout, "every store to settle (epoch, no resync)")

    def token(self):
        """The cluster token: the configured one, else the one the
        controller made in <data_dir>/run/token (lib/token.h); None when
        cluster.auth is off."""
        c = self.config.get("cluster", {})
        if c.get("auth") == "off":
            return None
        if c.get("token"):
            return c["token"]
        with open(os.path.join(c["data_dir"], "run", "token")) as f:
            return f.read().strip()

    def internal_headers(self):
        tok = self.token()
        return {"Authorization": "Bearer " + tok} if tok else {}

    def changes_dump(self, url, page=1000, timeout=10):
        """Every record of one store from GET /internal/changes?since=0
        (paged by X-KV-Last-Seq): {key bytes: (op, version, value bytes,
        expires_at, flags)} with op "put" or "del" (a tombstone; flags
        WIRE_F_REAPED when the reaper wrote it)."""
        out, since = {}, 0
        for _ in range(100000):
            st, hd, body = request(
                "GET", "%s/internal/changes?since=%d&limit=%d" % (url, since, page),
                headers=self.internal_headers(), timeout=timeout)
            if st != 200:
                raise AssertionError("GET %s/internal/changes?since=%d -> %s %r"
                                     % (url, since, st, body[:200]))
            for op in decode_wire_ops(body):
                out[op["key"]] = ("del" if op["op"] == 2 else "put", op["version"],
                                  op["value"], op["expires_at"], op["flags"])
            nxt = hd.get("X-KV-Last-Seq")
            more = hd.get("X-KV-More")
            if not body or nxt is None or int(nxt) <= since or more == "0":
                break
            since = int(nxt)
        return out

    def shard_live_data(self, shard):
        """{url: {key: (version, value, expires_at)}} of every replica of
        shard, live records only: tombstones are collected at different
        times, and a record expired when this began is absent whether or
        not a replica reaped it yet (as kvctl parity judges)."""
        res, now_ms = {}, time.time() * 1000
        for url in self.stores[shard]:
            d = self.changes_dump(url)
            res[url] = {k: (v[1], v[2], v[3]) for k, v in d.items()
                        if v[0] == "put" and not (v[3] and v[3] <= now_ms)}
        return res

    def parity_diff(self, shard):
        """None when every replica of shard holds the same live records,
        else a short description of the first differences."""
        data = self.shard_live_data(shard)
        urls = list(data)
        ref = data[urls[0]]
        for u in urls[1:]:
            d = data[u]
            if d != ref:
                only_a = [k for k in ref if k not in d][:3]
                only_b = [k for k in d if k not in ref][:3]
                differ = [k for k in ref if k in d and ref[k] != d[k]][:3]
                return ("%s (%d keys) vs %s (%d keys): missing %r, extra %r, "
                        "differ %r" % (urls[0], len(ref), u, len(d), only_a, only_b,
                                       [(k, ref[k][0], d[k][0]) for k in differ]))
        return None

    def wait_parity(self, shard, timeout):
        """Poll until every replica of shard holds the same live records."""
        last = [None]

        def same():
            last[0] = self.parity_diff(shard)
            return last[0] is None
        try:
            self.wait_until(same, timeout, "parity of shard %d" % shard)
        except AssertionError:
            raise AssertionError("no parity in shard %d after %.0f s: %s"
                                 % (shard, timeout, last[0]))

    def api_metric(self, name):
        """Sum of a metric over every api process (0 when absent)."""
        total = 0.0
        for a in self.apis:
            st, _, body = request("GET", a + "/metrics")
            if st != 200:
                continue
            for line in body.decode("utf-8", "replace").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == name:
                    total += float(parts[1])
        return total

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
        self.resume_all()        # a stopped process would ignore SIGTERM
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


@contextlib.contextmanager
def own_cluster(overrides, name, start_timeout=60, **kw):
    """A cluster a test starts itself (when its module's CLUSTER_CONFIG does
    not fit): started from $KV_BUILD (the runner sets it), stopped at the end
    (no child may survive) and, on a sanitizer build, checked for sanitizer
    reports. On failure the tempdir is kept and the log tails are printed."""
    cl = Cluster(overrides, name=name, start=False, **kw)
    ok = False
    try:
        cl.start(start_timeout)
        yield cl
        ok = True
    finally:
        err = None
        try:
            cl.stop()
        except AssertionError as e:
            err = e
        reps = cl.sanitizer_reports() if os.path.basename(cl.build).startswith("san-") else []
        if not ok or err or reps:
            cl.failed = True
            print("    (%s: logs kept in %s)\n%s" % (name, cl.tmp, "\n".join(
                "    " + ln for ln in cl.log_tails(25).splitlines())), flush=True)
        cl.cleanup()
        if ok and err:
            raise err
        if ok and reps:
            raise AssertionError("%d sanitizer report(s) in %s's logs:\n%s" % (
                len(reps), name, "\n\n".join("%s:\n%s" % r for r in reps)))


# --------------------------------------------------------------------------
# a write load that remembers what was acknowledged

class WriteLoad:
    """Writer threads that PUT unique values to `keys` through nginx with
    ?sync=1 and remember what was acknowledged: a 200 (its version from the
    answer), or a 202 whose job later shows applied (resolve_jobs). Anything
    else is counted in `failed` by status and not acknowledged.

    acked: [(key, version, value, t_ack)] with t_ack = time.monotonic() when
    the answer arrived."""

    def __init__(self, cl, keys, threads=4, timeout=20, delay=0.0):
        self.cl, self.keys = cl, list(keys)
        self.nthreads, self.timeout, self.delay = threads, timeout, delay
        self.lock = threading.Lock()
        self.acked = []
        self.pending = []        # (key, value, job)
        self.failed = collections.Counter()
        self.sent = 0
        self._stop = threading.Event()
        self._threads = []

    def _worker(self, wid):
        rng = random.Random(wid * 7919 + int(time.time()))
        i = 0
        while not self._stop.is_set():
            key = rng.choice(self.keys)
            i += 1
            value = ("w%d-%d-%s" % (wid, i, key)).encode()
            url = "%s/kv/%s?sync=1" % (self.cl.nginx, quote_key(key))
            try:
                st, _, body = request("PUT", url, body=value, timeout=self.timeout)
            except Exception as e:  # noqa: BLE001 -- counted, not acknowledged
                with self.lock:
                    self.failed[type(e).__name__] += 1
                time.sleep(0.05)
                continue
            t = time.monotonic()
            with self.lock:
                self.sent += 1
                if st == 200:
                    self.acked.append((key, int(json_of(body)["version"]), value, t))
                elif st == 202:
                    self.pending.append((key, value, json_of(body)["job"]))
                else:
                    self.failed[st] += 1
            if st not in (200, 202):
                time.sleep(0.02)
            elif self.delay:
                time.sleep(self.delay)

    def start(self):
        for w in range(self.nthreads):
            th = threading.Thread(target=self._worker, args=(w,), daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self):
        self._stop.set()
        for th in self._threads:
            th.join(self.timeout + 5)
        assert not any(th.is_alive() for th in self._threads), "writers still running"

    def n_acked(self):
        with self.lock:
            return len(self.acked)

    def resolve_jobs(self, timeout=30):
        """Turn 202s into acknowledged writes when their job shows applied
        (polling GET /jobs/{id} until it is no longer queued)."""
        deadline = time.monotonic() + timeout
        for key, value, job in list(self.pending):
            while True:
                st, _, body = request("GET", "%s/jobs/%s" % (self.cl.nginx, job))
                j = json_of(body) if st == 200 else {}
                status = j.get("status")
                if status == "applied":
                    self.acked.append((key, int(j["version"]), value, time.monotonic()))
                    break
                if status == "failed" or st == 404:
                    self.failed["job " + str(status or st)] += 1
                    break
                if time.monotonic() > deadline:
                    raise AssertionError("job %s still %r after %.0f s" % (job, status, timeout))
                time.sleep(0.1)
        self.pending = []

    def missing_acked(self, read=None, keys=None):
        """Every acknowledged write (of keys, default all) must be readable
        with its value or a newer version. read(key) -> (status, version,
        value); default: GET through nginx. Returns a list of problems
        (empty when none)."""
        if read is None:
            def read(key):
                st, hd, body = request("GET", "%s/kv/%s" % (self.cl.nginx, quote_key(key)))
                return st, int(hd.get("X-KV-Version") or 0), body
        by_key = collections.defaultdict(list)
        for key, ver, val, _ in self.acked:
            if keys is None or key in keys:
                by_key[key].append((ver, val))
        problems = []
        for key, writes in sorted(by_key.items()):
            st, ver, val = read(key)
            for wver, wval in writes:
                if st != 200 or ver < wver:
                    problems.append("%s: acknowledged version %d (%r) but read %s version %d"
                                    % (key, wver, wval, st, ver))
                    break
                if ver == wver and val != wval:
                    problems.append("%s: version %d reads %r, acknowledged %r"
                                    % (key, ver, val, wval))
                    break
        return problems


def keys_by_shard(cl, n_per_shard, prefix):
    """n_per_shard keys for every shard ({shard: [key]}), found with /ring."""
    out = {s: [] for s in range(cl.shards)}
    i = 0
    while any(len(v) < n_per_shard for v in out.values()):
        key = "%s%d" % (prefix, i)
        i += 1
        st, _, body = request("GET", "%s/ring?key=%s" % (cl.nginx, quote_key(key)))
        assert st == 200, (st, body[:200])
        sh = int(json_of(body)["shard"])
        if len(out[sh]) < n_per_shard:
            out[sh].append(key)
        assert i < 100000, "cannot spread keys over the shards"
    return out
