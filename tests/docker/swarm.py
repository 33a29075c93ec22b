#!/usr/bin/env python3
"""make test-swarm: the cluster on a single-node Docker Swarm, end to end:
the commands of README.md "Docker Swarm" run as assertions.

    python3 tests/docker/swarm.py --build build/release [-k PATTERN] [--keep]

1. A Docker engine of its own, always (`swarm init` changes an engine, so
   never one that was already running): `dockerd --iptables=false
   --storage-driver=vfs` with its data in a temporary directory
   (tests/docker/dockertest.py; docker.io and docker-compose are installed
   when missing).
2. The image, assembled from this machine's files by mkimage.py and
   imported as kv:latest (the name the README's commands use).
3. README's commands, each checked to be in README.md word for word:
   `docker swarm init`, the node labels, the token secret, `docker stack
   deploy` of scripts/swarm-stack.py's stack.
4. Every request comes from a client container on the stack's overlay
   network (kv_default), with curl, to nginx at tasks.nginx:8000: this
   engine has no iptables, and both the routing mesh (the published port)
   and a service's virtual IP need them.
5. At the end, also on failure or Ctrl-C: `docker stack rm`, `docker swarm
   leave --force`, and the engine stops (its data root, with the volumes
   and the secret, is deleted).

Every wait polls with a deadline. One line per test, "PASS name (s)" or
"FAIL name: reason", and as the last line "N passed, M failed". Exit status
1 when anything failed. Python 3 standard library only (the stack script
needs PyYAML: the python3 that has it runs it).
"""

import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import dockertest  # noqa: E402
import mkimage  # noqa: E402
from dockertest import Engine, log, run, wait_until, wait_until_matches  # noqa: E402

IMAGE = "kv:latest"
STACK = "kv"
NGINX = "http://tasks.nginx:8000"
CLIENT = "kvswarm-client"
SERVICES = ["controller", "queue", "store-0-0", "store-0-1", "store-1-0",
            "store-1-1", "api", "nginx"]

# README.md "Docker Swarm", in the order the tests run them.
INIT = "docker swarm init --advertise-addr 127.0.0.1"
LABELS = ("NODE=$(docker info -f '{{.Swarm.NodeID}}')\n"
          "for label in $(python3 scripts/swarm-stack.py --labels); do\n"
          "    docker node update --label-add \"$label\" \"$NODE\"\n"
          "done")
SECRET = "openssl rand -hex 32 | docker secret create kv_token -"
DEPLOY = "python3 scripts/swarm-stack.py | docker stack deploy -c - kv"
SCALE_UP = "docker service scale kv_api=3"
SCALE_DOWN = "docker service scale kv_api=1"
CONTROLLER = "docker exec $(docker ps -q -f name=kv_controller) kvctl status"
REMOVE = "docker stack rm kv"
GROW_DEPLOY = "export KV_GROW=1\n" + DEPLOY
GROW_ADD = ("docker exec $(docker ps -q -f name=kv_controller) kvctl shard "
            "add --primary http://store-2-0:7120 --secondary "
            "http://store-2-1:7121")
LEAVE = "docker swarm leave --force"
README_COMMANDS = [INIT, LABELS, SECRET, DEPLOY, SCALE_UP, SCALE_DOWN,
                   CONTROLLER, GROW_DEPLOY, GROW_ADD, REMOVE, LEAVE]

# The client's load: one writer-reader per key load:K, each PUT ?sync=1
# then a GET of the value just written, until /tmp/stop.N exists. One line
# per answer: "PUT key value code api" or "GET key value body code api |
# served-by" (X-KV-Served-By: which store answered, and why if not the
# primary).
LOAD_SH = r"""
load() {
    i=0
    while [ ! -e /tmp/stop.$1 ]; do
        i=$((i + 1))
        r=$(curl -s -m 15 -o /dev/null -w '%{http_code} %header{x-kv-api}' \
            -X PUT --data-binary "v$i" "$2/kv/load:$3?sync=1")
        echo "PUT $3 v$i $r"
        r=$(curl -s -m 15 -w ' %{http_code} %header{x-kv-api} | %header{x-kv-served-by}' \
            "$2/kv/load:$3")
        echo "GET $3 v$i $r"
    done
}
for k in $3; do load "$1" "$2" "$k" & done
wait
"""


class Swarm:
    """The engine in swarm mode, the stack on it and the client container.
    sh() runs a README command line as a user types it."""

    def __init__(self, engine, py):
        self.engine = engine
        self.py_dir = py  # a directory whose python3 has PyYAML, or None
        self.acked = {}   # key -> the value its last acknowledged write set
        self.loads = 0
        self.settings = {}  # what the README's user has exported by now

    def env(self):
        e = dict(self.engine.env, KV_IMAGE=IMAGE, **self.settings)
        if self.py_dir:
            e["PATH"] = self.py_dir + ":" + e.get("PATH", "")
        return e

    def sh(self, script, timeout=120, check=True):
        r = subprocess.run(["bash", "-o", "pipefail", "-c", script],
                           capture_output=True, env=self.env(),
                           timeout=timeout, cwd=REPO, check=False)
        out = r.stdout.decode(errors="replace")
        err = r.stderr.decode(errors="replace")
        if check and r.returncode:
            raise AssertionError("%s exited %d:\n%s%s" % (
                script, r.returncode, out[-2000:], err[-2000:]))
        return out

    def docker(self, *args, timeout=60, check=True):
        return run(["docker"] + list(args), timeout, env=self.engine.env,
                   check=check)[1]

    def containers(self, service):
        """IDs of the running containers of kv_<service>."""
        return self.docker("ps", "-q", "--filter",
                           "label=com.docker.swarm.service.name=%s_%s"
                           % (STACK, service)).split()

    def healthy(self, service):
        ids = self.containers(service)
        return len(ids) == 1 and self.docker(
            "inspect", "-f", "{{.State.Health.Status}}", ids[0],
            check=False).strip() == "healthy" and ids[0]

    def wait_healthy(self, services, timeout=120):
        for s in services:
            wait_until(lambda s=s: self.healthy(s), timeout,
                       "kv_%s to run one healthy task" % s, 0.5)

    def wait_restarted(self, service, old, timeout=90):
        """The ID of kv_<service>'s healthy container once it is not old
        (Swarm has started a new task)."""
        def restarted():
            cid = self.healthy(service)
            return cid != old and cid
        return wait_until(restarted, timeout, "Swarm to start kv_%s again"
                          % service, 0.5)

    def token(self):
        """The cluster token, as the services read it (the secret)."""
        return self.docker("exec", self.containers("store-0-1")[0], "cat",
                           "/run/secrets/kv_token").strip()

    def client_start(self):
        self.docker("run", "-d", "--name", CLIENT, "--network",
                    "%s_default" % STACK, IMAGE, "sleep", "3600")

    def client_stop(self):
        self.docker("rm", "-f", CLIENT, check=False)

    def curl(self, *args, timeout=30):
        """curl in the client; its stdout."""
        return self.docker("exec", CLIENT, "curl", "-s", "-m", "10", *args,
                           timeout=timeout)

    def http(self, method, path, body=None):
        """(status, body) of one request to nginx."""
        args = ["-X", method, "-w", "\n%{http_code}", NGINX + path]
        if body is not None:
            args[2:2] = ["--data-binary", body]
        out = self.curl(*args)
        body, _, code = out.rpartition("\n")
        return int(code), body

    def many(self, paths):
        """[(status, body)] of a GET of each path, in one curl (keep-alive);
        the bodies must be one line each."""
        out = self.docker("exec", CLIENT, "curl", "-s", "-m", "10", "-w",
                          "\\n%{http_code}\\n",
                          *[NGINX + p for p in paths], timeout=120)
        got = out.split("\n")
        return [(int(got[2 * i + 1]), got[2 * i]) for i in range(len(paths))]

    def apis_seen(self, n=30):
        """The api replicas (X-KV-Api) that answered n requests."""
        out = self.docker("exec", CLIENT, "sh", "-c",
                          "i=0; while [ $i -lt %d ]; do curl -s -m 5 -o "
                          "/dev/null -w '%%header{x-kv-api}\\n' %s/health; "
                          "i=$((i + 1)); done" % (n, NGINX), timeout=120)
        return set(out.split())

    def load(self, keys):
        """A Load of the client's LOAD_SH on these keys (a with block)."""
        self.loads += 1
        return Load(self, self.loads, keys)

    def control(self, path):
        """GET the controller's path, from its own container."""
        return json.loads(self.docker(
            "exec", self.containers("controller")[0], "curl", "-s", "-m", "5",
            "http://127.0.0.1:7000" + path))


class Load:
    """LOAD_SH in the client while the with block runs. check() then looks
    at every answer (each PUT 2xx, each GET 200 with the value just
    written), counts them by api replica, and records in swarm.acked the
    last value written to each key."""

    def __init__(self, swarm, n, keys):
        self.swarm, self.n, self.keys = swarm, n, keys
        self.lines = []
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["docker", "exec", CLIENT, "sh", "-c", LOAD_SH, "sh",
             str(self.n), NGINX, " ".join(self.keys)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=self.swarm.engine.env)
        return self

    def __exit__(self, *exc):
        self.swarm.docker("exec", CLIENT, "sh", "-c", ": > /tmp/stop.%d"
                          % self.n, check=False)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines = out.decode(errors="replace").splitlines()

    def check(self):
        """(answers, {api: count}); AssertionError naming the failures."""
        bad, apis, answers = [], {}, 0
        for ln in self.lines:
            f = ln.split(" | ")[0].split()
            ok = len(f) == 5 and f[0] == "PUT" and f[3].startswith("2") or \
                len(f) == 6 and f[0] == "GET" and f[2] == f[3] and \
                f[4] == "200"
            if not ok:
                bad.append(ln)
                continue
            answers += 1
            apis[f[-1]] = apis.get(f[-1], 0) + 1
            if f[0] == "PUT":
                self.swarm.acked["load:" + f[1]] = f[2]
        assert answers and not bad, "%d answers, %d failed: %s" % (
            answers, len(bad), bad[:5])
        return answers, apis


# ----------------------------------------------------------------- tests --

def test_deploy(sw):
    """README: swarm init, node labels, the token secret, stack deploy;
    every service runs one healthy task."""
    readme = open(os.path.join(REPO, "README.md")).read()
    missing = [c for c in README_COMMANDS if c not in readme]
    assert not missing, "not in README.md: %r" % missing
    sw.sh(INIT)
    sw.sh(LABELS)
    sw.sh(SECRET)
    out = sw.sh(DEPLOY)
    log("deploy: " + " ".join(out.split()[-4:]))
    sw.wait_healthy(SERVICES)
    # the grow shard is in the stack, not started
    reps = dict(ln.split() for ln in sw.docker(
        "service", "ls", "--format", "{{.Name}} {{.Replicas}}").splitlines())
    assert reps["kv_store-2-0"] == "0/0" and reps["kv_api"] == "1/1", reps
    sw.client_start()
    wait_until(lambda: sw.http("GET", "/health")[0] == 200, 60,
               "nginx /health from the overlay network")
    out = sw.sh(CONTROLLER)
    log("deploy: kvctl status:\n" + out)
    assert re.search(r"store-0-0\s+primary\s+external\s+-\s+7100\s+yes", out) \
        and re.search(r"store-1-1\s+secondary\s+external\s+-\s+7111\s+yes",
                      out) and "epoch 1, ready" in out, out


def test_crud_through_nginx(sw):
    """PUT, GET, DELETE through nginx, from a task on the overlay."""
    assert sw.http("PUT", "/kv/cart:42?sync=1", "2 apples")[0] == 200
    assert sw.http("GET", "/kv/cart:42") == (200, "2 apples")
    assert sw.http("PUT", "/kv/gone?sync=1", "x")[0] == 200
    st, body = sw.http("DELETE", "/kv/gone?sync=1")
    assert st == 200 and json.loads(body)["status"] == "applied", (st, body)
    # a tombstone reads "deleted" until the primary collects it (within a
    # second once its secondary has it: docs/PROTOCOL.md), then "not_found"
    st, body = sw.http("GET", "/kv/gone")
    assert st == 404 and json.loads(body)["error"] in ("deleted", "not_found"), \
        sw.curl("-i", NGINX + "/kv/gone")
    st, body = sw.http("PUT", "/kv/async", "queued")
    assert st == 202 and json.loads(body)["status"] == "queued", body
    wait_until(lambda: sw.http("GET", "/kv/async") == (200, "queued"), 10,
               "the queued write to be applied")
    sw.acked.update({"cart:42": "2 apples", "async": "queued"})


def test_token_is_a_swarm_secret(sw):
    """Every service reads the token from the secret kv_token, no
    environment holds it, and an internal route refuses a request without
    it."""
    token = sw.token()
    assert re.fullmatch(r"[0-9a-f]{64}", token), token
    for s in SERVICES:
        env = sw.docker("inspect", "-f", "{{json .Config.Env}}",
                        sw.containers(s)[0])
        assert token not in env and "KV_TOKEN=" not in env, (s, env)
    url = "http://store-0-1:7101/internal/kv/cart:42"
    assert sw.curl("-o", "/dev/null", "-w", "%{http_code}", url) == "401"
    # Once in CI this read got an empty reply (curl exit 52) from the
    # store, not reproduced: it is logged, and read again until a deadline.
    tries = []

    def read():
        tries.append(1)
        return sw.curl("--oauth2-bearer", token, url) == "2 apples"
    wait_until(read, 10, "the store's answer with the token")
    if len(tries) > 1:
        log("token: the read with the token took %d tries" % len(tries))


def test_scale_api_to_3_and_back(sw):
    """docker service scale kv_api=3: every replica serves within seconds;
    back to 1: no request fails."""
    with sw.load(["0", "1"]) as load:
        t0 = time.monotonic()
        sw.sh(SCALE_UP, timeout=180)

        def three():
            seen = sw.apis_seen()
            return len(seen) == 3 and seen
        seen = wait_until(three, 60, "three api replicas to answer")
        log("scale: 3 replicas answer %.1f s after the scale command: %s"
            % (time.monotonic() - t0, sorted(seen)))
        sw.sh(SCALE_DOWN, timeout=180)
        wait_until(lambda: len(sw.containers("api")) == 1, 60,
                   "kv_api back to one task")
        time.sleep(2)  # requests go on after the scale-down
    answers, apis = load.check()
    log("scale: %d answers, all 2xx, by replica %s" % (answers, apis))
    assert len(apis) == 3, apis
    assert len(sw.apis_seen()) == 1


def test_kill_primary_fails_over(sw):
    """docker kill the task of shard 0's primary: reads and writes go on,
    Swarm starts the task again and it rejoins as a secondary."""
    ring = json.loads(sw.curl(NGINX + "/ring?key=cart:42"))
    victim = ring["primary"].split("//")[1].split(":")[0]
    other = ring["secondaries"][0]
    killed = sw.containers(victim)[0]
    with sw.load(["0", "1", "2"]) as load:
        time.sleep(1)
        sw.docker("kill", killed)
        t0 = time.monotonic()
        wait_until(lambda: json.loads(sw.curl(NGINX + "/ring?key=cart:42"))
                   ["primary"] == other, 30, "%s promoted" % other)
        log("failover: %s primary %.1f s after the kill"
            % (other, time.monotonic() - t0))
        assert sw.http("PUT", "/kv/cart:42?sync=1", "3 apples")[0] == 200
        assert sw.http("GET", "/kv/cart:42") == (200, "3 apples")
        sw.acked["cart:42"] = "3 apples"

        back = sw.wait_restarted(victim, killed)
        log("failover: kv_%s runs again (task %s) %.1f s after the kill"
            % (victim, back[:12], time.monotonic() - t0))
        time.sleep(1)
    answers, apis = load.check()
    log("failover: %d answers, all 2xx" % answers)
    port = int(ring["primary"].rsplit(":", 1)[1])

    def rejoined():
        h = json.loads(sw.docker("exec", back, "curl", "-s", "-m", "5",
                                 "http://127.0.0.1:%d/health" % port))
        return h["role"] == "secondary" and h["state"] == "secondary" and \
            h["epoch"] == ring["epoch"] + 1 and h
    wait_until(rejoined, 60, "%s back as a secondary" % victim)
    token = sw.token()
    wait_until(lambda: sw.curl("--oauth2-bearer", token, "http://%s:%d/"
                               "internal/kv/cart:42" % (victim, port)) ==
               "3 apples", 30, "%s to hold the write of the outage" % victim)
    # The controller's health probes see the new task within a round or two.
    wait_until_matches(lambda: sw.sh(CONTROLLER),
                       [r"%s\s+secondary\s+external\s+-\s+%d\s+yes" % (victim, port)],
                       30, "kvctl status: %s a healthy secondary" % victim)


def test_kill_controller_keeps_its_state(sw):
    """docker kill the controller's task: reads and writes go on without
    it, Swarm starts it again with its state (its volume), and nginx
    follows it to its new address (the dashboard answers again)."""
    auth = "Authorization: Bearer " + sw.token()

    def dashboard():
        return sw.curl("-o", "/dev/null", "-w", "%{http_code}", "-H", auth,
                       NGINX + "/ui/")
    assert dashboard() == "200"
    before = sw.control("/topology")
    killed = sw.containers("controller")[0]
    with sw.load(["0", "1"]) as load:
        time.sleep(1)
        sw.docker("kill", killed)
        t0 = time.monotonic()
        sw.wait_restarted("controller", killed)
        wait_until(lambda: dashboard() == "200", 30,
                   "the dashboard through nginx")
        log("controller: back, and the dashboard through nginx, %.1f s "
            "after the kill" % (time.monotonic() - t0))
    answers, _ = load.check()
    log("controller: %d answers while it was away, all 2xx" % answers)
    after = sw.control("/topology")
    assert after["epoch"] == before["epoch"] and after["shards"] == \
        before["shards"], (before, after)


def test_grow_onto_a_third_shard(sw):
    """README: start the grow shard's services and kvctl shard add: it
    takes its share of the keys while reads and writes go on."""
    codes = sw.docker("exec", CLIENT, "sh", "-c",
                      "i=0; while [ $i -lt 200 ]; do i=$((i + 1)); curl -s -m "
                      "10 -o /dev/null -w '%%{http_code}\\n' -X PUT "
                      "--data-binary v$i \"%s/kv/grow:$i?sync=1\"; done"
                      % NGINX, timeout=180).split()
    assert codes == ["200"] * 200, codes
    sw.acked.update({"grow:%d" % i: "v%d" % i for i in range(1, 201)})
    sw.sh(GROW_DEPLOY, timeout=180)
    sw.settings["KV_GROW"] = "1"
    sw.wait_healthy(["store-2-0", "store-2-1"])
    with sw.load(["0", "1"]) as load:
        out = sw.sh(GROW_ADD + " 2>&1", timeout=180)
    log("grow: " + out.strip().replace("\n", " | "))
    assert re.search(r"^migration \d+ \(add shard 2\): done", out, re.M), out
    answers, _ = load.check()
    log("grow: %d answers during the migration, all 2xx" % answers)
    topo = sw.control("/topology")
    assert [s["id"] for s in topo["shards"]] == [0, 1, 2], topo
    shards = {}
    for _, body in sw.many(["/ring?key=" + k for k in sw.acked]):
        shard = json.loads(body)["shard"]
        shards[shard] = shards.get(shard, 0) + 1
    log("grow: the test's keys by shard: %s" % shards)
    assert shards.get(2, 0) > 0, shards
    check_every_key(sw)


def check_every_key(sw):
    """Every key the test wrote reads back the value of its last
    acknowledged write."""
    keys = sorted(sw.acked)
    got = sw.many(["/kv/" + k for k in keys])
    wrong = [(k, g) for k, g in zip(keys, got) if g != (200, sw.acked[k])]
    assert not wrong, "%d of %d keys wrong: %s" % (len(wrong), len(keys),
                                                 wrong[:5])
    log("%d keys read back the value of their last acknowledged write"
        % len(keys))


def test_stack_rm_and_deploy_keeps_data(sw):
    """docker stack rm, then deploy again: the volumes keep every write
    and the controller its topology."""
    before = sw.control("/topology")
    sw.client_stop()
    sw.sh(REMOVE)
    wait_until(lambda: not sw.docker("ps", "-q", "--filter",
                                     "label=com.docker.stack.namespace=kv")
               .strip() and "kv_default" not in
               sw.docker("network", "ls", "--format", "{{.Name}}"), 90,
               "the stack's containers and network to be gone")
    vols = sw.docker("volume", "ls", "--format", "{{.Name}}").split()
    assert "kv_store-0-0" in vols and "kv_queue-journal" in vols, vols
    sw.sh(DEPLOY)
    sw.wait_healthy(SERVICES + ["store-2-0", "store-2-1"])
    sw.client_start()
    wait_until(lambda: sw.http("GET", "/health")[0] == 200, 60,
               "nginx /health after the redeploy")
    after = sw.control("/topology")
    assert after["epoch"] == before["epoch"] and \
        [s["primary"] for s in after["shards"]] == \
        [s["primary"] for s in before["shards"]], (before, after)
    check_every_key(sw)


TESTS = [test_deploy, test_crud_through_nginx, test_token_is_a_swarm_secret,
         test_scale_api_to_3_and_back, test_kill_primary_fails_over,
         test_kill_controller_keeps_its_state, test_grow_onto_a_third_shard, test_stack_rm_and_deploy_keeps_data]


# ------------------------------------------------------------------ main --

def no_other_swarm(engine):
    """Another engine's swarm whose namespaces are still mounted (a dockerd
    stopped without leaving it) holds the overlay's VXLAN ids on this
    host: ours would fail with "error creating vxlan interface: file
    exists". Say so at once rather than after the deploy's timeout."""
    with open("/proc/self/mounts") as f:
        others = [ln.split()[1] for ln in f
                  if "/netns/ingress_sbox" in ln.split()[1] and
                  not ln.split()[1].startswith(engine.root + "/")]
    if others:
        raise RuntimeError(
            "another Docker engine's swarm is still mounted here (%s): its "
            "overlay networks keep the VXLAN ids ours need. Leave that "
            "swarm (docker swarm leave --force) or umount its namespaces"
            % ", ".join(others))


def yaml_python(engine):
    """A directory to put first on PATH so that the README's `python3
    scripts/swarm-stack.py` finds PyYAML, or None when the python3 on PATH
    has it: Debian's /usr/bin/python3, whose python3-yaml docker-compose
    depends on (installed here if missing)."""
    def has_yaml(py):
        return subprocess.run([py, "-c", "import yaml"], capture_output=True,
                              timeout=30).returncode == 0
    if has_yaml("python3"):
        return None
    if not has_yaml("/usr/bin/python3"):
        run(["apt-get", "install", "-y", "-qq", "python3-yaml"], 600)
    d = os.path.join(engine.root, "py")
    os.makedirs(d, exist_ok=True)
    os.symlink("/usr/bin/python3", os.path.join(d, "python3"))
    return d


def main():
    a = dockertest.arguments(__doc__, "deploys the stack", "the swarm and its engine")
    build = a.build
    passed = failed = 0
    engine = Engine(reuse=False)
    sw = None
    dockertest.interrupt_on_signals()
    try:
        try:
            engine.start()
            no_other_swarm(engine)
            data = mkimage.assemble(build)
            mkimage.docker_import(data, IMAGE, env=engine.env)
            log("image %s: %.1f MiB" % (IMAGE, len(data) / 1048576))
            sw = Swarm(engine, yaml_python(engine))
        except (Exception, SystemExit) as e:  # noqa: BLE001 -- a failed setup
            failed += 1
            dockertest.print_failure("setup", e, lines=12)
        if sw:
            def after_failure(i):
                if i == 0:
                    out = sw.docker("service", "ls", check=False)
                    out += sw.docker("service", "ps", "--no-trunc", "--format",
                                     "{{.Name}} {{.CurrentState}} {{.Error}}",
                                     "kv_nginx", "kv_api", check=False)
                    for s in SERVICES:
                        out += sw.docker("service", "logs", "--tail", "15",
                                         "%s_%s" % (STACK, s), check=False)
                    print("\n".join("    " + ln for ln in
                                    out.splitlines()[-150:]), flush=True)
            p, f = dockertest.run_tests(TESTS, lambda t: t(sw), a.pattern,
                                        after_failure)
            passed, failed = passed + p, failed + f
    except KeyboardInterrupt as e:
        failed += 1
        print("FAIL interrupted: %s" % e, flush=True)
    finally:
        if sw and not a.keep:
            sw.client_stop()
            sw.sh(REMOVE, check=False)
            sw.sh(LEAVE, check=False)
            log("stack removed, swarm left")
        if not a.keep:
            engine.stop()
    log("done")
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
