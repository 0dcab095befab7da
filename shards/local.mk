# shards/: `weft shard` (text/JSONL -> HDF5 weft-shards), its writer and the
# reader (shardset) the worker uses.
noinst_LIBRARIES += shards/libweftshards.a
shards_libweftshards_a_SOURCES = \
	shards/shard_format.h \
	shards/shard_sha256.c shards/shard_sha256.h \
	shards/shard_writer.c shards/shard_writer.h \
	shards/shardset.c shards/shardset.h \
	shards/shard_cmd.c
# The writer deflates token chunks itself, with libdeflate when configure
# found it (HAVE_LIBDEFLATE_H) and zlib otherwise; both are in LIBS.
