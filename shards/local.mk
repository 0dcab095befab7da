# shards/: `weft shard` (text/JSONL -> HDF5 weft-shards), its writer and the
# reader (shardset) the worker uses.
noinst_LIBRARIES += shards/libweftshards.a
shards_libweftshards_a_SOURCES = \
	shards/shard_format.h \
	shards/shard_writer.c shards/shard_writer.h \
	shards/shardset.c shards/shardset.h \
	shards/shard_cmd.c
