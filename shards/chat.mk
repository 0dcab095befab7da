# shards/chat.mk: instruction and chat data: templates, the chat writer and
# packed document rows for the worker.
shards_libweftshards_a_SOURCES += \
	shards/chat_template.c shards/chat_template.h \
	shards/chat_writer.c shards/chat_writer.h \
	shards/docpack.c shards/docpack.h
