#!/usr/bin/env python3
"""Run every test: the cmocka unit binaries in <build>/tests/, then the
integration modules tests/integration/test_*.py (one real cluster per module).

    python3 tests/run.py --build build/release [--unit-only] [-k PATTERN]

One line per test, "PASS name (0.12 s)", "FAIL name: reason" followed by the
failure's details, or "SKIP name: reason", and as the last line "N passed, M
failed" (", K skipped" after it when K > 0). Exit status 1 when anything
failed; a skip alone does not fail the run. Python 3 standard library only.

Integration modules: every function named test_* runs in definition order. A
test that takes a parameter named `cluster` gets the module's cluster, started
once from the module's CLUSTER_CONFIG (overrides of the config, default {})
and stopped after the module (the stop checks that no child survives). A
function's `timeout` attribute (or the module's TEST_TIMEOUT) bounds it. A
test that raises cluster.Skip("reason") is skipped, not passed.
"""

import argparse
import inspect
import importlib.util
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
INTEG = os.path.join(HERE, "integration")

SAN_MARKERS = (
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
    "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer",
    "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer",
)


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.lock = threading.Lock()

    def ok(self, name, secs):
        with self.lock:
            self.passed += 1
            print("PASS %s (%.2f s)" % (name, secs), flush=True)

    def skip(self, name, reason):
        with self.lock:
            self.skipped += 1
            print("SKIP %s: %s" % (name, reason), flush=True)

    def summary(self, extra_failed=0):
        # the skip count only when there is one, so that readers of the
        # plain "N passed, M failed" see the line they always saw
        line = "%d passed, %d failed" % (self.passed, self.failed + extra_failed)
        return line + (", %d skipped" % self.skipped if self.skipped else "")

    def fail(self, name, reason, details=""):
        with self.lock:
            self.failed += 1
            reason = (reason or "failed").strip().splitlines()
            first = reason[0] if reason else "failed"
            rest = "\n".join(reason[1:])
            print("FAIL %s: %s" % (name, first), flush=True)
            more = "\n".join(x for x in (rest, details) if x and x.strip())
            if more:
                print(indent(more), flush=True)


def indent(text, pre="    "):
    return "\n".join(pre + line for line in text.rstrip().splitlines())


def is_san(build):
    return os.path.basename(os.path.normpath(build)).startswith("san-")


def san_env(env):
    env = dict(env)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


# --------------------------------------------------------------------------
# unit tests (cmocka)

RE_RUN = re.compile(r"^\[ RUN      \] (.+)$")
RE_OK = re.compile(r"^\[       OK \] (.+)$")
RE_FAILED_SUM = re.compile(r"^\[  FAILED  \] (\d+) test\(s\)")
RE_FAILED = re.compile(r"^\[  FAILED  \] (.+)$")
RE_PASSED_SUM = re.compile(r"^\[  PASSED  \] (\d+) test\(s\)")
RE_SKIPPED = re.compile(r"^\[  SKIPPED \] (.+)$")


def run_pty(argv, env, timeout, on_line):
    """Run argv with stdout/stderr on a pseudo-terminal (so that stdio is
    line-buffered and each line can be timed), call on_line(text, t) per
    line. Returns (returncode or None on timeout, all output)."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=slave, env=env, cwd=REPO,
                             start_new_session=True)
    finally:
        os.close(slave)
    out = []
    buf = b""
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            r, _, _ = select.select([master], [], [], min(left, 0.5))
            if not r:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                data = b""
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            now = time.monotonic()
            for ln in lines:
                s = ln.decode("utf-8", "replace").rstrip("\r")
                out.append(s)
                on_line(s, now)
        if buf:
            s = buf.decode("utf-8", "replace").rstrip("\r")
            out.append(s)
            on_line(s, time.monotonic())
    finally:
        os.close(master)
        if timed_out and p.poll() is None:
            p.kill()
        try:
            p.wait(max(1.0, deadline - time.monotonic()) if not timed_out else 5)
        except subprocess.TimeoutExpired:
            timed_out = True
            p.kill()
            p.wait()
    return (None if timed_out else p.returncode), "\n".join(out)


def run_unit(build, res, pattern, timeout, deadline):
    tdir = os.path.join(build, "tests")
    if not os.path.isdir(tdir):
        res.fail("unit", "no unit test directory %s (run make first)" % tdir)
        return
    bins = sorted(f for f in os.listdir(tdir)
                  if os.path.isfile(os.path.join(tdir, f))
                  and os.access(os.path.join(tdir, f), os.X_OK)
                  and not f.endswith((".d", ".o", ".a")))
    env = dict(os.environ)
    env["CMOCKA_MESSAGE_OUTPUT"] = "STDOUT"
    if is_san(build):
        env = san_env(env)
    for b in bins:
        if pattern and not any(p in b for p in pattern):
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            res.fail(b, "not run: the whole run's time limit was exceeded")
            continue
        state = {"start": {}, "seen_ok": set(), "seen_fail": set(),
                 "passed_sum": 0, "failed_sum": 0, "summaries": 0,
                 "t0": time.monotonic(), "last": time.monotonic(),
                 "cur": None, "cur_lines": []}

        def on_line(line, t, st=state, b=b):
            m = RE_RUN.match(line)
            if m:
                st["start"][m.group(1)] = t
                st["cur"] = m.group(1)
                st["cur_lines"] = []
                return
            m = RE_OK.match(line)
            if m:
                name = m.group(1)
                st["seen_ok"].add(name)
                t0 = st["start"].get(name, st["last"])
                res.ok("%s.%s" % (b, name), t - t0)
                st["last"] = t
                st["cur"] = None
                return
            m = RE_PASSED_SUM.match(line)
            if m:
                st["passed_sum"] += int(m.group(1))
                st["summaries"] += 1
                return
            m = RE_FAILED_SUM.match(line)
            if m:
                st["failed_sum"] += int(m.group(1))
                return
            m = RE_FAILED.match(line)
            if m:
                name = m.group(1)
                if name not in st["seen_fail"]:
                    st["seen_fail"].add(name)
                    res.fail("%s.%s" % (b, name), "cmocka reported a failure",
                             "\n".join(st["cur_lines"][-30:]))
                st["last"] = t
                st["cur"] = None
                return
            if RE_SKIPPED.match(line):
                return
            st["cur_lines"].append(line)

        rc, output = run_pty([os.path.join(tdir, b)], env, min(timeout, left), on_line)
        st = state
        problems = []
        if rc is None:
            problems.append("timed out after %.0f s" % min(timeout, left))
        elif rc < 0:
            problems.append("killed by signal %d" % -rc)
        elif st["summaries"] == 0:
            problems.append("exited %d without a cmocka summary" % rc)
        elif rc != 0 and not st["seen_fail"]:
            problems.append("exited %d with no failed test reported" % rc)
        # cmocka's own counts are authoritative: a passed test whose OK line
        # was lost still counts, an OK line that the summary does not back
        # does not produce a second count.
        extra_pass = st["passed_sum"] - len(st["seen_ok"])
        if extra_pass > 0:
            with res.lock:
                res.passed += extra_pass
        extra_fail = st["failed_sum"] - len(st["seen_fail"])
        if extra_fail > 0:
            res.fail("%s (%d more)" % (b, extra_fail), "cmocka counted failures not listed")
        if any(m in output for m in SAN_MARKERS):
            problems.append("sanitizer report in the output")
        if problems:
            where = "in %s" % st["cur"] if st["cur"] else ""
            res.fail(b, "; ".join(problems) + (" " + where if where else ""),
                     "\n".join(output.splitlines()[-40:]))


# --------------------------------------------------------------------------
# integration tests

LIVE_CLUSTERS = []


def load_module(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_with_timeout(fn, args, timeout):
    """Run fn(*args) in a daemon thread. Returns (exc_info or None, timed_out)."""
    box = {}

    def target():
        try:
            fn(*args)
        except BaseException:  # noqa: BLE001 -- reported by the caller
            box["exc"] = sys.exc_info()

    th = threading.Thread(target=target, daemon=True)
    th.start()
    end = time.monotonic() + timeout
    while th.is_alive():
        left = end - time.monotonic()
        if left <= 0:
            return None, True
        th.join(min(left, 0.25))
    return box.get("exc"), False


def describe(exc_info):
    et, ev, tb = exc_info
    if et is AssertionError:
        reason = str(ev) or "assertion failed"
    else:
        reason = "%s: %s" % (et.__name__, ev)
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next   # drop the runner's own frame
    if et is AssertionError:
        # the message is the reason line already: show only where
        details = "Traceback (most recent call last):\n" + "".join(traceback.format_tb(tb))
    else:
        details = "".join(traceback.format_exception(et, ev, tb))
    return reason, details


def run_module(path, build, res, pattern, test_timeout, deadline):
    from cluster import Cluster, Skip  # noqa: E402  (sys.path set in main)

    modname = os.path.splitext(os.path.basename(path))[0]
    try:
        mod = load_module(path)
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        res.fail(modname, "cannot import: %s: %s" % (type(e).__name__, e),
                 traceback.format_exc())
        return
    tests = [(n, f) for n, f in vars(mod).items()
             if n.startswith("test_") and inspect.isfunction(f)
             and f.__module__ == mod.__name__]
    tests = [(n, f) for n, f in tests
             if not pattern or any(p in "%s.%s" % (modname, n) for p in pattern)]
    if not tests:
        return
    needs = any("cluster" in inspect.signature(f).parameters for _, f in tests)
    cl = None
    failed_here = 0
    try:
        if needs:
            t0 = time.monotonic()
            try:
                cl = Cluster(getattr(mod, "CLUSTER_CONFIG", {}), build=build,
                             name=modname, start=False)
                LIVE_CLUSTERS.append(cl)
                cl.start(getattr(mod, "START_TIMEOUT", 60))
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: BLE001
                reason = "%s: %s" % (type(e).__name__, e)
                for n, _ in tests:
                    res.fail("%s.%s" % (modname, n), "cluster did not start",
                             reason if n == tests[0][0] else "")
                    failed_here += 1
                return
            print("  (%s: cluster up in %.1f s, base port %d, logs in %s)"
                  % (modname, time.monotonic() - t0, cl.base_port, cl.tmp), flush=True)
        default_to = getattr(mod, "TEST_TIMEOUT", test_timeout)
        for n, f in tests:
            name = "%s.%s" % (modname, n)
            left = deadline - time.monotonic()
            if left <= 0:
                res.fail(name, "not run: the whole run's time limit was exceeded")
                failed_here += 1
                continue
            to = min(getattr(f, "timeout", default_to), left)
            args = [cl] if "cluster" in inspect.signature(f).parameters else []
            t0 = time.monotonic()
            exc, timed_out = run_with_timeout(f, args, to)
            dt = time.monotonic() - t0
            if timed_out:
                res.fail(name, "timed out after %.0f s" % to)
                failed_here += 1
            elif exc is not None:
                if exc[0] is KeyboardInterrupt:
                    raise KeyboardInterrupt
                if issubclass(exc[0], Skip):
                    res.skip(name, str(exc[1]) or "skipped")
                    continue
                reason, details = describe(exc)
                res.fail(name, reason, details)
                failed_here += 1
            else:
                res.ok(name, dt)
    finally:
        if cl is not None:
            try:
                cl.stop()
            except AssertionError as e:
                res.fail("%s.teardown" % modname, str(e))
                failed_here += 1
            except BaseException as e:  # noqa: BLE001
                res.fail("%s.teardown" % modname, "%s: %s" % (type(e).__name__, e),
                         traceback.format_exc())
                failed_here += 1
            if is_san(build):
                reps = cl.sanitizer_reports()
                if reps:
                    res.fail("%s.sanitizer" % modname,
                             "%d sanitizer report(s) in the process logs" % len(reps),
                             "\n\n".join("%s:\n%s" % (p, t) for p, t in reps))
                    failed_here += 1
            if failed_here:
                cl.failed = True
                print(indent("log tails of %s (kept in %s):\n%s"
                             % (modname, cl.tmp, cl.log_tails(30))), flush=True)
            cl.cleanup()
            if cl in LIVE_CLUSTERS:
                LIVE_CLUSTERS.remove(cl)


def emergency_stop():
    for cl in list(LIVE_CLUSTERS):
        try:
            cl.stop(timeout=3)
        except BaseException:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=None,
                    help="build directory, e.g. build/release (default: where bin/ points)")
    ap.add_argument("--unit-only", action="store_true", help="only the unit binaries")
    ap.add_argument("--integration-only", action="store_true", help="skip the unit binaries")
    ap.add_argument("-k", dest="pattern", action="append", default=None,
                    help="only tests whose name (binary, or module.function) contains "
                         "PATTERN; repeat it for several")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("KV_TEST_TIMEOUT", 1800)),
                    help="bound on the whole run, s (default 1800)")
    ap.add_argument("--test-timeout", type=float, default=180,
                    help="bound on one integration test, s (default 180)")
    ap.add_argument("--unit-timeout", type=float, default=180,
                    help="bound on one unit binary, s (default 180)")
    args = ap.parse_args()

    sys.path.insert(0, INTEG)
    import cluster as cluster_mod  # noqa: E402

    build = os.path.abspath(os.path.join(REPO, args.build) if args.build and not os.path.isabs(args.build)
                            else (args.build or cluster_mod.default_build()))
    os.environ["KV_BUILD"] = build   # for clusters that tests start themselves
    res = Results()
    t_start = time.monotonic()
    deadline = t_start + args.timeout

    # Hard stop: if the run is still going a minute after its limit (a test
    # stuck somewhere a timeout cannot reach), stop clusters and exit.
    def watchdog():
        time.sleep(args.timeout + 60)
        print("FAIL run: hard time limit (%.0f s) reached; stopping" % (args.timeout + 60), flush=True)
        emergency_stop()
        print(res.summary(extra_failed=1), flush=True)
        os._exit(1)
    threading.Thread(target=watchdog, daemon=True).start()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops the clusters even when started from a shell that ignores
    # SIGINT for background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)

    interrupted = False
    try:
        if not os.path.isdir(build):
            res.fail("build", "build directory %s does not exist (run make)" % build)
        else:
            if not args.integration_only:
                run_unit(build, res, args.pattern, args.unit_timeout, deadline)
            if not args.unit_only:
                mods = sorted(os.path.join(INTEG, f) for f in os.listdir(INTEG)
                              if f.startswith("test_") and f.endswith(".py"))
                for m in mods:
                    run_module(m, build, res, args.pattern, args.test_timeout, deadline)
    except KeyboardInterrupt:
        interrupted = True
        print("FAIL run: interrupted", flush=True)
        res.failed += 1
        emergency_stop()
    print("(%.1f s)" % (time.monotonic() - t_start), flush=True)
    print(res.summary(), flush=True)
    sys.exit(1 if res.failed or interrupted else 0)


if __name__ == "__main__":
    main()
