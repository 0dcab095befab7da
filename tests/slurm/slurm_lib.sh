# slurm_lib.sh: sourced by the Slurm tests. slurm_up takes a lock (one test
# at a time uses the local Slurm), starts it with scripts/slurm-local when it
# is not running, or skips (77) when it cannot; slurm_down stops it again
# when this test started it. wait_final waits for a job's final state.
# shellcheck shell=bash
SL=${top_srcdir:?}/scripts/slurm-local
SLURM_STATE=${WEFT_SLURM_DIR:-/var/lib/weft-slurm}
slurm_was_running=yes

slurm_up() {
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP: a local Slurm needs root (scripts/slurm-local starts munge, slurmctld, slurmd)"
        exit 77
    fi
    mkdir -p "$SLURM_STATE"
    exec 9>"$SLURM_STATE/test.lock"
    flock 9
    slurm_was_running=no
    "$SL" status >/dev/null 2>&1 && slurm_was_running=yes
    if ! "$SL" start >/dev/null; then
        echo "SKIP: Slurm could not be installed or started by $SL (see its message above)"
        exit 77
    fi
    export SLURM_CONF=$SLURM_STATE/slurm.conf
}

slurm_down() {
    [ "$slurm_was_running" = yes ] || "$SL" stop >/dev/null
}

# job_field JOB FIELD: a field of `scontrol show job` (the first task's).
job_field() {
    scontrol show job "$1" 2>/dev/null | grep -oE "(^| )$2=[^ ]*" | head -n 1 | sed 's/^ *[^=]*=//'
}

# wait_final JOB SECONDS: prints the job's final state (or TIMEOUT-WAITING).
wait_final() {
    local i st
    for i in $(seq $(($2 * 2))); do
        st=$(job_field "$1" JobState)
        case $st in
        COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
            echo "$st"
            return 0
            ;;
        esac
        sleep 0.5
    done
    echo "TIMEOUT-WAITING(${st:-none})"
}
