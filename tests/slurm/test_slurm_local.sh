#!/bin/bash
# test_slurm_local.sh: scripts/slurm-local brings up a working single-node
# Slurm: a 2-task MPI batch job runs, and a batch script's USR1 trap fires
# under `scancel --signal=USR1 --batch`, requeues itself and runs again.
set -u

srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
SL=$srcdir/scripts/slurm-local
STATE=${WEFT_SLURM_DIR:-/var/lib/weft-slurm}
export SLURM_CONF=$STATE/slurm.conf
MPIRUN=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: a local Slurm needs root (scripts/slurm-local starts munge, slurmctld, slurmd)"
    exit 77
fi

# One Slurm test at a time (see slurm_lib.sh): a test must not stop the
# Slurm another one is using.
mkdir -p "$STATE"
exec 9>"$STATE/test.lock"
flock 9
was_running=no
"$SL" status >/dev/null 2>&1 && was_running=yes
if ! "$SL" start; then
    echo "SKIP: Slurm could not be installed or started by $SL (see its message above)"
    exit 77
fi

tmp=$(mktemp -d /tmp/weft-test-slurm-XXXXXX)
jobs=()
cleanup() {
    local j
    for j in "${jobs[@]}"; do scancel "$j" 2>/dev/null; done
    rm -rf "$tmp"
    [ "$was_running" = yes ] || "$SL" stop >/dev/null
}
trap cleanup EXIT

# Starting again while it runs says so and succeeds.
out=$("$SL" start) || fail "a second 'slurm-local start' failed: $out"
case $out in *"already running"*) ;; *) fail "a second start did not say 'already running': $out" ;; esac
"$SL" status >/dev/null || fail "'slurm-local status' exits non-zero while Slurm runs"

job_field() { scontrol show job "$1" 2>/dev/null | grep -oE "(^| )$2=[^ ]*" | head -n 1 | sed 's/^ *[^=]*=//'; }

# wait_job ID SECONDS: until the job reaches a final state; prints that state.
wait_job() {
    local i st
    for i in $(seq $(($2 * 2))); do
        st=$(job_field "$1" JobState)
        case $st in
        COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)
            echo "$st"; return 0 ;;
        esac
        sleep 0.5
    done
    echo "TIMEOUT-WAITING(${st:-none})"
}

# 1. sbatch -n 2 with a 2-rank mpirun (and srun --mpi=pmix when configured).
cat >"$tmp/mpi.sh" <<EOF
#!/bin/bash
$MPIRUN -np 2 hostname | sed 's/^/mpirun: /'
if grep -q '^MpiDefault=pmix' "$SLURM_CONF"; then srun --mpi=pmix -n 2 hostname | sed 's/^/srun: /'; fi
echo "tasks=\$SLURM_NTASKS"
EOF
j=$(sbatch --parsable -n 2 -o "$tmp/mpi.out" "$tmp/mpi.sh") || fail "sbatch -n 2 was refused"
jobs+=("$j")
st=$(wait_job "$j" 60)
[ "$st" = COMPLETED ] || fail "2-task job $j ended '$st'; output: $(cat "$tmp/mpi.out" 2>/dev/null)"
[ "$(job_field "$j" ExitCode)" = 0:0 ] || fail "2-task job $j exit code $(job_field "$j" ExitCode)"
host=$(hostname)
[ "$(grep -c "^mpirun: $host\$" "$tmp/mpi.out")" = 2 ] ||
    fail "mpirun inside sbatch -n 2 did not print the host twice: $(cat "$tmp/mpi.out")"
grep -qx 'tasks=2' "$tmp/mpi.out" || fail "SLURM_NTASKS was not 2: $(cat "$tmp/mpi.out")"
if grep -q '^MpiDefault=pmix' "$SLURM_CONF"; then
    [ "$(grep -c "^srun: $host\$" "$tmp/mpi.out")" = 2 ] ||
        fail "srun --mpi=pmix -n 2 did not print the host twice: $(cat "$tmp/mpi.out")"
fi

# 2. USR1 to the batch shell reaches its trap while it waits; the trap
#    requeues the job, which starts again with SLURM_RESTART_COUNT=1.
cat >"$tmp/trap.sh" <<'EOF'
#!/bin/bash
n=${SLURM_RESTART_COUNT:-0}
echo "start restart=$n"
if [ "$n" -ge 1 ]; then echo "resumed"; exit 0; fi
trap 'echo "usr1 restart=$n"; kill $child; scontrol requeue "$SLURM_JOB_ID" && echo requeued; exit 75' USR1
sleep 300 & child=$!
touch "$READY"
wait $child
echo "wait ended without a signal"
EOF
export READY=$tmp/ready
j=$(sbatch --parsable -n 1 --requeue --open-mode=append -o "$tmp/trap.out" "$tmp/trap.sh") ||
    fail "sbatch --requeue was refused"
jobs+=("$j")
for i in $(seq 60); do [ -e "$READY" ] && break; sleep 0.5; done
[ -e "$READY" ] || fail "requeue job $j never started (state $(job_field "$j" JobState))"
t0=$(date +%s)
scancel --signal=USR1 --batch "$j" || fail "scancel --signal=USR1 --batch $j failed"
st=$(wait_job "$j" 90)
t1=$(date +%s)
[ "$st" = COMPLETED ] || fail "requeued job $j ended '$st'; output: $(cat "$tmp/trap.out")"
grep -qx 'usr1 restart=0' "$tmp/trap.out" || fail "the batch shell's USR1 trap did not run: $(cat "$tmp/trap.out")"
grep -qx 'requeued' "$tmp/trap.out" || fail "scontrol requeue from the trap failed: $(cat "$tmp/trap.out")"
grep -qx 'start restart=1' "$tmp/trap.out" || fail "the job did not start again with SLURM_RESTART_COUNT=1: $(cat "$tmp/trap.out")"
grep -q 'wait ended' "$tmp/trap.out" && fail "wait returned without the trap: $(cat "$tmp/trap.out")"
[ "$(job_field "$j" Restarts)" = 1 ] || fail "job $j Restarts=$(job_field "$j" Restarts), expected 1"
echo "requeue: signal to completion of the restarted job took $((t1 - t0)) s"
echo "PASS"
