"""The controller's shard migration API (docs/PROTOCOL.md "Growing and
shrinking", controller/reshard.h) against a real cluster: POST /shards,
DELETE /shards/{id}, GET /rebalance, their errors, the topology a migration
publishes, /status and /metrics, and a controller restarted in the middle
going on from the state file. Moving data end to end needs the stores'
side and is tested with it."""

import json
import os
import shutil
import tempfile
import time
import uuid

from cluster import (Cluster, assert_json_error, get_json, json_of, own_cluster, quote_key,
                     request,
                     wait_until)

TEST_TIMEOUT = 180

CFG = {
    "cluster": {"shards": 2, "replicas": 2},
    "controller": {"health_interval_ms": 100, "failover_after_ms": 3000},
    "api": {"topology_poll_ms": 200},
}


def store_url(cl, shard, replica):
    return "http://127.0.0.1:%d" % (cl.base_port + 100 + 10 * shard + replica)


def rebalance(cl):
    st, j = get_json(cl.controller + "/rebalance")
    assert st == 200, (st, j)
    return j


def post_shards(cl, body=b""):
    return cl.internal("POST", cl.controller + "/shards", body=body,
                   headers={"Content-Type": "application/json"})


def test_errors_and_a_running_add():
    """Bad bodies and ids are refused with JSON errors; an add answers 202
    with its migration, a second add or a remove while it runs answers 409
    naming it; the new shard's stores start and the topology carries it in
    "shards" but not in the ring, and the migration once it copies."""
    with own_cluster(CFG, "reshard-api") as cl:
        j = rebalance(cl)
        assert j == {"id": 0, "phase": "none"}, j
        assert_json_error(post_shards(cl, b"{not json"), 400, "bad_json")
        assert_json_error(post_shards(cl, b'{"primary":"http://127.0.0.1:1"}'), 400,
                          "bad_request", "supervised add with URLs")
        assert_json_error(cl.internal("DELETE", cl.controller + "/shards/9"), 404, "not_found")
        assert_json_error(cl.internal("DELETE", cl.controller + "/shards/x"), 400, "bad_request")
        assert_json_error(cl.internal("GET", cl.controller + "/shards"), 405, "method_not_allowed")
        assert_json_error(cl.internal("PUT", cl.controller + "/shards/0"), 405,
                          "method_not_allowed")
        epoch0 = cl.topology()["epoch"]

        st, _, body = post_shards(cl, b"{}")
        assert st == 202, (st, body)
        m = json_of(body)["migration"]
        assert m["id"] == 1 and m["kind"] == "add" and m["shard"] == 2, m
        assert m["phase"] == "prepare" and m["from"] == [0, 1] and m["to"] == [0, 1, 2], m
        assert 0.1 < m["share"] < 0.6, m

        # the new stores take a health round to come up: still running
        j = assert_json_error(post_shards(cl), 409, "migration_running")
        assert j["message"].startswith("migration 1 (add shard 2) is in phase "), j
        assert j["migration"]["id"] == 1, j
        j = assert_json_error(cl.internal("DELETE", cl.controller + "/shards/0"), 409,
                              "migration_running")
        assert j["migration"]["kind"] == "add", j

        # the new shard: in "shards", its stores running, not in the ring
        def stores_up():
            kids = {c["name"]: c for c in cl.children()}
            return all(kids.get("store-2-%d" % r, {}).get("state") == "running"
                       for r in range(2))
        wait_until(stores_up, 30, "store-2-0 and store-2-1 running")
        for r in range(2):
            wait_until(lambda r=r: request("GET", store_url(cl, 2, r) + "/health")[0] == 200,
                       30, "store-2-%d GET /health -> 200" % r)
        wait_until(lambda: rebalance(cl)["phase"] != "prepare", 30,
                   "the migration past prepare")
        t = cl.topology()
        assert t["epoch"] > epoch0, (t["epoch"], epoch0)
        ids = sorted(s["id"] for s in t["shards"])
        j = rebalance(cl)
        if j["phase"] in ("copy", "freeze", "switch"):
            assert ids == [0, 1, 2], t
            assert t["migration"]["id"] == 1 and t["migration"]["phase"] == j["phase"], t
            assert t["migration"]["from"] == [0, 1] and t["migration"]["to"] == [0, 1, 2], t
            assert t["ring"] == ([0, 1, 2] if j["phase"] == "switch" else [0, 1]), t
            s2 = [s for s in t["shards"] if s["id"] == 2][0]
            assert s2["primary"] == store_url(cl, 2, 0), s2
            assert s2["secondaries"] == [store_url(cl, 2, 1)], s2
        for k in ("id", "kind", "shard", "phase", "running", "from", "to", "started",
                  "started_unix_ms", "phase_since", "ended", "elapsed_s", "share",
                  "sources", "totals", "predicted_keys", "keys_per_s", "mb_per_s",
                  "eta_s"):
            assert k in j, (k, j)
        assert j["kind"] == "add" and j["shard"] == 2, j
        for k in ("scanned", "sent", "sent_bytes", "keys"):
            assert k in j["totals"], j
        if j["phase"] in ("copy", "freeze"):
            wait_until(lambda: len(rebalance(cl)["sources"]) == 2, 10,
                       "both source shards in /rebalance")
            src = rebalance(cl)["sources"][0]
            for k in ("shard", "answered", "position", "last_seq", "caught_up",
                      "scanned", "sent", "sent_bytes", "drained", "keys"):
                assert k in src, (k, src)
        status = cl.status()
        assert status["migration"]["id"] == 1, status
        assert 2 in [s["id"] for s in status["shards"]], status
        st, _, body = request("GET", cl.controller + "/metrics")
        text = body.decode()
        assert "kv_controller_migration_id 1" in text, text[-2000:]
        assert "kv_controller_migration_phase " in text, text[-2000:]
        assert "kv_controller_migration_keys_sent " in text, text[-2000:]


def test_removing_the_last_shard_is_refused():
    with own_cluster({"cluster": {"shards": 1, "replicas": 1}}, "reshard-last") as cl:
        j = assert_json_error(cl.internal("DELETE", cl.controller + "/shards/0"), 400,
                              "last_shard")
        assert "last shard" in j["message"], j
        assert rebalance(cl)["id"] == 0
        assert len(cl.topology()["shards"]) == 1


def test_restart_goes_on_with_the_stored_shards_and_migration():
    """A controller stopped while a remove runs starts again from its state
    file: the config still says 2 shards, the stored list is what runs, and
    the migration is still there (or has finished) under the same id."""
    data = tempfile.mkdtemp(prefix="kvtest-reshard-restart-")
    try:
        cfg = json.loads(json.dumps(CFG))
        cfg["cluster"]["data_dir"] = data
        with own_cluster(cfg, "reshard-restart-1") as cl:
            st, _, body = cl.internal("DELETE", cl.controller + "/shards/1")
            assert st == 202, (st, body)
            m = json_of(body)["migration"]
            assert m["kind"] == "remove" and m["phase"] == "copy", m
            assert m["from"] == [0, 1] and m["to"] == [0], m
            t = cl.topology()
            assert t["migration"]["id"] == m["id"], t
            assert t["ring"] == [0, 1], t
            epoch = t["epoch"]
        with open(os.path.join(data, "controller-state.json")) as f:
            state = json.load(f)
        assert state["created_shards"] == 2 and state["next_id"] == 2, state
        assert [s["id"] for s in state["shards"]] == [0, 1], state
        assert state["migration"]["id"] == m["id"], state
        # the config file still says 2; the cluster runs what is stored
        cl = Cluster(cfg, name="reshard-restart-2", start=False)
        cl.config["cluster"]["shards"] = len(state["shards"])
        ok = False
        try:
            cl.start(60)
            t = cl.topology()
            assert t["epoch"] >= epoch, (t["epoch"], epoch)
            j = rebalance(cl)
            assert j["id"] == m["id"] and j["kind"] == "remove", j
            if j["running"]:
                assert t["migration"]["id"] == m["id"], t
            ok = True
        finally:
            cl.stop()
            cl.failed = not ok
            cl.cleanup()
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_kvctl_shard_commands():
    """kvctl shard: status before any migration, add --no-wait (exit 0), a
    second add refused with the server's 409 message (exit 1), usage errors
    (exit 2), status --json the GET /rebalance object, kvctl status naming
    the running migration."""
    with own_cluster(CFG, "reshard-kvctl") as cl:
        rc, out, err = cl.kvctl("shard", "status")
        assert rc == 0 and "no shard migration" in out, (rc, out, err)
        rc, out, err = cl.kvctl("shard", "remove", "x")
        assert rc == 2, (rc, out, err)
        rc, out, err = cl.kvctl("shard", "frobnicate")
        assert rc == 2, (rc, out, err)
        rc, out, err = cl.kvctl("shard", "remove", "7")
        assert rc == 1 and "404 not_found" in err, (rc, out, err)
        rc, out, err = cl.kvctl("shard", "add", "--no-wait")
        assert rc == 0 and "migration 1 (add shard 2) started" in out, (rc, out, err)
        rc, out, err = cl.kvctl("shard", "add")
        assert rc == 1, (rc, out, err)
        assert "409 migration_running: migration 1 (add shard 2) is in phase" in err, err
        rc, out, err = cl.kvctl("shard", "status", "--json")
        assert rc == 0, (rc, out, err)
        j = json.loads(out)
        assert j["id"] == 1 and j["kind"] == "add" and j["shard"] == 2, j
        if j["running"]:
            rc, out, err = cl.kvctl("status")
            assert "migration 1 (add shard 2) in phase" in out, out


def test_failover_during_a_migration():
    """A source primary SIGKILLed while an add runs is replaced as always
    (its secondary promoted, shard epoch + 1), the topology keeps the
    migration (while it runs) and the driver asks the new primary."""
    cfg = json.loads(json.dumps(CFG))
    cfg["controller"].update({"failover_after_ms": 1000, "restart_backoff_ms": 3000,
                              "restart_backoff_max_ms": 3000})
    with own_cluster(cfg, "reshard-failover") as cl:
        st, _, body = post_shards(cl)
        assert st == 202, (st, body)
        wait_until(lambda: rebalance(cl)["phase"] != "prepare", 30,
                   "the migration past prepare")
        old = cl.primary(0)
        epoch0 = [s for s in cl.topology()["shards"] if s["id"] == 0][0]["epoch"]
        cl.kill("store-0-0")
        wait_until(lambda: cl.primary(0) != old, 10, "shard 0 failed over")
        t = cl.topology()
        s0 = [s for s in t["shards"] if s["id"] == 0][0]
        assert s0["primary"] == store_url(cl, 0, 1) and s0["epoch"] == epoch0 + 1, s0
        assert 2 in [s["id"] for s in t["shards"]], t
        j = rebalance(cl)
        if j["running"]:
            assert t["migration"]["id"] == 1, t
            if j["phase"] in ("copy", "freeze"):
                wait_until(lambda: any(s["shard"] == 0 and s["answered"]
                                       for s in rebalance(cl)["sources"]),
                           10, "the driver hears shard 0's new primary")
        # the new shard's stores were not failed over for starting late
        s2 = [s for s in t["shards"] if s["id"] == 2][0]
        assert s2["primary"] == store_url(cl, 2, 0) and s2["epoch"] == 1, s2


def test_an_old_primary_hands_moved_keys_to_their_new_shard():
    """Writes only shard 0's primary took (its secondary was down) outlive a
    failover and then a migration that moved some of their keys away: the
    old primary, paused through both, resumes as a secondary and hands its
    tail to shard 0's new primary, which answers 421 moved for the keys
    shard 1 owns now; the handoff sends those on to shard 1's primary. Every
    tail key then reads its value through nginx, on the shard that owns it."""
    cfg = {"cluster": {"shards": 1, "replicas": 2},
           "controller": {"health_interval_ms": 100, "failover_after_ms": 1000,
                          "restart_backoff_ms": 2000, "restart_backoff_max_ms": 2000},
           "store": {"reconcile_interval_ms": 300},
           "api": {"topology_poll_ms": 200}}
    with own_cluster(cfg, "reshard-rejoin") as cl:
        topo = cl.shard_topology(0)
        old, new = topo["primary"], topo["secondaries"][0]
        old_name = cl.store_name(0, cl.replica_of(0, old))
        new_name = cl.store_name(0, cl.replica_of(0, new))
        wait_until(lambda: (cl.store_health(new) or {}).get("state") == "secondary", 20,
                   "the secondary to follow")
        epoch0 = cl.topology_epoch()
        cl.kill(new_name)
        tail = ["tail-%s-%03d" % (uuid.uuid4().hex[:8], i) for i in range(200)]
        t0 = time.monotonic()
        for k in tail:
            st, _, body = cl.internal("PUT", old + "/internal/kv/" + quote_key(k), body=k.encode())
            assert st == 200, (st, body)
        assert time.monotonic() - t0 < 1.5, "the tail took too long to write"
        cl.pause(old_name)
        t, _ = cl.wait_epoch_change(epoch0, 30)
        assert t["shards"][0]["primary"] == new, t
        rc, out, err = cl.kvctl("shard", "add")
        assert rc == 0, (rc, out, err)
        moved = [k for k in tail
                 if json_of(cl.request("GET", "/ring?key=" + quote_key(k))[2])["shard"] == 1]
        assert 40 <= len(moved) <= 160, len(moved)
        for k in tail:
            st, _, _ = cl.internal("GET", new + "/internal/kv/" + quote_key(k))
            assert st in (404, 421), "%s reached shard 0's new primary before the handoff" % k
        cl.resume(old_name)

        def missing():
            return [k for k in tail
                    if cl.request("GET", "/kv/" + quote_key(k))[2] != k.encode()]
        wait_until(lambda: not missing(), 30, "every tail key to read its value")
        p1 = cl.primary(1)
        for k in moved:
            st, _, body = cl.internal("GET", p1 + "/internal/kv/" + quote_key(k))
            assert st == 200 and body == k.encode(), (k, st, body)
        wait_until(lambda: (cl.store_health(old) or {}).get("state") == "secondary", 30,
                   "the old primary to follow as a secondary")
        wait_until(lambda: cl.kvctl("parity")[0] == 0, 30,
                   "kvctl parity: every shard's replicas identical")
