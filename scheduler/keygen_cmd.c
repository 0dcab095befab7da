/* keygen_cmd.c: `weft keygen`: a CURVE key pair for weftd (its server key)
 * or for a client of a tcp endpoint, with the role weftd grants it. */
#include "common/auth.h"
#include "common/log.h"
#include "common/weft_cmds.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: weft keygen [--role admin|tenant:NAME] [--force] -o NAME\n\n"
                 "Writes NAME.key (the key pair, mode 0600: keep it secret) and NAME.pub\n"
                 "(the public key and role). Admit a client by copying its NAME.pub into\n"
                 "weftd's clients folder (HOME/clients); weftd's own pair is HOME/server.key,\n"
                 "and clients need its HOME/server.pub.\n\n"
                 "  --role ROLE  admin (default: everything) or tenant:NAME (only that\n"
                 "               tenant's LoRA jobs)\n"
                 "  -o NAME      output path without the .key/.pub suffix\n"
                 "  --force      replace existing files\n");
}

int cmd_keygen(int argc, char **argv)
{
    const char *role = "admin", *out = NULL;
    int force = 0;
    static const struct option opts[] = {{"role", required_argument, 0, 'r'},
                                         {"output", required_argument, 0, 'o'},
                                         {"force", no_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            role = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (!out || optind < argc) {
        fprintf(stderr, "weft keygen: %s; see weft keygen --help\n",
                out ? "unexpected argument" : "-o NAME is required");
        return EX_USAGE;
    }
    if (strcmp(role, "admin") && !auth_role_tenant(role)) {
        fprintf(stderr,
                "weft keygen: role \"%s\" is not admin or tenant:NAME (NAME: letters, digits, "
                "'.', '_', '-'; not starting with '.' or '-')\n",
                role);
        return EX_USAGE;
    }
    char sec[4096], pub[4096];
    if (snprintf(sec, sizeof sec, "%s.key", out) >= (int)sizeof sec ||
        snprintf(pub, sizeof pub, "%s.pub", out) >= (int)sizeof pub) {
        fprintf(stderr, "weft keygen: output path too long\n");
        return EX_USAGE;
    }
    struct stat st;
    if (!force && (lstat(sec, &st) == 0 || lstat(pub, &st) == 0)) {
        fprintf(stderr, "weft keygen: %s or %s exists; use --force to replace it\n", sec, pub);
        return 1;
    }
    auth_key_t key;
    if (auth_key_mint(&key, role) < 0 || auth_key_write(&key, sec, true) < 0 ||
        auth_key_write(&key, pub, false) < 0) {
        fprintf(stderr, "weft keygen: error: %s\n", weft_last_error());
        return 1;
    }
    printf("%s: secret key pair (role %s)\n%s: public key %s\n", sec, role, pub, key.public_key);
    return 0;
}
