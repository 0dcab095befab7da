# tests/chaos/: faults while weftd runs a batch (kill -9 of a rank, of
# mpirun, of weftd; SIGUSR1 to a group), and a checkpoint that does not fit
# on its disk. make check runs one short chaos round; `make chaos
# CHAOS_ROUNDS=N` runs N (CHAOS_SEED=S replays the random choices).
TESTS += tests/chaos/test_chaos.sh tests/chaos/test_ckpt_full.sh
EXTRA_DIST += tests/chaos/test_chaos.sh tests/chaos/test_ckpt_full.sh
# CHAOS_ROUNDS comes from the environment or the make command line; make
# check runs test_chaos.sh with its own default of one round.
chaos: all
	CHAOS_ROUNDS=$${CHAOS_ROUNDS:-5} $(MAKE) $(AM_MAKEFLAGS) check TESTS=tests/chaos/test_chaos.sh
	@grep -E '^(chaos|ok|FAIL)' tests/chaos/test_chaos.log
.PHONY: chaos
