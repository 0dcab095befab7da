#!/usr/bin/python3
"""weft_client.py: a weft client in a page of Python, using only the
documented wire protocol (docs/PROTOCOL.md): submit a job spec to weftd and
watch its jobs until they end. Needs Debian's python3-zmq.

  weft_client.py --endpoint ipc:///root/.weft/weftd.sock submit JOB.cfg [--watch]
  weft_client.py --endpoint EP watch JOB_ID...
  weft_client.py --endpoint EP results JOB_ID

Exit status: 0 when every watched job succeeded, 1 otherwise."""
import argparse
import json
import os
import sys

import zmq


class Client:
    """One DEALER to weftd; each request is [WEFT1, COMMAND, JSON]."""

    def __init__(self, endpoint, timeout_ms=30000):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        self.sock.connect(endpoint)

    def send(self, command, body):
        self.sock.send_multipart([b"WEFT1", command.encode(), json.dumps(body).encode()])

    def recv(self):
        magic, command, body = self.sock.recv_multipart()
        if magic != b"WEFT1":
            raise RuntimeError("not a weft message")
        return command.decode(), json.loads(body)

    def request(self, command, body):
        self.send(command, body)
        reply, data = self.recv()
        if reply == "ERROR":
            raise RuntimeError(data.get("message", "weftd refused the request"))
        return data

    def submit(self, path):
        with open(path) as f:
            text = f.read()
        folder = os.path.dirname(os.path.abspath(path))
        return self.request("SUBMIT", {"spec": text, "folder": folder,
                                       "file": os.path.basename(path)})

    def watch(self, ids):
        """Streams EVENT messages of the jobs until each has ended; returns
        {job id: final state}."""
        for i in ids:
            self.send("WATCH", {"id": i, "from": 0})
        ended = {}
        while len(ended) < len(ids):
            command, data = self.recv()
            if command == "ERROR":
                raise RuntimeError(data.get("message"))
            if command != "EVENT":
                continue
            job = data["job"]
            if data.get("end"):
                ended[job] = data["state"]
                print("job %d: %s" % (job, data["state"]))
            elif data["kind"] == "train":
                d = data["data"]
                if d["step"] == d.get("steps") or d["step"] % 10 == 0:
                    print("job %d %s: step %d/%d loss %.4f" % (
                        job, d["tenant"], d["step"], d.get("steps", 0), d["loss"]))
            elif data["kind"] == "eval":
                d = data["data"]
                print("job %d %s: step %d val_loss %.4f" % (job, d["tenant"], d["step"],
                                                             d["val_loss"]))
        return ended


def main():
    ap = argparse.ArgumentParser(description="a weft client over the WEFT1 protocol")
    ap.add_argument("--endpoint", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("submit")
    s.add_argument("spec")
    s.add_argument("--watch", action="store_true")
    w = sub.add_parser("watch")
    w.add_argument("ids", type=int, nargs="+")
    r = sub.add_parser("results")
    r.add_argument("id", type=int)
    args = ap.parse_args()
    c = Client(args.endpoint)
    try:
        if args.cmd == "submit":
            reply = c.submit(args.spec)
            ids = [j["id"] for j in reply["jobs"]]
            print("submission %d: jobs %s" % (reply["submission"], " ".join(map(str, ids))))
            if not args.watch:
                return 0
        elif args.cmd == "watch":
            ids = args.ids
        else:
            for j in c.request("RESULTS", {"id": args.id})["jobs"]:
                print("%-6d %-20s %-10s best_val %s" % (j["id"], j["name"], j["state"],
                                                        j.get("best_val_loss")))
            return 0
        states = c.watch(ids)
        return 0 if all(s == "succeeded" for s in states.values()) else 1
    except (RuntimeError, zmq.error.Again) as e:
        msg = "weftd did not answer" if isinstance(e, zmq.error.Again) else str(e)
        print("weft_client.py: error: %s" % msg, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
