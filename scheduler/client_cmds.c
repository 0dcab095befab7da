/* client_cmds.c: the `weft` commands that ask weftd: submit, ls, show,
 * watch, cancel, results, logs. Each sends its request (client.c) and
 * prints the reply for people, or as JSON with --json. */
#include "scheduler/client.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/weft_cmds.h"
#include "jobs/spec.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sysexits.h>

void client_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s) puts(s);
    free(s);
}

static const char *num(const json_t *v, char *buf, size_t n, const char *fmt)
{
    if (!json_is_number(v)) return "-";
    snprintf(buf, n, fmt, json_number_value(v));
    return buf;
}

/* `weft COMMAND --help` (or -h) among the arguments: the usage on stdout. */
int client_asked_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 1;
        }
    return 0;
}

static const char usage_show[] = "usage: weft show ID [--json]\n";

static const char usage_watch[] = "usage: weft watch ID... [--json]\n";

static const char usage_cancel[] = "usage: weft cancel ID...\n";

static const char usage_results[] =
    "usage: weft results ID [--submission] [--csv|--json]\n"
    "  ID is a job id (its whole submission is listed), or a submission id with --submission;\n"
    "  ranked by best val loss, failed and cancelled jobs last\n";

static const char usage_logs[] = "usage: weft logs ID\n"
                                 "  the worker logs of job ID's run, every attempt\n";

int client_parse_id(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '-' && (s[1] < '0' || s[1] > '9'))
        return weft_error("unknown option '%s'; see the command's --help", s);
    if (errno || *end || v <= 0) return weft_error("'%s' is not a job id", s);
    *id = v;
    return 0;
}

int cmd_submit(int argc, char **argv)
{
    int wait = 0, json = 0, priority = 0;
    static const struct option o[] = {{"wait", no_argument, 0, 'w'},
                                      {"json", no_argument, 0, 'j'},
                                      {"priority", required_argument, 0, 'p'},
                                      {"help", no_argument, 0, 'h'},
                                      {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'w')
            wait = 1;
        else if (c == 'j')
            json = 1;
        else if (c == 'p')
            priority = atoi(optarg);
        else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: weft submit JOB.cfg [--wait] [--priority N] [--json]\n");
            return c == 'h' ? 0 : EX_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: weft submit JOB.cfg [--wait] [--priority N] [--json]\n");
        return EX_USAGE;
    }
    const char *path = argv[optind];
    size_t len;
    char *text = weft_read_file(path, 1u << 20, &len);
    if (!text) return client_fail();
    char bad[1024];
    if (!spec_text_utf8(text, len, path, bad, sizeof bad)) {
        fprintf(stderr, "%s\n", bad);
        free(text);
        return EX_CONFIG;
    }
    char *abs = realpath(path, NULL);
    char folder[PATH_MAX];
    weft_dirname(abs ? abs : path, folder, sizeof folder);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    json_t *body = json_pack("{s:s, s:s, s:s, s:i}", "spec", text, "folder", folder, "file", base,
                             "priority", priority);
    free(abs);
    free(text);
    if (!body) {
        fprintf(stderr,
                "weft: cannot submit %s: its file or folder name is not UTF-8; rename it\n",
                path);
        return EX_CONFIG;
    }
    json_t *r = client_request(WIRE_SUBMIT, body);
    if (!r) return client_fail();
    json_t *jobs = json_object_get(r, "jobs");
    size_t n = json_array_size(jobs);
    if (json) {
        client_print_json(r);
    } else {
        printf("submitted %s as submission %lld: %zu job(s)\n", wire_get_str(r, "name"),
               (long long)json_integer_value(json_object_get(r, "submission")), n);
        size_t i;
        json_t *j;
        json_array_foreach(jobs, i, j)
            printf("  %lld  %s\n", (long long)json_integer_value(json_object_get(j, "id")),
                   wire_get_str(j, "name"));
    }
    int rc = 0;
    if (wait && n > 0) {
        int64_t *ids = calloc(n, sizeof *ids);
        for (size_t i = 0; i < n; i++)
            ids[i] = json_integer_value(json_object_get(json_array_get(jobs, i), "id"));
        int bad = client_watch(ids, (int)n, json);
        free(ids);
        rc = bad < 0 ? client_fail() : bad > 0 ? 1 : 0;
    }
    json_decref(r);
    return rc;
}

static void print_job_line(const json_t *j)
{
    char when[32] = "";
    time_t t = (time_t)json_number_value(json_object_get(j, "submitted"));
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&t));
    printf("%-8lld %-24s %-10s %-5s %-6lld %s\n",
           (long long)json_integer_value(json_object_get(j, "id")), wire_get_str(j, "name"),
           wire_get_str(j, "state"), wire_get_str(j, "mode"),
           (long long)json_integer_value(json_object_get(j, "submission")), when);
}

int cmd_ls(int argc, char **argv)
{
    int json = 0;
    json_t *body = json_object();
    static const struct option o[] = {{"state", required_argument, 0, 's'},
                                      {"name", required_argument, 0, 'n'},
                                      {"submission", required_argument, 0, 'S'},
                                      {"before", required_argument, 0, 'b'},
                                      {"limit", required_argument, 0, 'l'},
                                      {"json", no_argument, 0, 'j'},
                                      {"help", no_argument, 0, 'h'},
                                      {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 's':
            json_object_set_new(body, "state", json_string(optarg));
            break;
        case 'n':
            json_object_set_new(body, "name", json_string(optarg));
            break;
        case 'S':
            json_object_set_new(body, "submission", json_integer(atoll(optarg)));
            break;
        case 'b':
            json_object_set_new(body, "before", json_integer(atoll(optarg)));
            break;
        case 'l':
            json_object_set_new(body, "limit", json_integer(atoll(optarg)));
            break;
        case 'j':
            json = 1;
            break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: weft ls [--state S] [--name N] [--submission ID] [--before ID] "
                    "[--limit N] [--json]\n");
            json_decref(body);
            return c == 'h' ? 0 : EX_USAGE;
        }
    }
    json_t *r = client_request(WIRE_LIST, body);
    if (!r) return client_fail();
    if (json) {
        client_print_json(r);
    } else {
        printf("%-8s %-24s %-10s %-5s %-6s %s\n", "ID", "NAME", "STATE", "MODE", "SUBM",
               "SUBMITTED");
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(r, "jobs"), i, j) print_job_line(j);
        if (json_object_get(r, "before"))
            printf("(more: weft ls --before %lld)\n",
                   (long long)json_integer_value(json_object_get(r, "before")));
    }
    json_decref(r);
    return 0;
}

int cmd_show(int argc, char **argv)
{
    int json = argc > 2 && !strcmp(argv[2], "--json");
    int64_t id;
    if (client_asked_help(argc, argv, usage_show)) return 0;
    if (argc < 2 || argc > 3 || (argc == 3 && !json)) {
        fputs(usage_show, stderr);
        return EX_USAGE;
    }
    if (client_parse_id(argv[1], &id) < 0) return client_fail();
    json_t *r = client_request(WIRE_STATUS, json_pack("{s:I}", "id", (json_int_t)id));
    if (!r) return client_fail();
    if (json) {
        client_print_json(r);
    } else {
        char b1[32], b2[32];
        printf("job %lld  %s  (%s, submission %lld)\n", (long long)id, wire_get_str(r, "name"),
               wire_get_str(r, "mode"),
               (long long)json_integer_value(json_object_get(r, "submission")));
        printf("  state     %s\n", wire_get_str(r, "state"));
        if (json_integer_value(json_object_get(r, "run")) > 0)
            printf("  run       %lld, attempt %lld (%s)\n",
                   (long long)json_integer_value(json_object_get(r, "run")),
                   (long long)json_integer_value(json_object_get(r, "attempt")),
                   wire_get_str(r, "run_state") ? wire_get_str(r, "run_state") : "-");
        if (json_is_true(json_object_get(r, "admitted")))
            printf("  admitted  into run %lld while its pack trained\n",
                   (long long)json_integer_value(json_object_get(r, "run")));
        printf("  step      %lld\n", (long long)json_integer_value(json_object_get(r, "step")));
        printf("  loss      %s\n", num(json_object_get(r, "loss"), b1, sizeof b1, "%.4f"));
        printf("  best val  %s\n", num(json_object_get(r, "best_val_loss"), b2, sizeof b2, "%.4f"));
        if (wire_get_str(r, "error")) printf("  error     %s\n", wire_get_str(r, "error"));
        char *p = json_dumps(json_object_get(r, "params"), JSON_COMPACT | JSON_SORT_KEYS);
        if (p && strcmp(p, "{}")) printf("  params    %s\n", p);
        free(p);
    }
    json_decref(r);
    return 0;
}

int cmd_watch(int argc, char **argv)
{
    int json = 0, n = 0;
    if (client_asked_help(argc, argv, usage_watch)) return 0;
    int64_t *ids = calloc((size_t)argc, sizeof *ids);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (client_parse_id(argv[i], &ids[n]) == 0) {
            n++;
        } else {
            free(ids);
            return client_fail();
        }
    }
    if (n == 0) {
        free(ids);
        fputs(usage_watch, stderr);
        return EX_USAGE;
    }
    int bad = client_watch(ids, n, json);
    free(ids);
    return bad < 0 ? client_fail() : bad > 0 ? 1 : 0;
}

/* weftd takes at most this many ids in one CANCEL (docs/PROTOCOL.md). */
#define CANCEL_BATCH 1000

int cmd_cancel(int argc, char **argv)
{
    if (client_asked_help(argc, argv, usage_cancel)) return 0;
    if (argc < 2) {
        fputs(usage_cancel, stderr);
        return EX_USAGE;
    }
    /* Every id is checked before any is sent. */
    for (int i = 1; i < argc; i++) {
        int64_t id;
        if (client_parse_id(argv[i], &id) < 0) return client_fail();
    }
    int rc = 0;
    for (int first = 1; first < argc; first += CANCEL_BATCH) {
        json_t *ids = json_array();
        for (int i = first; i < argc && i < first + CANCEL_BATCH; i++)
            json_array_append_new(ids, json_integer(strtoll(argv[i], NULL, 10)));
        json_t *r = client_request(WIRE_CANCEL, json_pack("{s:o}", "ids", ids));
        if (!r) return client_fail();
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(r, "jobs"), i, j)
        {
            const char *err = wire_get_str(j, "error");
            if (err) rc = 1;
            printf("%lld: %s\n", (long long)json_integer_value(json_object_get(j, "id")),
                   err ? err : wire_get_str(j, "state"));
        }
        json_decref(r);
    }
    return rc;
}

int cmd_results(int argc, char **argv)
{
    int json = 0, csv = 0;
    int64_t id = 0;
    int by_sub = 0;
    if (client_asked_help(argc, argv, usage_results)) return 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--csv"))
            csv = 1;
        else if (!strcmp(argv[i], "--submission"))
            by_sub = 1;
        else if (client_parse_id(argv[i], &id) < 0)
            return client_fail();
    }
    if (!id) {
        fputs(usage_results, stderr);
        return EX_USAGE;
    }
    json_t *r =
        client_request(WIRE_RESULTS, json_pack("{s:I}", by_sub ? "submission" : "id", (json_int_t)id));
    if (!r) return client_fail();
    json_t *jobs = json_object_get(r, "jobs");
    if (json) {
        client_print_json(r);
        json_decref(r);
        return 0;
    }
    /* The swept settings, as extra columns. */
    const char *keys[32];
    int nk = 0;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(j, "params"), k, v)
        {
            int seen = 0;
            for (int q = 0; q < nk; q++) seen |= !strcmp(keys[q], k);
            if (!seen && nk < 32) keys[nk++] = k;
        }
    }
    if (csv) {
        printf(
            "rank,id,name,state,first_val_loss,best_val_loss,best_val_step,rung,loss,step,tokens");
        for (int q = 0; q < nk; q++) printf(",%s", keys[q]);
        printf("\n");
    } else {
        printf("%-4s %-8s %-20s %-10s %-9s %-9s %-7s %-4s %-9s %-7s %-10s", "#", "ID", "NAME",
               "STATE", "FIRST_VAL", "BEST_VAL", "BEST_AT", "RUNG", "LOSS", "STEP", "TOKENS");
        for (int q = 0; q < nk; q++) printf(" %-12s", keys[q]);
        printf("\n");
    }
    json_array_foreach(jobs, i, j)
    {
        char b0[32], b1[32], b2[32];
        const char *fv = num(json_object_get(j, "first_val_loss"), b0, sizeof b0, "%.4f");
        const char *bv = num(json_object_get(j, "best_val_loss"), b1, sizeof b1, "%.4f");
        const char *lv = num(json_object_get(j, "loss"), b2, sizeof b2, "%.4f");
        long long jid = (long long)json_integer_value(json_object_get(j, "id"));
        long long step = (long long)json_integer_value(json_object_get(j, "step"));
        long long tok = (long long)json_integer_value(json_object_get(j, "tokens"));
        /* where the best validation loss came from, and the highest
         * early-stopping rung reached ("3*": stopped there) */
        char at[24] = "-", rung[24] = "-";
        if (json_is_integer(json_object_get(j, "best_val_step")))
            snprintf(at, sizeof at, "%lld",
                     (long long)json_integer_value(json_object_get(j, "best_val_step")));
        if (json_is_integer(json_object_get(j, "rung")))
            snprintf(rung, sizeof rung, "%lld%s",
                     (long long)json_integer_value(json_object_get(j, "rung")),
                     json_is_true(json_object_get(j, "stopped_at_rung")) ? "*" : "");
        if (csv)
            printf("%zu,%lld,%s,%s,%s,%s,%s,%s,%s,%lld,%lld", i + 1, jid, wire_get_str(j, "name"),
                   wire_get_str(j, "state"), *fv == '-' ? "" : fv, *bv == '-' ? "" : bv,
                   *at == '-' ? "" : at, *rung == '-' ? "" : rung, *lv == '-' ? "" : lv, step, tok);
        else
            printf("%-4zu %-8lld %-20s %-10s %-9s %-9s %-7s %-4s %-9s %-7lld %-10lld", i + 1, jid,
                   wire_get_str(j, "name"), wire_get_str(j, "state"), fv, bv, at, rung, lv, step,
                   tok);
        for (int q = 0; q < nk; q++) {
            const char *v = wire_get_str(json_object_get(j, "params"), keys[q]);
            printf(csv ? ",%s" : " %-12s", v ? v : "");
        }
        printf("\n");
    }
    /* Where each finished job's result is, and its PEFT copy. */
    json_array_foreach(jobs, i, j)
    {
        const char *out = wire_get_str(j, "output"), *peft = wire_get_str(j, "peft");
        if (csv || !out) continue;
        printf("%lld %s: %s", (long long)json_integer_value(json_object_get(j, "id")),
               wire_get_str(j, "name"), out);
        if (peft) printf("  PEFT: %s", peft);
        if (!json_object_get(j, "published") && json_object_get(j, "best_step"))
            printf("  (step %lld)", (long long)json_integer_value(json_object_get(j, "best_step")));
        printf("\n");
        json_t *pv = json_object_get(j, "published");
        if (pv) {
            char b0[32], b1[32];
            const char *nv = num(json_object_get(pv, "val_loss"), b0, sizeof b0, "%.4f");
            const char *ov = num(json_object_get(pv, "baseline_val_loss"), b1, sizeof b1, "%.4f");
            printf("    v%lld from step %lld: val_loss %s, current version's %s: %s (current: v%lld)\n",
                   (long long)json_integer_value(json_object_get(pv, "version")),
                   (long long)json_integer_value(json_object_get(pv, "best_step")), nv, ov,
                   json_is_true(json_object_get(pv, "promoted")) ? "promoted" : "not promoted",
                   (long long)json_integer_value(json_object_get(pv, "current")));
        }
    }
    json_decref(r);
    return 0;
}

int cmd_logs(int argc, char **argv)
{
    int64_t id;
    if (client_asked_help(argc, argv, usage_logs)) return 0;
    if (argc != 2) {
        fputs(usage_logs, stderr);
        return EX_USAGE;
    }
    if (client_parse_id(argv[1], &id) < 0) return client_fail();
    json_t *r = client_request(WIRE_STATUS, json_pack("{s:I}", "id", (json_int_t)id));
    if (!r) return client_fail();
    int64_t run = json_integer_value(json_object_get(r, "run"));
    int attempts = (int)json_integer_value(json_object_get(r, "attempt"));
    if (run <= 0) {
        /* it may have ended before a run, its data refused while sharding */
        const char *state = wire_get_str(r, "state"), *err = wire_get_str(r, "error");
        if (err)
            printf("job %lld never ran: %s: %s\n", (long long)id, state ? state : "?", err);
        else
            printf("job %lld has not run yet (%s)\n", (long long)id, state ? state : "?");
        json_decref(r);
        return 0;
    }
    json_decref(r);
    char home[PATH_MAX];
    if (client_home(home, sizeof home) < 0) return client_fail();
    for (int a = 1; a <= attempts; a++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/runs/%lld/attempt-%d.log", home, (long long)run, a);
        char *text = weft_read_file(path, 64u << 20, NULL);
        printf("==> run %lld attempt %d (%s) <==\n", (long long)run, a, path);
        if (text)
            fputs(text, stdout);
        else
            printf("(%s)\n", weft_last_error());
        free(text);
    }
    return 0;
}
