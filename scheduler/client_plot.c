/* client_plot.c: `weft plot`: every job of a submission read back through
 * WATCH from its first event, its training and validation loss written as
 * a CSV and drawn by gnuplot, which is run without a shell: it gets the
 * script on a pipe and its files as open descriptors, never a path. */
#include "scheduler/client.h"
#include "common/log.h"
#include "common/weft_cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>
#include <sysexits.h>

static const char usage_plot[] =
    "usage: weft plot ID -o FILE.png\n"
    "  every job of ID's submission: training and validation loss by step\n"
    "  (a CSV beside FILE when gnuplot is missing)\n";

/* Every train and eval metric of one job, through WATCH from the start,
 * appended to csv as "name,kind,step,value". Ends at the job's end event, or
 * after a quiet second for a job still running. */
static int collect_metrics(int64_t id, const char *name, FILE *csv, FILE *train, FILE *eval)
{
    conn_t c = {0};
    if (conn_open(&c) < 0) return -1;
    json_t *w = json_pack("{s:I, s:I}", "id", (json_int_t)id, "from", (json_int_t)0);
    int rc = wire_send(c.sock, NULL, 0, WIRE_WATCH, w, 0);
    json_decref(w);
    while (rc == 0) {
        wire_msg_t *m = NULL;
        zmq_pollitem_t it = {c.sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 1000) <= 0 || conn_recv(&c, 1000, &m) < 0) break;
        if (m->cmd == WIRE_ERROR) {
            rc = weft_error("%s", wire_get_str(m->body, "message"));
        } else if (m->cmd == WIRE_EVENT) {
            if (json_is_true(json_object_get(m->body, "end"))) {
                wire_msg_destroy(&m);
                break;
            }
            const char *kind = wire_get_str(m->body, "kind");
            const json_t *d = json_object_get(m->body, "data");
            json_t *step = json_object_get(d, "step");
            json_t *v = json_object_get(d, kind && !strcmp(kind, "eval") ? "val_loss" : "loss");
            if (kind && (!strcmp(kind, "train") || !strcmp(kind, "eval")) &&
                json_is_integer(step) && json_is_number(v)) {
                long long st = (long long)json_integer_value(step);
                fprintf(csv, "%s,%s,%lld,%.6f\n", name, kind, st, json_number_value(v));
                fprintf(strcmp(kind, "eval") ? train : eval, "%lld %.6f\n", st,
                        json_number_value(v));
            }
        }
        wire_msg_destroy(&m);
    }
    conn_close(&c);
    return rc;
}

/* Writes s inside a gnuplot single-quoted string: a quote doubled, a
 * line break as a space (a script line ends at one). */
static void gnuplot_quoted(FILE *g, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\'')
            fputs("''", g);
        else
            fputc(*s == '\n' || *s == '\r' ? ' ' : *s, g);
    }
}

/* Runs gnuplot on script (fed on its standard input) with the picture at
 * out on its descriptor 3 and the data file dat on its descriptor 4,
 * through posix_spawnp: no shell. 0 done, 1 gnuplot not installed, -1 an
 * error (weft_error set). */
static int run_gnuplot(const char *script, size_t len, const char *out, const char *dat)
{
    int png = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (png < 0) return weft_error("cannot write: %s", strerror(errno));
    int data = open(dat, O_RDONLY | O_CLOEXEC);
    int in[2] = {-1, -1};
    if (data < 0 || pipe2(in, O_CLOEXEC) < 0) {
        int e = errno;
        close(png);
        if (data >= 0) close(data);
        return weft_error("cannot run gnuplot: %s", strerror(e));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, png, 3);
    posix_spawn_file_actions_adddup2(&fa, data, 4);
    char *argv[] = {"gnuplot", NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(png);
    close(data);
    if (e) {
        close(in[1]);
        if (e == ENOENT) {
            unlink(out);
            return 1;
        }
        return weft_error("cannot run gnuplot: %s", strerror(e));
    }
    /* gnuplot may exit before reading everything: a write error is not ours */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(in[1], script + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += (size_t)n;
    }
    close(in[1]);
    sigaction(SIGPIPE, &old, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return weft_error("waiting for gnuplot: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return weft_error("gnuplot failed (exit %d)",
                          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}

int cmd_plot(int argc, char **argv)
{
    const char *out = NULL;
    int64_t id = 0;
    if (client_asked_help(argc, argv, usage_plot)) return 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (client_parse_id(argv[i], &id) < 0)
            return client_fail();
    }
    if (!id || !out) {
        fputs(usage_plot, stderr);
        return EX_USAGE;
    }
    json_t *r = client_request(WIRE_RESULTS, json_pack("{s:I}", "id", (json_int_t)id));
    if (!r) return client_fail();
    char csvpath[PATH_MAX];
    const char *dot = strrchr(out, '.');
    int base = dot && !strchr(dot, '/') ? (int)(dot - out) : (int)strlen(out);
    snprintf(csvpath, sizeof csvpath, "%.*s.csv", base, out);
    FILE *csv = fopen(csvpath, "w");
    if (!csv) {
        json_decref(r);
        weft_error("%s: cannot write: %s", csvpath, strerror(errno));
        return client_fail();
    }
    fprintf(csv, "name,kind,step,value\n");
    size_t i;
    json_t *j;
    json_t *jobs = json_object_get(r, "jobs");
    /* gnuplot's data: per job one block of train rows, one of eval rows. */
    char dat[PATH_MAX + 8];
    snprintf(dat, sizeof dat, "%.*s.dat", base, out);
    FILE *d = fopen(dat, "w");
    int bad = !d;
    json_array_foreach(jobs, i, j)
    {
        char *tb = NULL, *eb = NULL;
        size_t tn = 0, en = 0;
        FILE *tf = open_memstream(&tb, &tn), *ef = open_memstream(&eb, &en);
        if (!bad && collect_metrics(json_integer_value(json_object_get(j, "id")),
                                    wire_get_str(j, "name"), csv, tf, ef) < 0)
            bad = 1;
        fclose(tf);
        fclose(ef);
        /* A third block: where a trial stopped early (its last evaluation). */
        char stop[96] = "0 NaN\n";
        const char *st = wire_get_str(j, "state");
        if (en && st && !strcmp(st, "stopped")) {
            const char *last = eb + en - 1;
            while (last > eb && last[-1] != '\n') last--;
            snprintf(stop, sizeof stop, "%s", last);
            long long sstep;
            double sval;
            if (sscanf(stop, "%lld %lf", &sstep, &sval) == 2)
                fprintf(csv, "%s,stopped,%lld,%.9g\n", wire_get_str(j, "name"), sstep, sval);
        }
        if (d)
            fprintf(d, "%s%s\n\n%s%s\n\n%s\n\n", tn ? tb : "", tn ? "" : "0 NaN\n", en ? eb : "",
                    en ? "" : "0 NaN\n", stop);
        free(tb);
        free(eb);
    }
    fclose(csv);
    if (d) fclose(d);
    if (bad) {
        json_decref(r);
        return client_fail();
    }
    /* gnuplot never sees a path: it writes the picture to its descriptor 3
     * and reads the data from its descriptor 4, both opened here, and takes
     * the script on a pipe. No shell runs, so no file name can become a
     * command, whatever it holds (quotes, $(...), spaces, newlines). */
    char *script = NULL;
    size_t script_len = 0;
    FILE *g = open_memstream(&script, &script_len);
    if (!g) {
        json_decref(r);
        weft_error("out of memory");
        return client_fail();
    }
    fprintf(g, "set terminal pngcairo size 1200,500 noenhanced font ',10'\n"
               "set output '/dev/fd/3'\nset key outside right\n"
               "set multiplot layout 1,2\nset xlabel 'step'\nset ylabel 'loss'\n");
    for (int panel = 0; panel < 2; panel++) {
        fprintf(g, "set title '%s'\nplot ", panel ? "validation loss" : "training loss");
        json_array_foreach(jobs, i, j)
        {
            fprintf(g, "%s'/dev/fd/4' index %zu using 1:2 with %s title '", i ? ", " : "",
                    3 * i + (size_t)panel, panel ? "linespoints" : "lines");
            gnuplot_quoted(g, wire_get_str(j, "name"));
            fputc('\'', g);
            if (panel) /* a cross where an early-stopped trial's curve ends */
                fprintf(g,
                        ", '/dev/fd/4' index %zu using 1:2 with points pt 2 ps 2 lc rgb "
                        "'black' notitle",
                        3 * i + 2);
        }
        fprintf(g, "\n");
    }
    fprintf(g, "unset multiplot\n");
    fclose(g);
    json_decref(r);
    int rc = run_gnuplot(script, script_len, out, dat);
    free(script);
    if (rc == 1) {
        printf("gnuplot is not installed (apt-get install gnuplot-nox): the curves are in %s\n",
               csvpath);
        return 0;
    }
    if (rc < 0) {
        weft_error_prefix("%s (the curves are in %s)", out, csvpath);
        return client_fail();
    }
    printf("wrote %s (data in %s)\n", out, csvpath);
    return 0;
}
