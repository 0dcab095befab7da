# tests/engine/: tests of the engine area (owned with that area).
