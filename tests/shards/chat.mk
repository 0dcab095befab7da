# tests/shards/chat.mk: instruction and chat data, from weft shard to the
# worker's rows of documents, weft eval and weft generate --chat.
TESTS += tests/shards/test_chat.sh tests/worker/test_chat_worker.sh
EXTRA_DIST += tests/shards/test_chat.sh tests/worker/test_chat_worker.sh
