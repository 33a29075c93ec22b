#!/usr/bin/env python3
"""The Docker Swarm stack of the kv cluster, generated from docker-compose.yml.

    python3 scripts/swarm-stack.py | docker stack deploy -c - kv

One file describes the deployment: docker-compose.yml. `docker stack deploy`
refuses two things in it (the `condition:` form of depends_on, and
profiles) and needs a few more (placement for the volumes, a secret for the
token, DNS round robin), so this script writes the stack to stdout with
these changes and nothing else:

  - depends_on is dropped: Swarm has no start order, and every process
    retries until its peers answer. build, restart and container_name are
    dropped too (Swarm ignores them); restart becomes deploy.restart_policy.
  - A service of a compose profile (the third shard, profile `grow`) is in
    the stack with deploy.replicas ${KV_GROW:-0}: KV_GROW=1 in the
    environment of `docker stack deploy` starts it, and keeps it started at
    every later deploy (as COMPOSE_PROFILES=grow does for compose).
  - The cluster token is the Swarm secret kv_token (create it before the
    first deploy), mounted at /run/secrets/kv_token readable by the image's
    user only; the cluster-secret volume and KV_TOKEN go.
  - A service with a named volume (the stores, the queue, the controller) is
    placed on the node labelled kv.<service>=true: a named volume is local
    to its node, so the service must always come back to that node.
  - Services are found by DNS round robin (endpoint_mode dnsrr): the name
    resolves to the address of every task, as kv-nginx expects for api, and
    without the virtual IP, which needs iptables on every node. The one
    service with a published port (nginx) keeps the virtual IP, which the
    routing mesh needs, and the others reach it at tasks.nginx (KV_URL),
    which resolves to its tasks in either mode; the host address of its
    port is dropped (the routing mesh publishes on every node).
  - The network is attachable, so that `docker run --network kv_default`
    reaches the services (kvctl, a client).

Variables (${MAX_QUEUE_SIZE:-100000}, KV_IMAGE, ...) are left for `docker
stack deploy` to fill in from its environment. Needs PyYAML (Debian:
python3-yaml, which docker-compose depends on).
"""

import argparse
import os
import sys

try:
    import yaml
except ImportError:
    sys.exit("swarm-stack.py needs PyYAML: apt-get install python3-yaml "
             "(then run it with /usr/bin/python3)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "kv_token"
SECRET_VOLUME = "cluster-secret"
IMAGE_UID = "10001"  # user kv of the Dockerfile
RESTART = {"condition": "any", "delay": "2s"}


def split_port(spec):
    """"host:published:target" into its parts, a ${VAR:-default} (which may
    hold a colon) counting as one."""
    parts, cur, depth = [], "", 0
    for ch in spec:
        if ch == ":" and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    return parts + [cur]


def swarm_service(name, svc, published):
    """The stack's service of compose's svc; published: the services with a
    published port (reached by the others at tasks.<name>, not at their
    virtual IP)."""
    svc = dict(svc)
    for key in ("build", "restart", "container_name", "depends_on"):
        svc.pop(key, None)
    deploy = {"restart_policy": dict(RESTART), "endpoint_mode": "dnsrr"}
    profiles = svc.pop("profiles", None)
    if profiles:
        deploy["replicas"] = "${KV_%s:-0}" % profiles[0].upper()

    env = dict(svc.get("environment") or {})
    env.pop("KV_TOKEN", None)
    env["KV_TOKEN_FILE"] = "/run/secrets/" + SECRET
    for k, v in env.items():
        for other in published:
            if isinstance(v, str) and v.startswith("http://%s:" % other):
                env[k] = "http://tasks." + v[len("http://"):]
    svc["environment"] = env
    svc["secrets"] = [{"source": SECRET, "target": SECRET, "uid": IMAGE_UID,
                       "gid": IMAGE_UID, "mode": 0o400}]

    volumes = [v for v in svc.get("volumes", [])
               if v.split(":")[0] != SECRET_VOLUME]
    if volumes:
        svc["volumes"] = volumes
        deploy["placement"] = {
            "constraints": ["node.labels.kv.%s == true" % name]}
    else:
        svc.pop("volumes", None)

    if svc.get("ports"):
        svc["ports"] = [":".join(split_port(p)[-2:]) for p in svc["ports"]]
        deploy["endpoint_mode"] = "vip"
    svc["deploy"] = deploy
    return svc


def swarm_stack(compose):
    stack = {"version": compose.get("version", "3.8")}
    published = [n for n, s in compose["services"].items() if s.get("ports")]
    stack["services"] = {n: swarm_service(n, s, published)
                         for n, s in compose["services"].items()}
    stack["networks"] = {"default": {"driver": "overlay", "attachable": True}}
    stack["volumes"] = {n: v for n, v in compose.get("volumes", {}).items()
                        if n != SECRET_VOLUME}
    stack["secrets"] = {SECRET: {"external": True}}
    return stack


class Dumper(yaml.SafeDumper):
    """Block style, but a list of plain values (a command) on one line."""


def _represent_list(dumper, items):
    flow = all(isinstance(i, (str, int)) for i in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items,
                                     flow_style=flow)


Dumper.add_representer(list, _represent_list)


def labels(stack):
    """The node labels the stack's placement constraints ask for."""
    return ["kv.%s=true" % n for n, s in stack["services"].items()
            if "placement" in s["deploy"]]


def main():
    ap = argparse.ArgumentParser(
        description="Write the Docker Swarm stack of the kv cluster, made "
        "from docker-compose.yml, to stdout (docker stack deploy -c - kv).",
        epilog="Before the first deploy: label the nodes (docker node update "
        "--label-add kv.store-0-0=true NODE, one label per stateful "
        "service) and create the token: openssl rand -hex 32 | docker "
        "secret create kv_token -. README.md, 'Docker Swarm', has the "
        "whole walk.")
    ap.add_argument("--compose", default=os.path.join(REPO,
                                                      "docker-compose.yml"),
                    help="the compose file to read (default: the repo's)")
    ap.add_argument("--labels", action="store_true",
                    help="print the node labels the stack needs instead, "
                    "one per line (kv.<service>=true)")
    args = ap.parse_args()
    try:
        with open(args.compose) as f:
            compose = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        sys.exit("swarm-stack.py: cannot read %s: %s" % (args.compose, e))
    if not isinstance(compose, dict) or \
            not isinstance(compose.get("services"), dict):
        sys.exit("swarm-stack.py: %s is not a compose file (no services)"
                 % args.compose)
    stack = swarm_stack(compose)
    out = sys.stdout
    if args.labels:
        out.write("".join(lab + "\n" for lab in labels(stack)))
        return
    out.write("# The kv stack for `docker stack deploy`, generated by "
              "scripts/swarm-stack.py\n# from docker-compose.yml: change "
              "that file, not this output. (mode 256 = 0400)\n")
    yaml.dump(stack, out, Dumper=Dumper, sort_keys=False,
              default_flow_style=False, width=100)


if __name__ == "__main__":
    main()
