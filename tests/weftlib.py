"""weftlib.py: what the Python tests that drive a real weftd share: stopping
a weftd, the key files of weft keygen, a DEALER client of the protocol
(docs/PROTOCOL.md) and the run of a test's main with its clean-up (its PASS
and FAIL lines are those of checks.py).

A test in tests/<area>/ puts tests/ on its path and imports this module;
where python3-zmq is missing the import skips the test (exit 77):

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import weftlib
    from checks import ok, must
"""
import json
import os
import shutil
import signal
import socket
import sys
import time

import checks

try:
    import zmq
except ImportError:
    print("SKIP: python3-zmq is missing (apt-get install -y python3-zmq)")
    sys.exit(77)

CTX = zmq.Context()


def need_curve():
    """Skips the test (exit 77) where libzmq has no CURVE."""
    if not zmq.has("curve"):
        print("SKIP: this libzmq has no CURVE")
        sys.exit(77)


def free_port():
    """A tcp port on 127.0.0.1 that nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stop_weftd(home):
    """Stops the weftd of home (SIGTERM) and waits up to 5 s for it to go;
    nothing where none runs."""
    try:
        pid = int(open(os.path.join(home, "weftd.pid")).read())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
    except (OSError, ValueError):
        pass


def read_key(path):
    """A key file of weft keygen (name = value lines, # comments) as a dict."""
    k = {}
    for line in open(path):
        line = line.strip()
        if "=" in line and not line.startswith("#"):
            n, v = line.split("=", 1)
            k[n.strip()] = v.strip()
    return k


class Client:
    """A DEALER on weftd's endpoint. key: a key file of weft keygen (CURVE),
    its server key unless server gives one; rid: the routing id (a worker's
    "run:attempt"); timeout: how long ask and recv wait, in seconds."""

    def __init__(self, endpoint, key=None, server=None, rid=None, timeout=5.0):
        self.s = CTX.socket(zmq.DEALER)
        self.s.linger = 0
        self.timeout = timeout
        if rid:
            self.s.setsockopt(zmq.ROUTING_ID, rid.encode())
        if key:
            k = read_key(key)
            self.s.curve_secretkey = k["secret-key"].encode()
            self.s.curve_publickey = k["public-key"].encode()
            self.s.curve_serverkey = (server or k["server-key"]).encode()
        self.s.connect(endpoint)

    def ask(self, cmd, body, timeout=None):
        """Sends one command; returns (word, body) of the answer, or None."""
        self.send(cmd, body)
        return self.recv(timeout)

    def send(self, cmd, body):
        """body: a dict (sent as JSON) or the bytes of the frame as they are."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.s.send_multipart([b"WEFT1", cmd.encode(), raw])

    def recv(self, timeout=None):
        """(word, body) of the next message, or None after timeout seconds."""
        if not self.s.poll(int((self.timeout if timeout is None else timeout) * 1000)):
            return None
        f = self.s.recv_multipart()
        return f[1].decode(), json.loads(f[2])

    def close(self):
        self.s.close()


def run_main(main, tmp, homes, cleanup=None):
    """Runs main(), then (however it ends) stops the weftd of each of homes,
    calls cleanup and removes tmp (kept where KEEP is set); exits 1 when any
    check failed, else 0."""
    try:
        main()
    finally:
        for h in homes:
            stop_weftd(h)
        if cleanup:
            cleanup()
        if not os.environ.get("KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print("all passed" if checks.failed == 0 else "%d failed" % checks.failed)
    sys.exit(1 if checks.failed else 0)
