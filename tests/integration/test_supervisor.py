"""Process supervision by the controller: /status, restart of a killed api
while nginx fails over, a clean stop on SIGTERM, and nothing left behind by a
SIGKILLed controller (a restart on the same data then serves every
acknowledged key)."""

import os
import signal
import threading
import time
import uuid

from cluster import (json_of, own_cluster, port_bindable, proc_alive, proc_cmdline,
                     quote_key, request, session_members, stop_process, wait_until)

CLUSTER_CONFIG = {}


def test_status_lists_every_child(cluster):
    kids = cluster.children()
    for c in kids:
        for f in ("name", "role", "pid", "port", "url", "state"):
            assert f in c, "/status child lacks %r: %r" % (f, c)
        assert c["state"] == "running", c
        assert isinstance(c["pid"], int) and proc_alive(c["pid"]), "child not alive: %r" % c
    roles = [c["role"] for c in kids]
    assert roles.count("api") == cluster.api_count, roles
    assert roles.count("queue") == 1, roles
    stores = [c for c in kids if c["role"] in ("store", "primary", "secondary")]
    assert len(stores) == cluster.shards * cluster.replicas, roles
    assert "nginx" in roles, roles
    ports = {c["port"] for c in kids}
    for i in range(cluster.api_count):
        assert cluster.base_port + 10 + i in ports, ("api port", ports)
    assert cluster.base_port + 1 in ports, ("queue port", ports)
    for s in range(cluster.shards):
        for r in range(cluster.replicas):
            assert cluster.base_port + 100 + 10 * s + r in ports, ("store port", s, r, ports)


def test_apis_share_the_cores(cluster):
    """api.threads 0 (the default): the apis the controller starts on one
    machine each get cores / api.count threads, at least one, rather than
    one per core each."""
    want = max(1, (os.cpu_count() or 1) // cluster.api_count)
    for c in cluster.children_by_role("api"):
        cmd = proc_cmdline(c["pid"])
        assert "--set api.threads=%d" % want in cmd, (want, cmd)


def test_api_sigkill_restarted_nginx_fails_over(cluster):
    key = "sup-" + uuid.uuid4().hex[:8]
    st, _, body = cluster.request("PUT", "/kv/%s?sync=1" % quote_key(key), body=b"still-here")
    assert st == 200, (st, body)
    victim = cluster.children_by_role("api")[0]
    name, old_pid = victim["name"], victim["pid"]
    old_restarts = victim.get("restarts", victim.get("restart_count"))

    stop = threading.Event()
    stats = {"ok": 0, "bad": []}

    def load():
        while not stop.is_set():
            try:
                st, _, body = request("GET", cluster.nginx + "/kv/" + quote_key(key), timeout=5)
                if st == 200 and body == b"still-here":
                    stats["ok"] += 1
                else:
                    stats["bad"].append((st, body[:200]))
            except Exception as e:  # noqa: BLE001
                stats["bad"].append("%s: %s" % (type(e).__name__, e))
            time.sleep(0.002)

    th = threading.Thread(target=load, daemon=True)
    th.start()
    try:
        wait_until(lambda: stats["ok"] >= 20, 10, "load to start")
        os.kill(old_pid, signal.SIGKILL)

        def restarted():
            c = cluster.child(name)
            return c if c["pid"] != old_pid and c["state"] == "running" else None
        c = cluster.wait_until(restarted, 20, "controller to restart %s (pid %d)" % (name, old_pid))
        wait_until(lambda: request("GET", c["url"] + "/health", timeout=2)[0] == 200, 15,
                   "restarted %s to answer /health" % name)
        assert proc_alive(c["pid"]), c
        # the killed process was reaped (no zombie left behind)
        wait_until(lambda: not os.path.exists("/proc/%d" % old_pid) or not proc_alive(old_pid),
                   5, "old pid %d gone" % old_pid)
        new_restarts = c.get("restarts", c.get("restart_count"))
        if isinstance(old_restarts, int) and isinstance(new_restarts, int):
            assert new_restarts == old_restarts + 1, (old_restarts, new_restarts)
        n_before = stats["ok"]
        wait_until(lambda: stats["ok"] >= n_before + 20, 10, "load to go on after the restart")
    finally:
        stop.set()
        th.join(10)
    assert not stats["bad"], "%d of %d requests through nginx failed while %s restarted: %s" % (
        len(stats["bad"]), len(stats["bad"]) + stats["ok"], name, stats["bad"][:5])


def test_store_secondary_sigkill_restarted(cluster):
    sec = [c for c in cluster.children() if c["role"] in ("store", "secondary")
           and c.get("url") not in [s["primary"] for s in cluster.topology()["shards"]]]
    assert sec, "no secondary store in /status"
    victim = sec[0]
    cluster.kill(victim["name"], signal.SIGKILL)
    cluster.wait_until(lambda: (lambda c: c["pid"] != victim["pid"] and c["state"] == "running")(
        cluster.child(victim["name"])), 20, "controller to restart %s" % victim["name"])
    wait_until(lambda: request("GET", victim["url"] + "/health", timeout=2)[0] == 200, 15,
               "restarted %s to answer /health" % victim["name"])


def test_api_sigterm_serves_as_a_lame_duck_then_stops():
    """With api.shutdown_delay_ms, an api told to stop keeps serving for that
    long, says so on /ready (503 draining, so that a balancer drops it) and
    closes every connection it answers on; then it exits."""
    with own_cluster({"api": {"shutdown_delay_ms": 1500},
                      "controller": {"restart_backoff_ms": 5000,
                                     "restart_backoff_max_ms": 5000}}, "lame-duck") as cl:
        key = "duck-" + uuid.uuid4().hex[:8]
        st, _, _ = cl.request("PUT", "/kv/%s?sync=1" % quote_key(key), body=b"quack")
        assert st == 200
        api = cl.children_by_role("api")[0]
        st, _, _ = request("GET", api["url"] + "/ready")
        assert st == 200
        t0 = time.monotonic()
        os.kill(api["pid"], signal.SIGTERM)
        wait_until(lambda: request("GET", api["url"] + "/ready", keepalive=False)[0] == 503,
                   1.0, "/ready to answer 503 once the api drains")
        st, hd, body = request("GET", api["url"] + "/ready", keepalive=False)
        assert json_of(body)["error"] == "draining", body
        st, hd, body = request("GET", api["url"] + "/kv/" + quote_key(key), keepalive=False)
        assert st == 200 and body == b"quack", (st, body)
        assert (hd.get("Connection") or "").lower() == "close", dict(hd)
        assert time.monotonic() - t0 < 1.4, "the answers came after the delay"
        wait_until(lambda: not proc_alive(api["pid"]), 10, "the api to exit after its delay")
        took = time.monotonic() - t0
        assert took >= 1.4, "the api stopped %.2f s after SIGTERM, before its delay" % took
        # nginx goes on through the other api meanwhile
        st, _, body = cl.request("GET", "/kv/" + quote_key(key))
        assert st == 200 and body == b"quack"


def test_controller_sigterm_leaves_no_children(cluster):
    pids = [c["pid"] for c in cluster.children()]
    assert pids
    cluster.stop()   # SIGTERM, wait 10 s, then AssertionError on any survivor
    alive = [p for p in pids if proc_alive(p)]
    assert not alive, "children alive after the controller's SIGTERM: %s" % alive


# ---- a SIGKILLed controller (issue 11, finding 11)

def _proc_ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return int(stat[stat.rfind(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _proc_exe(pid):
    try:
        return os.path.realpath("/proc/%d/exe" % pid)
    except OSError:
        return None


def _descendants(root):
    """root and every live process below it, from the parent pids in /proc
    (so nginx's workers, which are the nginx master's children, count)."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            pp = _proc_ppid(int(name))
            if pp is not None:
                parent[int(name)] = pp
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p in out or not proc_alive(p):
            continue
        out.add(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def _cluster_ports(cl):
    ports = [cl.base_port, cl.base_port + 1, cl.nginx_port]
    ports += [cl.base_port + 10 + i for i in range(cl.api_count)]
    ports += [cl.base_port + 100 + 10 * s + r
              for s in range(cl.shards) for r in range(cl.replicas)]
    return ports


def _put_keys(cl, prefix, n):
    acked = {}
    for i in range(n):
        key, value = "%s-%d" % (prefix, i), ("v-%s-%d" % (prefix, i)).encode()
        st, _, body = cl.request("PUT", "/kv/%s?sync=1" % quote_key(key), body=value)
        assert st == 200, ("PUT", key, st, body)
        acked[key] = value
    return acked


def _check_keys(cl, acked):
    bad = []
    for key, value in acked.items():
        st, _, body = cl.request("GET", "/kv/" + quote_key(key))
        if st != 200 or body != value:
            bad.append((key, st, body[:80]))
    assert not bad, "%d of %d acknowledged keys lost over the restart: %s" % (
        len(bad), len(acked), bad[:5])


def _sigkill_and_wait_for_nothing(cl, victims_of, what):
    """Record every process of the cluster (the controller, its children,
    nginx's master from its pid file and the master's workers), SIGKILL
    victims_of(those pids), then poll until none of them is left and every
    port of the cluster can be bound again. Survivors are named in the
    failure and killed by pid, so that a failure leaks nothing."""
    ctl = cl.proc.pid
    cl.children()      # remember the children's pids for the logs
    pids = _descendants(ctl)
    with open(os.path.join(cl.config["cluster"]["data_dir"], "run", "nginx.pid")) as f:
        master = int(f.read().split()[0])
    workers = _descendants(master) - {master}
    assert master in pids and workers, (
        "nginx master %d and its workers %s not found under the controller %d"
        % (master, sorted(workers), ctl))
    assert workers <= pids
    victims = sorted(victims_of(pids))
    assert ctl in victims, (ctl, victims)
    for p in victims:
        os.kill(p, signal.SIGKILL)
    cl.proc.wait(10)
    ports = _cluster_ports(cl)

    def left():
        alive = sorted(p for p in pids | set(session_members(cl.sid)) if proc_alive(p))
        busy = [p for p in ports if not port_bindable(p)]
        return alive, busy
    try:
        wait_until(lambda: left() == ([], []), 15,
                   "every process of the cluster to exit after %s" % what)
    except AssertionError:
        alive, busy = left()
        desc = ["pid %d (parent %s%s) %s" % (p, _proc_ppid(p),
                                            ", an nginx worker" if p in workers else "",
                                            proc_cmdline(p)) for p in alive]
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        raise AssertionError("after %s: %d process(es) outlived the controller: %s; "
                             "ports still taken: %s" % (what, len(alive), "; ".join(desc), busy))


def test_controller_sigkill_leaves_nothing_and_restarts_with_data():
    """A SIGKILLed controller takes every process it started with it, nginx's
    workers included, so that the port is free and the same command brings
    the cluster back with its data. Killed twice: the controller's pid alone,
    then every process that runs the kv-controller binary (what
    `kill -9 $(pidof kv-controller)` or `pkill -9 -f kv-controller` hit: the
    nginx guard too, a fork of the controller)."""
    with own_cluster({"nginx": {"workers": 2}}, "ctl-sigkill") as cl:
        acked = _put_keys(cl, "k1-" + uuid.uuid4().hex[:6], 20)
        _sigkill_and_wait_for_nothing(cl, lambda pids: [cl.proc.pid],
                                      "SIGKILL of the controller's pid")
        cl._log.close()    # start() opens the controller log again
        cl.start(60)
        _check_keys(cl, acked)

        acked.update(_put_keys(cl, "k2-" + uuid.uuid4().hex[:6], 20))
        exe = os.path.realpath(os.path.join(cl.build, "bin", "kv-controller"))
        _sigkill_and_wait_for_nothing(
            cl, lambda pids: [p for p in pids if _proc_exe(p) == exe],
            "SIGKILL of every kv-controller process")
        cl._log.close()
        cl.start(60)
        _check_keys(cl, acked)


def test_controller_start_reclaims_nginx_workers_left_behind():
    """Workers whose master died with its guard and the controller hold
    nginx.port. The next start finds them by the stale nginx pid file, kills
    them and comes up on the same data. To leave the workers behind for sure,
    the controller and the guard are stopped (SIGSTOP) before the master is
    SIGKILLed, so that neither can kill the master's process group, and then
    SIGKILLed themselves. (Stopping the master instead would not do: when its
    guard dies, its group is orphaned with a stopped member, and the kernel
    continues it; it then acts on its parent-death SIGTERM.)"""
    with own_cluster({"nginx": {"workers": 2}}, "ctl-leftover") as cl:
        acked = _put_keys(cl, "k-" + uuid.uuid4().hex[:6], 10)
        with open(os.path.join(cl.config["cluster"]["data_dir"], "run", "nginx.pid")) as f:
            master = int(f.read().split()[0])
        workers = _descendants(master) - {master}
        guard = cl.pid("nginx")
        assert workers and _proc_ppid(master) == guard, (master, workers, guard)
        others = _descendants(cl.proc.pid) - workers
        stop_process(cl.proc.pid)
        stop_process(guard)
        for p in (master, guard, cl.proc.pid):
            os.kill(p, signal.SIGKILL)
        cl.proc.wait(10)
        wait_until(lambda: not any(proc_alive(p) for p in others), 10,
                   "every process but nginx's workers to be gone")
        try:
            assert all(proc_alive(w) for w in workers), "no worker was left behind"
            assert not port_bindable(cl.nginx_port), "the workers do not hold nginx.port"
            cl._log.close()    # start() opens the controller log again
            cl.start(60)
        finally:
            alive = [w for w in workers if proc_alive(w)]
            for w in alive:
                os.kill(w, signal.SIGKILL)
        assert not alive, "the workers left behind still run after the start: %s" % alive
        _check_keys(cl, acked)
