#!/bin/bash
# test_readme_tour.sh: README.md's five-minute tour, its own code block run
# with bash -e from a copy of README.md and jobs/examples (a fresh clone), as
# a new user would: HOME of its own, and as root without Open MPI's root
# variables (weftd sets them for its mpirun). Only sizes shrink: the tiny
# preset for the backbone, and fewer steps and shorter rows in nightly.cfg.
set -u
. "$top_srcdir/tests/lib.sh"

T=$(mktemp -d /tmp/weft-test-tour-XXXXXX)
cleanup() {
    [ -f "$T/home/.weft/weftd.pid" ] && kill "$(cat "$T/home/.weft/weftd.pid")" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/clone/jobs" "$T/home"
cp "$top_srcdir/README.md" "$T/clone/"
cp -r "$top_srcdir/jobs/examples" "$T/clone/jobs/"
chmod -R u+w "$T/clone"
rm -rf "$T/clone/jobs/examples/data" "$T/clone/jobs/examples/models" "$T/clone/jobs/examples/runs"
cd "$T/clone"

awk '/^## A five-minute tour/ { t = 1 } t && /^```sh$/ { b = 1; next } b && /^```$/ { exit }
     b { print }' README.md > "$T/tour.sh"
grep -q "^weftd " "$T/tour.sh" || fail "no tour found in README.md: $(cat "$T/tour.sh")"

# sizes, not commands: every substitution must find its text
shrink() { # file from to
    grep -qF -- "$2" "$1" || fail "$1 no longer holds '$2'"
    sed -i "s/$2/$3/" "$1"
}
shrink "$T/tour.sh" "--preset small" "--preset tiny"
cfg=jobs/examples/nightly.cfg
shrink $cfg "steps = 400;" "steps = 8;"
shrink $cfg "seq_len = 128;" "seq_len = 16;"
shrink $cfg "batch_size = 8;" "batch_size = 4;"
shrink $cfg "warmup = 20;" "warmup = 2;"
shrink $cfg "eval_every = 50;" "eval_every = 4;"
shrink $cfg "checkpoint_every = 50;" "checkpoint_every = 4;"
shrink $cfg "steps = 200;" "steps = 6;"

HOME="$T/home" timeout 120 env -u OMPI_ALLOW_RUN_AS_ROOT -u OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    bash -e -x "$T/tour.sh" >"$T/tour.log" 2>&1 ||
    fail "the tour stopped: $(tail -15 "$T/tour.log"; tail -5 "$T/home/.weft/weftd.log" 2>/dev/null)"
pass "README.md's tour ran as written, every command exit 0"

ex=jobs/examples
for t in acme globex; do
    [ -s $ex/runs/nightly/$t/adapter.h5 ] || fail "no adapter for $t: $(ls -R $ex/runs)"
done
[ ! -e $ex/runs/nightly/initech/adapter.h5 ] || fail "the cancelled tenant wrote an adapter"
[ -s $ex/curves.png ] || [ -s $ex/curves.csv ] || fail "weft plot wrote no curves"
grep -aq "^Dear customer," "$T/tour.log" || fail "weft generate printed no continuation"
# weft results: the cancelled tenant ranks last (table rows: rank, job id; the lines
# after the table give each finished job's paths)
last=$(sed -n '/+ weft results 1/,/+ weft plot/p' "$T/tour.log" | grep -aE "^[0-9]+ +[0-9]+ " | tail -1)
echo "$last" | grep -q "cancelled" || fail "results do not end with the cancelled job: $last"
pass "adapters for acme and globex, none for the cancelled initech, curves, a continuation"
summary
