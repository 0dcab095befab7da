# scheduler/: the `weft` command's dispatcher (and, later, weftd).
bin_PROGRAMS += weft
weft_SOURCES = scheduler/weft.c common/weft_cmds.h
weft_LDADD = worker/libweftmodel.a worker/libweftengine.a jobs/libweftjobs.a \
	shards/libweftshards.a common/libweftcommon.a $(WEFT_LIBS)
