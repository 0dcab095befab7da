#!/bin/sh
# test_engine_cli.sh: `weft init-model` and `weft grad` end to end: files that
# h5dump and the grad tool read back, and one clear line for each bad input.
set -u
data="$top_srcdir/tests/engine/data"
tmp=$(mktemp -d /tmp/weft-engine-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_error WHAT NEEDLE CMD...: non-zero exit, one stderr line holding NEEDLE
expect_error() {
    what=$1 needle=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    lines=$(wc -l <"$tmp/err")
    if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "$what: exit $rc"; fi
    grep -qF -- "$needle" "$tmp/err" || fail "$what: stderr lacks '$needle': $(cat "$tmp/err")"
    [ "$lines" -eq 1 ] || grep -q '^usage:' "$tmp/err" || fail "$what: $lines lines on stderr"
    echo "ok: $what -> $(tail -n 1 "$tmp/err")"
}

# init-model writes a weft-model file with the contract's attributes and shapes
weft init-model --preset tiny --layers 3 --heads 4 --seed 5 -o "$tmp/m.h5" || fail "init-model"
"$H5DUMP" -a /n_layer "$tmp/m.h5" | grep -q '(0): 3' || fail "n_layer attribute"
"$H5DUMP" -a /format "$tmp/m.h5" | grep -q '"weft-model"' || fail "format attribute"
"$H5DUMP" -H -d /h/2/mlp/c_proj/weight "$tmp/m.h5" | grep -q 'SIMPLE { ( 128, 32 )' ||
    fail "c_proj weight shape [4C,C]"
[ ! -e "$tmp/m.h5.tmp" ] || fail "temporary file left behind"
# same seed, same bits; another seed, other bits
weft init-model --preset tiny --layers 3 --heads 4 --seed 5 -o "$tmp/m2.h5" >/dev/null
weft init-model --preset tiny --layers 3 --heads 4 --seed 6 -o "$tmp/m3.h5" >/dev/null
cmp -s "$tmp/m.h5" "$tmp/m2.h5" || fail "init-model is not deterministic"
cmp -s "$tmp/m.h5" "$tmp/m3.h5" && fail "init-model ignores --seed"

# grad on the committed reference batch reproduces the reference loss
weft grad --model "$data/tiny.h5" --batch "$data/tiny-grad.h5" -o "$tmp/g.h5" --logits \
    >"$tmp/out" || fail "grad"
"$H5DUMP" -H -d /logits "$tmp/g.h5" | grep -q '( 2, 32, 257 )' || fail "logits shape"
"$H5DUMP" -H -d /h/1/attn/c_attn/weight "$tmp/g.h5" | grep -q '( 32, 96 )' || fail "grad names"
want=$("$H5DUMP" -d /loss "$data/tiny-grad.h5" | sed -n 's/.*(0): \([0-9.]*\).*/\1/p')
got=$("$H5DUMP" -d /loss "$tmp/g.h5" | sed -n 's/.*(0): \([0-9.]*\).*/\1/p')
awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d / b < 1e-5) }' ||
    fail "grad loss $got, reference $want"

# bad input: one line, non-zero exit, no crash
expect_error "unknown preset" "unknown preset 'big'" weft init-model --preset big -o "$tmp/x.h5"
expect_error "heads do not divide" "n_embd = 32 is not divisible by n_head = 3" \
    weft init-model --preset tiny --heads 3 -o "$tmp/x.h5"
expect_error "bad number" "--layers: 'two'" weft init-model --preset tiny --layers two -o "$tmp/x.h5"
expect_error "byte vocab" "vocab_size >= 257" weft init-model --preset tiny --vocab 100 -o "$tmp/x.h5"
expect_error "no output folder" "does its folder exist" \
    weft init-model --preset tiny -o "$tmp/no/such/dir/x.h5"
expect_error "missing model" "cannot read the model file" \
    weft grad --model "$tmp/none.h5" --batch "$data/tiny-grad.h5" -o "$tmp/x.h5"
expect_error "model is not HDF5" "not an HDF5 file" \
    weft grad --model "$0" --batch "$data/tiny-grad.h5" -o "$tmp/x.h5"
expect_error "batch is a model" "missing dataset /inputs" \
    weft grad --model "$data/tiny.h5" --batch "$data/tiny.h5" -o "$tmp/x.h5"
expect_error "batch too long" "seq_len 32 is longer than the model's context n_ctx = 20" \
    weft grad --model "$data/l3h3.h5" --batch "$data/tiny-grad.h5" -o "$tmp/x.h5"
expect_error "token outside vocabulary" "outside the vocabulary" \
    weft grad --model "$tmp/m.h5" --batch "$data/l3h3-grad.h5" -o "$tmp/x.h5"
expect_error "missing options" "--model, --batch and -o are required" weft grad --model "$tmp/m.h5"
[ ! -e "$tmp/x.h5" ] || fail "an output file was written despite an error"

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all engine command checks passed"
