"""Per-request leaks: many requests on one keep-alive connection (one child)
must not grow that child's memory by more than noise."""

import time

from harness import do_request


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def batch(conn, n, body):
    # (No bad-app requests here: Apache drops the connection after a 500, so
    # they cannot stay on one child.)
    for _ in range(n):
        r = do_request(conn, "POST", "/input?read", body=body,
                       headers={"X-Some-Header": "v" * 200})
        assert r.status == 200
        r = do_request(conn, "GET", "/out/write")
        assert r.status == 200
    return do_request(conn, "GET", "/grp/global").json()["pid"]


def test_no_per_request_leak(server):
    body = b"z" * 16384
    seen = []
    for _attempt in range(4):
        conn = server.connection()
        try:
            pid = batch(conn, 200, body)  # warm up caches and pools
            before = rss_kb(pid)
            t0 = time.time()
            pid_after = batch(conn, 1500, body)
        finally:
            conn.close()
        seen.append((pid, pid_after))
        if pid_after != pid:  # Apache closed the connection; http.client moved on
            continue
        grown = rss_kb(pid) - before
        # 1500 x (16 KiB body + 16 KiB response) leaked would be ~50 MB;
        # allow 8 MB of allocator noise.
        assert grown < 8 * 1024, "child %d grew %d KiB over 1500 requests (%.1fs)" % (
            pid, grown, time.time() - t0)
        return
    raise AssertionError("could not keep one connection on one child: %s" % seen)
