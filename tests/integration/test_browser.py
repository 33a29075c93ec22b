"""The browser-test infrastructure itself (tests/browser, browser.py): Debian's
Chromium under puppeteer-core loads pages from a real HTTP server on loopback,
passes a page whose script runs cleanly and fails one whose script logs a
console error. No cluster: a `python3 -m http.server` on a temporary
directory is all it starts."""

import contextlib
import os
import subprocess
import sys
import tempfile

from browser import Skip, available, run_script
from cluster import pick_ports, request, wait_until

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>%s</title></head>
<body><p id="out">loading</p>
<script>
%s
document.getElementById("out").textContent = "ready";
document.body.dataset.ready = "1";
</script></body></html>
"""
READY = "document.body.dataset.ready === '1'"


@contextlib.contextmanager
def http_server(root):
    """http://127.0.0.1:PORT serving root, stopped on exit."""
    port, _, locks = pick_ports(block=1)
    log = open(os.path.join(root, "http.log"), "w")
    p = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                          "--directory", root], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = "http://127.0.0.1:%d" % port
        wait_until(lambda: p.poll() is None and request("GET", url + "/ok.html",
                                                        keepalive=False)[0] == 200,
                   10, "python3 -m http.server to answer on %s" % url)
        yield url
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        for lk in locks:
            lk.release()


def test_smoke_pages():
    why = available()
    if why:
        raise Skip(why)
    with tempfile.TemporaryDirectory(prefix="kvbrowser-") as root:
        for name, script in (("ok", ""), ("boom", 'console.error("boom");')):
            with open(os.path.join(root, name + ".html"), "w") as f:
                f.write(PAGE % (name, script))
        shot = os.path.join(root, "shots", "ok.png")
        with http_server(root) as url:
            out = run_script("smoke", {"url": url + "/ok.html", "ready": READY,
                                       "screenshot": shot}, timeout=60)
            assert out.strip().splitlines()[-1:] == ["ok"], "smoke.js printed %r, not ok" % out
            with open(shot, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % shot

            try:
                run_script("smoke", {"url": url + "/boom.html", "ready": READY}, timeout=60)
            except AssertionError as e:
                assert "console.error: boom" in str(e), \
                    "smoke.js failed on boom.html, but not for its console error:\n%s" % e
            else:
                raise AssertionError("smoke.js passed a page that logs console.error(\"boom\")")


test_smoke_pages.timeout = 150
