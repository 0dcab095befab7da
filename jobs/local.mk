# jobs/: libconfig job specs: parse, validate, expand sweeps, write back.
noinst_LIBRARIES += jobs/libweftjobs.a
jobs_libweftjobs_a_SOURCES = jobs/validate_cmd.c
