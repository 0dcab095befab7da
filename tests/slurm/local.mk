# tests/slurm/: tests against a real single-node Slurm (skip with 77 when it cannot run).
TESTS += tests/slurm/test_slurm_local.sh tests/slurm/test_sbatch.sh
EXTRA_DIST += tests/slurm/test_slurm_local.sh tests/slurm/test_sbatch.sh tests/slurm/slurm_lib.sh \
	scripts/slurm-local
