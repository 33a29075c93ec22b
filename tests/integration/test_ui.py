"""The dashboard (ui/, served by the controller at /ui/) in a real headless
Chromium against a real cluster: the page shows every shard and replica
with no console error; a SIGKILLed primary's successor, its epoch and the
failover appear without a reload; a burst of writes, while a primary is
paused, shows in the queue's depth and rate charts. Access: the page and
its state are open to this machine and need the token from elsewhere.
Screenshots go to docs/img/ (the README's)."""

import os

from browser import Skip, available, run_script
from cluster import REPO, json_of, own_cluster, request

CONFIG = {
    "cluster": {"shards": 2, "replicas": 2},
    # The killed primary stays down long enough to be replaced.
    "controller": {"health_interval_ms": 100, "failover_after_ms": 800,
                   "restart_backoff_ms": 3000, "restart_backoff_max_ms": 3000},
    "api": {"rate_limit": 0},
}
SHOTS = os.path.join(REPO, "docs", "img")


def test_cluster_view_follows_failover_and_burst():
    why = available()
    if why:
        raise Skip(why)
    with own_cluster(CONFIG, "ui") as cl:
        out = run_script("dashboard_cluster", {
            "url": cl.controller + "/ui/",
            "nginx": cl.nginx,
            "shards": [{"id": s, "replicas": 2} for s in range(2)],
            "kill_pid": cl.pid(cl.store_name(0, cl.primary_replica(0))),
            "pause_pid": cl.pid(cl.store_name(1, cl.primary_replica(1))),
            "shots": SHOTS,
        }, timeout=150)
        print("    (%s)" % out.strip().splitlines()[0])


test_cluster_view_follows_failover_and_burst.timeout = 180


def test_dashboard_is_local_only_without_the_token():
    with own_cluster({"cluster": {"shards": 1, "replicas": 1}}, "ui-auth") as cl:
        for path in ("/ui/", "/ui/ui.js", "/ui/state"):
            st, hd, _ = request("GET", cl.controller + path)
            assert st == 200, (path, st)
            assert "default-src 'self'" in hd.get("Content-Security-Policy", "") or \
                path == "/ui/state", (path, hd)
            # A proxy's word that the client is elsewhere: the token it is.
            st, _, body = request("GET", cl.controller + path,
                                  headers={"X-Real-IP": "192.0.2.7"})
            assert st == 401 and json_of(body)["error"] == "unauthorized", (path, st, body)
            st, _, _ = request("GET", cl.controller + path,
                               headers=dict(cl.internal_headers(), **{"X-Real-IP": "192.0.2.7"}))
            assert st == 200, (path, st)
        st, hd, _ = request("GET", cl.controller + "/ui")
        assert st == 301 and hd["Location"] == "/ui/", (st, hd)
        # Through nginx (make run's public port) from this machine.
        for path in ("/ui/", "/ui/state"):
            st, _, body = request("GET", cl.nginx + path)
            assert st == 200, (path, st, body[:200])
        st, hd, _ = request("GET", cl.nginx + "/ui")
        assert st == 301 and hd["Location"].endswith("/ui/"), (st, hd)
        assert request("GET", cl.controller + "/ui/nothing.js")[0] == 404
        assert request("POST", cl.controller + "/ui/")[0] == 405
        st, _, body = request("GET", cl.controller + "/ui/state?after=nope")
        assert st == 400, (st, body)
        st, _, body = request("GET", cl.controller + "/ui/state")
        j = json_of(body)
        assert j["mode"] == "cluster" and len(j["status"]["shards"]) == 1, j
        assert abs(sum(r["share"] for r in j["ring"]) - 1.0) < 1e-6, j["ring"]
        assert j["queue"] is not None and len(j["apis"]) == 2, j
