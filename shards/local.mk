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
# Instruction and chat data: templates, the chat writer, packed document rows.
shards_libweftshards_a_SOURCES += \
	shards/chat_template.c shards/chat_template.h \
	shards/chat_writer.c shards/chat_writer.h \
	shards/docpack.c shards/docpack.h
