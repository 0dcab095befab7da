/* sbatch_cmd.c: `weft sbatch JOB.cfg`: expands a job spec into run files
 * (LoRA units packed by spec_pack_key in groups of up to K, full units one
 * per run), writes scripts/weft.sbatch beside them and submits one job, or
 * a job array of one task per run, plus an optional summary job that ranks
 * the trials (`weft sbatch --summarize DIR`, run by that job). */
#include "common/fsutil.h"
#include "jobs/spec.h"
#include "common/log.h"
#include "scheduler/exec_slurm.h"
#include "common/weft_cmds.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

typedef struct {
    const char *partition, *account, *time, *dir;
    int array, summary, dry_run, pack_size, max_parallel, signal_lead;
} sbatch_opts_t;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: weft sbatch JOB.cfg [--array] [--partition P] [--account A] [--time T]\n"
        "                   [--signal-lead S] [--summary] [--pack-size K]\n"
        "                   [--max-parallel M] [--dir DIR] [--dry-run]\n"
        "       weft sbatch --summarize DIR\n\n"
        "Writes the job's run files (DIR/run-0.cfg ...) and the batch script DIR/weft.sbatch,\n"
        "then submits them: one job for one run, else a job array of one task per run.\n"
        "  --array           a job array even for a single run\n"
        "  --partition P     Slurm partition (default: Slurm's)\n"
        "  --account A       Slurm account to charge\n"
        "  --time T          time limit per task (default: resources.time_limit, else Slurm's)\n"
        "  --signal-lead S   seconds before the limit that USR1 asks for a checkpoint (120)\n"
        "  --summary         a job after the array writing DIR/summary.txt, trials ranked\n"
        "  --pack-size K     LoRA tenants or trials per run (default 16)\n"
        "  --max-parallel M  array tasks running at once (default: all)\n"
        "  --dir DIR         where run files and logs go (default OUTPUT/slurm)\n"
        "  --dry-run         write everything and print the sbatch command; submit nothing\n"
        "  --summarize DIR   rank a submitted job's trials by best val loss (the summary job)\n");
}

/* ---- the summary ---- */

typedef struct {
    char trial[SPEC_NAME_MAX];
    char params[512];
    char status[32];
    char output[PATH_MAX];
    double best_val, final_loss;
    long best_step;
} trial_row_t;

/* The best (lowest) eval loss of a tenant in a metrics.jsonl. */
static void best_eval(const char *metrics, trial_row_t *t)
{
    FILE *f = fopen(metrics, "r");
    char line[8192];
    while (f && fgets(line, sizeof line, f)) {
        json_t *m = json_loads(line, 0, NULL);
        const char *tenant = json_string_value(json_object_get(m, "tenant"));
        const char *kind = json_string_value(json_object_get(m, "kind"));
        json_t *v = json_object_get(m, "val_loss");
        if (tenant && !strcmp(tenant, t->trial) && kind && !strcmp(kind, "eval") &&
            json_is_number(v) && (isnan(t->best_val) || json_number_value(v) < t->best_val)) {
            t->best_val = json_number_value(v);
            t->best_step = (long)json_integer_value(json_object_get(m, "step"));
        }
        json_decref(m);
    }
    if (f) fclose(f);
}

/* A tenant's status, final loss and output from a run's result.json. */
static void result_of(const char *result, trial_row_t *t)
{
    json_t *r = json_load_file(result, 0, NULL);
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(r, "tenants"), i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!name || strcmp(name, t->trial)) continue;
        const char *st = json_string_value(json_object_get(o, "status"));
        const char *out = json_string_value(json_object_get(o, "output"));
        json_t *loss = json_object_get(o, "loss");
        snprintf(t->status, sizeof t->status, "%s", st ? st : "?");
        if (out) snprintf(t->output, sizeof t->output, "%s", out);
        if (json_is_number(loss)) t->final_loss = json_number_value(loss);
    }
    json_decref(r);
}

static int by_val(const void *a, const void *b)
{
    const trial_row_t *x = a, *y = b;
    int xn = isnan(x->best_val), yn = isnan(y->best_val);
    if (xn != yn) return xn - yn;
    if (!xn && x->best_val != y->best_val) return x->best_val < y->best_val ? -1 : 1;
    return strcmp(x->trial, y->trial);
}

/* Reads DIR/trials.tsv (trial, run output folder, parameters) and writes
 * DIR/summary.txt: one line per trial, ranked by best val loss. */
static int summarize(const char *dir)
{
    char path[PATH_MAX], out_path[PATH_MAX], tmp[PATH_MAX + 8];
    if (weft_path_join(path, sizeof path, dir, "trials.tsv") < 0 ||
        weft_path_join(out_path, sizeof out_path, dir, "summary.txt") < 0)
        return 1;
    FILE *f = fopen(path, "r");
    if (!f) {
        weft_error("%s: cannot read; is %s a folder written by weft sbatch?", path, dir);
        return 1;
    }
    trial_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *trial = strtok(line, "\t"), *runout = strtok(NULL, "\t"), *params = strtok(NULL, "");
        if (!trial || !runout) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            trial_row_t *r = realloc(rows, cap * sizeof *r);
            if (!r) break;
            rows = r;
        }
        trial_row_t *t = &rows[n++];
        memset(t, 0, sizeof *t);
        snprintf(t->trial, sizeof t->trial, "%s", trial);
        snprintf(t->params, sizeof t->params, "%s", params ? params : "");
        snprintf(t->status, sizeof t->status, "no result");
        t->best_val = t->final_loss = NAN;
        t->best_step = -1;
        char file[PATH_MAX];
        if (weft_path_join(file, sizeof file, runout, "metrics.jsonl") == 0) best_eval(file, t);
        if (weft_path_join(file, sizeof file, runout, "result.json") == 0) result_of(file, t);
    }
    fclose(f);
    qsort(rows, n, sizeof *rows, by_val);
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        free(rows);
        weft_error("%s: cannot create", tmp);
        return 1;
    }
    fprintf(o, "%-4s  %-28s  %-10s  %-9s  %-7s  %-10s  %s  %s\n", "rank", "trial", "status",
            "best_val", "at_step", "final_loss", "parameters", "output");
    for (size_t i = 0; i < n; i++) {
        trial_row_t *t = &rows[i];
        char bv[32] = "-", fl[32] = "-", st[32] = "-";
        if (!isnan(t->best_val)) snprintf(bv, sizeof bv, "%.4f", t->best_val);
        if (!isnan(t->final_loss)) snprintf(fl, sizeof fl, "%.4f", t->final_loss);
        if (t->best_step >= 0) snprintf(st, sizeof st, "%ld", t->best_step);
        fprintf(o, "%-4zu  %-28s  %-10s  %-9s  %-7s  %-10s  %s  %s\n", i + 1, t->trial, t->status,
                bv, st, fl, t->params[0] ? t->params : "-", t->output[0] ? t->output : "-");
    }
    int bad = fclose(o) != 0;
    free(rows);
    if (bad || weft_fsync_path(tmp) < 0 || weft_rename_durable(tmp, out_path) < 0) {
        weft_error("%s: cannot write", out_path);
        return 1;
    }
    char text[1 << 16];
    size_t len = 0;
    FILE *r = fopen(out_path, "r");
    if (r) {
        len = fread(text, 1, sizeof text - 1, r);
        fclose(r);
    }
    text[len] = 0;
    printf("%s", text);
    printf("weft sbatch: %zu trial(s) ranked in %s\n", n, out_path);
    return 0;
}

/* ---- run files ---- */

/* Groups units into runs: full units alone, LoRA units with equal pack keys
 * together, up to k per run, in unit order. run_of[i] is unit i's run. */
static int group_units(const spec_unit_t *units, int n, int k, int *run_of)
{
    char(*keys)[65] = calloc((size_t)n, sizeof *keys); /* per run; "" for full runs */
    int *size = calloc((size_t)n, sizeof *size);
    int nruns = 0;
    if (!keys || !size) {
        free(keys), free(size);
        return weft_error("out of memory");
    }
    for (int i = 0; i < n; i++) {
        char key[65] = "";
        run_of[i] = -1;
        if (units[i].spec->mode == SPEC_LORA) {
            spec_pack_key(units[i].spec, key);
            for (int r = 0; r < nruns && run_of[i] < 0; r++)
                if (size[r] < k && !strcmp(keys[r], key)) run_of[i] = r;
        }
        if (run_of[i] < 0) {
            run_of[i] = nruns++;
            memcpy(keys[run_of[i]], key, sizeof key);
        }
        size[run_of[i]]++;
    }
    free(keys);
    free(size);
    return nruns;
}

/* A unit's data must already be a weft-shards file: Slurm runs the worker
 * directly, with no weftd to shard raw text first. */
static int check_data(const spec_unit_t *u)
{
    const spec_t *s = u->spec;
    const char *data = s->tenants[0].data;
    spec_data_kind_t kind = s->tenants[0].data_kind;
    if (kind != SPEC_DATA_SHARDS)
        return weft_error("%s: %s is raw %s; shard it first (weft shard -o FILE.h5 %s) and point "
                          "the spec at the .h5 file, or submit the job to weftd",
                          u->name, data, spec_data_kind_name(kind), data);
    return 0;
}

/* The spec of run r: the single full unit renamed, or the composed pack
 * (writing to the job's output when it is the only run, else to DIR/run-<r>). */
static spec_t *run_spec(const spec_unit_t *units, int n, const int *run_of, int r, int nruns,
                        const spec_t *job, const char *dir)
{
    char name[SPEC_NAME_MAX], output[SPEC_PATH_MAX];
    const spec_t *members[256];
    int m = 0;
    for (int i = 0; i < n && m < 256; i++)
        if (run_of[i] == r) members[m++] = units[i].spec;
    if (members[0]->mode == SPEC_FULL) {
        spec_t *s = spec_dup(members[0]);
        for (int i = 0; s && i < n; i++)
            if (run_of[i] == r) {
                snprintf(s->name, sizeof s->name, "%s", units[i].name);
                snprintf(s->tenants[0].name, sizeof s->tenants[0].name, "%s", units[i].name);
            }
        return s;
    }
    if (nruns == 1) {
        snprintf(name, sizeof name, "%s", job->name);
        snprintf(output, sizeof output, "%s", job->output);
    } else {
        char leaf[32];
        snprintf(name, sizeof name, "%.80s-%d", job->name, r);
        snprintf(leaf, sizeof leaf, "run-%d", r);
        if (weft_path_join(output, sizeof output, dir, leaf) < 0) return NULL;
    }
    return spec_compose(members, m, name, output);
}

/* Writes DIR/run-<r>.cfg for every run and DIR/trials.tsv. */
static int write_runs(const spec_unit_t *units, int n, const int *run_of, int nruns,
                      const spec_t *job, const char *dir)
{
    char path[PATH_MAX], leaf[32];
    char(*outs)[SPEC_PATH_MAX] = calloc((size_t)nruns, sizeof *outs);
    if (!outs) return weft_error("out of memory");
    int rc = 0;
    for (int r = 0; rc == 0 && r < nruns; r++) {
        spec_t *s = run_spec(units, n, run_of, r, nruns, job, dir);
        snprintf(leaf, sizeof leaf, "run-%d.cfg", r);
        if (!s || weft_path_join(path, sizeof path, dir, leaf) < 0 || spec_write_file(s, path) < 0)
            rc = -1;
        if (s) snprintf(outs[r], sizeof outs[r], "%s", s->output);
        spec_destroy(&s);
    }
    FILE *f = NULL;
    if (rc == 0 &&
        (weft_path_join(path, sizeof path, dir, "trials.tsv") < 0 || !(f = fopen(path, "w"))))
        rc = weft_error("%s: cannot create", path);
    for (int i = 0; rc == 0 && i < n; i++) {
        fprintf(f, "%s\t%s\t", units[i].name, outs[run_of[i]]);
        for (int p = 0; p < units[i].nparams; p++)
            fprintf(f, "%s%s=%s", p ? " " : "", units[i].param_key[p], units[i].param_value[p]);
        fprintf(f, "\n");
    }
    if (f && fclose(f) != 0) rc = weft_error("%s: cannot write", path);
    free(outs);
    return rc;
}

/* ---- submission ---- */

/* An sbatch command line: its words formatted into one buffer. */
typedef struct {
    char *argv[32];
    int n;
    char buf[6 * PATH_MAX];
    size_t used;
} cmdline_t;

__attribute__((format(printf, 2, 3))) static int cmd_add(cmdline_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = sizeof c->buf - c->used;
    int k = vsnprintf(c->buf + c->used, room, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= room || c->n + 1 >= (int)(sizeof c->argv / sizeof c->argv[0]))
        return weft_error("the sbatch command line is too long (paths?)");
    c->argv[c->n++] = c->buf + c->used;
    c->argv[c->n] = NULL;
    c->used += (size_t)k + 1;
    return 0;
}

/* Runs sbatch --parsable (or prints it with --dry-run); fills the job id. */
static int submit(const cmdline_t *c, int dry_run, char *id, size_t idsize)
{
    if (dry_run) {
        for (int i = 0; i < c->n; i++) printf("%s%s", i ? " " : "", c->argv[i]);
        printf("\n");
        snprintf(id, idsize, "DRYRUN");
        return 0;
    }
    char out[256], err[1024];
    int rc = exec_slurm_command(c->argv, out, sizeof out, err, sizeof err);
    if (rc < 0) return -1;
    err[strcspn(err, "\n")] = 0;
    if (rc != 0) return weft_error("sbatch refused the job: %s", err);
    size_t n = strspn(out, "0123456789");
    if (n == 0 || n >= idsize) return weft_error("sbatch printed no job id: '%s'", out);
    memcpy(id, out, n);
    id[n] = 0;
    return 0;
}

/* The site options every job of a submission takes. */
static int site_opts(cmdline_t *c, const sbatch_opts_t *o)
{
    return (o->partition && cmd_add(c, "--partition=%s", o->partition) < 0) ||
                   (o->account && cmd_add(c, "--account=%s", o->account) < 0)
               ? -1
               : 0;
}

/* Submits the runs in dir: one job for run-0.cfg, or an array over dir. */
static int submit_runs(const sbatch_opts_t *o, const spec_t *job, const char *dir, int nruns,
                       int array, char *id, size_t idsize)
{
    cmdline_t c = {.n = 0};
    int rc = cmd_add(&c, "sbatch") | cmd_add(&c, "--parsable") |
             cmd_add(&c, "--job-name=%s", job->name) |
             cmd_add(&c, "--ntasks=%d", job->resources.ranks) |
             cmd_add(&c, "--cpus-per-task=%d", job->resources.threads) | cmd_add(&c, "--requeue") |
             cmd_add(&c, "--open-mode=append") | cmd_add(&c, "--signal=B:USR1@%d", o->signal_lead) |
             cmd_add(&c, "--output=%s/slurm-%s.out", dir, array ? "%A_%a" : "%j");
    if (job->resources.gpus > 0) /* device = "cuda": one rank drives one GPU */
        rc |= cmd_add(&c, "--gpus-per-task=1");
    if (array)
        rc |= cmd_add(&c, "--array=0-%d%%%d", nruns - 1, o->max_parallel ? o->max_parallel : nruns);
    rc |= site_opts(&c, o);
    if (o->time)
        rc |= cmd_add(&c, "--time=%s", o->time);
    else if (job->resources.time_limit > 0) /* minutes, rounded up */
        rc |= cmd_add(&c, "--time=%lld", (long long)((job->resources.time_limit + 59) / 60));
    rc |= cmd_add(&c, "%s/weft.sbatch", dir);
    rc |= array ? cmd_add(&c, "%s", dir) : cmd_add(&c, "%s/run-0.cfg", dir);
    return rc ? -1 : submit(&c, o->dry_run, id, idsize);
}

/* Submits the summary job: `weft sbatch --summarize DIR` once job id has
 * ended, whatever became of its tasks. */
static int submit_summary(const sbatch_opts_t *o, const spec_t *job, const char *dir,
                          const char *id, char *sid, size_t sidsize)
{
    char weft[PATH_MAX];
    if (exec_slurm_find_program("weft", weft, sizeof weft) < 0) return -1;
    if (strchr(weft, '\'')) return weft_error("%s: a path with ' cannot be wrapped", weft);
    cmdline_t c = {.n = 0};
    int rc = cmd_add(&c, "sbatch") | cmd_add(&c, "--parsable") |
             cmd_add(&c, "--job-name=%s-summary", job->name) |
             cmd_add(&c, "--dependency=afterany:%s", id) | cmd_add(&c, "--ntasks=1") |
             cmd_add(&c, "--output=%s/summary-%%j.out", dir) | site_opts(&c, o) |
             cmd_add(&c, "--wrap='%s' sbatch --summarize '%s'", weft, dir);
    return rc ? -1 : submit(&c, o->dry_run, sid, sidsize);
}

/* Expands the job into units, groups them into runs and writes DIR (made
 * absolute in place): run files, trials.tsv, the batch script. Returns 0,
 * or the exit code (78 bad spec, 65 raw data, 1 otherwise). */
static int prepare(const sbatch_opts_t *o, const spec_t *job, spec_diag_t *diag, char *dir,
                   size_t dirsize, int *nruns, int *nunits)
{
    spec_unit_t *units = NULL;
    int n = 0, rc = 0;
    char abs[PATH_MAX], script[PATH_MAX];
    if (spec_expand(job, NULL, &units, &n, diag) < 0) return EX_CONFIG;
    for (int i = 0; i < n && rc == 0; i++)
        if (check_data(&units[i]) < 0) rc = EX_DATAERR;
    int *run_of = rc ? NULL : calloc((size_t)n, sizeof *run_of);
    if (!rc && !run_of) rc = weft_error("out of memory");
    if (!rc && (*nruns = group_units(units, n, o->pack_size, run_of)) < 0) rc = -1;
    if (!rc && (o->dir ? snprintf(dir, dirsize, "%s", o->dir) >= (int)dirsize
                       : weft_path_join(dir, dirsize, job->output, "slurm") < 0))
        rc = weft_error("path too long: %s", o->dir ? o->dir : job->output);
    if (!rc && weft_mkdir_p(dir, 0755) < 0) rc = -1;
    if (!rc && !realpath(dir, abs)) rc = weft_error("%s: %s", dir, strerror(errno));
    if (!rc && (strchr(abs, '\'') || strchr(abs, ',')))
        rc = weft_error("%s: the folder's path may not hold ' or , (Slurm options take it)", abs);
    if (!rc) {
        snprintf(dir, dirsize, "%s", abs);
        if (weft_path_join(script, sizeof script, dir, "weft.sbatch") < 0 ||
            exec_slurm_script_write(script) < 0 ||
            write_runs(units, n, run_of, *nruns, job, dir) < 0)
            rc = -1;
    }
    *nunits = n;
    free(run_of);
    spec_units_destroy(&units, n);
    return rc < 0 ? 1 : rc;
}

static int parse_opts(int argc, char **argv, sbatch_opts_t *o, const char **job,
                      const char **summarize_dir)
{
    static const struct option opts[] = {{"array", no_argument, 0, 'a'},
                                         {"partition", required_argument, 0, 'p'},
                                         {"account", required_argument, 0, 'A'},
                                         {"time", required_argument, 0, 't'},
                                         {"signal-lead", required_argument, 0, 's'},
                                         {"summary", no_argument, 0, 'S'},
                                         {"pack-size", required_argument, 0, 'k'},
                                         {"max-parallel", required_argument, 0, 'm'},
                                         {"dir", required_argument, 0, 'd'},
                                         {"dry-run", no_argument, 0, 'n'},
                                         {"summarize", required_argument, 0, 'Z'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'a':
            o->array = 1;
            break;
        case 'p':
            o->partition = optarg;
            break;
        case 'A':
            o->account = optarg;
            break;
        case 't':
            o->time = optarg;
            break;
        case 'S':
            o->summary = 1;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'n':
            o->dry_run = 1;
            break;
        case 'Z':
            *summarize_dir = optarg;
            break;
        case 's':
            o->signal_lead = (int)strtol(optarg, &end, 10);
            break;
        case 'k':
            o->pack_size = (int)strtol(optarg, &end, 10);
            break;
        case 'm':
            o->max_parallel = (int)strtol(optarg, &end, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
        if (end && (*end || end == optarg)) {
            fprintf(stderr, "weft sbatch: '%s' is not a number\n", optarg);
            return EX_USAGE;
        }
    }
    if (*summarize_dir) return optind == argc ? -1 : (usage(stderr), 64);
    if (optind != argc - 1) {
        usage(stderr);
        return EX_USAGE;
    }
    *job = argv[optind];
    if (o->signal_lead < 1 || o->pack_size < 1 || o->pack_size > 256 || o->max_parallel < 0) {
        fprintf(stderr, "weft sbatch: --signal-lead must be positive, --pack-size 1..256, "
                        "--max-parallel at least 0\n");
        return EX_USAGE;
    }
    return -1;
}

int cmd_sbatch(int argc, char **argv)
{
    sbatch_opts_t o = {.signal_lead = 120, .pack_size = 16};
    const char *job_path = NULL, *summarize_dir = NULL;
    int rc = parse_opts(argc, argv, &o, &job_path, &summarize_dir);
    if (rc >= 0) return rc;
    if (summarize_dir) {
        rc = summarize(summarize_dir);
        if (rc) weft_report();
        return rc;
    }
    spec_diag_t *diag = spec_diag_new();
    spec_t *job = spec_load(job_path, NULL, diag);
    char dir[PATH_MAX], worker[PATH_MAX], id[64], sid[64];
    int nruns = 0, nunits = 0;
    if (!job) {
        for (int i = 0; i < spec_diag_count(diag); i++)
            fprintf(stderr, "%s\n", spec_diag_get(diag, i));
        rc = EX_CONFIG;
    } else {
        rc = prepare(&o, job, diag, dir, sizeof dir, &nruns, &nunits);
    }
    int array = o.array || nruns > 1;
    if (rc == 0) {
        /* The batch script runs the weft-worker beside this weft. */
        if (exec_slurm_find_program("weft-worker", worker, sizeof worker) < 0 ||
            setenv("WEFT_WORKER", worker, 1) < 0 ||
            submit_runs(&o, job, dir, nruns, array, id, sizeof id) < 0)
            rc = 1;
        else
            printf("weft sbatch: job %s: %d run(s) of %d unit(s)%s; run files and logs in %s\n", id,
                   nruns, nunits, array ? " as a job array" : "", dir);
    }
    if (rc == 0 && o.summary) {
        if (submit_summary(&o, job, dir, id, sid, sizeof sid) < 0)
            rc = 1;
        else
            printf("weft sbatch: summary job %s writes %s/summary.txt after job %s\n", sid, dir,
                   id);
    }
    for (int i = 0; job && rc == EX_CONFIG && i < spec_diag_count(diag); i++)
        fprintf(stderr, "%s\n", spec_diag_get(diag, i));
    if (job && rc && !(rc == EX_CONFIG && spec_diag_count(diag))) weft_report();
    spec_destroy(&job);
    spec_diag_destroy(&diag);
    return rc;
}
