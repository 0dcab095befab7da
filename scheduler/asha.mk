# scheduler/asha.mk: early-stopped sweeps (ASHA): the rule in libweftsched.a,
# weftd's side in early_stop.c.
scheduler_libweftsched_a_SOURCES += scheduler/asha.c scheduler/asha.h
weftd_SOURCES += scheduler/early_stop.c
