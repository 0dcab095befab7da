#!/bin/bash
# test_tokenize_cli.sh: `weft tokenize` from the command line: ids, --json,
# --decode, a folder holding tokenizer.json, and the refusals (one line
# each, non-zero exit): not JSON, a merge naming a token not in the
# vocabulary, an unsupported model type, an id out of range to --decode.
set -euo pipefail
. "${top_srcdir:-.}/tests/lib.sh"
work=$(mktemp -d /tmp/weft-test-tokenize-XXXXXX)
trap 'rm -rf "$work"' EXIT

# a small Llama-3-style tokenizer.json: the 256 byte symbols, "Ġt", "he",
# "Ġthe", and <|end_of_text|> as an added token
python3 - "$work" <<'PY'
import json, sys
def byte_chars():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
bc = byte_chars()
vocab = {bc[b]: b for b in range(256)}
for t in ["\u0120t", "he", "\u0120the"]:
    vocab[t] = len(vocab)
regex = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
         "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
tj = {"version": "1.0", "normalizer": None,
      "added_tokens": [{"id": 259, "content": "<|end_of_text|>", "single_word": False, "lstrip": False,
                        "rstrip": False, "normalized": False, "special": True}],
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
          {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
      "decoder": {"type": "ByteLevel"},
      "model": {"type": "BPE", "dropout": None, "ignore_merges": True, "vocab": vocab,
                "merges": [["\u0120", "t"], ["h", "e"], ["\u0120t", "he"]]}}
d = sys.argv[1]
json.dump(tj, open(d + "/tokenizer.json", "w"))
bad = dict(tj, model=dict(tj["model"], merges=[["\u0120", "zz"]]))
json.dump(bad, open(d + "/badmerge.json", "w"))
wp = dict(tj, model={"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"})
json.dump(wp, open(d + "/wordpiece.json", "w"))
PY
mkdir "$work/dir" && cp "$work/tokenizer.json" "$work/dir/"

printf 'in the<|end_of_text|>' >"$work/in.txt"
ids=$(weft tokenize --tokenizer "$work/tokenizer.json" "$work/in.txt")
[ "$ids" = "105 110 258 259" ] || fail "ids of 'in the<|end_of_text|>': got '$ids'"
pass "encode: in the<|end_of_text|> -> $ids"
json=$(weft tokenize --tokenizer "$work/dir" --json - <"$work/in.txt")
[ "$json" = '{"ids": [105, 110, 258, 259]}' ] || fail "--json from a folder: got '$json'"
pass "--json, tokenizer found in a folder"
text=$(echo "$ids" | weft tokenize --tokenizer "$work/tokenizer.json" --decode)
[ "$text" = "in the<|end_of_text|>" ] || fail "decode: got '$text'"
text=$(echo "$json" | weft tokenize --tokenizer "$work/tokenizer.json" --decode)
[ "$text" = "in the<|end_of_text|>" ] || fail "decode of JSON: got '$text'"
pass "--decode of ids and of {\"ids\": [...]}"
info=$(weft tokenize --tokenizer "$work/tokenizer.json" --info)
echo "$info" | grep -qx "eot 259 <|end_of_text|>" || fail "--info: $info"
echo "$info" | grep -qx "sha256 $(sha256sum <"$work/tokenizer.json" | cut -c1-64)" ||
    fail "--info sha256: $info"
pass "--info: end-of-text id and SHA-256 of the file"

# refuse_one WHAT NEEDLE CMD...: non-zero exit, one line on stderr naming NEEDLE
refuse_one() {
    local what=$1 needle=$2 rc=0
    shift 2
    "$@" >"$work/out" 2>"$work/err" </dev/null || rc=$?
    [ $rc -ne 0 ] || fail "$what: accepted"
    [ "$(wc -l <"$work/err")" -eq 1 ] || fail "$what: not one line: $(cat "$work/err")"
    grep -qF -- "$needle" "$work/err" || fail "$what: '$(cat "$work/err")' lacks '$needle'"
    pass "$what refused: $(cat "$work/err")"
}
printf '{"model": {"type": "BPE",' >"$work/trunc.json"
refuse_one "not JSON" "not JSON" weft tokenize --tokenizer "$work/trunc.json" "$work/in.txt"
refuse_one "merge naming an unknown token" 'names token "zz", which is not in the vocabulary' \
    weft tokenize --tokenizer "$work/badmerge.json" "$work/in.txt"
refuse_one "WordPiece" "model type WordPiece is not supported" \
    weft tokenize --tokenizer "$work/wordpiece.json" "$work/in.txt"
echo "105 260" >"$work/ids.txt"
refuse_one "id out of range" "token id 260 (at position 1) is not in the vocabulary" \
    weft tokenize --tokenizer "$work/tokenizer.json" --decode "$work/ids.txt"
echo "105 x7" >"$work/ids.txt"
refuse_one "an id that is not a number" "'x7' (token 2) is not a token id" \
    weft tokenize --tokenizer "$work/tokenizer.json" --decode "$work/ids.txt"
summary
