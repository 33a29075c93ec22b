"""scripts/swarm-stack.py, without an engine (make test-swarm deploys what it
writes): the stack keeps every service of docker-compose.yml with what
Swarm needs and nothing `docker stack deploy` refuses, --labels names
exactly the labels its constraints ask for, and a compose file it cannot
read is one clear error."""

import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(REPO, "scripts", "swarm-stack.py")


def stack_script(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args),
                          capture_output=True, text=True, timeout=60)


def test_stack_has_what_swarm_needs():
    p = stack_script()
    assert p.returncode == 0, p.stderr
    stack = yaml.safe_load(p.stdout)
    with open(os.path.join(REPO, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    assert list(stack["services"]) == list(compose["services"])
    stateful = []
    for name, svc in stack["services"].items():
        for refused in ("depends_on", "profiles", "build", "restart"):
            assert refused not in svc, (name, refused)
        env = svc["environment"]
        assert "KV_TOKEN" not in env and \
            env["KV_TOKEN_FILE"] == "/run/secrets/kv_token", (name, env)
        assert svc["secrets"] == [{"source": "kv_token", "target": "kv_token",
                                   "uid": "10001", "gid": "10001",
                                   "mode": 0o400}], name
        assert not any(v.startswith("cluster-secret")
                       for v in svc.get("volumes", [])), name
        dep = svc["deploy"]
        assert dep["restart_policy"]["condition"] == "any", name
        if svc.get("volumes"):
            stateful.append(name)
            assert dep["placement"]["constraints"] == [
                "node.labels.kv.%s == true" % name], name
        else:
            assert "placement" not in dep, name
        if name == "nginx":
            assert dep["endpoint_mode"] == "vip" and \
                svc["ports"] == ["${KV_HTTP_PORT:-8000}:8000"], svc
        else:
            assert dep["endpoint_mode"] == "dnsrr", name
            assert env["KV_URL"] == "http://tasks.nginx:8000", name
    assert sorted(stateful) == sorted(
        ["controller", "queue"] + ["store-%d-%d" % (s, r) for s in range(3)
                                   for r in range(2)])
    for grow in ("store-2-0", "store-2-1"):
        assert stack["services"][grow]["deploy"]["replicas"] == \
            "${KV_GROW:-0}"
    assert "replicas" not in stack["services"]["store-0-0"]["deploy"]
    assert stack["secrets"] == {"kv_token": {"external": True}}
    assert "cluster-secret" not in stack["volumes"] and \
        "store-0-0" in stack["volumes"]
    assert stack["networks"]["default"]["attachable"] is True

    p = stack_script("--labels")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["kv.%s=true" % n for n in stateful]


def test_unreadable_compose_file_is_one_error():
    with tempfile.TemporaryDirectory(prefix="kvtest-stack-") as tmp:
        missing = os.path.join(tmp, "nope.yml")
        p = stack_script("--compose", missing)
        assert p.returncode == 1 and p.stdout == "" and \
            p.stderr.startswith("swarm-stack.py: cannot read %s: " % missing), p
        bad = os.path.join(tmp, "bad.yml")
        with open(bad, "w") as f:
            f.write("services: [unclosed\n")
        p = stack_script("--compose", bad)
        assert p.returncode == 1 and p.stdout == "" and \
            "cannot read %s" % bad in p.stderr, p
        with open(bad, "w") as f:
            f.write("just: a mapping\n")
        p = stack_script("--compose", bad)
        assert p.returncode == 1 and p.stdout == "" and p.stderr == \
            "swarm-stack.py: %s is not a compose file (no services)\n" % bad, p
