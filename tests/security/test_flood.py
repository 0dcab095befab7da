#!/usr/bin/python3
"""test_flood.py: weftd keeps answering while clients flood it with
maximum-size requests, over ipc and over tcp with a tenant's CURVE key.

 1. a CANCEL holding as many ids as a message can carry is refused at once
    (it used to look up every id: 13 s and a 13.6 MB reply for 524k ids);
 2. ids given twice are answered once; a CANCEL at the cap is answered;
 3. a LIST of a tenant with none of the newest jobs does a bounded scan;
 4. while three clients (one a tenant over tcp) send maximum-size CANCEL,
    LIST, SUBMIT and over-limit frames in a loop, an admin's LIST is
    answered within 100 ms (median of 20; each within 5 s) and `weft ls`
    succeeds;
 5. a frame over --max-message never reaches weftd: ZeroMQ drops it with its
    connection, which the daemon's STATUS counts ("disconnects").
Every loop is bounded in time; everything runs on loopback and ipc.
"""
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import weftlib  # noqa: E402  (skips the test where python3-zmq is missing)
from checks import ok, must  # noqa: E402
from weftlib import read_key  # noqa: E402
import zmq  # noqa: E402

weftlib.need_curve()
MAX = 1024 * 1024  # weftd's default --max-message
T = tempfile.mkdtemp(prefix="weft-test-flood-")
H = os.path.join(T, "home")


def run(*args, **kw):
    return subprocess.run(list(args), cwd=T, capture_output=True, text=True, **kw)


def dealer(endpoint, key=None, server=None):
    return weftlib.Client(endpoint, key, server, timeout=10.0)


def padded(prefix, suffix, size):
    """A JSON text of exactly size bytes: prefix + filler + suffix."""
    return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix


def ids_body(size):
    """{"ids":[1,2,3,...]} as close to size bytes as the ids come."""
    parts, n, i = [], len(b'{"ids":[]}'), 1
    while n + len(str(i)) + 1 < size:
        parts.append(str(i))
        n += len(str(i)) + 1
        i += 1
    return ('{"ids":[' + ",".join(parts) + "]}").encode(), i - 1


def main():
    os.makedirs(os.path.join(H, "clients"))
    must(run("weft", "keygen", "-o", H + "/server").returncode == 0, "weft keygen (server)")
    must(run("weft", "keygen", "--role", "tenant:acme", "-o", "acme").returncode == 0,
         "weft keygen (tenant)")
    shutil.copy(os.path.join(T, "acme.pub"), os.path.join(H, "clients"))
    E = "tcp://127.0.0.1:%d" % weftlib.free_port()
    r = run("weftd", "--home", H, "--endpoint", E, "--slots", "2")
    must(r.returncode == 0, "weftd on %s: %s" % (E, r.stderr.strip()))
    skey = read_key(H + "/server.pub")["public-key"]
    ipc = "ipc://%s/weftd.sock" % H
    admin = dealer(ipc)
    acme = dealer(E, os.path.join(T, "acme.key"), skey)
    must(admin.ask("LIST", {}) is not None, "weftd answers")

    # Jobs to look at, put straight into the store while weftd is stopped
    # (cancelled, so nothing runs): acme's one job, the oldest, under 30000
    # of another tenant's.
    weftlib.stop_weftd(H)
    db = sqlite3.connect(os.path.join(H, "weft.db"))
    db.execute("INSERT INTO submissions (id, name, spec, folder, owner, submitted, njobs) "
               "VALUES (1, 's', '', '/', 'admin', 0, 30001)")
    db.executemany("INSERT INTO jobs (submission, name, tenant, mode, pack_key, unit, params, "
                   "priority, max_attempts, ranks, state, submitted) "
                   "VALUES (1, ?, ?, 'lora', 'k', '', '{}', 0, 1, 1, 5, 0)",
                   [("acme", "acme")] + [("g%d" % i, "globex") for i in range(30000)])
    db.commit()
    db.close()
    r = run("weftd", "--home", H, "--endpoint", E, "--slots", "2")
    must(r.returncode == 0, "weftd restarts: %s" % r.stderr.strip())
    admin.close()
    acme.close()
    admin = dealer(ipc)
    acme = dealer(E, os.path.join(T, "acme.key"), skey)

    # 3. A tenant's LIST looks at a bounded number of jobs per request.
    pages, found, before, t0 = 0, [], None, time.monotonic()
    while pages < 10 and not found:
        body = {"limit": 1} if before is None else {"limit": 1, "before": before}
        a = acme.ask("LIST", body)
        if not a or a[0] != "REPLY":
            break
        pages += 1
        found = [j["name"] for j in a[1]["jobs"]]
        before = a[1].get("before")
        if before is None:
            break
    ok(found == ["acme"] and pages >= 3,
       "a tenant's LIST under 30000 other jobs pages through them (%d pages, %.2f s): %s"
       % (pages, time.monotonic() - t0, found))

    # 1. The biggest CANCEL a message holds: dropped unread (a CANCEL has at
    #    most 1000 ids, 64 KiB), counted; the same connection is answered next.
    body, nids = ids_body(MAX)
    t0 = time.monotonic()
    a = acme.ask("CANCEL", body, timeout=2)
    b = acme.ask("LIST", {"limit": 1}, timeout=10)
    took = time.monotonic() - t0
    st = admin.ask("STATUS", {})
    ok(a is None and b is not None and b[0] == "REPLY" and took < 4.0 and
       st[1]["rejected_by_reason"]["oversize"] == 1,
       "a CANCEL of %d ids (%d bytes) over tcp is dropped unread and counted (%s); the next "
       "request is answered: %.2f s in all" % (nids, len(body),
                                                st[1]["rejected_by_reason"]["oversize"], took))
    big = b'{"ids":[' + b",".join(b"%d" % i for i in range(1, 5001)) + b"]}"
    a = acme.ask("CANCEL", big)
    ok(a and a[0] == "ERROR" and a[1].get("error") == "limit",
       "a CANCEL of 5000 ids is refused in one line: %s" % (a and a[1].get("message")))

    # 2. Duplicates are answered once; the cap itself is answered.
    a = admin.ask("CANCEL", {"ids": [7] * 998 + [8, 7]})
    ok(a and a[0] == "REPLY" and [j["id"] for j in a[1]["jobs"]] == [7, 8],
       "ids given twice are answered once, in first-seen order: %s" % (a and str(a[1])[:100]))
    t0 = time.monotonic()
    a = admin.ask("CANCEL", {"ids": list(range(1, 1001))})
    ok(a and a[0] == "REPLY" and len(a[1]["jobs"]) == 1000,
       "a CANCEL of 1000 ids (the cap) is answered: %.3f s" % (time.monotonic() - t0))
    a = admin.ask("CANCEL", {"ids": list(range(1, 1002))})
    ok(a and a[0] == "ERROR" and a[1].get("error") == "limit" and "1000" in a[1]["message"],
       "1001 ids are refused in one line: %s" % (a and a[1].get("message")))
    a = admin.ask("CANCEL", {"ids": [1, "2"]})
    ok(a and a[0] == "ERROR" and a[1].get("error") == "field",
       "an id that is not an integer is refused: %s" % (a and a[1].get("message")))
    r = run("weft", "--home", H, "cancel", *[str(i) for i in range(1, 2501)])
    ok(r.stdout.count(": cancelled\n") == 2500 and r.returncode == 0,
       "weft cancel sends 2500 ids in batches weftd takes: %d answered, %s"
       % (r.stdout.count(": cancelled\n"), r.stderr.strip()))

    # 4. The flood.
    stop_flag = threading.Event()
    sent = {"n": 0, "oversize": 0}
    lock = threading.Lock()
    spec = padded(b'{"folder":"/tmp","file":"x.cfg","spec":"# ', b'"}', MAX)
    kinds = [("CANCEL", body), ("LIST", padded(b'{"pad":"', b'"}', MAX)),
             ("SUBMIT", spec),
             ("CANCEL", padded(b'{"ids":[' + b",".join(b"%d" % i for i in range(1, 1001)) +
                               b'],"pad":"', b'"}', MAX)),
             ("LIST", b'{"pad":"' + b"y" * (MAX + 10) + b'"}')]  # over the limit

    def flood(endpoint, key=None):
        s = dealer(endpoint, key, skey if key else None).s
        s.sndhwm = 4
        end = time.monotonic() + 30
        i = 0
        while not stop_flag.is_set() and time.monotonic() < end:
            cmd, raw = kinds[i % len(kinds)]
            i += 1
            try:
                s.send_multipart([b"WEFT1", cmd.encode(), raw], flags=zmq.NOBLOCK)
                with lock:
                    sent["n"] += 1
                    sent["oversize"] += len(raw) > MAX
            except zmq.Again:
                time.sleep(0.002)
            while s.poll(0):
                s.recv_multipart()
        s.close()

    threads = [threading.Thread(target=flood, args=(ipc,)),
               threading.Thread(target=flood, args=(ipc,)),
               threading.Thread(target=flood, args=(E, os.path.join(T, "acme.key")))]
    for t in threads:
        t.start()
    time.sleep(1.0)
    lat, lost = [], 0
    for _ in range(20):
        t0 = time.monotonic()
        a = admin.ask("LIST", {"limit": 5}, timeout=5)
        if a is None or a[0] != "REPLY":
            lost += 1
        lat.append(time.monotonic() - t0)
        time.sleep(0.1)
    cli = []
    for _ in range(3):
        t0 = time.monotonic()
        r = run("weft", "--home", H, "ls", timeout=60)
        cli.append((r.returncode, time.monotonic() - t0))
    stop_flag.set()
    for t in threads:
        t.join()
    med = statistics.median(lat)
    print("flood: %d requests sent (%d over the limit); LIST answered in median %.1f ms, "
          "max %.1f ms; weft ls: %s" % (sent["n"], sent["oversize"], 1000 * med,
                                        1000 * max(lat),
                                        ", ".join("%.0f ms" % (1000 * x[1]) for x in cli)))
    ok(sent["n"] >= 20, "the flood sent %d maximum-size requests" % sent["n"])
    ok(lost == 0 and med < 0.1,
       "while flooded, an admin's LIST is answered every time, in median %.1f ms (< 100; "
       "max %.1f ms)" % (1000 * med, 1000 * max(lat)))
    ok(all(c[0] == 0 and c[1] < 5 for c in cli), "weft ls answers while flooded: %s" % cli)

    # 5. Over-limit frames were dropped by ZeroMQ with their connection.
    st = admin.ask("STATUS", {})
    ok(st and st[0] == "REPLY" and st[1]["rejected_by_reason"]["oversize"] >= 1 and
       st[1]["rejected_by_reason"]["limit"] >= 1 and st[1]["disconnects"] >= 1,
       "requests over their command's limit are dropped and counted (oversize %s), large ones "
       "over a client's budget refused (limit %s), frames over --max-message dropped by ZeroMQ "
       "with their connection (disconnects %s)"
       % (st and st[1]["rejected_by_reason"]["oversize"],
          st and st[1]["rejected_by_reason"]["limit"], st and st[1].get("disconnects")))
    one = dealer(ipc)
    a = one.ask("LIST", b'{"pad":"' + b"z" * MAX + b'"}', timeout=2)
    ok(a is None, "an over-limit LIST gets no answer")
    one.close()


if __name__ == "__main__":
    weftlib.run_main(main, T, [H])
