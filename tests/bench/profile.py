#!/usr/bin/env python3
"""What each hop costs per request: CPU time and system calls of every
server a request crosses, for make bench's chain rows and their all-nginx
chains, on the real cluster (loopback only).

    python3 tests/bench/profile.py [--build build/release] [--duration 5]
                                   [--rows get_api,get_nginx,put_queue]
                                   [--perf] [--json]

For each row (and then for the all-nginx chain of its length) it runs wrk
twice:
  1. CPU: /proc/<pid>/stat (user + system time of every thread) of each
     server before and after, over the requests wrk completed: CPU
     microseconds per request for each process kind (nginx, api, queue,
     store: a GET's primary; stores: for a write, every store, primaries
     and secondaries, which apply the queue's batches meanwhile; chain:
     the chain's nginx and the store);
  2. system calls: `strace -c -f` attached to each process kind during the
     run, calls per request and the four most frequent ones. strace slows
     the servers many times over, so the counts, not the rates, are what
     this run says (batches form under load; under strace they may be a
     little larger than without it).
With --perf, a third run records each process kind with `perf record -e
cpu-clock` and prints its ten hottest functions (self time).

The chain is bench.py's (one nginx whose server blocks proxy to each other
over keep-alive upstreams, ending at the row's primary store), so "nginx"
there is every nginx hop of the chain together. The rows and clusters are
bench.py's own. wrk runs -t2 -c64 like make bench.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402
from bench import kvc  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROW_NAMES = ("get_api", "get_nginx", "put_queue")


def cpu_ticks(pid):
    """utime + stime of the whole process (every thread), in clock ticks."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid):
    """pid and every process under it (an nginx's master and workers)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def cluster_kinds(cl, store_url):
    """{kind: [pids]} of a cluster: nginx (its workers), api, queue, the
    store that serves the row's key (its primary) and, as "stores", every
    store (primaries and secondaries: what a write costs once it is
    applied)."""
    kinds = {"nginx": [], "api": [], "queue": [], "store": [], "stores": []}
    for c in cl.children():
        pid, role, url = c.get("pid"), c.get("role"), c.get("url", "")
        if not isinstance(pid, int) or pid <= 0:
            continue
        name = c.get("name", "")
        if name.startswith("nginx"):
            kinds["nginx"] += descendants(pid)
        elif role == "api":
            kinds["api"].append(pid)
        elif name.startswith("queue"):
            kinds["queue"].append(pid)
        elif name.startswith("store"):
            kinds["stores"].append(pid)
            if url == store_url:
                kinds["store"].append(pid)
    return {k: v for k, v in kinds.items() if v}


def measure_cpu(kinds, run):
    """CPU microseconds per request of each kind over run() -> requests."""
    before = {k: sum(cpu_ticks(p) for p in pids) for k, pids in kinds.items()}
    n = run()
    after = {k: sum(cpu_ticks(p) for p in pids) for k, pids in kinds.items()}
    return n, {k: (after[k] - before[k]) * 1e6 / CLK_TCK / max(n, 1) for k in kinds}


def parse_strace(path):
    """(total calls, [(name, calls)] most frequent first) of strace -c."""
    calls = []
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return 0, []
    for ln in lines:
        f = ln.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(f) >= 5 and f[0][0].isdigit() and f[3].isdigit():
            calls.append((f[-1], int(f[3])))
    calls = [c for c in calls if c[0] != "total"]
    calls.sort(key=lambda c: -c[1])
    return sum(c[1] for c in calls), calls


def attach(tool_argv, pids, out):
    argv = list(tool_argv) + ["-o", out]
    for p in pids:
        argv += ["-p", str(p)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def detach(procs):
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def measure_syscalls(kinds, run, tmp):
    files = {k: os.path.join(tmp, "strace-%s.txt" % k) for k in kinds}
    procs = [attach(["strace", "-c", "-f", "-q"], pids, files[k]) for k, pids in kinds.items()]
    time.sleep(1.0)  # attached to every thread
    n = run()
    detach(procs)
    out = {}
    for k in kinds:
        total, calls = parse_strace(files[k])
        out[k] = {"per_request": total / max(n, 1),
                  "top": [(name, c / max(n, 1)) for name, c in calls[:4]]}
    return n, out


def measure_perf(kinds, run, tmp):
    files = {k: os.path.join(tmp, "perf-%s.data" % k) for k in kinds}
    procs = [attach(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000"], pids, files[k])
             for k, pids in kinds.items()]
    time.sleep(0.5)
    run()
    detach(procs)
    out = {}
    for k in kinds:
        r = subprocess.run(["perf", "report", "--stdio", "--no-children", "-q", "-i", files[k],
                            "--sort", "dso,sym", "--percent-limit", "1.5"],
                           capture_output=True, text=True, timeout=120)
        top = []
        for ln in r.stdout.splitlines():
            f = ln.split()
            if len(f) >= 4 and f[0].endswith("%"):
                top.append((float(f[0].rstrip("%")), f[1], " ".join(f[3:])))
        out[k] = top[:10]
    return out


def profile(label, kinds, run, tmp, with_perf):
    n, cpu = measure_cpu(kinds, run)
    _, sc = measure_syscalls(kinds, run, tmp)
    res = {"path": label, "requests": n, "kinds": {}}
    for k in kinds:
        res["kinds"][k] = {"processes": len(kinds[k]), "cpu_us": round(cpu[k], 1),
                           "syscalls": round(sc[k]["per_request"], 2),
                           "top_syscalls": [(s, round(c, 2)) for s, c in sc[k]["top"]]}
    if with_perf:
        for k, top in measure_perf(kinds, run, tmp).items():
            res["kinds"][k]["perf"] = top
    return res


def print_result(res):
    print("\n%s (%d requests in the CPU run)" % (res["path"], res["requests"]))
    print("  %-6s %4s %12s %10s  %s" % ("server", "pids", "CPU us/req", "calls/req",
                                        "most frequent calls per request"))
    total_cpu = total_calls = 0.0
    for k, v in res["kinds"].items():
        total_cpu += v["cpu_us"]
        total_calls += v["syscalls"]
        print("  %-6s %4d %12.1f %10.2f  %s" % (
            k, v["processes"], v["cpu_us"], v["syscalls"],
            ", ".join("%s %.2f" % t for t in v["top_syscalls"])))
    print("  %-6s %4s %12.1f %10.2f" % ("all", "", total_cpu, total_calls))
    for k, v in res["kinds"].items():
        for pct, dso, sym in v.get("perf", []):
            print("    perf %-6s %5.1f%%  %-18s %s" % (k, pct, dso[:18], sym))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=None, help="build dir (default: where bin/ points)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rows", default=",".join(ROW_NAMES),
                    help="comma-separated, of %s" % ", ".join(ROW_NAMES))
    ap.add_argument("--perf", action="store_true", help="also the hottest functions (perf)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    need = ["wrk", "strace"] + (["perf"] if args.perf else [])
    missing = [t for t in need if not shutil.which(t)]
    if missing:
        print("profile: not installed: %s (scripts/deps.sh installs them)"
              % ", ".join(missing), file=sys.stderr)
        return 2
    names = args.rows.split(",")
    bad = [n for n in names if n not in ROW_NAMES]
    if bad:
        print("profile: unknown rows %s (have %s)" % (bad, ", ".join(ROW_NAMES)),
              file=sys.stderr)
        return 2
    rows = [r for r in bench.ROWS if r.name in names]
    build = os.path.abspath(args.build) if args.build else kvc.default_build()
    tmp = tempfile.mkdtemp(prefix="kvprofile-")
    cl = chain = None
    results = []
    try:
        over = json.loads(json.dumps(bench.CLUSTERS["default"]))
        cl = kvc.Cluster(over, build=build, name="profile",
                         defaults={"cluster": {"bind": "127.0.0.1", "shards": 2,
                                               "replicas": 2},
                                   "api": {"count": 2}})
        ctx = bench.prepare_cluster(cl)
        chain = bench.nginx_chain(0, tmp, ctx["store"],
                                  cl.internal_headers().get("Authorization"))
        chain_kinds = {"nginx": descendants(chain.proc.pid)}
        for r in rows:
            url, script = r.url(ctx), r.script(ctx) if r.script else None
            kinds = cluster_kinds(cl, ctx["store"])
            if r.name == "get_api":
                kinds.pop("nginx", None)
                kinds["api"] = [c["pid"] for c in cl.children()
                                if c.get("url") == ctx["api"]] or kinds["api"]
            if r.name.startswith("get"):
                kinds.pop("queue", None)
                kinds.pop("stores", None)
            else:
                # the queue applies in batches, to both shards and their
                # secondaries: every store's share of the row's CPU
                kinds.pop("store", None)

            def run(url=url, script=script):
                return bench.parse_wrk(bench.run_wrk(url, args, script, tmp))["requests"]
            results.append(profile(r.name, kinds, run, tmp, args.perf))
            curl = "http://127.0.0.1:%d/internal/kv/%s" % (chain.ports[r.chain - 2], ctx["key"])
            ck = dict(chain_kinds, store=cluster_kinds(cl, ctx["store"])["store"])

            def run_chain(curl=curl):
                return bench.parse_wrk(bench.run_wrk(curl, args, None, tmp))["requests"]
            results.append(profile("chain%d (for %s)" % (r.chain, r.name), ck, run_chain,
                                   tmp, args.perf))
    finally:
        if chain is not None:
            chain.stop()
        if cl is not None:
            cl.stop()
            cl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for res in results:
            print_result(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
