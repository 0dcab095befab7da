# jobs/: libconfig job specs: parse, validate, expand sweeps, write back.
noinst_LIBRARIES += jobs/libweftjobs.a
jobs_libweftjobs_a_SOURCES = \
	jobs/spec.c jobs/spec.h \
	jobs/spec_lex.c jobs/spec_lex.h \
	jobs/spec_fields.c jobs/spec_fields.h \
	jobs/spec_write.c \
	jobs/sweep.c \
	jobs/plan.c jobs/plan.h \
	jobs/validate_cmd.c
EXTRA_DIST += jobs/examples
