# tests/jobs/: tests of the jobs area (owned with that area).
