# tests/shards/: the shard writer and reader, through the library and the
# real `weft shard` command.
check_PROGRAMS += tests/shards/test_shard_writer
tests_shards_test_shard_writer_SOURCES = tests/shards/test_shard_writer.c \
	tests/shards/testutil.c tests/shards/testutil.h
tests_shards_test_shard_writer_CFLAGS = $(TEST_CFLAGS)
tests_shards_test_shard_writer_LDADD = $(SHARDS_LIBS) \
	$(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/shards/test_shard_writer

check_PROGRAMS += tests/shards/test_shardset
tests_shards_test_shardset_SOURCES = tests/shards/test_shardset.c \
	tests/shards/testutil.c tests/shards/testutil.h
tests_shards_test_shardset_CFLAGS = $(TEST_CFLAGS)
tests_shards_test_shardset_LDADD = $(SHARDS_LIBS) \
	$(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/shards/test_shardset

# h5py reads the file, and the example in docs/FORMATS-shards.md runs.
TESTS += tests/shards/test_h5py.py
EXTRA_DIST += tests/shards/test_h5py.py docs/FORMATS-shards.md

# Several MPI ranks reading one shard file (the program runs under mpirun).
check_PROGRAMS += tests/shards/mpi_windows
tests_shards_mpi_windows_SOURCES = tests/shards/mpi_windows.c
tests_shards_mpi_windows_LDADD = $(SHARDS_LIBS) $(WEFT_LIBS)
TESTS += tests/shards/test_mpi.sh
EXTRA_DIST += tests/shards/test_mpi.sh
