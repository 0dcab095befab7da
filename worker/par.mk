# worker/par.mk: the rank's threads for the engine's loops (libweftengine.a).
worker_libweftengine_a_SOURCES += worker/par.c worker/par.h worker/vexp.h
