# cli/: the `weft` subcommands that run the engine in one process
# (libweftcli.a): init-model and grad (model_cmd.c), generate and eval
# (generate_cmd.c), and their --device option.
noinst_LIBRARIES += cli/libweftcli.a
cli_libweftcli_a_SOURCES = \
	cli/model_cmd.c cli/generate_cmd.c cli/device_opt.h
