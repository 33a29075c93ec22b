#!/usr/bin/env python3
"""Assemble the kv image from this machine's files, for a Docker engine that
cannot pull debian:bookworm-slim (no registry here), and `docker import` it.

    python3 tests/docker/mkimage.py --build build/release --tag kvtest:latest

The layout is the Dockerfile's (keep the two in step):
  /usr/local/bin/       kv-store kv-queue kv-api kv-controller kvctl (stripped),
                        kv-nginx (nginx/kv-nginx.sh)
  /usr/local/share/kv/  nginx.conf.template, lab/cloudcart/
  /usr/sbin/nginx, /usr/bin/curl, and what the entrypoint and the health
  checks run: /bin/sh (dash), getent, sort, sleep, mv, and cat (DEMO.md
  reads the token with it)
  every shared library these need (ldd), the loader
  /etc/passwd, /etc/group (user kv, 10001), /etc/nsswitch.conf
  /data (owned by kv: named volumes start from it), /secret (the same,
  0700: the cluster token), /tmp, /home/kv
The image runs as kv, with KV_BIND=0.0.0.0 and KV_DATA_DIR=/data, like the
Dockerfile's. Python 3 standard library only.
"""

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

PROGS = ["kv-store", "kv-queue", "kv-api", "kv-controller", "kvctl"]
# Tools the containers run besides our binaries: path in the image -> the
# command to look up on this machine.
TOOLS = {
    "/bin/sh": "dash",
    "/usr/bin/getent": "getent",
    "/usr/bin/sort": "sort",
    "/bin/sleep": "sleep",
    "/bin/mv": "mv",
    "/bin/cat": "cat",
    "/usr/bin/curl": "curl",
    "/usr/sbin/nginx": "nginx",
}
KV_UID = 10001

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
          "kv:x:%d:%d:kv:/home/kv:/bin/sh\n" % (KV_UID, KV_UID))
GROUP = "root:x:0:\nnogroup:x:65534:\nkv:x:%d:\n" % KV_UID
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"

IMPORT_CHANGES = [
    "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "ENV KV_BIND=0.0.0.0",
    "ENV KV_DATA_DIR=/data",
    "ENV KV_HEALTH_URL=http://127.0.0.1:7000/health",
    "USER kv",
    "WORKDIR /home/kv",
    'CMD ["kv-controller", "--help"]',
]


def which(cmd):
    found = shutil.which(cmd, path=os.environ.get("PATH", "") +
                         ":/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise SystemExit("mkimage: %s not found on this machine (install it: "
                         "apt-get install %s)" % (cmd, {
                             "nginx": "nginx-light", "curl": "curl",
                             "dash": "dash"}.get(cmd, "coreutils")))
    return os.path.realpath(found)


def shared_libs(path):
    """The absolute paths ldd names for an ELF file, the loader included."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True,
                         check=False).stdout
    libs = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                libs.append(word)
    return libs


class Image:
    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w")
        self.seen = set()

    def _parents(self, path):
        parts = path.strip("/").split("/")[:-1]
        cur = ""
        for p in parts:
            cur += "/" + p
            self.dir(cur)

    def dir(self, path, mode=0o755, uid=0):
        if path in self.seen:
            return
        self._parents(path)
        self.seen.add(path)
        ti = tarfile.TarInfo(path.lstrip("/"))
        ti.type = tarfile.DIRTYPE
        ti.mode = mode
        ti.uid = ti.gid = uid
        self.tar.addfile(ti)

    def data(self, path, content, mode=0o644):
        if path in self.seen:
            return
        self._parents(path)
        self.seen.add(path)
        raw = content if isinstance(content, bytes) else content.encode()
        ti = tarfile.TarInfo(path.lstrip("/"))
        ti.size = len(raw)
        ti.mode = mode
        self.tar.addfile(ti, io.BytesIO(raw))

    def file(self, path, src, mode=None):
        with open(src, "rb") as f:
            raw = f.read()
        if mode is None:
            mode = os.stat(src).st_mode & 0o777
        self.data(path, raw, mode)

    def elf(self, path, src, strip=False):
        """An executable or library and, once each, its libraries."""
        if strip and shutil.which("strip"):
            with tempfile.NamedTemporaryFile() as tmp:
                subprocess.run(["strip", "-o", tmp.name, src], check=True)
                self.file(path, tmp.name, 0o755)
        else:
            self.file(path, os.path.realpath(src))
        for lib in shared_libs(src):
            # the path the loader looks for; the bytes of what it points to
            self.file(lib, os.path.realpath(lib))

    def close(self):
        self.tar.close()
        return self.buf.getvalue()


def assemble(build):
    img = Image()
    for d in ("/etc", "/usr/local/bin", "/usr/local/share/kv", "/var/lib",
              "/var/log"):
        img.dir(d)
    img.dir("/tmp", 0o1777)
    img.dir("/data", 0o755, KV_UID)
    img.dir("/secret", 0o700, KV_UID)
    img.dir("/home/kv", 0o755, KV_UID)
    img.data("/etc/passwd", PASSWD)
    img.data("/etc/group", GROUP)
    img.data("/etc/nsswitch.conf", NSSWITCH)
    for p in PROGS:
        src = os.path.join(build, "bin", p)
        if not os.access(src, os.X_OK):
            raise SystemExit("mkimage: %s missing: run make first" % src)
        img.elf("/usr/local/bin/" + p, src, strip=True)
    img.file("/usr/local/bin/kv-nginx", os.path.join(REPO, "nginx",
                                                     "kv-nginx.sh"), 0o755)
    img.file("/usr/local/share/kv/nginx.conf.template",
             os.path.join(REPO, "nginx", "nginx.conf.template"))
    lab = os.path.join(REPO, "lab", "cloudcart")
    for name in sorted(os.listdir(lab)):
        if os.path.isfile(os.path.join(lab, name)):
            img.file("/usr/local/share/kv/lab/cloudcart/" + name,
                     os.path.join(lab, name), 0o644)
    for path, cmd in TOOLS.items():
        img.elf(path, which(cmd))
    return img.close()


def docker_import(tar_bytes, tag, env=None):
    argv = ["docker", "import"]
    for c in IMPORT_CHANGES:
        argv += ["--change", c]
    argv += ["-", tag]
    r = subprocess.run(argv, input=tar_bytes, capture_output=True, env=env,
                       check=False, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("docker import failed: %s" %
                           r.stderr.decode(errors="replace").strip())
    return r.stdout.decode().strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--tag", default="kv:latest")
    ap.add_argument("--tar", help="write the root file system here instead "
                    "of importing it")
    a = ap.parse_args()
    data = assemble(a.build)
    if a.tar:
        with open(a.tar, "wb") as f:
            f.write(data)
        print("%s: %.1f MiB" % (a.tar, len(data) / 1048576))
        return 0
    print(docker_import(data, a.tag))
    print("%s: %.1f MiB" % (a.tag, len(data) / 1048576))
    return 0


if __name__ == "__main__":
    sys.exit(main())
