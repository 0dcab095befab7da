#!/bin/bash
# test_chaos.sh: faults injected at random while weftd runs a nightly batch
# of LoRA tenants (tiny preset, real weftd, mpirun and weft-worker): kill -9
# of a worker rank, of mpirun, of weftd (restarted at once), SIGUSR1 to a
# group. Afterwards every job must have succeeded, every adapter must be
# bitwise equal to a fault-free run's, and every (job, step) metric must be
# stored exactly once.
#
# CHAOS_ROUNDS rounds (default 1), CHAOS_FAULTS faults per round (default 4),
# CHAOS_SEED for the random choices (printed, to replay a failing round),
# CHAOS_STEPS steps per tenant (default 1000: long enough for the faults to
# land mid-run), CHAOS_KINDS the faults to draw
# from (default "rank mpirun weftd usr1 admit"; admit: kill -9 of a rank once
# a tenant has ended and its slot went to a waiting one, before or around the
# newcomer's first steps).
set -u
. "$top_srcdir/tests/lib.sh"

ROUNDS=${CHAOS_ROUNDS:-1}
FAULTS=${CHAOS_FAULTS:-4}
KINDS=${CHAOS_KINDS:-rank mpirun weftd usr1 admit}
SEED=${CHAOS_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
STEPS=${CHAOS_STEPS:-1000}
echo "chaos: $ROUNDS round(s) of $FAULTS faults ($KINDS), CHAOS_SEED=$SEED"

T=$(mktemp -d /tmp/weft-test-chaos-XXXXXX)
cleanup() {
    for h in "$T"/home*; do
        [ -f "$h/weftd.pid" ] && kill "$(cat "$h/weftd.pid")" 2>/dev/null
    done
    pkill -9 -f "^[^ ]*weft-worker $T/" 2>/dev/null
    pkill -9 -f "^[^ ]*mpirun .*$T/" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

i=0
for lic in GPL-3 Apache-2.0 Artistic MPL-2.0; do
    make_corpus t$i $lic >/dev/null
    i=$((i + 1))
done
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"

batch() { # name
    {
        echo "name = \"$1\"; mode = \"lora\"; model = \"base.h5\"; output = \"out-$1\";"
        echo "train = { steps = $STEPS; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 20;"
        echo "          checkpoint_every = 5; eval_windows = 4; max_attempts = 50; };"
        echo "lora = { r = 4; alpha = 8.0; targets = [\"attn.c_attn\", \"attn.c_proj\"]; };"
        echo "resources = { ranks = 2; threads = 1; };"
        echo "tenants = ( { name = \"t0\"; data = \"t0.h5\"; }, { name = \"t1\"; data = \"t1.h5\"; },"
        echo "            { name = \"t2\"; data = \"t2.h5\"; }, { name = \"t3\"; data = \"t3.h5\"; } );"
    } > "$1.cfg"
}
start() { weftd --home "$T/$1" --slots 2 --pack-size 2 --liveness 10 >/dev/null ||
    fail "weftd would not start on $1"; }
W() { local h=$1; shift; weft --home "$T/$h" "$@"; }
db() { sqlite3 "$T/$1/weft.db" "$2" 2>/dev/null; }

# The fault-free reference.
batch ref
start home0
t0=$(date +%s)
W home0 submit ref.cfg --wait >ref.log 2>&1 || fail "fault-free batch: $(tail -5 ref.log)"
echo "chaos: the fault-free batch took $(( $(date +%s) - t0 )) s"

pick() { # a random word of its arguments
    local a=("$@")
    [ ${#a[@]} -gt 0 ] && echo "${a[RANDOM % ${#a[@]}]}"
}

for r in $(seq "$ROUNDS"); do
    h=home$r
    batch round$r
    start $h
    W $h submit round$r.cfg >/dev/null || fail "round $r: submit"
    done_faults=0
    log=""
    deadline=$(( $(date +%s) + 600 ))
    while [ "$(db $h "select count(*) from jobs where state >= 3")" != 4 ]; do
        [ "$(date +%s)" -lt $deadline ] || fail "round $r: jobs still unfinished after 600 s ($log)"
        sleep "$(( RANDOM % 2 )).$(( RANDOM % 10 ))5"
        [ $done_faults -lt "$FAULTS" ] || continue
        ranks=$(pgrep -f "^[^ ]*weft-worker $T/$h/")
        mpi=$(pgrep -f "^[^ ]*mpirun .*$T/$h/")
        [ -n "$ranks$mpi" ] || continue
        case $(pick $KINDS) in
        rank) p=$(pick $ranks); [ -n "$p" ] && kill -9 "$p" 2>/dev/null && log="$log rank" ;;
        mpirun) p=$(pick $mpi); [ -n "$p" ] && kill -9 "$p" 2>/dev/null && log="$log mpirun" ;;
        weftd) kill -9 "$(cat "$T/$h/weftd.pid")"; sleep 0.$(( RANDOM % 10 )); start $h
           log="$log weftd" ;;
        usr1) p=$(pick $mpi); [ -n "$p" ] && kill -USR1 "$p" 2>/dev/null && log="$log usr1" ;;
        admit) # the run holds all four jobs, two training: strike after a slot refilled
           [ "$(db $h "select count(*) from jobs where state = 3")" -ge 1 ] || continue
           p=$(pick $ranks); [ -n "$p" ] && kill -9 "$p" 2>/dev/null && log="$log admit" ;;
        esac
        done_faults=$(( done_faults + 1 ))
    done
    echo "chaos: round $r faults:$log"
    ok=$(db $h "select count(*) from jobs where state = 3")
    [ "$ok" = 4 ] || fail "round $r ($log): $ok of 4 jobs succeeded: $(db $h "select id, state, error from jobs")"
    for k in 0 1 2 3; do
        cmp -s out-ref/t$k/adapter.h5 out-round$r/t$k/adapter.h5 ||
            fail "round $r ($log): t$k's adapter differs from the fault-free run's"
    done
    bad=$(db $h "select count(*) from (select job, count(*) c, count(distinct step) d, min(step) a, max(step) m from metrics where kind = 'train' group by job) where c != $STEPS or d != $STEPS or a != 1 or m != $STEPS")
    jobs=$(db $h "select count(distinct job) from metrics where kind = 'train'")
    [ "$bad" = 0 ] && [ "$jobs" = 4 ] ||
        fail "round $r ($log): $bad job(s) without each of $STEPS steps exactly once ($jobs jobs; job|rows|distinct|min|max: $(db $h "select job, count(*), count(distinct step), min(step), max(step) from metrics where kind = 'train' group by job" | tr '\n' ' '))"
    attempts=$(db $h "select max(attempt) from runs")
    pass "chaos round $r (faults:$log; up to $attempts attempts): 4 jobs succeeded, adapters bit-identical, each step stored once"
    kill "$(cat "$T/$h/weftd.pid")" 2>/dev/null
done
summary
