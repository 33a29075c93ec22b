#!/usr/bin/env python3
"""What one open dashboard costs the controller: its CPU time (utime + stime
from /proc) over --seconds with the cluster idle, first with no page open,
then with one headless Chromium showing /ui/ (polling once a second). The
same for the queue and the apis, whose /stats the controller asks. Prints
the percent of one core each way; writes reports/ui_cost.json.

    python3 tests/bench/ui_cost.py [--build build/release] [--seconds 60]
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import browser  # noqa: E402
import cluster as kvc  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(pids, seconds):
    t0, c0 = time.monotonic(), {n: cpu_s(p) for n, p in pids.items()}
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return {n: round(100.0 * (cpu_s(p) - c0[n]) / dt, 3) for n, p in pids.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=None)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--out", default=os.path.join(REPO, "reports", "ui_cost.json"))
    a = ap.parse_args()
    why = browser.available()
    if why:
        print("ui_cost: %s" % why, file=sys.stderr)
        return 2
    build = os.path.abspath(a.build) if a.build else kvc.default_build()
    cl = kvc.Cluster({}, build=build, name="ui-cost")
    page = None
    try:
        pids = {"controller": cl.proc.pid, "queue": cl.pid("queue"),
                "api-0": cl.pid("api-0"), "api-1": cl.pid("api-1")}
        time.sleep(2)
        idle = measure(pids, a.seconds)
        args = {"url": cl.controller + "/ui/", "hold_s": a.seconds + 2,
                "timeout_ms": (a.seconds + 40) * 1000}
        page = subprocess.Popen(["node", os.path.join(REPO, "tests", "browser", "hold.js"),
                                 json.dumps(args)], stdout=subprocess.PIPE, text=True)
        line = page.stdout.readline()  # "open" once the page polls
        if not line.startswith("open"):
            raise RuntimeError("hold.js: %r" % line)
        watched = measure(pids, a.seconds)
        page.wait(60)  # it closes itself once hold_s is over
    finally:
        if page and page.poll() is None:
            page.kill()
            page.wait()
        cl.stop()
        cl.cleanup()
    print("%-12s %10s %12s" % ("process", "idle %CPU", "1 page %CPU"))
    for n in pids:
        print("%-12s %10.3f %12.3f" % (n, idle[n], watched[n]))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"seconds": a.seconds, "idle": idle, "one_page": watched}, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
