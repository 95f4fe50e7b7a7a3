"""Many clients at once, good and bad requests mixed: every answer is right
and no child dies."""

import hashlib
import json
import threading

from harness import CRASH_RE, Workspace


def test_mixed_concurrent_load(server):
    mark = server.log_mark()
    blob = Workspace.blob_bytes()
    errors = []
    bad = [0]
    lock = threading.Lock()

    def client(n):
        try:
            for i in range(6):
                kind = (n + i) % 6
                if kind == 0:
                    r = server.get("/env/c%d/%d" % (n, i))
                    assert r.status == 200 and r.json()["PATH_INFO"] == "/c%d/%d" % (n, i)
                elif kind == 1:
                    r = server.get("/out/file-wrapper", timeout=30)
                    assert r.status == 200 and r.body == blob
                elif kind == 2:
                    r = server.get("/bad/raises")
                    assert r.status == 500
                    with lock:
                        bad[0] += 1
                elif kind == 3:
                    body = ("%d-%d;" % (n, i)).encode() * 5000
                    r = server.post("/input?readbig", body, timeout=30)
                    got = "".join(r.json()["chunks"]).encode("latin-1")
                    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
                elif kind == 4:
                    r = server.get("/flask/")
                    assert r.status == 200
                else:
                    r = server.post("/django/echo/", json.dumps({"n": n}).encode(),
                                    headers={"Content-Type": "application/json"})
                    assert r.status == 200 and r.json()["body"] == json.dumps({"n": n})
        except Exception as e:  # collected, reported below
            errors.append("client %d: %r" % (n, e))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not [t for t in threads if t.is_alive()], "clients still running after 120s"
    assert not errors, errors
    entries = server.wait_log_entries(mark, count=bad[0], timeout=5)
    assert len(entries) == bad[0], (len(entries), bad[0])
    assert not CRASH_RE.findall(server.log_since(mark))
    assert server.get("/bad/ok").status == 200
