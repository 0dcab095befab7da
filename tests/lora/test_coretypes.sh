#!/bin/bash
# test_coretypes.sh: the bitwise claims under every OpenBLAS kernel family
# this CPU can execute (OPENBLAS_CORETYPE), with 1 and 2 threads:
#   - the engines' determinism and references (GPT-2 and Llama), and the LoRA pack's
#     invariance and NaN isolation (the Check programs, small and large
#     shapes);
#   - through weft-worker under mpirun, at a shape whose products are large
#     (C256, 256 to 384 rows a tenant, LoRA on all four modules): a pack of
#     4 tenants gives each tenant the adapter its solo run gives, bit for
#     bit, and a pack killed mid-run resumes to the same bits.
# A machine with AVX-512 adds SkylakeX; one without AVX2 tests fewer.
set -u
. "$top_srcdir/tests/lib.sh"

# The kernel families of Debian's DYNAMIC_ARCH OpenBLAS this CPU can run.
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
cores="Prescott"
has avx && cores="$cores Sandybridge"
has avx2 && has fma && cores="$cores Haswell Zen"
has avx512f && has avx512bw && has avx512vl && has avx512dq && cores="$cores SkylakeX"
echo "kernel families: $cores"

B=$top_builddir/tests
for core in $cores; do
    for th in 1 2; do
        for t in lora/test_pack lora/test_lora engine/test_engine engine/test_llama; do
            out=$(OPENBLAS_CORETYPE=$core WEFT_TEST_THREADS=$th OPENBLAS_NUM_THREADS=$th \
                "$B/$t" 2>&1) || fail "$t under $core with $th thread(s): $(echo "$out" | grep -m3 ':F:\|:E:')"
        done
    done
    pass "test_pack, test_lora, test_engine, test_llama under $core with 1 and 2 threads"
done

test_tmp coretypes
make_corpora 4
weft init-model --preset tiny --layers 1 --heads 4 --embd 256 --ctx 64 --seed 5 -o base.h5 \
    >/dev/null || fail "init-model"

# spec NAME THREADS TENANT...: a LoRA run of the named tenants (a b c d),
# each with its own batch, rank, learning rate and dropout.
spec() {
    local name=$1 th=$2 t
    shift 2
    {
        cat <<CFG
name = "$name"; mode = "lora"; model = "base.h5"; output = "$name";
train = { steps = 6; batch_size = 4; seq_len = 64; lr = 0.01; eval_every = 3;
          checkpoint_every = 3; keep_checkpoints = 2; eval_windows = 2; seed = 7; };
lora = { r = 4; alpha = 8.0; dropout = 0.1;
         targets = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]; };
resources = { ranks = 1; threads = $th; };
CFG
        echo "tenants = ("
        local sep=""
        for t in "$@"; do
            case $t in
            a) echo "$sep{ name = \"a\"; data = \"a.h5\"; }" ;;
            b) echo "$sep{ name = \"b\"; data = \"b.h5\"; batch_size = 6; r = 8; alpha = 4.0; lr = 0.003; }" ;;
            c) echo "$sep{ name = \"c\"; data = \"c.h5\"; batch_size = 5; dropout = 0.0; }" ;;
            d) echo "$sep{ name = \"d\"; data = \"d.h5\"; r = 2; lr = 0.02; }" ;;
            esac
            sep=","
        done
        echo ");"
    } > "$name.cfg"
}

run() { # core threads cfg [env...]
    local core=$1 th=$2 cfg=$3
    shift 3
    env OPENBLAS_CORETYPE="$core" OPENBLAS_NUM_THREADS="$th" "$@" \
        mpirun -np 1 weft-worker "$cfg" > "${cfg%.cfg}.log" 2>&1
}

for core in $cores; do
    for th in 1 2; do
        p=pack-$core-$th
        spec "$p" "$th" a b c d
        run "$core" "$th" "$p.cfg" || fail "pack under $core/$th: $(tail -3 "$p.log")"
        for t in a b c d; do
            s=solo-$core-$th-$t
            spec "$s" "$th" "$t"
            run "$core" "$th" "$s.cfg" || fail "$t alone under $core/$th: $(tail -3 "$s.log")"
            cmp -s "$p/$t/adapter.h5" "$s/$t/adapter.h5" ||
                fail "tenant $t under $core with $th thread(s): packed adapter differs from its solo run's"
        done
        k=kill-$core-$th
        spec "$k" "$th" a b c d
        run "$core" "$th" "$k.cfg" WEFT_FAULT=0:5:kill && fail "the killed pack exited 0"
        mv "$k.log" "$k-1.log"
        run "$core" "$th" "$k.cfg" || fail "resume under $core/$th: $(tail -3 "$k.log")"
        grep -q "resuming from" "$k.log" || fail "no resume under $core/$th: $(head -3 "$k.log")"
        for t in a b c d; do
            cmp -s "$p/$t/adapter.h5" "$k/$t/adapter.h5" ||
                fail "tenant $t under $core/$th: killed and resumed pack differs from the whole run"
        done
    done
    pass "weft-worker under $core, 1 and 2 threads: pack of 4 = each tenant alone; kill + resume = same bits"
done
summary
