#!/bin/bash
# test_chat.sh: weft shard --format chat|completion: the plain template
# spelled as docs/FORMATS-shards.md says, the loss mask on the answers and
# their end-of-turn token only, the split and shards at document
# boundaries, one clear line per bad input (file, line, field) and
# --skip-bad, templates the byte tokenizer cannot spell refused.
set -u
. "$top_srcdir/tests/lib.sh"
PY=/usr/bin/python3
test_tmp chat

cat > chat.jsonl <<'J'
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is ls?"}, {"role": "assistant", "content": "It lists files."}]}

{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "See you."}]}
J
weft shard --quiet --format chat -o chat.h5 chat.jsonl >out.txt || fail "weft shard --format chat: $(cat out.txt)"
grep -q "2 documents .* trainable" out.txt || fail "summary: $(cat out.txt)"
weft shard --verify chat.h5 >/dev/null || fail "verify of a chat file"
$PY - <<'P' || fail "plain template or loss mask"
import h5py, sys
f = h5py.File("chat.h5", "r")
assert f.attrs["data_format"] in (b"chat", "chat") and f.attrs["chat_template"] in (b"plain", "plain")
tok, mask, off = f["train/tokens"][:], f["train/loss_mask"][:], f["train/doc_offsets"][:]
assert len(mask) == len(tok) and mask.dtype == "uint8"
E = "\x00EOT"
want = {"Be brief.\n\nUser: What is ls?\nAssistant: It lists files." + E:
            "It lists files." + E,
        "User: Hi\nAssistant: Hello." + E + "User: Bye\nAssistant: See you." + E:
            "Hello." + E + "See you." + E}
got = {}
for d in range(len(off) - 1):
    t, m = tok[off[d]:off[d + 1]], mask[off[d]:off[d + 1]]
    text = "".join(E if x == 256 else chr(x) for x in t)
    trained = "".join(E if x == 256 else chr(x) for x, k in zip(t, m) if k)
    assert t[-1] == 256, "a document ends with the end of text"
    got[text] = trained
if got != want:
    sys.exit(f"documents {got!r}\nwant {want!r}")
P
pass "chat, plain template: text, end-of-turn tokens and the loss mask as documented"

printf '%s\n' '{"prompt": "2+2=", "completion": "4"}' '{"prompt": "3+3=", "completion": "6"}' > comp.jsonl
weft shard --quiet --format completion -o comp.h5 comp.jsonl >/dev/null || fail "completion"
$PY - <<'P' || fail "completion mask"
import h5py
f = h5py.File("comp.h5", "r")
t, m = list(f["train/tokens"][:]), list(f["train/loss_mask"][:])
docs = sorted(bytes(x for x in t if x < 256).split(b"="))
assert sum(m) == 4, m              # each completion byte and its end of text
assert [x for x, k in zip(t, m) if k and x < 256] in ([ord("4"), ord("6")], [ord("6"), ord("4")])
P
pass "completion: prompt is context, completion and end of text are trained"

# Bad lines: one line each naming file:line: field, exit 65.
bad() { # want-field json
    printf '%s\n' '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}' "$2" > bad.jsonl
    weft shard --quiet --format chat -o bad.h5 bad.jsonl >/dev/null 2>err.txt; rc=$?
    [ $rc = 65 ] || fail "bad line $2: exit $rc"
    [ "$(wc -l < err.txt)" = 1 ] && grep -q "bad.jsonl:2: $1" err.txt ||
        fail "bad line $2: want one line naming bad.jsonl:2: $1, got: $(cat err.txt)"
    [ ! -e bad.h5 ] || fail "a failed shard left bad.h5 behind"
}
bad '(line): not JSON' 'not json'
bad 'messages\[0\].role: missing' '{"messages": [{"content": "x"}]}'
bad 'messages\[1\].content: missing' '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]}'
bad 'messages\[0\].role: unknown role' '{"messages": [{"role": "bot", "content": "x"}]}'
bad 'messages\[1\].content: empty answer' '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}'
bad 'messages: no assistant message' '{"messages": [{"role": "user", "content": "q"}]}'
bad 'messages: missing' '{"text": "raw"}'
pass "bad chat lines: one line with file, line number and field, exit 65, no output"

printf '%s\n' 'nope' '{"messages": [{"role": "bot", "content": "x"}]}' >> chat.jsonl
weft shard --quiet --format chat --skip-bad -o skip.h5 chat.jsonl >out.txt || fail "--skip-bad: $(cat out.txt)"
grep -q "2 bad lines skipped" out.txt && grep -q "^skip.h5: 2 documents" out.txt || fail "--skip-bad summary: $(cat out.txt)"
pass "--skip-bad counts and skips bad lines"

for t in chatml llama3; do
    weft shard --quiet --format chat --template $t -o x.h5 comp.jsonl >/dev/null 2>err.txt; rc=$?
    [ $rc = 65 ] && grep -q "template $t needs the special token .* byte tokenizer lacks" err.txt ||
        fail "template $t with the byte tokenizer: exit $rc: $(cat err.txt)"
done
weft shard --quiet --format chat --template nope -o x.h5 comp.jsonl 2>err.txt; rc=$?
[ $rc = 64 ] && grep -q "use chatml, llama3 or plain" err.txt || fail "unknown template: $rc $(cat err.txt)"
pass "chatml and llama3 refused with the byte tokenizer, in one line"

# Shards cut at document boundaries, validation split seeded.
for i in $(seq 40); do
    printf '{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "answer %d"}]}\n' $i $i
done > many.jsonl
weft shard --quiet --format chat --shards 3 --val-fraction 0.1 --seed 5 -o many.h5 many.jsonl >/dev/null || fail "shards"
$PY - <<'P' || fail "shard boundaries"
import h5py
f = h5py.File("many.h5", "r")
so, off = list(f["train/shard_offsets"][:]), set(f["train/doc_offsets"][:])
assert len(so) == 4 and all(s in off for s in so), (so,)
assert len(f["val/doc_offsets"]) == 5 and len(f["val/loss_mask"]) == len(f["val/tokens"])
P
pass "3 shards cut on document boundaries, 4 validation documents with their mask"
summary
