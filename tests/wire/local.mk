# tests/wire/: tests of the wire area (owned with that area).
