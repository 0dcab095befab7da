# tests/slurm/: tests against a real single-node Slurm (skip with 77 when it cannot run).
TESTS += tests/slurm/test_slurm_local.sh tests/slurm/test_sbatch.sh \
	tests/slurm/test_weftd_slurm.sh
EXTRA_DIST += tests/slurm/test_slurm_local.sh tests/slurm/test_sbatch.sh tests/slurm/slurm_lib.sh \
	tests/slurm/test_weftd_slurm.sh \
	scripts/slurm-local
