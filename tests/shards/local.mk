# tests/shards/: tests of the shards area (owned with that area).
