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
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

try:
    import zmq
except ImportError:
    print("SKIP: python3-zmq is missing (apt-get install -y python3-zmq)")
    sys.exit(77)

FAILED = 0


def ok(cond, what):
    global FAILED
    print(("PASS: " if cond else "FAIL: ") + what)
    if not cond:
        FAILED += 1


T = tempfile.mkdtemp(prefix="weft-test-protocol-")
H = os.path.join(T, "home")
CTX = zmq.Context()


def start():
    r = subprocess.run(["weftd", "--home", H, "--slots", "2"], capture_output=True, text=True)
    if r.returncode:
        print("FAIL: weftd would not start: " + r.stderr)
        sys.exit(1)


def stop():
    try:
        pid = int(open(os.path.join(H, "weftd.pid")).read())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
    except (OSError, ValueError):
        pass


def dealer():
    s = CTX.socket(zmq.DEALER)
    s.linger = 0
    s.connect("ipc://%s/weftd.sock" % H)
    return s


def send(s, cmd, body):
    s.send_multipart([b"WEFT1", cmd.encode(), json.dumps(body).encode()])


def recv(s, timeout=10.0):
    if not s.poll(int(timeout * 1000)):
        return None
    f = s.recv_multipart()
    return f[1].decode(), json.loads(f[2])


def ask(s, cmd, body):
    send(s, cmd, body)
    return recv(s)


def main():
    start()
    stop()
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
    c = dealer()

    # 1. req echoed
    for req in (7, "abc", {"n": [1, 2]}, None):
        a = ask(c, "LIST", {"limit": 1, "req": req})
        ok(a and a[0] == "REPLY" and "req" in a[1] and a[1]["req"] == req,
           "LIST's REPLY echoes req %r: %s" % (req, a and a[1].get("req", "(none)")))
    a = ask(c, "LIST", {"limit": 1})
    ok(a and a[0] == "REPLY" and "req" not in a[1], "no req, no echo")
    a = ask(c, "STATUS", {"id": 99, "req": "s-99"})
    ok(a and a[0] == "ERROR" and a[1].get("error") == "not_found" and a[1].get("req") == "s-99",
       "an ERROR (not_found) echoes req: %s" % (a and a[1]))
    a = ask(c, "LIST", {"limit": "all", "req": [3]})
    ok(a and a[0] == "ERROR" and a[1].get("error") == "field" and a[1].get("req") == [3],
       "an ERROR (field) echoes req: %s" % (a and a[1]))
    a = ask(c, "CANCEL", {"ids": [1, 1], "req": "c"})
    ok(a and a[0] == "REPLY" and a[1].get("req") == "c" and len(a[1]["jobs"]) == 1,
       "CANCEL's REPLY echoes req: %s" % (a and a[1]))

    # 2. a req too big to echo
    a = ask(c, "LIST", {"req": "x" * 300})
    ok(a and a[0] == "ERROR" and a[1].get("error") == "field" and "req" not in a[1] and
       "256" in a[1].get("message", ""), "a req over 256 bytes is refused, not echoed: %s"
       % (a and a[1].get("message")))

    # 3. WATCH: every event once, in order, each echoing req, then the end.
    send(c, "WATCH", {"id": 1, "from": 0, "req": {"w": 1}})
    steps, reqs, end, reply = [], set(), None, None
    deadline = time.time() + 60
    while time.time() < deadline and end is None:
        m = recv(c, 10)
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
    stop()
    return FAILED


if __name__ == "__main__":
    rc = 1
    try:
        rc = main()
    finally:
        stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(T, ignore_errors=True)
    print("all passed" if rc == 0 else "%d failed" % rc)
    sys.exit(1 if rc else 0)
