# worker/packing.mk: packed documents in the engine (block-diagonal
# attention, positions restarting per document).
worker_libweftengine_a_SOURCES += worker/docattn.c worker/docattn.h
