# tests/input/: hostile and new-user input across areas: files that would
# load as wrong values, and the README's tour run as written.
TESTS += tests/input/test_hostile_files.py tests/input/test_worker_vocab.sh \
	tests/input/test_readme_tour.sh
EXTRA_DIST += tests/input/test_hostile_files.py tests/input/test_worker_vocab.sh \
	tests/input/test_readme_tour.sh
