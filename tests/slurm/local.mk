# tests/slurm/: tests against a real single-node Slurm (skip with 77 when it cannot run).
