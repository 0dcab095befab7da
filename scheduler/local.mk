# scheduler/: weftd (the coordinator: store, planner, executors, monitor)
# and the `weft` command (its dispatcher and weftd's client).
bin_PROGRAMS += weft
weft_SOURCES = scheduler/weft.c common/weft_cmds.h scheduler/client.c scheduler/client.h \
	scheduler/client_watch.c scheduler/client_cmds.c scheduler/client_plot.c \
	scheduler/keygen_cmd.c \
	scheduler/sbatch_cmd.c
weft_LDADD = scheduler/libweftsched.a cli/libweftcli.a $(JOBS_LIBS) $(WEFT_LIBS)

# weftd's parts that tests link: the store, planner, executors, ASHA's rule.
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
	scheduler/monitor_msg.c scheduler/launch.c scheduler/publish.c \
	scheduler/zap.c scheduler/zap.h \
	scheduler/prepare.c scheduler/published.c scheduler/published.h
weftd_SOURCES += scheduler/admit.c
weftd_LDADD = scheduler/libweftsched.a $(JOBS_LIBS) $(WEFT_LIBS)

dist_man_MANS += docs/man/weft.1 docs/man/weftd.1 docs/man/weft-worker.1
# Early-stopped sweeps (ASHA): the rule in libweftsched.a, weftd's side in
# early_stop.c.
scheduler_libweftsched_a_SOURCES += scheduler/asha.c scheduler/asha.h
weftd_SOURCES += scheduler/early_stop.c
# Continuous packing across submissions: queued jobs join runs that train.
weftd_SOURCES += scheduler/admit_run.c
