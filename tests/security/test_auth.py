#!/usr/bin/python3
"""test_auth.py: weftd's tcp endpoint with CURVE and ZAP, roles and limits,
with real processes (weft keygen, weftd, mpirun, weft-worker) and real
ZeroMQ clients (python3-zmq with CURVE):

 1. keygen: modes 0600/0644, roles, bad roles refused;
 2. tcp without keys refuses to start; --insecure-tcp warns;
 3. an unknown key and a plain client over tcp are refused; nothing stored;
 4. a tenant key cannot list, show, watch, cancel or fetch results of
    another tenant's job (each command), nor submit for another tenant,
    nor a full job; path escapes in specs are refused;
 5. a tenant's LoRA job runs over tcp (workers with their run's key);
 6. a worker key of run A cannot post for run B, nor send client commands;
 7. every limit: message size, spec size, tenants, trials, WATCH per client.
"""
import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import weftlib  # noqa: E402  (skips the test where python3-zmq is missing)
from checks import ok, must  # noqa: E402
from weftlib import Client, free_port, read_key  # noqa: E402

weftlib.need_curve()
T = tempfile.mkdtemp(prefix="weft-test-auth-")
HOMES = []


def run(*args, **kw):
    return subprocess.run(list(args), cwd=T, capture_output=True, text=True, **kw)


def start(home, *opts):
    HOMES.append(home)
    return run("weftd", "--home", home, "--slots", "2", *opts)


def is_error(ans, kind=None):
    return ans is not None and ans[0] == "ERROR" and (kind is None or ans[1].get("error") == kind)


def lora_spec(name, tenants, steps=20, output=None, extra=""):
    out = 'output = "%s";' % output if output else ""
    ts = ", ".join('{ name = "%s"; data = "%s"; }' % t for t in tenants)
    return ('name = "%s"; mode = "lora"; model = "%s/base.h5"; %s\n'
            'train = { steps = %d; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 10;\n'
            '          checkpoint_every = 10; eval_windows = 2; };\n'
            'lora = { r = 4; alpha = 8.0; targets = ["attn.c_attn"]; };\n'
            'resources = { ranks = 2; threads = 1; };\n'
            'tenants = ( %s );\n%s' % (name, T, out, steps, ts, extra))


def submit(c, text, folder=T):
    return c.ask("SUBMIT", {"spec": text, "folder": folder, "file": "job.cfg"})


def wait_state(c, job, states, timeout=240):
    end = time.time() + timeout
    while time.time() < end:
        a = c.ask("STATUS", {"id": job})
        if a and a[0] == "REPLY" and a[1]["state"] in states:
            return a[1]["state"]
        time.sleep(0.5)
    return None


def main():
    os.chdir(T)
    H = os.path.join(T, "home")
    os.makedirs(os.path.join(H, "clients"))

    # 1. keygen
    r = run("weft", "keygen", "-o", H + "/server")
    must(r.returncode == 0, "weft keygen makes weftd's key pair: " + r.stderr.strip())
    for name, role in (("admin", "admin"), ("acme", "tenant:acme"), ("globex", "tenant:globex"),
                       ("stranger", "tenant:stranger")):
        r = run("weft", "keygen", "--role", role, "-o", name)
        must(r.returncode == 0, "keygen --role %s: %s" % (role, r.stderr.strip()))
        if name != "stranger":
            shutil.copy(name + ".pub", os.path.join(H, "clients"))
    ok(stat.S_IMODE(os.stat("acme.key").st_mode) == 0o600, "the secret key file is mode 0600")
    ok(stat.S_IMODE(os.stat("acme.pub").st_mode) == 0o644, "the public key file is mode 0644")
    ok(read_key("acme.pub").get("role") == "tenant:acme" and
       "secret-key" not in read_key("acme.pub"), "the public file records the role, no secret")
    r = run("weft", "keygen", "--role", "tenant:../x", "-o", "bad")
    ok(r.returncode == 64 and "role" in r.stderr and not os.path.exists("bad.key"),
       "keygen refuses a role with a path in it")
    r = run("weft", "keygen", "--role", "root", "-o", "bad")
    ok(r.returncode == 64 and r.stderr.count("\n") == 1, "keygen refuses an unknown role in one line")
    r = run("weft", "keygen", "-o", "acme")
    ok(r.returncode != 0 and "exists" in r.stderr, "keygen does not overwrite a key without --force")

    # 2. tcp without keys refuses to start; --insecure-tcp warns
    E = "tcp://127.0.0.1:%d" % free_port()
    bare = os.path.join(T, "bare")
    r = start(bare, "--endpoint", E)
    ok(r.returncode == 64 and "CURVE" in r.stderr and "--insecure-tcp" in r.stderr,
       "weftd on tcp without keys refuses to start: " + r.stderr.strip()[:120])
    r = start(bare, "--endpoint", E, "--insecure-tcp")
    ok(r.returncode == 0 and "NOT authenticated" in r.stderr,
       "--insecure-tcp starts with a warning on stderr")
    ok("NOT authenticated" in open(os.path.join(bare, "weftd.log")).read(),
       "--insecure-tcp's warning is in the log too")
    weftlib.stop_weftd(bare)
    r = start(bare, "--endpoint", E, "--server-key", "acme.pub")
    ok(r.returncode == 64 and "secret" in r.stderr, "a public key file is not a server key")
    os.chmod("acme.key", 0o644)
    r = start(bare, "--endpoint", E, "--server-key", "acme.key")
    ok(r.returncode == 64 and "chmod 600" in r.stderr, "a secret key readable by others is refused")
    os.chmod("acme.key", 0o600)
    shutil.copy(H + "/server.key", bare + "/server.key")
    os.makedirs(bare + "/clients", exist_ok=True)
    with open(bare + "/clients/broken.pub", "w") as f:
        f.write("role = tenant:x\npublic-key = not-a-key\n")
    r = start(bare, "--endpoint", E)
    ok(r.returncode != 0 and "broken.pub:2" in r.stderr and r.stderr.count("\n") == 1,
       "a damaged client key file stops weftd with one line: " + r.stderr.strip())

    # A model and shard files: acme's data in its folder, one outside.
    must(run("weft", "init-model", "--preset", "tiny", "--seed", "5", "-o", "base.h5").returncode
         == 0, "init-model")
    with open("text.txt", "w") as f:
        f.write(open("/usr/share/common-licenses/GPL-3").read().replace("\n\n", "\n---\n"))
    must(run("weft", "shard", "--quiet", "--shards", "4", "--val-fraction", "0.1", "-o", "d.h5",
             "text.txt").returncode == 0, "weft shard")

    E = "tcp://127.0.0.1:%d" % free_port()
    r = start(H, "--endpoint", E, "--pack-size", "4", "--max-message", "65536", "--max-spec",
              "8192", "--max-tenants", "3", "--max-trials", "4", "--max-watch-per-client", "2")
    must(r.returncode == 0, "weftd with CURVE on %s: %s" % (E, r.stderr.strip()))
    acme_dir = os.path.join(H, "tenants", "acme")
    os.makedirs(acme_dir, exist_ok=True)
    shutil.copy("d.h5", os.path.join(acme_dir, "d.h5"))
    shutil.copy("d.h5", os.path.join(T, "outside.h5"))
    ipc = "ipc://%s/weftd.sock" % H
    admin_local = Client(ipc)
    skey = read_key(H + "/server.pub")["public-key"]
    admin = Client(E, "admin.key", skey)
    acme = Client(E, "acme.key", skey)
    globex = Client(E, "globex.key", skey)

    # 3. unknown keys and plain clients are refused before the ROUTER
    stranger = Client(E, "stranger.key", skey)
    ans = submit(stranger, lora_spec("stolen", [("stranger", "d.h5")]), T)
    ok(ans is None, "an unknown key gets no answer over tcp")
    stranger.close()
    env = dict(os.environ, WEFT_KEY=os.path.join(T, "stranger.key"),
               WEFT_SERVER_KEY=os.path.join(H, "server.pub"))
    t0 = time.time()
    r = run("weft", "--endpoint", E, "ls", env=env, timeout=60)
    ok(r.returncode != 0 and "refused this client's key" in r.stderr and "stranger.key" in r.stderr
       and r.stderr.count("\n") == 1 and time.time() - t0 < 10,
       "weft with an unknown key says so in one line, at once (%.1f s): %s"
       % (time.time() - t0, r.stderr.strip()))
    plain = Client(E)
    ok(plain.ask("LIST", {}, timeout=2) is None, "a client without CURVE gets no answer over tcp")
    plain.close()
    host, port = E[len("tcp://"):].rsplit(":", 1)
    for junk in (os.urandom(65536), b"\xff" + b"\x00" * 8 + b"\x7f" + os.urandom(300),
                 b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00CURVE" + b"\x00" * 200):
        raw = socket.create_connection((host, int(port)))
        try:
            raw.sendall(junk)
            time.sleep(0.1)
        except OSError:
            pass
        raw.close()
    st = admin_local.ask("STATUS", {})
    ok(st and st[0] == "REPLY", "raw bytes on the tcp port: weftd lives on and answers")
    ok(st and st[0] == "REPLY" and st[1]["keys_refused"] >= 1 and st[1]["handled"] == 1,
       "the refusal is counted and no message of it was handled (but this STATUS): %s"
       % (st and {k: st[1][k] for k in ("keys_refused", "handled")}))
    db = sqlite3.connect(os.path.join(H, "weft.db"))
    ok(db.execute("select count(*) from submissions").fetchone()[0] == 0,
       "nothing the unknown key sent is stored")
    ans = admin.ask("STATUS", {})
    ok(ans and ans[0] == "REPLY", "an admin key is answered over tcp")

    # 4. tenants: their own jobs only
    ans = submit(acme, lora_spec("acme-job", [("acme", "d.h5")], steps=20))
    ok(ans and ans[0] == "REPLY", "tenant acme submits its LoRA job: %s" % (ans,))
    acme_job = ans[1]["jobs"][0]["id"] if ans and ans[0] == "REPLY" else 0
    acme_sub = ans[1]["submission"] if ans and ans[0] == "REPLY" else 0
    ok(stat.S_IMODE(os.stat(acme_dir).st_mode) == 0o700, "acme's folder is mode 0700")
    row = db.execute("select owner from submissions where id = ?", (acme_sub,)).fetchone()
    ok(row and row[0] == "tenant:acme", "the submission's owner is the key's role")

    a = globex.ask("LIST", {})
    ok(a and a[0] == "REPLY" and all(j["tenant"] == "globex" for j in a[1]["jobs"]) and
       not any(j["id"] == acme_job for j in a[1]["jobs"]), "LIST: globex does not see acme's job")
    a = acme.ask("LIST", {})
    ok(a and a[0] == "REPLY" and any(j["id"] == acme_job for j in a[1]["jobs"]),
       "LIST: acme sees its own job")
    ok(is_error(globex.ask("STATUS", {"id": acme_job}), "not_found"),
       "STATUS: globex cannot see acme's job")
    ok(is_error(globex.ask("STATUS", {}), "permission"), "STATUS: the daemon's own is admin only")
    ok(is_error(globex.ask("WATCH", {"id": acme_job}), "not_found"),
       "WATCH: globex cannot watch acme's job")
    ok(is_error(globex.ask("RESULTS", {"id": acme_job}), "not_found"),
       "RESULTS by job: globex cannot fetch acme's")
    ok(is_error(globex.ask("RESULTS", {"submission": acme_sub}), "not_found"),
       "RESULTS by submission: globex cannot fetch acme's")
    a = globex.ask("CANCEL", {"ids": [acme_job]})
    ok(a and a[0] == "REPLY" and a[1]["jobs"][0].get("error") == "no such job",
       "CANCEL: globex cannot cancel acme's job")
    st = admin.ask("STATUS", {"id": acme_job})
    ok(st and st[1]["state"] != "cancelled", "acme's job is not cancelled by globex's attempt")

    def refused(text, what, kind="permission"):
        a = submit(acme, text)
        ok(is_error(a, kind), "%s is refused: %s" % (what, a[1].get("message") if a else None))

    refused(lora_spec("x", [("globex", "d.h5")]), "acme submitting for globex")
    refused(lora_spec("x", [("acme", "d.h5"), ("globex", "d.h5")]), "a batch with another tenant")
    refused('name = "f"; mode = "full"; model = "%s/base.h5"; data = "d.h5";\n'
            'train = { steps = 5; batch_size = 4; seq_len = 16; };' % T, "a full job by a tenant")
    refused(lora_spec("x", [("acme", "d.h5")], output="../globex/out"), "output ../globex")
    refused(lora_spec("x", [("acme", "d.h5")], output="/tmp/elsewhere"), "an absolute output outside")
    refused(lora_spec("x", [("acme", T + "/outside.h5")]), "data outside the tenant's folder")
    refused(lora_spec("x", [("acme", "../../../outside.h5")]), "data through ..")
    os.symlink(T, os.path.join(acme_dir, "escape"))
    refused(lora_spec("x", [("acme", "d.h5")], output="escape/out"), "output through a symlink")
    refused(lora_spec("x", [("acme", "escape/outside.h5")]), "data through a symlink")
    refused(lora_spec("x", [("../acme", "d.h5")]), "a tenant name with a path", kind="spec")
    a = acme.ask("SUBMIT", {"spec": lora_spec("x", [("acme", "d.h5")]), "folder": T,
                            "priority": 100})
    ok(is_error(a, "permission"), "a tenant cannot put its job ahead of others (priority 100)")
    ok(db.execute("select count(*) from submissions").fetchone()[0] == 1,
       "no refused spec was stored")

    # 5. the tenant's job runs over tcp: workers hold their run's key
    state = wait_state(acme, acme_job, ("succeeded", "failed", "cancelled"))
    ok(state == "succeeded", "acme's job succeeded with CURVE workers (%s)" % state)
    out = os.path.join(acme_dir, "runs", "acme-job", "acme", "adapter.h5")
    ok(os.path.isfile(out), "acme's adapter is published in its folder")
    a = acme.ask("RESULTS", {"submission": acme_sub})
    ok(a and a[0] == "REPLY" and a[1]["jobs"][0]["state"] == "succeeded", "acme fetches its results")
    env = dict(os.environ, WEFT_KEY=os.path.join(T, "globex.key"),
               WEFT_SERVER_KEY=os.path.join(H, "server.pub"))
    r = run("weft", "--endpoint", E, "ls", "--json", env=env, timeout=30)
    ok(r.returncode == 0 and '"jobs"' in r.stdout and '"acme"' not in r.stdout,
       "weft ls over tcp with globex's key (WEFT_KEY) lists none of acme's jobs: %s"
       % (r.stdout.strip()[:80] + r.stderr.strip()[:80]))
    env["WEFT_KEY"] = os.path.join(T, "acme.key")
    r = run("weft", "--endpoint", E, "show", str(acme_job), "--json", env=env, timeout=30)
    ok(r.returncode == 0 and "succeeded" in r.stdout, "weft show over tcp with acme's key")
    wk = os.path.join(H, "runs", "1", "worker.key")
    ok(os.path.isfile(wk) and stat.S_IMODE(os.stat(wk).st_mode) == 0o600,
       "the run's worker key file is mode 0600")

    # The job succeeds on DONE; the group ends when mpirun has exited, which
    # takes a while on a busy machine: try for up to a minute.
    refused_after = False
    end = time.time() + 60
    while not refused_after and time.time() < end:
        w = Client(E, wk)
        # an admitted worker key would be answered (ERROR permission)
        refused_after = w.ask("LIST", {}, timeout=1) is None
        w.close()
        if not refused_after:
            time.sleep(0.5)
    if not refused_after:
        with open(os.path.join(H, "weftd.log")) as f:
            print("".join(f.readlines()[-25:]))
        print(run("ps", "-eo", "pid,stat,etime,args", timeout=10).stdout)
    ok(refused_after, "once run 1's group has ended, its worker key is refused")

    # 6. worker keys: a long admin job keeps run 2 alive
    ans = submit(admin, lora_spec("long", [("bob", "d.h5")], steps=100000))
    long_job = ans[1]["jobs"][0]["id"] if ans and ans[0] == "REPLY" else 0
    must(wait_state(admin, long_job, ("running",), 120) == "running", "a long job runs")
    run2 = db.execute("select run from jobs where id = ?", (long_job,)).fetchone()[0]
    key2 = os.path.join(H, "runs", str(run2), "worker.key")
    time.sleep(1)
    hello = {"run": "1", "attempt": 1, "seq": 1, "ranks": 2}
    w = Client(E, key2, rid="1:1")
    a = w.ask("HELLO", hello)
    ok(is_error(a, "permission"), "a worker key of run %d cannot post for run 1: %s" % (run2, a))
    w.close()
    w = Client(E, key2, rid="99:1")
    a = w.ask("METRIC", {"run": "99", "attempt": 1, "seq": 1, "step": 1})
    ok(is_error(a, "permission"), "nor for an unknown run 99")
    a = w.ask("LIST", {})
    ok(is_error(a, "permission"), "a worker key may not send client commands")
    w.close()
    # (another attempt's routing id: taking over the live group's would also
    # take its replies, see docs/PROTOCOL.md)
    w = Client(E, "acme.key", skey, rid="%d:9" % run2)
    a = w.ask("HEARTBEAT", {"run": str(run2), "attempt": 9})
    ok(is_error(a, "permission"), "a tenant key may not post worker messages")
    w.close()
    a = admin.ask("CANCEL", {"ids": [long_job]})
    ok(a and a[0] == "REPLY", "the long job is cancelled")
    ok(wait_state(admin, long_job, ("cancelled",), 60) == "cancelled", "and ends cancelled")

    # 7. limits
    a = admin.ask("LIST", b'{"pad": "' + b"x" * 70000 + b'"}', timeout=2)
    b = admin.ask("STATUS", {}, timeout=10)
    ok(a is None and b and b[0] == "REPLY",
       "a message over --max-message is dropped unanswered; the client's next one is "
       "answered: %s" % (a and a[1]))
    big = lora_spec("big", [("acme", "d.h5")]) + "# " + "y" * 9000 + "\n"
    a = submit(acme, big)
    ok(is_error(a, "spec") and "limit" in a[1]["message"], "a spec over --max-spec is refused: %s"
       % (a and a[1]["message"]))
    a = submit(admin, lora_spec("many", [("t%d" % i, "d.h5") for i in range(4)]))
    ok(is_error(a, "spec") and "tenants" in json.dumps(a[1]),
       "a spec over --max-tenants is refused: %s" % (a and a[1]["message"]))
    a = submit(admin, lora_spec("sweep", [("t", "d.h5")],
                                extra='sweep = { train = { lr = [0.1, 0.2, 0.3]; }; lora = { r = [2, 4]; }; };\n'))
    ok(is_error(a, "spec") and "trials" in json.dumps(a[1]),
       "a sweep over --max-trials is refused: %s" % (a and a[1]["message"]))
    # WATCH: two streams per client; a third is refused, another client may
    answers = [acme.ask("WATCH", {"id": acme_job}) for _ in range(1)]
    ok(answers[0] and answers[0][0] in ("REPLY", "EVENT"), "acme may WATCH its job")
    # streams of a finished job end at once: watch the long (cancelled) one as admin
    w1 = Client(E, "globex.key", skey)
    ans = submit(admin, lora_spec("long2", [("globex", "d.h5")], steps=100000))
    gl_job = ans[1]["jobs"][0]["id"] if ans and ans[0] == "REPLY" else 0
    kinds = []
    for _ in range(3):
        w1.send("WATCH", {"id": gl_job})
    end = time.time() + 5
    while time.time() < end and len(kinds) < 3:
        x = w1.recv(1)
        if x and x[0] in ("REPLY", "ERROR"):
            kinds.append((x[0], x[1].get("error")))
    ok(kinds.count(("REPLY", None)) == 2 and ("ERROR", "limit") in kinds,
       "a third WATCH of one client is refused over --max-watch-per-client: %s" % kinds)
    w2 = Client(E, "globex.key", skey)
    ok(is_error(w2.ask("WATCH", {"id": gl_job}), "limit"), "the limit is per key, not per connection")
    x = admin.ask("WATCH", {"id": gl_job})
    ok(x and x[0] == "REPLY", "another client may still WATCH")
    admin.ask("CANCEL", {"ids": [gl_job]})

    # 7. SIGHUP reads the clients folder again: a key added is admitted, a
    #    damaged file keeps the keys loaded before, a key removed is refused.
    pid = int(open(os.path.join(H, "weftd.pid")).read())
    log = os.path.join(H, "weftd.log")
    env = dict(os.environ, WEFT_KEY=os.path.join(T, "stranger.key"),
               WEFT_SERVER_KEY=os.path.join(H, "server.pub"))

    def hup(want):
        n = open(log).read().count("SIGHUP")
        os.kill(pid, signal.SIGHUP)
        end = time.time() + 10
        while time.time() < end and open(log).read().count("SIGHUP") == n:
            time.sleep(0.1)
        lines = [x for x in open(log).read().splitlines() if "SIGHUP" in x]
        return lines[-1] if len(lines) > n and want in lines[-1] else (lines or ["none"])[-1]

    stranger_pub = os.path.join(H, "clients", "stranger.pub")
    shutil.copy("stranger.pub", stranger_pub)
    line = hup("4 client key(s)")
    r = run("weft", "--endpoint", E, "ls", "--json", env=env, timeout=60)
    ok("4 client key(s)" in line and r.returncode == 0 and '"jobs"' in r.stdout,
       "after SIGHUP a key added to clients/ is admitted: %s / %s" % (line, r.stderr.strip()))
    with open(os.path.join(H, "clients", "zz-broken.pub"), "w") as f:
        f.write("role = tenant:x\npublic-key = not-a-key\n")
    os.unlink(stranger_pub)
    line = hup("stay")
    r = run("weft", "--endpoint", E, "ls", "--json", env=env, timeout=60)
    ok("zz-broken.pub:2" in line and "4 client key(s) loaded before stay" in line and
       r.returncode == 0, "a damaged file on SIGHUP keeps the keys loaded before: %s" % line)
    os.unlink(os.path.join(H, "clients", "zz-broken.pub"))
    line = hup("3 client key(s)")
    r = run("weft", "--endpoint", E, "ls", env=env, timeout=60)
    ok("3 client key(s)" in line and r.returncode != 0 and "refused this client's key" in r.stderr,
       "after SIGHUP a key removed from clients/ is refused: %s / %s" % (line, r.stderr.strip()))
    acme.send("STATUS", {"id": acme_job})  # its WATCH events may come first
    end, x = time.time() + 10, None
    while time.time() < end and not (x and x[0] in ("REPLY", "ERROR")):
        x = acme.recv(1)
    ok(x and x[0] == "REPLY", "an open connection of a listed key goes on across reloads: %s" % (x,))
    for c in (w1, w2, admin, acme, globex, admin_local):
        c.close()


def kill_workers():
    subprocess.run(["pkill", "-f", "weft-worker " + T], stderr=subprocess.DEVNULL)


weftlib.run_main(main, T, HOMES, kill_workers)
