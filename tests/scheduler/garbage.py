#!/usr/bin/python3
"""garbage.py ENDPOINT: hostile input on weftd's socket. Sends malformed
messages of every kind, then checks weftd still answers a valid request and
counted every rejection. Exits non-zero on any failure."""
import json
import random
import sys
import time

import zmq

ep = sys.argv[1]
ctx = zmq.Context()


def dealer():
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 10000)
    s.connect(ep)
    return s


def request(s, cmd, body):
    s.send_multipart([b"WEFT1", cmd, json.dumps(body).encode()])
    frames = s.recv_multipart()
    return frames[1].decode(), json.loads(frames[2])


def daemon_status():
    s = dealer()
    cmd, body = request(s, b"STATUS", {})
    s.close()
    assert cmd == "REPLY", (cmd, body)
    return body


before = daemon_status()["rejected"]
rng = random.Random(7)
bad = [
    [b"x"],                                          # one frame
    [b"WEFT1", b"LIST"],                             # two frames
    [b"WEFT1", b"LIST", b"{}", b"extra"],            # four frames
    [b"WEFT2", b"LIST", b"{}"],                      # wrong magic
    [b"WEFT1", b"FROBNICATE", b"{}"],                # unknown command
    [b"WEFT1", b"list", b"{}"],                      # case matters
    [b"WEFT1", b"LIST", b"{not json"],               # bad JSON
    [b"WEFT1", b"LIST", b"[1, 2]"],                  # not an object
    [b"WEFT1", b"LIST", b"\xff\xfe"],                # not UTF-8
    [b"WEFT1", b"ACK", b"{}"],                       # a coordinator's word
    [b"WEFT1", b"METRIC", b'{"run":"1","attempt":1,"seq":1}'],  # worker word, wrong identity
    [b"WEFT1", b"LIST", b"x" * (100 * 1024)],        # over LIST's limit: dropped, counted
    [b"WEFT1" * 1000, b"LIST", b"{}"],               # oversized magic frame
]
for _ in range(40):                                  # random frames
    bad.append([bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
                for _ in range(rng.randint(1, 5))])
s = dealer()
for frames in bad:
    s.send_multipart(frames)
# Wrong types and values in well-formed messages: answered with ERROR.
typed = [(b"STATUS", {"id": "seven"}), (b"STATUS", {"id": -1}), (b"LIST", {"limit": "all"}),
         (b"LIST", {"state": "sleeping"}), (b"CANCEL", {"ids": 3}), (b"WATCH", {"id": 99999}),
         (b"SUBMIT", {"spec": 12}), (b"SUBMIT", {"spec": "mode = ;", "folder": "/tmp"}),
         (b"RESULTS", {"submission": []})]
t = dealer()
for cmd, body in typed:
    got, reply = request(t, cmd, body)
    assert got == "ERROR" and reply.get("message"), (cmd, body, got, reply)
# A frame over the message limit never reaches weftd: ZeroMQ drops it with
# its connection, which the daemon counts; the sender gets no answer.
got, mid = request(t, b"STATUS", {})
o = ctx.socket(zmq.DEALER)
o.setsockopt(zmq.LINGER, 0)
o.setsockopt(zmq.RECONNECT_IVL, -1)  # one connection: its drop is the only one
o.setsockopt(zmq.RCVTIMEO, 1000)
o.connect(ep)
o.send_multipart([b"WEFT1", b"LIST", b"x" * (2 * 1024 * 1024)])
try:
    o.recv_multipart()
    assert False, "a frame over the limit was answered"
except zmq.Again:
    pass
for _ in range(50):
    got, late = request(t, b"STATUS", {})
    if late["disconnects"] > mid["disconnects"]:
        break
    time.sleep(0.1)
assert late["disconnects"] > mid["disconnects"], (mid, late)
assert late["rejected"] == mid["rejected"], (mid, late)  # it never reached weftd
o.close()
# The daemon still answers, and counted what it rejected.
for _ in range(50):
    after = daemon_status()
    if after["rejected"] - before >= len(bad):
        break
    time.sleep(0.1)
assert after["rejected"] - before >= len(bad), (before, after)
cmd, body = request(t, b"LIST", {"limit": 5})
assert cmd == "REPLY" and "jobs" in body, (cmd, body)
print("garbage: %d malformed messages rejected and counted (%s), %d bad requests answered "
      "with ERROR; weftd still answers" % (after["rejected"] - before,
                                           after["rejected_by_reason"], len(typed)))
