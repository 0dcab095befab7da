/* client.h: where the `weft` client commands find weftd: the options given
 * before the subcommand (--home DIR or --endpoint EP). */
#ifndef WEFT_CLIENT_H
#define WEFT_CLIENT_H

#include <limits.h>

typedef struct {
    char home[PATH_MAX];
    char endpoint[PATH_MAX];
} client_opts_t;

extern client_opts_t client_opts;

#endif
