"""The Python side of the page tests: is a browser here, and run one script of
tests/browser (node + puppeteer-core + Debian's Chromium, see its README).

    why = available()          # None, or why no browser can run here
    if why: raise Skip(why)
    out = run_script("smoke", {"url": url}, timeout=60)

Python 3 standard library only.
"""

import json
import os
import shutil
import signal
import subprocess

from cluster import REPO, Skip  # noqa: F401  (Skip: for the tests' import)

BROWSER_DIR = os.path.join(REPO, "tests", "browser")


def chromium_path():
    # the same default as lib.js, which reads the same variable
    return os.environ.get("KV_CHROMIUM") or "/usr/bin/chromium"


def available():
    """None when Chromium, node and puppeteer-core are all here, else one
    sentence saying which is not."""
    chromium = chromium_path()
    if not (os.path.isfile(chromium) and os.access(chromium, os.X_OK)):
        return ("no Chromium at %s (sh scripts/deps.sh installs Debian's chromium; "
                "KV_CHROMIUM names another)" % chromium)
    if not shutil.which("node"):
        return "no node on PATH (sh scripts/deps.sh installs Debian's nodejs)"
    if not os.path.isfile(os.path.join(BROWSER_DIR, "node_modules", "puppeteer-core",
                                       "package.json")):
        return ("puppeteer-core is not installed in tests/browser "
                "(sh scripts/deps.sh runs npm ci there)")
    return None


def _kill_group(p, sig):
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


def run_script(name, args, timeout=120):
    """Run `node tests/browser/<name>.js '<json args>'` and return its stdout.
    The script's own deadline (args timeout_ms, unless given) falls a little
    before `timeout`, so that it closes its browser and says why itself;
    past `timeout` it is stopped. AssertionError with the script's output
    when it exits non-zero or is stopped."""
    args = dict(args)
    margin = min(10.0, timeout / 4.0)
    args.setdefault("timeout_ms", int((timeout - margin) * 1000))
    argv = ["node", os.path.join(BROWSER_DIR, name + ".js"), json.dumps(args)]
    p = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace",
                         start_new_session=True)
    stopped = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stopped = True
        # SIGTERM first: the script closes its browser on it (Chromium also
        # exits by itself once node is gone: lib.js talks to it over a pipe)
        _kill_group(p, signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            _kill_group(p, signal.SIGKILL)
            out, err = p.communicate()
    finally:
        if p.poll() is None:   # an exception in between: leave nothing behind
            _kill_group(p, signal.SIGKILL)
            p.wait()
    if stopped or p.returncode != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        head = ("%s.js stopped after %.0f s" % (name, timeout) if stopped
                else "%s.js exited %d" % (name, p.returncode))
        if lines:
            head += ": " + lines[0]
        raise AssertionError("%s\n%s" % (head, (out + err).rstrip()))
    return out
