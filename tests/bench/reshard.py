#!/usr/bin/env python3
"""reshard_add / reshard_remove: grow a 2-shard cluster holding 500 000 keys
of 100 bytes by a third shard and shrink it back, with wrk reading through
nginx the whole time.

    python3 tests/bench/reshard.py [--build build/release] [--keys 500000]
                                   [--loads 0,4,32] [--out reports/reshard.json]

For each GET load (wrk connections; 0: none) `kvctl shard add` (the new
shard takes a third of the keys) and then `kvctl shard remove` of that
shard (they move back). For every migration it reports the keys moved per
second (the keys that changed shard over the time from the copy phase to
the switch, as GET /rebalance shows them, polled every 10 ms; the start of
the new shard's stores is not in it) and, under a load, the GET p99
through nginx of a one-second wrk run that starts when the copy does (the
copy lasts about that long), beside the p99 of a one-second run just
before the migration, idle. 32 connections saturate this 2-core machine
(every migration's CPU is then taken from the foreground or waits: the copy
runs below the request threads), 4 leave it room. Goals on the reference
machine: at least 200 000 keys/s, and a p99 during the migration at most
2x the idle one.

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
    # An HLC version (lib/hlc.h: microseconds since 2020) a second old: below
    # what the queue gives later, and not ahead of a store's clock.
    version = int(time.time() * 1e6) - 1577836800000000 - 1000000
    t0 = time.monotonic()

    def send(shard, keys):
        body = b"".join(kvc.encode_wire_op(1, k, value, version) for k in keys)
        st, hd, out = cl.internal("POST", primaries[shard] + "/internal/batch", body=body,
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


def wrk_1s(url, script_path, conns):
    p = subprocess.run(["wrk", "-t2" if conns > 1 else "-t1", "-c%d" % conns, "-d1s", "--latency", "--timeout", "5s",
                        "-s", script_path, url], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    return parse_wrk(p.stdout)


def migrate(cl, argv, script, conns):
    """One migration (kvctl argv) under wrk with conns connections (0: no
    load): an idle one-second run first, then one that starts as the copy
    does, repeated while the migration lasts. Returns its row."""
    none = {"p99_ms": None, "rps": None, "non_2xx": 0}
    idle = wrk_1s(cl.nginx + "/", script, conns) if conns else none
    res, phases, done = {}, {}, threading.Event()
    copying = threading.Event()

    def run():
        t0 = time.monotonic()
        rc, out, err = cl.kvctl("--json", *argv)  # with the cluster's token
        res.update(rc=rc, out=out, err=err, secs=time.monotonic() - t0)
        done.set()
        copying.set()

    def watch():
        # When each phase was first seen (10 ms polls).
        while not done.is_set():
            st, j = kvc.get_json(cl.controller + "/rebalance", timeout=2)
            if st == 200 and j.get("running") and j.get("phase") not in phases:
                phases[j.get("phase")] = time.monotonic()
                if j.get("phase") in ("copy", "freeze", "switch"):
                    copying.set()
            time.sleep(0.01)
    ths = [threading.Thread(target=run), threading.Thread(target=watch)]
    for t in ths:
        t.start()
    copying.wait(600)
    during = []
    while conns and not done.is_set():
        during.append(wrk_1s(cl.nginx + "/", script, conns))
    for t in ths:
        t.join()
    if res["rc"] != 0:
        raise RuntimeError("kvctl %s: %s %s" % (" ".join(argv), res["out"][-1000:],
                                                  res["err"][-1000:]))
    reb = json.loads(res["out"])
    moved = int(reb["totals"]["sent"])
    copy_s = None
    start = phases.get("copy", phases.get("freeze"))
    if start is not None and "switch" in phases:
        copy_s = phases["switch"] - start
    p99s = sorted(r["p99_ms"] for r in during if r["p99_ms"] is not None)
    row = {"name": "reshard_" + reb["kind"], "connections": conns, "shard": reb["shard"],
           "moved": moved, "predicted": reb.get("predicted_keys"),
           "seconds": round(res["secs"], 2),
           "copy_seconds": round(copy_s, 3) if copy_s else None,
           "keys_per_s": round(moved / copy_s) if copy_s else None,
           "phases_s": {k: round(v - min(phases.values()), 3) for k, v in phases.items()},
           "idle_p99_ms": idle["p99_ms"],
           "during_p99_ms": during[0]["p99_ms"] if during else None,
           "during_p99_max_ms": p99s[-1] if p99s else None,
           "during_runs": len(during),
           "idle_rps": idle["rps"],
           "during_rps": during[0]["rps"] if during else None,
           "non_2xx": sum(r["non_2xx"] for r in during) + idle["non_2xx"],
           "rebalance": reb}
    row["p99_ratio"] = (round(row["during_p99_ms"] / row["idle_p99_ms"], 2)
                        if row["idle_p99_ms"] and row["during_p99_ms"] else None)
    line = "  %-15s c=%-2d shard %d: %d keys moved, %.2f s for kvctl, %.2f s copying: " \
           "%d keys/s" % (row["name"], conns, row["shard"], moved, row["seconds"],
                          copy_s or 0, row["keys_per_s"] or 0)
    if conns:
        line += "; GET p99 %.2f ms during (%d runs, worst %.2f), %.2f ms idle: %.2fx" % (
            row["during_p99_ms"] or 0, len(during), row["during_p99_max_ms"] or 0,
            row["idle_p99_ms"] or 0, row["p99_ratio"] or 0)
    print(line, flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=None)
    ap.add_argument("--keys", type=int, default=500000)
    ap.add_argument("--loads", default="0,4,32",
                    help="wrk connections of each add + remove round (0: no load)")
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
        rows = []
        for conns in [int(c) for c in args.loads.split(",")]:
            rows.append(migrate(cl, ["shard", "add"], script, conns))
            rows.append(migrate(cl, ["shard", "remove", str(rows[-1]["shard"])],
                                script, conns))
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"rows": rows}, f, indent=2)
        print("wrote %s" % os.path.relpath(args.out))
        return 0 if all(r["non_2xx"] == 0 for r in rows) else 1
    finally:
        cl.stop()
        cl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
