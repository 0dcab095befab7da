#!/bin/bash
# test_weftd_results_rank.sh: `weft results` of a batch through a real weftd
# ranks the succeeded jobs by best validation loss and the failed and
# cancelled ones after them (each part by its own best validation loss), in
# the table, --csv and --json alike. The failed and the cancelled job both
# have a lower validation loss than a succeeded one, so that a ranking by
# validation loss alone puts them ahead of it.
set -u
. "$top_srcdir/tests/scheduler/weftd_lib.sh"
weftd_tmp results-rank

make_corpus good GPL-3 >/dev/null
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"

# good and slow succeed (slow's rate hardly moves its loss); nopub trains as
# well as good but its output folder is taken by a file, so its result cannot
# be published and it fails; endless would train for ever and is cancelled
# once the others have ended (it has been evaluated every 3 steps by then).
mkdir out-rank
echo "not a folder" > out-rank/nopub
spec rank out-rank good:good.h5 "slow:good.h5:lr = 1e-6;" "nopub:good.h5:lr = 0.02;" \
    "endless:good.h5:steps = 100000;" > rank.cfg
start home1
W home1 submit rank.cfg > submit.log || fail "submit: $(cat submit.log)"
id_of() { awk -v n="$1" '$2 == n { print $1 }' submit.log; }
for t in good slow nopub endless; do [ -n "$(id_of $t)" ] || fail "no job for $t: $(cat submit.log)"; done

deadline=$((SECONDS + 40))
until [ "$(state_of home1 "$(id_of good)")" = succeeded ] &&
    [ "$(state_of home1 "$(id_of slow)")" = succeeded ] &&
    [ "$(state_of home1 "$(id_of nopub)")" = failed ]; do
    [ $SECONDS -lt $deadline ] || fail "good, slow, nopub are $(state_of home1 "$(id_of good)")," \
        "$(state_of home1 "$(id_of slow)"), $(state_of home1 "$(id_of nopub)") after 40 s"
    sleep 0.5
done
W home1 show "$(id_of nopub)" | grep -q "cannot publish" || fail "nopub failed for another reason:" \
    "$(W home1 show "$(id_of nopub)")"
[ "$(state_of home1 "$(id_of endless)")" = running ] ||
    fail "endless is $(state_of home1 "$(id_of endless)"), want running"
W home1 cancel "$(id_of endless)" | grep -q ": cancelled" || fail "cancel endless"
# the run ends once its last tenant has left: no metric comes after that
for _ in $(seq 100); do
    W home1 show "$(id_of endless)" --json | grep -q '"run_state": "\(pending\|launched\|running\)"' ||
        break
    sleep 0.2
done
pass "2 jobs succeeded, 1 failed at publishing, 1 cancelled while training"

W home1 results "$(id_of good)" --json > res.json || fail "results --json"
W home1 results "$(id_of good)" > res.txt || fail "results"
W home1 results "$(id_of good)" --csv > res.csv || fail "results --csv"
# The table's and the CSV's rows, as "name state".
awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ { print $3, $4 }' res.txt > table.rows
awk -F, 'NR > 1 { print $3, $4 }' res.csv > csv.rows
/usr/bin/python3 - res.json table.rows csv.rows <<'PY' || fail "weft results ranks them wrong"
import json, sys


def check(ok, why):
    if not ok:
        print(why)
        sys.exit(1)


jobs = json.load(open(sys.argv[1]))["jobs"]
got = [(j["name"], j["state"]) for j in jobs]
best = {j["name"]: j["best_val_loss"] for j in jobs}
state = dict(got)
want_state = {"good": "succeeded", "slow": "succeeded", "nopub": "failed", "endless": "cancelled"}
check(state == want_state, "states %s, want %s" % (state, want_state))
check(all(isinstance(v, float) for v in best.values()), "a job has no val loss: %s" % best)
# The setting bites: by val loss alone the failed and the cancelled job
# would rank ahead of slow (and good is ahead of slow).
for n in ("nopub", "endless", "good"):
    check(best[n] < best["slow"], "%s's val loss is not below slow's: %s" % (n, best))
bad = sorted(("nopub", "endless"), key=lambda n: best[n])
want = [(n, state[n]) for n in ["good", "slow"] + bad]
print("results:", ", ".join("%s %s %.4f" % (n, s, best[n]) for n, s in got))
check(got == want, "JSON order %s, want %s" % (got, want))
for what, path in (("table", sys.argv[2]), ("CSV", sys.argv[3])):
    rows = [tuple(line.split()) for line in open(path)]
    check(rows == want, "%s order %s, want %s" % (what, rows, want))
PY
pass "results, --csv and --json: succeeded by val loss first, then failed and cancelled by val loss"

summary
