"""make bench's two scripts still run against the cluster of today: they
broke once, unnoticed for two sessions, when the cluster token came
(tests/bench/reshard.py loaded its keys without it). Each runs briefly on
this test's build; what they measure is not checked here (benchmarks are
not timed tests), only that every row was answered 2xx and the script
exited 0."""

import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "bench")


def run_script(name, *args, timeout=240, out=True):
    with tempfile.TemporaryDirectory(prefix="kvtest-bench-") as tmp:
        p = subprocess.run([sys.executable, os.path.join(BENCH, name),
                            "--build", os.environ["KV_BUILD"]] +
                           (["--out", os.path.join(tmp, "out.json")] if out else []) +
                           list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        assert p.returncode == 0, "%s exited %d:\n%s\n%s" % (
            name, p.returncode, p.stdout[-3000:], p.stderr[-3000:])
        assert not out or os.path.getsize(os.path.join(tmp, "out.json")) > 0
        return p.stdout


def test_bench_rows_run():
    out = run_script("bench.py", "--duration", "1", "--connections", "8",
                     "--reap-keys", "5000")
    for row in ("ceiling", "get_nginx", "get_store", "put_queue", "put_ttl",
                "get_r2_n3", "reap"):
        assert row in out, out[-2000:]
    # each row of N servers in a row against the all-nginx chain of N,
    # measured around it
    for row, n in (("get_api", 2), ("get_nginx", 3), ("put_queue", 4), ("put_w1_n2", 5)):
        assert re.search(r"^ +chain%d +[0-9.]+ req/s \(chain%d, around %s: " % (n, n, row),
                         out, re.M), out[-3000:]
        assert re.search(r"^%s .* \(%d\) +\d\.\d{3} *$" % (row, n), out, re.M), \
            out[-3000:]


def test_reshard_bench_runs():
    out = run_script("reshard.py", "--keys", "3000", "--loads", "0,4")
    assert "reshard_add" in out and "reshard_remove" in out, out[-2000:]


def test_profile_runs():
    """tests/bench/profile.py: CPU and system calls per request of each
    server of get_api, of put_queue (every store too: they apply its
    writes) and of their chains, as JSON."""
    import json
    res = json.loads(run_script("profile.py", "--rows", "get_api,put_queue", "--duration", "1",
                                "--connections", "8", "--json", out=False))
    assert [r["path"] for r in res] == ["get_api", "chain2 (for get_api)", "put_queue",
                                        "chain4 (for put_queue)"], res
    assert set(res[0]["kinds"]) == {"api", "store"}, res[0]
    assert set(res[1]["kinds"]) == {"nginx", "store"}, res[1]
    assert set(res[2]["kinds"]) == {"nginx", "api", "queue", "stores"}, res[2]
    assert res[2]["kinds"]["stores"]["processes"] == 4, res[2]
    assert set(res[3]["kinds"]) == {"nginx", "store"}, res[3]
    for r in res:
        assert r["requests"] > 0, r
        for k, v in r["kinds"].items():
            assert v["cpu_us"] > 0 and v["syscalls"] > 0 and v["top_syscalls"], (r["path"], k, v)


test_bench_rows_run.timeout = 300
test_profile_runs.timeout = 120
test_reshard_bench_runs.timeout = 300
