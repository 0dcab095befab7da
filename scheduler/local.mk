# scheduler/: the `weft` command's dispatcher (and, later, weftd).
bin_PROGRAMS += weft
weft_SOURCES = scheduler/weft.c common/weft_cmds.h scheduler/client.c scheduler/client.h \
	scheduler/keygen_cmd.c \
	scheduler/sbatch_cmd.c
weft_LDADD = scheduler/libweftsched.a worker/libweftmodel.a worker/libweftengine.a jobs/libweftjobs.a \
	shards/libweftshards.a model/libwefttok.a common/libweftwire.a common/libweftcommon.a $(WEFT_LIBS)

# weftd's parts: the store (and, to come, api, planner, executors, monitor).
noinst_LIBRARIES += scheduler/libweftsched.a
scheduler_libweftsched_a_SOURCES = scheduler/store.c scheduler/store.h \
	scheduler/planner.c scheduler/planner.h \
	scheduler/tenant_path.c scheduler/tenant_path.h \
	scheduler/exec_local.c scheduler/exec_local.h \
	scheduler/exec_slurm.c scheduler/exec_slurm.h

# The Slurm batch script, built into weft and weftd as a C string.
scheduler/weft_sbatch.h: $(top_srcdir)/scripts/weft.sbatch
	$(AM_V_GEN)$(MKDIR_P) scheduler && \
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< >$@.tmp && mv $@.tmp $@
scheduler/exec_slurm.$(OBJEXT): scheduler/weft_sbatch.h
CLEANFILES += scheduler/weft_sbatch.h
EXTRA_DIST += scripts/weft.sbatch

bin_PROGRAMS += weftd
weftd_SOURCES = scheduler/weftd.c scheduler/weftd.h scheduler/api.c scheduler/monitor.c \
	scheduler/zap.c scheduler/zap.h \
	scheduler/prepare.c scheduler/published.c scheduler/published.h
weftd_SOURCES += scheduler/admit.c
weftd_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/jobs -I$(top_srcdir)/scheduler
weftd_LDADD = scheduler/libweftsched.a jobs/libweftjobs.a shards/libweftshards.a model/libwefttok.a common/libweftwire.a \
	common/libweftcommon.a $(WEFT_LIBS)

dist_man_MANS += docs/man/weft.1 docs/man/weftd.1 docs/man/weft-worker.1
include scheduler/asha.mk
