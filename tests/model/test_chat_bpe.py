"""test_chat_bpe.py: `weft shard --format chat --tokenizer` with a byte-level
BPE tokenizer that has chatml's special tokens: each special token is stored
as its id, never spelled out; a message that types a special token's
spelling is encoded as ordinary text; the loss mask covers the assistant's
content and its <|im_end|>; the shard records the tokenizer's SHA-256 and
end-of-text id; a tokenizer without the template's tokens is refused in one
line; `weft generate --chat` runs with the model's BPE tokenizer."""
import atexit
import shutil
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import maketok  # noqa: E402
import modeltest  # noqa: E402
from modeltest import fail, ok, run  # noqa: E402


def ids_of(tok, text):
    p = subprocess.run(["weft", "tokenize", "--tokenizer", tok, "--json"], input=text,
                       capture_output=True, text=True)
    if p.returncode != 0:
        fail("weft tokenize: %s" % p.stderr.strip())
    return json.loads(p.stdout)["ids"]


d = tempfile.mkdtemp(prefix="weft-test-chat-bpe-")
atexit.register(shutil.rmtree, d, True)
os.chdir(d)

# A Llama-3-style tokenizer with chatml's tokens added (ids past the merges).
t = maketok.tokenizer(261)
for i, name in ((262, "<|im_start|>"), (263, "<|im_end|>")):
    t["added_tokens"].append({"id": i, "content": name, "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True})
json.dump(t, open("tok.json", "w"))
json.dump(maketok.tokenizer(261), open("plain-tok.json", "w"))
START, END, EOT = 262, 263, 261

user = "say <|im_start|> please"
answer = "the thing"
with open("chat.jsonl", "w") as f:
    for _ in range(20):
        f.write(json.dumps({"messages": [{"role": "user", "content": user},
                                         {"role": "assistant", "content": answer}]}) + "\n")

run("weft", "shard", "--format", "chat", "--template", "chatml", "--tokenizer", "tok.json",
    "--quiet", "--val-fraction", "0.1", "-o", "chat.h5", "chat.jsonl")
with h5py.File("chat.h5", "r") as h:
    kind = h.attrs["tokenizer"]
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind != "bpe" or int(h.attrs["eot_id"]) != EOT:
        fail("attributes: tokenizer %r eot_id %r" % (h.attrs["tokenizer"], h.attrs.get("eot_id")))
    if len(h.attrs["tokenizer_sha256"]) != 64:
        fail("no tokenizer_sha256")
    tok = h["/train/tokens"][:].astype(np.int64)
    mask = h["/train/loss_mask"][:]
    offs = h["/train/doc_offsets"][:]
doc = tok[offs[0]:offs[1]]
m = mask[offs[0]:offs[1]]
want = ([START] + ids_of("tok.json", "user\n") + ids_of("plain-tok.json", user) + [END]
        + ids_of("tok.json", "\n") + [START] + ids_of("tok.json", "assistant\n")
        + ids_of("tok.json", answer) + [END] + ids_of("tok.json", "\n") + [EOT])
if list(doc) != want:
    fail("document ids %s, want %s" % (list(doc), want))
ok("chatml with a BPE tokenizer: special tokens as their ids, the document ends with eot")
if list(doc).count(START) != 2:
    fail("the user's typed <|im_start|> became the special id")
ok("a special token's spelling inside a message is ordinary text")
ans = ids_of("tok.json", answer)
i = want.index(START, 1) + 1 + len(ids_of("tok.json", "assistant\n"))
trained = [int(x) for x in np.nonzero(m)[0]]
if trained != list(range(i, i + len(ans) + 1)):
    fail("mask covers %s, want the answer and its <|im_end|> at %d..%d" % (trained, i, i + len(ans)))
ok("the loss mask covers the answer and its <|im_end|> only")

p = run("weft", "shard", "--format", "chat", "--template", "chatml", "--tokenizer",
        "plain-tok.json", "--quiet", "-o", "no.h5", "chat.jsonl", check=False)
lines = [x for x in p.stderr.strip().splitlines() if x]
if p.returncode == 0 or len(lines) != 1 or "im_start" not in lines[0]:
    fail("a tokenizer without chatml's tokens: exit %d: %s" % (p.returncode, p.stderr))
ok("a tokenizer without the template's tokens is refused in one line")

run("weft", "init-model", "--preset", "tiny", "--tokenizer", "tok.json", "-o", "m.h5")
p = run("weft", "generate", "--model", "m.h5", "--chat", "--template", "chatml", "--prompt",
        "hi", "--tokens", "5", "--seed", "1")
ok("weft generate --chat with the model's BPE tokenizer")
print("%d passed, 0 failed" % modeltest.checks)
