#!/usr/bin/python3
# test_validate.py: `weft validate` end to end: the examples validate against
# real HDF5 fixtures and print their plan; missing files, seq_len > n_ctx and
# bad specs give exit 78 with every problem named by file and setting.
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

top_srcdir = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "../.."))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(top_srcdir, "tests/jobs"))
sys.path.insert(0, os.path.join(top_srcdir, "tests"))
import checks  # noqa: E402
import fixtures  # noqa: E402
from checks import ok  # noqa: E402

def validate(path, cwd):
    p = subprocess.run(["weft", "validate", path], cwd=cwd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="weft-test-validate-")
    try:
        for f in os.listdir(os.path.join(top_srcdir, "jobs/examples")):
            shutil.copy(os.path.join(top_srcdir, "jobs/examples", f), tmp)
        fixtures.main(tmp)
        # the example's acme continues last night's adapter, as its comment shows
        with open(os.path.join(tmp, "nightly.cfg")) as f:
            text = f.read()
        acme = '{ name = "acme";    data = "data/acme.h5"; },'
        ok(acme in text, "nightly.cfg: acme's line changed")
        with open(os.path.join(tmp, "nightly.cfg"), "w") as f:
            f.write(text.replace(acme, acme[:-3] + ' init_adapter = "adapters/acme.h5"; },'))

        # every example validates; the plan counts jobs and estimates memory
        want_jobs = {"full.cfg": "jobs       1\n", "nightly.cfg": "jobs       3 (3 tenants x 1 trial)",
                     "lora_sweep.cfg": "jobs       6 (1 tenant x 6 trials)",
                     "full_sweep.cfg": "jobs       8\n"}
        for name, jobs in want_jobs.items():
            rc, out, err = validate(name, tmp)
            ok(rc == 0, "%s: exit %d, stderr %s" % (name, rc, err))
            ok(jobs in out, "%s: plan lacks %r:\n%s" % (name, jobs, out))
            ok("memory     per rank" in out, "%s: no memory estimate" % name)
            # N = V*C + n_ctx*C + L*(12C^2 + 13C) + 2C for the fixture model
            V, C, L, P = 257, 64, 2, 256
            n = V * C + P * C + L * (12 * C * C + 13 * C) + 2 * C
            ok("%.1fk parameters" % (n / 1e3) in out, "%s: parameter count %d not shown" % (name, n))

        # full.cfg: weights, gradients and AdamW are 16 bytes per parameter
        rc, out, err = validate("full.cfg", tmp)
        m = re.search(r"weights ([\d.]+) KiB, gradients ([\d.]+) KiB, AdamW ([\d.]+) MiB", out)
        ok(m and abs(float(m.group(1)) - n * 4 / 1024) < 0.1, "full.cfg: weights line %r" % out)
        ok(m and abs(float(m.group(3)) - n * 8 / 2**20) < 0.05, "full.cfg: AdamW line")
        # 16 sequences / (2 ranks x 2 micro-steps) = 4 rows per rank
        ok("(4 sequences of 256 tokens per micro-step" in out, "full.cfg: rows per rank")

        # epochs over a shards file become steps: 100000 tokens, 2 epochs, 8 x 128 per step
        ep = os.path.join(tmp, "epochs.cfg")
        with open(ep, "w") as f:
            f.write('mode = "lora"; model = "models/base.h5";\n'
                    'train = { epochs = 2.0; batch_size = 8; seq_len = 128; };\n'
                    'tenants = ( { name = "acme"; data = "data/acme.h5"; } );\n')
        rc, out, err = validate("epochs.cfg", tmp)
        ok(rc == 0 and re.search(r"^acme\s+weft-shards\s+196\s", out, re.M),
              "epochs: want 196 steps:\n%s%s" % (out, err))

        # epochs of raw text: steps unknown until weftd shards it
        with open(ep, "w") as f:
            f.write('mode = "lora"; model = "models/base.h5";\n'
                    'train = { epochs = 1.5; };\n'
                    'tenants = ( { name = "initech"; data = "data/initech.txt"; } );\n')
        rc, out, err = validate("epochs.cfg", tmp)
        ok(rc == 0 and re.search(r"^initech\s+text\s+1.5ep\s.*\?$", out, re.M)
              and "count once it is sharded" in out, "raw epochs:\n%s%s" % (out, err))

        # an init_adapter trained with another rank
        fixtures.adapter(os.path.join(tmp, "adapters/acme.h5"), r=4)
        rc, out, err = validate("nightly.cfg", tmp)
        ok(rc == 78 and "nightly.cfg: tenants[0].init_adapter: init_adapter %s/adapters/acme.h5: "
              "has r = 4 but the tenant trains r = 8" % tmp in err, "adapter rank: %d %s" % (rc, err))
        fixtures.adapter(os.path.join(tmp, "adapters/acme.h5"), targets="attn.c_attn")
        rc, out, err = validate("nightly.cfg", tmp)
        ok(rc == 78 and 'targets "attn.c_attn" but the tenant trains "attn.c_attn,attn.c_proj"'
              in err, "adapter targets: %d %s" % (rc, err))
        # the same modules in another order are the same set
        fixtures.adapter(os.path.join(tmp, "adapters/acme.h5"), targets="attn.c_proj,attn.c_attn")
        rc, out, err = validate("nightly.cfg", tmp)
        ok(rc == 0, "adapter targets in another order: %d %s" % (rc, err))

        # the spec's folder is the base: validate from another working folder
        rc, out, err = validate(os.path.join(tmp, "nightly.cfg"), "/")
        ok(rc == 0, "nightly.cfg from /: exit %d %s" % (rc, err))

        # a missing model, data and adapter file: all named, exit 78
        os.rename(os.path.join(tmp, "adapters/acme.h5"), os.path.join(tmp, "adapters/gone.h5"))
        os.remove(os.path.join(tmp, "data/globex.h5"))
        os.rename(os.path.join(tmp, "models/base.h5"), os.path.join(tmp, "models/moved.h5"))
        rc, out, err = validate("nightly.cfg", tmp)
        ok(rc == 78, "missing files: exit %d" % rc)
        ok("nightly.cfg: model: model %s/models/base.h5: file not found" % tmp in err,
              "missing model not named:\n" + err)
        ok("nightly.cfg: tenants[1].data: data %s/data/globex.h5: file not found" % tmp in err,
              "missing data not named:\n" + err)
        ok("nightly.cfg: tenants[0].init_adapter:" in err, "missing adapter not named:\n" + err)
        ok("3 problems" in err, "problem count:\n" + err)
        ok(out == "", "a failing validate prints no plan")
        os.rename(os.path.join(tmp, "models/moved.h5"), os.path.join(tmp, "models/base.h5"))

        # seq_len beyond the model's n_ctx (256)
        with open(os.path.join(tmp, "long.cfg"), "w") as f:
            f.write('mode = "full"; model = "models/base.h5"; data = "data/corpus.h5";\n'
                    'train = { seq_len = 512; };\n')
        rc, out, err = validate("long.cfg", tmp)
        ok(rc == 78 and "long.cfg: train.seq_len: 512 exceeds the model's n_ctx 256" in err,
              "seq_len > n_ctx: %d %s" % (rc, err))

        # a sweep that reaches past n_ctx names the trial
        with open(os.path.join(tmp, "sweeplong.cfg"), "w") as f:
            f.write('mode = "full"; model = "models/base.h5"; data = "data/corpus.h5";\n'
                    'sweep = { train = { seq_len = [128, 1024]; }; };\n')
        rc, out, err = validate("sweeplong.cfg", tmp)
        ok(rc == 78 and re.search(r"trial sweeplong-[0-9a-f]{8}: train.seq_len: 1024", err),
              "sweep seq_len: %s" % err)

        # a Mistral model's sliding window: seq_len up to it validates, beyond it is named
        mistral = os.path.join(tmp, "models/mistral.h5")
        subprocess.run(["weft", "init-model", "--preset", "llama-tiny", "--vocab", "257",
                        "--ctx", "256", "-o", mistral], check=True, capture_output=True)
        with h5py.File(mistral, "r+") as f:
            f.attrs["sliding_window"] = 128
            f.attrs["hf_architecture"] = "MistralForCausalLM"
        for seq, fits in ((128, True), (200, False)):
            with open(os.path.join(tmp, "window.cfg"), "w") as f:
                f.write('mode = "full"; model = "models/mistral.h5"; data = "data/corpus.h5";\n'
                        'train = { seq_len = %d; };\n' % seq)
            rc, out, err = validate("window.cfg", tmp)
            if fits:
                ok(rc == 0, "seq_len = sliding_window: %d %s" % (rc, err))
            else:
                ok(rc == 78 and "window.cfg: train.seq_len: 200 exceeds the model's "
                      "sliding_window 128" in err, "seq_len > sliding_window: %d %s" % (rc, err))

        # the parameter count is the model file's: a Llama model with biases
        # and an untied head counts every float of every dataset
        qwen = os.path.join(tmp, "models/qwen.h5")
        subprocess.run(["weft", "init-model", "--arch", "llama", "--preset", "llama-tiny",
                        "--vocab", "257", "--ctx", "256", "--bias", "q,k,v", "--tie", "0",
                        "-o", qwen], check=True, capture_output=True)
        with h5py.File(qwen, "r") as f:
            sizes = []
            f.visititems(lambda k, v: sizes.append(v.size) if isinstance(v, h5py.Dataset)
                         and v.dtype == np.float32 else None)
            nq = sum(sizes)
        with open(os.path.join(tmp, "qwen.cfg"), "w") as f:
            f.write('mode = "full"; model = "models/qwen.h5"; data = "data/corpus.h5";\n')
        rc, out, err = validate("qwen.cfg", tmp)
        m = re.search(r"weights ([\d.]+) KiB", out)
        ok(rc == 0 and "%.1fk parameters" % (nq / 1e3) in out and m and
           abs(float(m.group(1)) - nq * 4 / 1024) < 0.05,
           "llama with biases: %d parameters in the file, plan says %r %s" % (nq, out, err))

        # a data file that is HDF5 but not weft-shards
        with open(os.path.join(tmp, "notshards.cfg"), "w") as f:
            f.write('mode = "full"; model = "models/base.h5"; data = "models/base.h5";\n')
        rc, out, err = validate("notshards.cfg", tmp)
        ok(rc == 78 and "data: data %s/models/base.h5: not a weft-shards file" % tmp in err,
              "not shards: %s" % err)

        # data checked against the run before it is packed with anyone: shards
        # per rank, tokenizer and vocabulary, every token, a usable /val; a
        # FIFO is refused as data without being opened
        d = os.path.join(tmp, "data")
        fixtures.shards(os.path.join(d, "one.h5"), nshards=1)
        fixtures.shards(os.path.join(d, "gpt2.h5"), vocab_size=50257)
        bad = [0] * 100000
        bad[-1] = 256
        bad[5000] = 300  # inside the file's uint16 but outside the byte vocabulary
        fixtures.shards(os.path.join(d, "oov.h5"), tokens=bad)
        fixtures.shards(os.path.join(d, "noval.h5"), ntokens=1000)  # val: 100 tokens < 129
        os.mkfifo(os.path.join(d, "pipe.txt"))
        cases = {"one.h5": "1 shard for 2 ranks; re-shard it with --shards 2",
                 "gpt2.h5": "vocabulary of 50257 tokens does not fit the model's 257",
                 "oov.h5": "outside the vocabulary",
                 "noval.h5": "/val holds 100 tokens, not one window of seq_len+1 = 129",
                 "pipe.txt": "pipe.txt: not a regular file"}
        for data, want in cases.items():
            with open(os.path.join(tmp, "pack.cfg"), "w") as f:
                f.write('mode = "lora"; model = "models/base.h5"; train = { seq_len = 128; };\n'
                        'resources = { ranks = 2; };\n'
                        'tenants = ( { name = "good"; data = "data/acme.h5"; },\n'
                        '            { name = "bad"; data = "data/%s"; } );\n' % data)
            rc, out, err = validate("pack.cfg", tmp)
            ok(rc == 78 and "tenants[1].data:" in err and want in err
                  and "tenants[0]" not in err, "%s: want %r, got %d %s" % (data, want, rc, err))

        # several spec problems at once: each on its own line
        with open(os.path.join(tmp, "many.cfg"), "w") as f:
            f.write('mode = "lora";\nmodel = "models/base.h5";\ntrain = { lr = 0.0; warmpu = 3; };\n'
                    'tenants = ( { name = "a/b"; data = "x.h5"; } );\n')
        rc, out, err = validate("many.cfg", tmp)
        lines = [l for l in err.splitlines() if l.startswith("many.cfg:")]
        ok(rc == 78 and len(lines) == 4, "many problems: %d %s" % (rc, err))
        for want in ("many.cfg:3: train.lr:", "many.cfg:3: train.warmpu:", "many.cfg:4: tenants[0].name:"):
            ok(any(l.startswith(want) for l in lines), "many: %s missing" % want)

        # a Latin-1 byte: validate and submit refuse it with the same line (submit
        # before it asks weftd; WEFT_HOME names a folder with no weftd)
        with open(os.path.join(tmp, "latin1.cfg"), "wb") as f:
            f.write(b'mode = "full"; model = "models/base.h5"; data = "data/corpus.h5";\n'
                    b'# caf\xe9\n')
        rc, out, err = validate("latin1.cfg", tmp)
        want = "latin1.cfg:2: spec: byte 0xE9 at column 6 is not UTF-8; a spec must be UTF-8 text"
        ok(rc == 78 and err.startswith(want), "latin1 validate: %d %s" % (rc, err))
        env = dict(os.environ, WEFT_HOME=os.path.join(tmp, "nohome"))
        p = subprocess.run(["weft", "submit", "latin1.cfg"], cwd=tmp, capture_output=True,
                           text=True, env=env)
        ok(p.returncode == 78 and p.stderr.startswith(want) and err.splitlines()[0] ==
              p.stderr.splitlines()[0], "latin1 submit: %d %s" % (p.returncode, p.stderr))

        # a folder is not a spec
        rc, out, err = validate(tmp, "/")
        ok(rc == 78 and "is a folder" in err, "folder: %d %s" % (rc, err))

        # usage and unreadable files
        rc, out, err = validate("nosuch.cfg", tmp)
        ok(rc == 78 and "nosuch.cfg" in err, "unreadable spec: %d %s" % (rc, err))
        p = subprocess.run(["weft", "validate"], capture_output=True, text=True)
        ok(p.returncode == 64 and "usage" in p.stderr, "no argument: exit %d" % p.returncode)
    finally:
        shutil.rmtree(tmp)
    print("%d failures" % checks.failed)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
