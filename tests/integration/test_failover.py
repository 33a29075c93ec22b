"""Failover (docs/PROTOCOL.md "Replication, quorums and failover"): SIGKILL of a shard primary during a write
load through nginx, with W = 1 (N = 2 secondaries) and with W = 0 (N = 1).

Each scenario runs its own cluster: health checks every 100 ms, failover
after 1 s, and a restart backoff of 3 s so that the killed primary stays
down long enough to be replaced (a primary that is back within
failover_after_ms keeps its place). It must show:
  - a secondary is promoted within failover_after_ms + 1 s, measured from
    the kill to the change of the topology epoch;
  - writes and reads through nginx work again on that shard;
  - the old primary, restarted by the supervisor, rejoins as a secondary
    and every replica of the shard holds the same records (parity, from
    GET /internal/changes?since=0 of each replica);
  - no acknowledged write is missing: every PUT ?sync=1 answered 200, and
    every 202 whose job then shows applied, reads back with its value or a
    newer version.
"""

import json
import os
import signal
import time

from cluster import (Cluster, WriteLoad, json_of, keys_by_shard, own_cluster, proc_cmdline,
                     quote_key, request, wait_until)

TEST_TIMEOUT = 240
FAILOVER_AFTER_MS = 1000


def scenario_config(replicas, w):
    return {
        "cluster": {"shards": 2, "replicas": replicas, "write_quorum": w},
        "controller": {"health_interval_ms": 100,
                       "failover_after_ms": FAILOVER_AFTER_MS,
                       "restart_backoff_ms": 3000, "restart_backoff_max_ms": 3000},
        "api": {"topology_poll_ms": 200, "upstream_timeout_ms": 1000},
        "store": {"reconcile_interval_ms": 500},
        "queue": {"wait_max_ms": 5000},
    }


def put_sync(cl, key, value, timeout=15):
    return request("PUT", "%s/kv/%s?sync=1" % (cl.nginx, quote_key(key)), body=value,
                   timeout=timeout)


def kill_primary_during_load(cl, shard=0):
    cl.wait_stores_settled()
    keys = keys_by_shard(cl, 25, "fo-%d-" % (int(time.time() * 1000) % 100000))
    # the load writes 20 keys per shard; the last 5 are probes only this
    # thread writes (so that it can read its own writes back)
    probes = {s: k[20:] for s, k in keys.items()}
    load = WriteLoad(cl, keys[0][:20] + keys[1][:20], threads=4).start()
    try:
        cl.wait_until(lambda: load.n_acked() >= 100, 30, "100 acknowledged writes before the kill")

        old = cl.primary_replica(shard)
        old_name = cl.store_name(shard, old)
        old_url = cl.stores[shard][old]
        old_pid = cl.pid(old_name)
        epoch0 = cl.topology_epoch()
        shard_epoch0 = int(cl.shard_topology(shard)["epoch"])
        failovers0 = int(cl.status().get("failovers", 0))

        t_kill = time.monotonic()
        cl.kill(old_name, signal.SIGKILL)
        topo, _ = cl.wait_epoch_change(epoch0, FAILOVER_AFTER_MS / 1000.0 + 10)
        took = time.monotonic() - t_kill
        assert took <= FAILOVER_AFTER_MS / 1000.0 + 1.0, \
            "promotion took %.2f s after the kill (failover_after_ms %d + 1 s)" % (
                took, FAILOVER_AFTER_MS)
        print("    (promoted %.2f s after the kill)" % took)
        sh = [s for s in topo["shards"] if int(s["id"]) == shard][0]
        assert sh["primary"] and sh["primary"] != old_url, \
            "shard %d still has primary %s after the epoch change" % (shard, sh["primary"])
        assert old_url in sh["secondaries"], \
            "the old primary %s is not a secondary of shard %d: %r" % (old_url, shard, sh)
        assert int(sh["epoch"]) == shard_epoch0 + 1, (shard_epoch0, sh)
        assert int(sh.get("handoff_seq", -1)) >= 0, sh
        st = cl.status()
        assert int(st.get("failovers", 0)) == failovers0 + 1, st.get("failovers")
        new_name = cl.store_name(shard, cl.replica_of(shard, sh["primary"]))
        assert cl.child(new_name)["role"] == "primary", cl.child(new_name)
        assert cl.child(old_name)["role"] == "secondary", cl.child(old_name)
        st, _, body = request("GET", cl.controller + "/metrics")
        assert b"kv_controller_failovers_total %d" % (failovers0 + 1) in body, body[:600]

        # writes and reads through nginx work again on that shard (the api and
        # the queue follow the topology within their poll interval)
        probe = probes[shard][0]

        def write_ok():
            st, _, body = put_sync(cl, probe, b"after-failover")
            return st == 200
        cl.wait_until(write_ok, 15, "a PUT ?sync=1 to shard %d to succeed after failover" % shard)
        for i in range(20):
            key = probes[shard][i % len(probes[shard])]
            val = b"after-%d" % i
            st, _, body = put_sync(cl, key, val)
            assert st == 200, "PUT %s after failover -> %s %r" % (key, st, body[:200])
            load.acked.append((key, int(json_of(body)["version"]), val, time.monotonic()))
            st, hd, body = request("GET", "%s/kv/%s" % (cl.nginx, quote_key(key)))
            assert st == 200 and body == val, "GET %s after failover -> %s %r" % (key, st, body[:100])
        n = load.n_acked()
        cl.wait_until(lambda: load.n_acked() >= n + 50, 20, "the write load to go on after failover")

        # the supervisor restarts the old primary; it rejoins as a secondary
        def restarted():
            c = cl.child(old_name)
            return c if c.get("pid") not in (None, old_pid) and c["state"] == "running" else None
        c = cl.wait_until(restarted, 20, "the supervisor to restart %s" % old_name)
        assert c["role"] == "secondary", c
        # Right after the fork the child may not have exec'd yet: poll.
        cl.wait_until(lambda: "--role secondary" in proc_cmdline(c["pid"]), 5,
                      "%s (pid %s) to run with --role secondary" % (old_name, c["pid"]))

        def rejoined():
            h = cl.store_health(old_url)
            return h if h and h.get("role", "secondary") == "secondary" else None
        cl.wait_until(rejoined, 20, "%s to answer /health as a secondary" % old_name)
        assert cl.primary(shard) == sh["primary"], "the primary moved again: %s" % cl.primary(shard)
    finally:
        load.stop()
    load.resolve_jobs()
    assert load.n_acked() > 0
    for s in range(cl.shards):
        cl.wait_parity(s, 60)
    problems = load.missing_acked()
    assert not problems, "%d acknowledged writes missing or older (of %d), e.g.\n%s" % (
        len(problems), load.n_acked(), "\n".join(problems[:10]))
    # every replica of the shard, not just the one nginx reads
    data = cl.shard_live_data(shard)
    for url, recs in data.items():
        def read(key, recs=recs):
            r = recs.get(key.encode())
            return (200, r[0], r[1]) if r else (404, 0, b"")
        missing = load.missing_acked(read, keys=set(keys[shard]))
        assert not missing, "replica %s lacks acknowledged writes: %s" % (url, missing[:5])
    return load


def test_failover_w1_sigkill_primary():
    with own_cluster(scenario_config(replicas=3, w=1), "failover-w1") as cl:
        load = kill_primary_during_load(cl)
        print("    (W=1: %d acknowledged, not acknowledged: %s)"
              % (load.n_acked(), dict(load.failed)))


def test_failover_w0_sigkill_primary():
    with own_cluster(scenario_config(replicas=2, w=0), "failover-w0") as cl:
        load = kill_primary_during_load(cl)
        print("    (W=0: %d acknowledged, not acknowledged: %s)"
              % (load.n_acked(), dict(load.failed)))


def test_no_failover_without_live_secondary():
    """A primary whose only secondary is down too stays in the topology: no
    promotion, a logged skip, the epoch unchanged; once the secondary is
    back the shard fails over."""
    cfg = scenario_config(replicas=2, w=0)
    cfg["cluster"]["shards"] = 1
    with own_cluster(cfg, "failover-none") as cl:
        epoch0 = cl.topology_epoch()
        sec = cl.store_name(0, 1)
        cl.pause(sec)
        cl.pause(cl.store_name(0, 0))
        wait_until(lambda: int(cl.status().get("failovers_skipped", 0)) > 0,
                   FAILOVER_AFTER_MS / 1000.0 + 5, "a skipped failover to be counted")
        assert cl.topology_epoch() == epoch0
        assert cl.primary(0) == cl.stores[0][0]
        cl.resume(sec)
        topo, _ = cl.wait_epoch_change(epoch0, 10)
        assert topo["shards"][0]["primary"] == cl.stores[0][1], topo
        cl.resume_all()
        # the paused old primary comes back and finds itself a secondary
        wait_until(lambda: (cl.store_health(cl.stores[0][0]) or {}).get("role", "secondary")
                   == "secondary", 20, "the old primary to step down")


def test_a_read_for_the_primary_is_not_served_by_a_replaced_one():
    """An api whose topology is older than a failover reads the shard's old
    primary, back as a secondary and behind the new one. It answers 409
    not_primary naming the new primary, and the api reads the value there.

    How the api's topology is kept old: it is paused (SIGSTOP) through the
    failover, and the controller is paused when the api resumes, so that
    neither a poll nor a poke can bring it the new one. The old primary is
    kept behind by a replication delay of 3 s and no reconcile rounds."""
    cfg = scenario_config(replicas=2, w=0)
    cfg["cluster"]["shards"] = 1
    cfg["cluster"]["replicas"] = 2
    cfg["api"]["count"] = 1
    cfg["store"] = {"reconcile_interval_ms": 600000, "repl_delay_ms": 3000}
    with own_cluster(cfg, "failover-replaced") as cl:
        cl.wait_stores_settled()
        old, new = cl.stores[0][0], cl.stores[0][1]
        key = "cart:replaced"
        assert put_sync(cl, key, b"v1")[0] == 200
        wait_until(lambda: cl.internal("GET", new + "/internal/kv/" + key)[2] == b"v1",
                   10, "the secondary to hold v1")
        api = [c["name"] for c in cl.children_by_role("api")][0]
        cl.pause(api)
        epoch0 = cl.topology_epoch()
        old_pid = cl.pid(cl.store_name(0, 0))
        cl.kill(cl.store_name(0, 0), signal.SIGKILL)
        topo, _ = cl.wait_epoch_change(epoch0, 10)
        assert topo["shards"][0]["primary"] == new, topo
        wait_until(lambda: cl.child(cl.store_name(0, 0)).get("pid") != old_pid and
                   (cl.store_health(old) or {}).get("state") == "secondary", 20,
                   "the old primary to be back as a secondary")
        st, _, body = cl.internal("PUT", new + "/internal/kv/" + key, body=b"v2")
        assert st == 200, (st, body)
        # the old primary's copy is behind: what the api must not serve
        assert cl.internal("GET", old + "/internal/kv/" + key)[2] == b"v1"
        os.kill(cl.proc.pid, signal.SIGSTOP)
        try:
            cl.resume(api)
            st, hd, body = request("GET", "%s/kv/%s" % (cl.apis[0], key))
        finally:
            os.kill(cl.proc.pid, signal.SIGCONT)
        assert st == 200 and body == b"v2", (st, hd.get("X-KV-Served-By"), body)
        assert hd.get("X-KV-Served-By") == new + "; redirect=not_primary", hd
        assert cl.api_metric("kv_api_read_not_primary_total") >= 1


def test_controller_restart_keeps_topology_state():
    """The stores keep their epochs on disk, so the controller keeps its
    topology state too (<data_dir>/controller-state.json): a controller
    started again over the same data after a failover publishes the same
    epochs and primaries, and the cluster serves reads and writes."""
    import shutil
    import tempfile
    data = tempfile.mkdtemp(prefix="kvtest-ctlstate-")
    try:
        cfg = scenario_config(replicas=2, w=1)
        cfg["cluster"]["shards"] = 1
        cfg["cluster"]["data_dir"] = data
        with own_cluster(cfg, "failover-state-1") as cl:
            cl.wait_stores_settled()
            st, _, body = put_sync(cl, "persist-key", b"before")
            assert st == 200, (st, body)
            epoch0 = cl.topology_epoch()
            cl.kill(cl.store_name(0, 0), signal.SIGKILL)
            topo, _ = cl.wait_epoch_change(epoch0, 10)
            assert topo["shards"][0]["primary"] == cl.stores[0][1], topo
            cl.wait_until(lambda: put_sync(cl, "persist-key", b"after")[0] == 200, 15,
                          "a write after failover")
            before = cl.topology()
        with own_cluster(cfg, "failover-state-2") as cl:
            topo = cl.topology()
            assert topo["epoch"] == before["epoch"], (topo, before)
            sh = topo["shards"][0]
            assert sh["epoch"] == before["shards"][0]["epoch"], (sh, before)
            assert sh["primary"] == cl.stores[0][1], sh
            assert sh["handoff_seq"] == before["shards"][0]["handoff_seq"], sh
            assert cl.child(cl.store_name(0, 1))["role"] == "primary"
            assert "--role primary" in proc_cmdline(cl.pid(cl.store_name(0, 1)))
            cl.wait_stores_settled()
            st, _, body = request("GET", "%s/kv/persist-key" % cl.nginx)
            assert st == 200 and body == b"after", (st, body)
            cl.wait_until(lambda: put_sync(cl, "persist-key", b"again")[0] == 200, 15,
                          "a write after the controller restart")
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_another_shard_count_over_existing_data_is_refused():
    """Keys written by a 2-shard cluster, started again with 3 shards: the
    ring would send about a third of the reads to the new, empty shard. The
    controller refuses to start, in one sentence that names the setting;
    started again with 2 shards every key is there."""
    import shutil
    import subprocess
    import tempfile
    data = tempfile.mkdtemp(prefix="kvtest-shardcount-")
    try:
        cfg = scenario_config(replicas=1, w=0)
        cfg["cluster"]["data_dir"] = data
        keys = ["strand-%d" % i for i in range(40)]
        with own_cluster(cfg, "shardcount-1") as cl:
            for k in keys:
                st, _, body = put_sync(cl, k, k.encode())
                assert st == 200, (k, st, body)
        grown = json.loads(json.dumps(cfg))
        grown["cluster"]["shards"] = 3
        cl = Cluster(grown, name="shardcount-2", start=False)
        try:
            exe = os.path.join(cl.build, "bin", "kv-controller")
            p = subprocess.run([exe, "--config", cl.config_path], cwd=cl.tmp,
                               env=cl.env(), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=30)
            err = p.stderr.decode("utf-8", "replace")
            assert p.returncode == 1, (p.returncode, err)
            assert "cluster.shards is 3" in err and "has 2 shards" in err, err
            assert "(created with 2)" in err, err
            assert "`kvctl shard add` and `kvctl shard remove`" in err, err
            assert "set cluster.shards (KV_SHARDS) back to 2" in err, err
            assert err.count("\n") == 1, err
        finally:
            cl.stop()
            cl.cleanup()
        with own_cluster(cfg, "shardcount-3") as cl:
            for k in keys:
                st, _, body = request("GET", "%s/kv/%s" % (cl.nginx, quote_key(k)))
                assert st == 200 and body == k.encode(), (k, st, body)
    finally:
        shutil.rmtree(data, ignore_errors=True)
