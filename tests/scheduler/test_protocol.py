#!/usr/bin/python3
"""test_protocol.py: parts of docs/PROTOCOL.md that a client sees, against
a real weftd over ipc:

 1. every REPLY and ERROR echoes the request's "req" (any JSON value), and a
    WATCH's EVENTs (its end included) echo the WATCH's;
 2. a "req" over 256 bytes is refused, and not echoed;
 3. a WATCH of a job with 1200 events gets every one, in order, once, then
    the end (weftd sends them in batches between rounds).
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import weftlib  # noqa: E402  (skips the test where python3-zmq is missing)
from checks import ok  # noqa: E402

T = tempfile.mkdtemp(prefix="weft-test-protocol-")
H = os.path.join(T, "home")


def start():
    r = subprocess.run(["weftd", "--home", H, "--slots", "2"], capture_output=True, text=True)
    if r.returncode:
        print("FAIL: weftd would not start: " + r.stderr)
        sys.exit(1)


def main():
    start()
    weftlib.stop_weftd(H)
    # One cancelled job with 1200 events, put straight into the store.
    db = sqlite3.connect(os.path.join(H, "weft.db"))
    db.execute("INSERT INTO submissions (id, name, spec, folder, owner, submitted, njobs) "
               "VALUES (1, 's', '', '/', 'admin', 0, 1)")
    db.execute("INSERT INTO jobs (id, submission, name, tenant, mode, pack_key, unit, params, "
               "priority, max_attempts, ranks, state, submitted) "
               "VALUES (1, 1, 'j', 'j', 'lora', 'k', '', '{}', 0, 1, 1, 5, 0)")
    db.executemany("INSERT INTO events (job, time, kind, detail) VALUES (1, 0, 'train', ?)",
                   [(json.dumps({"step": i}),) for i in range(1, 1201)])
    db.commit()
    db.close()
    start()
    c = weftlib.Client("ipc://%s/weftd.sock" % H, timeout=10.0)

    # 1. req echoed
    for req in (7, "abc", {"n": [1, 2]}, None):
        a = c.ask("LIST", {"limit": 1, "req": req})
        ok(a and a[0] == "REPLY" and "req" in a[1] and a[1]["req"] == req,
           "LIST's REPLY echoes req %r: %s" % (req, a and a[1].get("req", "(none)")))
    a = c.ask("LIST", {"limit": 1})
    ok(a and a[0] == "REPLY" and "req" not in a[1], "no req, no echo")
    a = c.ask("STATUS", {"id": 99, "req": "s-99"})
    ok(a and a[0] == "ERROR" and a[1].get("error") == "not_found" and a[1].get("req") == "s-99",
       "an ERROR (not_found) echoes req: %s" % (a and a[1]))
    a = c.ask("LIST", {"limit": "all", "req": [3]})
    ok(a and a[0] == "ERROR" and a[1].get("error") == "field" and a[1].get("req") == [3],
       "an ERROR (field) echoes req: %s" % (a and a[1]))
    a = c.ask("CANCEL", {"ids": [1, 1], "req": "c"})
    ok(a and a[0] == "REPLY" and a[1].get("req") == "c" and len(a[1]["jobs"]) == 1,
       "CANCEL's REPLY echoes req: %s" % (a and a[1]))

    # 2. a req too big to echo
    a = c.ask("LIST", {"req": "x" * 300})
    ok(a and a[0] == "ERROR" and a[1].get("error") == "field" and "req" not in a[1] and
       "256" in a[1].get("message", ""), "a req over 256 bytes is refused, not echoed: %s"
       % (a and a[1].get("message")))

    # 3. WATCH: every event once, in order, each echoing req, then the end.
    c.send("WATCH", {"id": 1, "from": 0, "req": {"w": 1}})
    steps, reqs, end, reply = [], set(), None, None
    deadline = time.time() + 60
    while time.time() < deadline and end is None:
        m = c.recv(10)
        if m is None:
            break
        word, body = m
        reqs.add(json.dumps(body.get("req")))
        if word == "REPLY":
            reply = body
        elif word == "EVENT" and body.get("end"):
            end = body
        elif word == "EVENT":
            steps.append(body["data"]["step"])
    ok(reply is not None and reply.get("watching") == 1, "WATCH is answered: %s" % reply)
    ok(steps == list(range(1, 1201)),
       "a WATCH of 1200 events gets each once, in order: %d events, first %s, last %s"
       % (len(steps), steps[:1], steps[-1:]))
    ok(end is not None and end.get("state") == "cancelled", "then the end: %s" % end)
    ok(reqs == {json.dumps({"w": 1})}, "every REPLY and EVENT of the WATCH echoes its req: %s"
       % sorted(reqs)[:3])
    c.close()


if __name__ == "__main__":
    weftlib.run_main(main, T, [H])
