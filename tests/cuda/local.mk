# tests/cuda/: resources.device = "cuda" through weft-worker; without a CUDA
# build or a GPU it checks the one-line refusals (scripts/device-check runs it
# on a GPU).
TESTS += tests/cuda/test_cuda_worker.sh
EXTRA_DIST += tests/cuda/test_cuda_worker.sh
TESTS += tests/cuda/test_cuda_sbatch.sh
EXTRA_DIST += tests/cuda/test_cuda_sbatch.sh
