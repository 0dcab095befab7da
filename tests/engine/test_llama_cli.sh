#!/bin/bash
# test_llama_cli.sh: `weft init-model --arch llama`, `weft grad`, `weft
# generate` and `weft eval` on Llama files end to end, and one clear line for
# each bad option.
set -u
. "$top_srcdir/tests/lib.sh"
data="$top_srcdir/tests/engine/data"
T=$(mktemp -d /tmp/weft-llama-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"

expect_error() { # what needle cmd...
    local what=$1 needle=$2
    shift 2
    "$@" >out 2>err
    local rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "$what: exit $rc"
    grep -qF -- "$needle" err || fail "$what: stderr lacks '$needle': $(cat err)"
    [ "$(wc -l <err)" -eq 1 ] || fail "$what: $(wc -l <err) lines on stderr"
    echo "ok: $what -> $(cat err)"
}

weft init-model --arch llama --preset llama-tiny --vocab 300 --bias q,k,v --tie 0 \
    --rope-scaling llama3:8:1:4:16 -o m.h5 >/dev/null || fail "init-model --arch llama"
h5dump -a /version m.h5 | grep -q '(0): 2' || fail "version 2"
h5dump -a /arch m.h5 | grep -q '"llama"' || fail "arch llama"
h5dump -a /rope_scaling_type m.h5 | grep -q '"llama3"' || fail "rope_scaling_type"
h5dump -H -d /model/layers/1/self_attn/k_proj/weight m.h5 | grep -q 'SIMPLE { ( 16, 32 )' ||
    fail "k_proj weight [KV*hd, C] (nn.Linear layout)"
h5dump -H -d /model/layers/0/self_attn/q_proj/bias m.h5 | grep -q 'SIMPLE { ( 32 )' ||
    fail "q_proj bias"
h5dump -H -d /lm_head/weight m.h5 | grep -q 'SIMPLE { ( 300, 32 )' || fail "untied lm_head"
! h5dump -H -d /model/layers/0/self_attn/o_proj/bias m.h5 >/dev/null 2>&1 ||
    fail "o_proj has a bias it was not asked for"
pass "init-model --arch llama writes version 2 in Hugging Face's names and layout"

weft grad --model "$data/lgqa.h5" --batch "$data/lgqa-grad.h5" -o g.h5 >grad.log ||
    fail "grad: $(cat grad.log)"
grep -q "^loss 5.70888" grad.log || fail "grad loss is not the reference's 5.708890: $(cat grad.log)"
h5dump -H -d /model/layers/1/mlp/down_proj/weight g.h5 >/dev/null 2>&1 ||
    fail "grad file lacks a Llama gradient"
pass "weft grad on a Llama model gives the reference loss"

weft generate --model m.h5 --prompt "hello" --tokens 5 >gen.out || fail "generate"
grep -q "^hello" gen.out || fail "generate did not echo the prompt"
make_corpus a GPL-3
weft eval --model m.h5 --data a.h5 --windows 2 --seq-len 16 >eval.out || fail "eval"
grep -Eq "[0-9]+\.[0-9]+" eval.out || fail "eval printed no loss: $(cat eval.out)"
pass "weft generate and weft eval on a Llama model"

expect_error "llama option on gpt2" "do not apply to preset 'tiny'" \
    weft init-model --preset tiny --kv-heads 2 -o x.h5
expect_error "arch and preset disagree" "--arch llama does not match preset 'gpt2'" \
    weft init-model --arch llama --preset gpt2 -o x.h5
expect_error "kv heads" "is not divisible by n_kv_head = 3" \
    weft init-model --preset llama-tiny --kv-heads 3 -o x.h5
expect_error "rope type" "--rope-scaling 'yarn:4'" \
    weft init-model --preset llama-tiny --rope-scaling yarn:4 -o x.h5
expect_error "bias name" "--bias: 'c_attn' is not a projection" \
    weft init-model --preset llama-tiny --bias q,c_attn -o x.h5
exit 0
