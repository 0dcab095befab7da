# shards/: `weft shard` (text/JSONL -> HDF5 weft-shards) and the reader.
noinst_LIBRARIES += shards/libweftshards.a
shards_libweftshards_a_SOURCES = shards/shard_cmd.c
