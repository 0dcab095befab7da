# shards/: `weft shard` (text/JSONL -> HDF5 weft-shards), its writer and the
# reader (shardset) the worker uses.
noinst_LIBRARIES += shards/libweftshards.a
shards_libweftshards_a_SOURCES = \
	shards/shard_format.h \
	shards/shard_sha256.c shards/shard_sha256.h \
	shards/shard_writer.c shards/shard_writer.h \
	shards/shardset.c shards/shardset.h \
	shards/shard_cmd.c
# The writer encodes token chunks itself: with libdeflate (libdeflate-dev)
# when its header is installed, twice as fast, else with zlib (zlib1g-dev,
# which libhdf5-openmpi-dev already depends on). shard_writer.c tests the
# same header with __has_include.
WEFT_LIBS += -lz $(if $(wildcard /usr/include/libdeflate.h),-ldeflate)
