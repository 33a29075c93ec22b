#!/usr/bin/env python3
"""reshard_add: add a third shard to a 2-shard cluster holding 500 000 keys
of 100 bytes, with wrk reading through nginx the whole time.

    python3 tests/bench/reshard.py [--build build/release] [--keys 500000]
                                   [--out reports/reshard.json]

Reports the keys moved per second (the keys the new shard holds at the end
over the time from the copy phase to the switch, as GET /rebalance shows
them, polled every 50 ms; the new shard's start is not in it) and the GET p99 through nginx in one-second wrk runs while the
migration runs, beside the same measured idle just before. Goals on the
reference machine: at least 200 000 keys/s, and a p99 during the migration
at most 2x the idle one.

The keys are loaded straight into the primaries with POST /internal/batch
(the queue would take half a minute for 500 000): every op goes to shard 0
first, and the ones it answers 421 moved go to the shard it names.
Python 3 standard library + wrk + nginx; stops by itself.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

import cluster as kvc  # noqa: E402
from bench import parse_wrk  # noqa: E402

VALUE_BYTES = 100
BATCH = 5000
RESULT = struct.Struct("<HHIQq")
LUA_GET = """
local n = 0
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) %% 100000)
  n = math.random(0, %d)
end
function request()
  n = n + 1
  return wrk.format("GET", string.format("/kv/rs-%%07d", n %% %d))
end
"""


def load(cl, n, prefix):
    """n keys straight into their primaries; returns the seconds it took."""
    topo = cl.topology()
    primaries = {int(s["id"]): s["primary"] for s in topo["shards"]}
    value = b"v" * VALUE_BYTES
    version = int(time.time() * 1000) << 10       # below what the queue gives later
    t0 = time.monotonic()

    def send(shard, keys):
        body = b"".join(kvc.encode_wire_op(1, k, value, version) for k in keys)
        st, hd, out = kvc.request("POST", primaries[shard] + "/internal/batch", body=body,
                                  headers={"Content-Type": "application/octet-stream"},
                                  timeout=60)
        if st != 200:
            raise RuntimeError("batch to shard %d: %s %r" % (shard, st, out[:200]))
        moved = {}
        for i, k in enumerate(keys):
            status = RESULT.unpack_from(out, i * RESULT.size)[0]
            if status == 421:
                moved.setdefault(None, []).append(k)
            elif status not in (200, 208):
                raise RuntimeError("batch op %s: status %d" % (k, status))
        return moved.get(None, [])

    def worker(part):
        for i in range(0, len(part), BATCH):
            rest = send(0, part[i:i + BATCH])
            for shard in sorted(primaries):
                if not rest:
                    break
                if shard != 0:
                    rest = send(shard, rest)
            if rest:
                raise RuntimeError("%d keys no shard takes" % len(rest))
    keys = [("%s%07d" % (prefix, i)).encode() for i in range(n)]
    errs = []

    def run(part):
        try:
            worker(part)
        except Exception as e:  # noqa: BLE001 -- reported below
            errs.append(e)
    ths = [threading.Thread(target=run, args=(keys[i::4],)) for i in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errs:
        raise errs[0]
    return time.monotonic() - t0


def wrk_1s(url, script_path):
    p = subprocess.run(["wrk", "-t2", "-c32", "-d1s", "--latency", "--timeout", "5s",
                        "-s", script_path, url], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    return parse_wrk(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=None)
    ap.add_argument("--keys", type=int, default=500000)
    ap.add_argument("--out", default=os.path.join(REPO, "reports", "reshard.json"))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("reshard: wrk is not installed (scripts/deps.sh installs it)", file=sys.stderr)
        return 2
    build = os.path.abspath(args.build) if args.build else kvc.default_build()
    tmp = tempfile.mkdtemp(prefix="kvbench-reshard-")
    cl = kvc.Cluster({"cluster": {"shards": 2, "replicas": 2},
                      "store": {"fsync": "no"}, "api": {"count": 2, "rate_limit": 0}},
                     build=build, name="bench-reshard")
    try:
        secs = load(cl, args.keys, "rs-")
        print("  loaded %d keys in %.1f s" % (args.keys, secs), flush=True)
        script = os.path.join(tmp, "get.lua")
        with open(script, "w") as f:
            f.write(LUA_GET % (args.keys, args.keys))
        idle = [wrk_1s(cl.nginx + "/", script) for _ in range(3)]
        kv = os.path.join(build, "bin", "kvctl")
        during, done = [], threading.Event()
        res = {}

        def grow():
            t0 = time.monotonic()
            p = subprocess.run([kv, "--controller", cl.controller, "--json", "shard", "add"],
                               capture_output=True, text=True, timeout=600)
            res.update(rc=p.returncode, out=p.stdout, err=p.stderr,
                       secs=time.monotonic() - t0)
            done.set()
        phases = {}

        def watch():
            # When each phase was first seen (50 ms polls): the copy rate is
            # the records sent over copy + freeze, without the start of the
            # new shard's stores (prepare) and the switch.
            while not done.is_set():
                st, j = kvc.get_json(cl.controller + "/rebalance", timeout=2)
                if st == 200 and j.get("phase") not in phases:
                    phases[j.get("phase")] = time.monotonic()
                time.sleep(0.05)
        th = threading.Thread(target=grow)
        th.start()
        wt = threading.Thread(target=watch)
        wt.start()
        while not done.is_set():
            during.append(wrk_1s(cl.nginx + "/", script))
        th.join()
        wt.join()
        if res["rc"] != 0:
            raise RuntimeError("kvctl shard add: %s %s" % (res["out"][-1000:], res["err"][-1000:]))
        reb = json.loads(res["out"])
        topo = cl.topology()
        new = max(int(s["id"]) for s in topo["shards"])
        st, s = kvc.get_json(cl.primary(new) + "/stats")
        moved = int(s["keys"])
        p99 = lambda rs: sorted(r["p99_ms"] for r in rs if r["p99_ms"] is not None)
        idle_p99, dur_p99 = p99(idle), p99(during)
        copy_s = None
        start = phases.get("copy", phases.get("freeze"))
        if start is not None and "switch" in phases:
            copy_s = phases["switch"] - start
        row = {"name": "reshard_add", "keys": args.keys, "moved": moved,
               "seconds": round(res["secs"], 2),
               "copy_seconds": round(copy_s, 3) if copy_s else None,
               "keys_per_s": round(moved / copy_s) if copy_s else None,
               "phases_s": {k: round(v - min(phases.values()), 3) for k, v in phases.items()},
               "idle_p99_ms": idle_p99[len(idle_p99) // 2] if idle_p99 else None,
               "during_p99_ms": dur_p99[len(dur_p99) // 2] if dur_p99 else None,
               "during_p99_max_ms": dur_p99[-1] if dur_p99 else None,
               "non_2xx": sum(r["non_2xx"] for r in during),
               "rebalance": reb}
        row["p99_ratio"] = (round(row["during_p99_ms"] / row["idle_p99_ms"], 2)
                            if row["idle_p99_ms"] and row["during_p99_ms"] else None)
        print("  %-12s %d keys moved, %.2f s for kvctl shard add, %.2f s copying: "
              "%d keys/s; GET p99 %.2f ms during "
              "(worst second %.2f), %.2f ms idle: %.2fx" % (
                  "reshard_add", moved, row["seconds"], copy_s or 0, row["keys_per_s"] or 0,
                  row["during_p99_ms"] or 0, row["during_p99_max_ms"] or 0,
                  row["idle_p99_ms"] or 0, row["p99_ratio"] or 0), flush=True)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"rows": [row]}, f, indent=2)
        print("wrote %s" % os.path.relpath(args.out))
        return 0 if row["non_2xx"] == 0 else 1
    finally:
        cl.stop()
        cl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
