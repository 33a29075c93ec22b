"""The api's per-client rate limit, through nginx (its own cluster: a small
budget of 20 requests per 2 s window per client)."""

import time
import uuid

from cluster import assert_json_error, quote_key, request, wait_until

LIMIT, WINDOW_MS = 20, 2000
CLUSTER_CONFIG = {"api": {"rate_limit": LIMIT, "rate_window_ms": WINDOW_MS}}


def burst(cluster, n, headers=None, source=None):
    """n quick requests through nginx; returns the list of responses."""
    path = "/counter/" + quote_key("rl-" + uuid.uuid4().hex[:8])
    out = []
    for i in range(n):
        h = dict(headers(i) if callable(headers) else (headers or {}))
        out.append(request("GET", cluster.nginx + path, headers=h, source=source))
    return out


def wait_budget_back(cluster, source=None):
    """Poll (one request per half window, so polling does not eat the budget)
    until the client is allowed again."""
    def allowed():
        st, _, _ = request("GET", cluster.nginx + "/counter/rl-probe", source=source)
        if st == 429:
            time.sleep(WINDOW_MS / 2000.0)
            return False
        assert st == 200, st
        return True
    wait_until(allowed, WINDOW_MS / 1000.0 * 3 + 5, "the rate-limit window to pass")
    # the probe used one request of the new window: wait out that too
    time.sleep(WINDOW_MS / 1000.0 + 0.1)


def check_denials(cluster, resps, what):
    n_api = cluster.api_count
    statuses = [r[0] for r in resps]
    assert set(statuses) <= {200, 429}, "%s: statuses %s" % (what, sorted(set(statuses)))
    allowed = statuses.count(200)
    # the first LIMIT are always allowed; with one limiter per api process a
    # client can get up to LIMIT per api before the denials start
    assert all(s == 200 for s in statuses[:LIMIT]), \
        "%s: denied within the first %d requests: %s" % (what, LIMIT, statuses[:LIMIT])
    assert 429 in statuses, "%s: no 429 in %d requests (%d allowed)" % (what, len(resps), allowed)
    assert allowed <= LIMIT * n_api, "%s: %d allowed, limit %d x %d api" % (
        what, allowed, LIMIT, n_api)
    return [r for r in resps if r[0] == 429]


def test_burst_gets_429_with_headers(cluster):
    wait_budget_back(cluster)
    resps = burst(cluster, LIMIT * cluster.api_count + 20)
    denied = check_denials(cluster, resps, "burst")
    for r in denied[:3]:
        st, hd, body = r
        assert_json_error(r, 429, what="rate-limited request")
        ra = hd.get("Retry-After")
        # the sliding window frees a slot once the previous window's share
        # decays: at most the rest of this window plus window/limit
        most = (WINDOW_MS + WINDOW_MS // LIMIT + 1 + 999) // 1000
        assert ra is not None and ra.strip().isdigit() and 1 <= int(ra) <= most, \
            "Retry-After %r (window %d ms)" % (ra, WINDOW_MS)
        assert hd.get("X-RateLimit-Limit") == str(LIMIT), \
            "X-RateLimit-Limit %r, expected %d" % (hd.get("X-RateLimit-Limit"), LIMIT)
        assert hd.get("X-RateLimit-Remaining") == "0", \
            "X-RateLimit-Remaining %r on a 429" % hd.get("X-RateLimit-Remaining")


def test_budget_comes_back_after_window(cluster):
    wait_budget_back(cluster)
    resps = burst(cluster, LIMIT)
    assert all(r[0] == 200 for r in resps), \
        "fresh window: statuses %s" % [r[0] for r in resps]


def test_spoofed_client_headers_do_not_escape(cluster):
    # nginx sets X-Real-IP from the peer address: a client's own X-Real-IP /
    # X-Forwarded-For must not give it a fresh budget
    wait_budget_back(cluster)
    resps = burst(cluster, LIMIT * cluster.api_count + 20,
                  headers=lambda i: {"X-Real-IP": "10.9.%d.%d" % (i // 250, i % 250 + 1),
                                     "X-Forwarded-For": "10.8.0.%d" % (i % 250 + 1)})
    check_denials(cluster, resps, "burst with spoofed X-Real-IP")


def test_other_client_has_own_budget(cluster):
    # exhaust 127.0.0.1, then 127.0.0.2 (another loopback source address,
    # so another client for nginx) is still allowed
    wait_budget_back(cluster)
    check_denials(cluster, burst(cluster, LIMIT * cluster.api_count + 20), "client 127.0.0.1")
    st, hd, body = request("GET", cluster.nginx + "/counter/rl-other", source="127.0.0.2")
    assert st == 200, "another client (127.0.0.2) was refused: %s %r" % (st, body[:200])
