"""What tests/docker/run.py (compose) and tests/docker/swarm.py (Swarm)
share: a Docker engine of the run's own, commands with a timeout, polling
with a deadline, the timestamped log, and the loop that runs the tests and
prints one line per test and "N passed, M failed" at the end. Python 3
standard library only.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import traceback

T0 = time.monotonic()


def log(msg):
    print("  [%6.1f s] %s" % (time.monotonic() - T0, msg), flush=True)


def wait_until(fn, timeout, what, interval=0.25):
    """Poll fn() until it returns something true; its value. AssertionError
    naming what (and the last value or exception) after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 -- polled again until the deadline
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0f s waiting for %s "
                                 "(last: %r)" % (timeout, what, last))
        time.sleep(interval)


def wait_until_matches(get, patterns, timeout, what):
    """Poll get() -> text until every regex of patterns matches it; the
    text. After timeout seconds, AssertionError with what and the last
    text (a status the controller takes a probe or two to update)."""
    def matches():
        out = get()
        if all(re.search(p, out) for p in patterns):
            return out
        raise AssertionError(out)
    return wait_until(matches, timeout, what)


def run(argv, timeout, env=None, check=True, input_bytes=None):
    r = subprocess.run(argv, capture_output=True, env=env, timeout=timeout,
                       input=input_bytes, check=False)
    out = r.stdout.decode(errors="replace")
    err = r.stderr.decode(errors="replace")
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (
            " ".join(argv), r.returncode, out[-2000:], err[-3000:]))
    return r.returncode, out, err


# ---------------------------------------------------------------- engine --

class Engine:
    """A Docker engine for the run: an existing one, or one we start."""

    def __init__(self, reuse=True):
        """reuse: use the engine DOCKER_HOST (or the default socket) names
        when one answers; else (and always when False) start our own."""
        self.reuse = reuse
        self.env = dict(os.environ)
        self.proc = None
        self.root = None

    def _answers(self):
        try:
            return subprocess.run(["docker", "info"], capture_output=True,
                                  env=self.env, timeout=20).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    @staticmethod
    def install():
        missing = [c for c in ("docker", "dockerd", "docker-compose")
                   if not shutil.which(c, path=os.environ.get("PATH", "") +
                                       ":/usr/sbin:/sbin")]
        if not missing:
            return
        if os.geteuid() != 0:
            raise RuntimeError("test-docker: %s missing; install docker.io and "
                             "docker-compose (apt-get, as root)"
                             % " ".join(missing))
        log("installing docker.io docker-compose (missing: %s)"
            % " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], 600, env=env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
             "docker.io", "docker-compose"], 900, env=env)

    def start(self):
        self.install()
        if self.reuse and self._answers():
            log("using the running Docker engine")
            return
        dockerd = shutil.which("dockerd", path=os.environ.get("PATH", "") +
                               ":/usr/sbin:/sbin")
        self.root = tempfile.mkdtemp(prefix="kvdk-", dir="/tmp")
        sock = os.path.join(self.root, "docker.sock")
        argv = [dockerd, "--iptables=false", "--storage-driver=vfs",
                "--bridge=none", "--data-root", os.path.join(self.root, "root"),
                "--exec-root", os.path.join(self.root, "exec"),
                "--pidfile", os.path.join(self.root, "docker.pid"),
                "-H", "unix://" + sock]
        self.log_path = os.path.join(self.root, "dockerd.log")
        with open(self.log_path, "wb") as lf:
            self.proc = subprocess.Popen(argv, stdout=lf, stderr=lf,
                                         stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.env["DOCKER_HOST"] = "unix://" + sock
        log("started dockerd (pid %d, %s)" % (self.proc.pid, self.root))
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log_path, errors="replace") as f:
                    tail = f.read()[-3000:]
                raise AssertionError("dockerd %s:\n%s" % (
                    "exited" if self.proc.poll() is not None
                    else "did not answer `docker info` within 60 s", tail))
            time.sleep(0.5)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        log("dockerd stopped")
        self.proc = None
        if self.root:
            # vfs layers are plain copies; a mount left behind would make
            # rmtree fail: lazily unmount what is still mounted below root.
            try:
                with open("/proc/self/mounts") as f:
                    mounts = [ln.split()[1] for ln in f
                              if ln.split()[1].startswith(self.root)]
                for m in sorted(mounts, reverse=True):
                    subprocess.run(["umount", "-l", m], capture_output=True,
                                   timeout=20, check=False)
            except OSError:
                pass
            shutil.rmtree(self.root, ignore_errors=True)




def interrupt_on_signals():
    """SIGTERM and SIGHUP (CI's timeout, a closed terminal) raise
    KeyboardInterrupt, so that a runner's finally removes what it
    started."""
    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def print_failure(name, exc, lines=14):
    """The FAIL line of a test (or of the setup) and its traceback's end."""
    first = (str(exc).strip() or type(exc).__name__).splitlines()
    print("FAIL %s: %s" % (name, first[0][:300]), flush=True)
    print("\n".join("    " + ln for ln in traceback.format_exc()
                    .strip().splitlines()[-lines:]), flush=True)


def run_tests(tests, call, pattern=None, on_failure=None):
    """call(test) for each test in order: the first always (it sets the
    deployment up; when it fails nothing else runs), the others when they
    match pattern (a part of their name). on_failure(index) after a failed
    one. One line per test; returns (passed, failed)."""
    passed = failed = 0
    for i, t in enumerate(tests):
        if pattern and i > 0 and pattern not in t.__name__:
            continue
        t0 = time.monotonic()
        try:
            call(t)
            passed += 1
            print("PASS %s (%.2f s)" % (t.__name__, time.monotonic() - t0),
                  flush=True)
        except Exception as e:  # noqa: BLE001 -- one test's failure
            failed += 1
            print_failure(t.__name__, e)
            if on_failure:
                on_failure(i)
            if i == 0:
                break
    return passed, failed


def arguments(doc, first, keep):
    """The command line both runners take: --build (made absolute from the
    repository), -k PATTERN (the first test, which `first`, always runs)
    and --keep (which leaves `keep` running)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--build", default="build/release")
    ap.add_argument("-k", dest="pattern", help="run the tests whose name "
                    "contains this (the first one always runs: it %s)" % first)
    ap.add_argument("--keep", action="store_true",
                    help="leave %s running (debugging)" % keep)
    a = ap.parse_args()
    a.build = os.path.join(repo, a.build)  # an absolute one stays as it is
    return a
