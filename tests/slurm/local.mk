# tests/slurm/: tests against a real single-node Slurm (skip with 77 when it cannot run).
TESTS += tests/slurm/test_slurm_local.sh
EXTRA_DIST += tests/slurm/test_slurm_local.sh scripts/slurm-local
