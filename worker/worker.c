/* worker.c: weft-worker, one MPI group training one run: full fine-tuning of
 * the backbone, or a pack of tenants' LoRA adapters on the frozen backbone.
 * Data parallel: every rank draws its own windows, one MPI_Allreduce of the
 * flat gradient buffer per step, the same optimizer step everywhere. Rank 0
 * reads the spec and the backbone and broadcasts them, writes checkpoints,
 * outputs and metrics, and talks to weftd when there is one.
 *
 * Exit codes: 0 done, 75 checkpointed on a signal (requeue me), 65 bad data,
 * 78 bad spec, 1 anything else. */
#include "common/clock.h"
#include "model/adapter.h"
#include "worker/ckpt.h"
#include "common/fsutil.h"
#include "engine/gpt2.h"
#include "worker/guard.h"
#include "common/h5util.h"
#include "common/log.h"
#include "engine/lora.h"
#include "engine/lora_train.h"
#include "model/model_file.h"
#include "model/modules.h"
#include "model/tok_h5.h"
#include "engine/optim.h"
#include "worker/publish.h"
#include "worker/reporter.h"
#include "common/sha256.h"
#include "shards/shardset.h"
#include "shards/docpack.h"
#include "jobs/spec.h"
#include "engine/par.h"
#ifdef WEFT_HAVE_CUDA
#include "engine/cuda/gpt2_cuda.h"
#endif
#ifdef WEFT_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sysexits.h>

enum {
    EXIT_DONE = EX_OK,
    EXIT_FAIL = 1,
    EXIT_DATA = EX_DATAERR,
    EXIT_REQUEUE = EX_TEMPFAIL,
    EXIT_SPEC = EX_CONFIG
};

/* A task is what has its own data and optimizer: a tenant (lora) or the
 * whole model (full). */
/* In a pack of more tenants than resources.pack_size, a tenant waits until
 * a slot frees (another one succeeded, failed, was cancelled or stopped
 * early) and is admitted at that step boundary, in spec order. The numbers
 * are written in checkpoints. */
typedef enum {
    TASK_TRAINING,
    TASK_DONE,
    TASK_FAILED,
    TASK_CANCELLED,
    TASK_STOPPED, /* stopped early by the coordinator (ASHA); its adapter kept */
    TASK_WAITING  /* not yet admitted into the pack */
} task_state_t;
static const char *task_state_names[] = {"training",  "succeeded", "failed",
                                         "cancelled", "stopped",   "waiting"};

typedef struct {
    const char *name;
    const spec_train_t *train;
    shardset_t *data;
    shardset_cursor_t cursor; /* this rank's */
    docpack_t *rows;          /* chat/completion data: rows of documents (docpack.h) */
    int boundaries;           /* rows of whole documents, attending only to themselves */
    int B;                    /* sequences per rank per micro-step */
    int64_t steps;            /* optimizer steps to take */
    int64_t tokens;           /* trained, all ranks */
    task_state_t state;
    char error[256];
    double loss, val_loss; /* last */
    int64_t at_step;       /* steps taken when it ended */
    int saved;             /* its output is written */
    /* Rank 0's: what is kept and published (publish.h). */
    double best_loss;                 /* lowest val_loss at an evaluation after a step, NaN: none */
    int64_t best_step;                /* the step of that evaluation, -1: none */
    char baseline[SPEC_PATH_MAX];     /* the current version compared with, "" none */
    double baseline_loss;             /* its val_loss on this run's /val windows */
    char baseline_error[256];         /* why it could not be evaluated */
    int version, promoted;            /* as published (0: not yet, or by weftd) */
} task_t;

typedef struct {
    int rank, world, mpi_multiple;
    char run[WIRE_RUN_MAX + 1];
    int attempt;
    const char *endpoint;
    spec_t *spec;
    char spec_file[PATH_MAX]; /* absolute: read again when the coordinator admits tenants */
    char spec_dir[PATH_MAX];
    char tokenizer[16];
    char tokenizer_sha[65]; /* "bpe": the SHA-256 of the model's tokenizer */
    char backbone_sha[65];
    gpt2_t *model;
    int ntasks;
    task_t *tasks;
    int pack_size;  /* tenants training at once (lora) */
    int fresh_from; /* tasks from here on start at their step 0 (a resume: those admitted
                     * after its checkpoint) */
    /* lora */
    lora_pack_t *pack;
    lora_trainer_t *trainer;
    lora_hparams_t *hp;
    float *accum;
    /* full */
    float *m, *v;
#ifdef WEFT_HAVE_CUDA
    gpt2_cuda_t *gpu; /* resources.device = "cuda": the engine on this rank's GPU */
#endif
#ifdef WEFT_HAVE_NCCL
    ncclComm_t nccl; /* several ranks on GPUs: gradients summed there */
#endif
    schedule_t sched;
    adamw_hparams_t adam;
    float *scale;
    /* both */
    int T, Bsum;
    int *inputs, *targets, *window;
    int *pos;      /* (Bsum,T) positions inside documents (docattn.h) */
    int any_boundaries;
    int64_t step; /* optimizer steps taken by the run */
    double t0;
    double step_s, allreduce_s; /* this rank's time in steps, and inside their MPI_Allreduce */
    double step_cpu_s;          /* this process's CPU time (every thread) in steps */
    reporter_t *rep;
    /* keeping and publishing */
    float *best;   /* rank 0: the best parameters so far, laid out as the pack's (or model's) */
    int publish;   /* no coordinator: the worker installs its versions itself */
    char uid[40];  /* this run's identity in version.json, kept across resumes */
} worker_t;

static worker_t W;

/* ---- agreement between ranks ---- */

/* Every rank's code; the group acts on the largest (all agree). */
static int agree(int code)
{
    int out = code;
    MPI_Allreduce(&code, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

/* Broadcast of a float buffer of any size (MPI counts are int). */
static void bcast_floats(float *buf, size_t n)
{
    const size_t chunk = (size_t)1 << 28;
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        MPI_Bcast(buf + off, (int)k, MPI_FLOAT, 0, MPI_COMM_WORLD);
    }
}

static void allreduce_floats(float *buf, size_t n)
{
    const size_t chunk = (size_t)1 << 28;
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

/* Rank 0's string to every rank (malloc'ed on the others). */
/* Rank 0's len bytes (NUL bytes included) to every rank, NUL-terminated;
 * *len is set on the other ranks. */
static char *bcast_bytes(const char *s, size_t *len)
{
    long long n = W.rank == 0 ? (long long)*len + 1 : 0;
    MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    char *out = malloc((size_t)n);
    if (W.rank == 0) memcpy(out, s, (size_t)n - 1);
    MPI_Bcast(out, (int)n - 1, MPI_CHAR, 0, MPI_COMM_WORLD);
    out[n - 1] = 0;
    *len = (size_t)n - 1;
    return out;
}

static char *bcast_string(const char *s)
{
    size_t len = W.rank == 0 ? strlen(s) : 0;
    return bcast_bytes(s, &len);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Rank 0 prints the error; every rank returns the code. */
static int fail_with(int code)
{
    if (W.rank == 0) weft_report();
    return code;
}

/* ---- set-up ---- */

/* Rank 0 reads the spec file W.spec_file and every rank parses the same
 * bytes (relative paths against W.spec_dir). NULL on every rank when it
 * cannot be read or parsed; rank 0 has said why. */
static spec_t *read_spec(void)
{
    int code = EXIT_DONE;
    char *text = NULL;
    size_t len = 0;
    if (W.rank == 0) {
        text = weft_read_file(W.spec_file, 16u << 20, &len);
        if (!text) code = EXIT_SPEC;
    }
    if ((code = agree(code)) != EXIT_DONE) return fail_with(code), NULL;
    char *all = bcast_bytes(text, &len); /* all of it: spec_parse refuses NUL bytes */
    free(text);
    const char *base = strrchr(W.spec_file, '/') ? strrchr(W.spec_file, '/') + 1 : W.spec_file;
    spec_diag_t *diag = spec_diag_new();
    spec_t *s = spec_parse(all, len, W.spec_dir, base, NULL, diag);
    if (!s && W.rank == 0)
        for (int i = 0; i < spec_diag_count(diag); i++)
            fprintf(stderr, "%s\n", spec_diag_get(diag, i));
    spec_diag_destroy(&diag);
    free(all);
    return s;
}

static int load_spec(const char *path)
{
    char *abs = W.rank == 0 ? realpath(path, NULL) : NULL;
    char *absb = bcast_string(abs ? abs : path);
    free(abs);
    snprintf(W.spec_file, sizeof W.spec_file, "%s", absb);
    weft_dirname(absb, W.spec_dir, sizeof W.spec_dir);
    free(absb);
    W.spec = read_spec();
    if (!W.spec) return EXIT_SPEC;
    if (W.spec->sweep.ndims > 0) {
        weft_error("%s: a sweep is a set of runs; submit it to weftd, or run one trial's spec",
                   path);
        return fail_with(EXIT_SPEC);
    }
    if (W.spec->resources.ranks != W.world) {
        if (W.world == 1)
            weft_error("%s asks for %d ranks but this is a single process: launch it with "
                       "`mpirun -np %d weft-worker %s` or `srun --mpi=pmix` (an srun without "
                       "PMI starts %d separate singletons)",
                       path, W.spec->resources.ranks, W.spec->resources.ranks, path,
                       W.spec->resources.ranks);
        else
            weft_error("%s asks for resources.ranks = %d but the group has %d ranks", path,
                       W.spec->resources.ranks, W.world);
        return fail_with(EXIT_SPEC);
    }
    return EXIT_DONE;
}

static int load_backbone(void)
{
    int code = EXIT_DONE;
    gpt2_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    if (W.rank == 0) {
        W.model = model_file_load(W.spec->model, W.tokenizer, sizeof W.tokenizer);
        char kind[16];
        if (!W.model || weft_sha256_file(W.spec->model, W.backbone_sha) < 0 ||
            tok_h5_info(W.spec->model, kind, W.tokenizer_sha) < 0)
            code = EXIT_SPEC;
        else
            cfg = W.model->cfg;
    }
    if ((code = agree(code)) != EXIT_DONE) return fail_with(code);
    MPI_Bcast(&cfg, sizeof cfg, MPI_BYTE, 0, MPI_COMM_WORLD);
    MPI_Bcast(W.tokenizer, sizeof W.tokenizer, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Bcast(W.tokenizer_sha, sizeof W.tokenizer_sha, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Bcast(W.backbone_sha, sizeof W.backbone_sha, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (W.rank != 0) {
        W.model = gpt2_new(&cfg);
        if (!W.model) return fail_with(EXIT_FAIL);
    }
    bcast_floats(W.model->params, W.model->nparams);
    W.T = W.spec->train.seq_len;
    if (W.T > cfg.n_ctx) {
        weft_error("train.seq_len = %d is longer than the model's n_ctx = %d (%s)", W.T, cfg.n_ctx,
                   W.spec->model);
        return fail_with(EXIT_SPEC);
    }
    if (gpt2_check_window(&cfg, W.T, "train.seq_len") < 0) {
        weft_error_prefix("%s", W.spec->model);
        return fail_with(EXIT_SPEC);
    }
    return EXIT_DONE;
}

/* Sequences per rank per micro-step, or -1 (error) when the batch does not
 * split evenly. */
static int micro_batch(const char *who, const spec_train_t *t)
{
    int parts = W.world * t->grad_accum;
    if (t->batch_size % parts) {
        weft_error("%s: train.batch_size = %d does not split over %d ranks x grad_accum %d; "
                   "make it a multiple of %d",
                   who, t->batch_size, W.world, t->grad_accum, parts);
        return -1;
    }
    return t->batch_size / parts;
}

static int open_data(task_t *t, const char *path, int64_t seed)
{
    t->data = shardset_new(path);
    if (!t->data) return -1;
    if (strcmp(shardset_tokenizer(t->data), W.tokenizer))
        return weft_error("%s uses the %s tokenizer but the model %s uses %s", path,
                          shardset_tokenizer(t->data), W.spec->model, W.tokenizer);
    if (strcmp(shardset_tokenizer_sha256(t->data), W.tokenizer_sha))
        return weft_error("%s was tokenized with tokenizer %s but the model %s carries tokenizer "
                          "%s; re-shard it with 'weft shard --tokenizer %s'",
                          path, shardset_tokenizer_sha256(t->data), W.spec->model, W.tokenizer_sha,
                          W.spec->model);
    if (shardset_vocab_size(t->data) > W.model->cfg.vocab_size)
        return weft_error("%s has %d tokens in its vocabulary; the model has only %d", path,
                          shardset_vocab_size(t->data), W.model->cfg.vocab_size);
    /* Chat and completion data (a loss mask) come in rows of whole
     * documents unless train.doc_boundaries is off; raw text in windows. */
    t->boundaries = shardset_has_mask(t->data) && t->train->doc_boundaries;
    if (!t->boundaries && shardset_select(t->data, W.rank, W.world, W.T) < 0) return -1;
    if (shardset_has_mask(t->data) && !(t->rows = docpack_new(t->data, W.rank, W.world, W.T)))
        return -1;
    /* Each rank's stream of windows is its own: the rank is part of the
     * hash inside the shard reader, the seed is the task's. */
    shardset_cursor_init(&t->cursor, (uint64_t)seed);
    return 0;
}

/* The /val windows evaluation will read, read at start (the reader checks
 * every token against the vocabulary) rather than first when training ends:
 * all of them, on every rank, so rank 0 can say why (eval_windows is small). */
static int64_t val_windows(const task_t *t)
{
    if (t->boundaries) return docpack_val_rows(t->rows);
    return shardset_val_windows(t->data, W.T);
}

/* Val window i of task t as one row of in, tg, pos. */
static int val_row(task_t *t, int64_t i, int *in, int *tg, int *pos)
{
    if (t->boundaries) return docpack_val_row(t->rows, i, in, tg, pos);
    if (t->rows) return docpack_stream_val_row(t->rows, i, in, tg, pos);
    if (shardset_val_window(t->data, W.T, i, W.window) < 0) return -1;
    for (int j = 0; j < W.T; j++) {
        in[j] = W.window[j];
        tg[j] = W.window[j + 1];
        pos[j] = j;
    }
    return 0;
}

static int check_val(task_t *t)
{
    if (!t->data) return 0; /* dropped for its data already */
    int64_t avail = val_windows(t);
    int64_t n = t->train->eval_windows < avail ? t->train->eval_windows : avail;
    for (int64_t i = 0; i < n; i++)
        if (val_row(t, i, W.inputs, W.targets, W.pos) < 0)
            return weft_error_prefix("tenant %s", t->name);
    return 0;
}

static int64_t task_steps(const spec_train_t *t, shardset_t *data)
{
    if (t->steps > 0) return t->steps;
    double tokens = (double)shardset_tokens(data, SHARDSET_TRAIN);
    int64_t s = (int64_t)ceil(t->epochs * tokens / ((double)t->batch_size * W.T));
    return s > 0 ? s : 1;
}

static sched_kind_t sched_kind(spec_schedule_t s)
{
    return s == SPEC_COSINE ? SCHED_COSINE : s == SPEC_LINEAR ? SCHED_LINEAR : SCHED_CONSTANT;
}

/* In a pack, a tenant whose data fails to load on any rank is dropped
 * alone, as a NaN tenant is: failed with the first failing rank's message
 * before its first step, while the pack goes on. */
static void drop_bad_data(task_t *t, int bad)
{
    int first = bad ? W.rank : W.world;
    MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == W.world) return;
    char why[200];
    snprintf(why, sizeof why, "%s", weft_last_error());
    MPI_Bcast(why, sizeof why, MPI_CHAR, first, MPI_COMM_WORLD);
    docpack_destroy(&t->rows);
    shardset_destroy(&t->data);
    t->state = TASK_FAILED;
    snprintf(t->error, sizeof t->error, "bad data: %s", why);
    if (W.rank == 0) weft_warn("tenant %s: %s; the others go on", t->name, t->error);
}

/* Task k of the spec: its share of the batch, its data (in a pack, a
 * tenant whose data fails on any rank is dropped alone), its steps; a LoRA
 * tenant then waits for a slot. Every rank takes part. EXIT_DONE, or the
 * group's exit code (a batch that does not split: EXIT_SPEC). */
static int open_task(int k)
{
    const spec_t *s = W.spec;
    task_t *t = &W.tasks[k];
    t->name = s->tenants[k].name;
    t->train = &s->tenants[k].train;
    t->loss = t->val_loss = NAN;
    t->best_loss = t->baseline_loss = NAN;
    t->best_step = -1;
    t->B = micro_batch(t->name, t->train);
    if (t->B < 0) return EXIT_SPEC;
    int bad = open_data(t, s->tenants[k].data, t->train->seed) < 0;
    if (bad) weft_error_prefix("tenant %s", t->name);
    if (W.ntasks > 1) drop_bad_data(t, bad);
    if (W.ntasks == 1 && bad) return EXIT_DATA;
    t->steps = t->data ? task_steps(t->train, t->data) : 1;
    W.any_boundaries |= t->boundaries;
    if (s->mode == SPEC_LORA && t->state == TASK_TRAINING) t->state = TASK_WAITING;
    return EXIT_DONE;
}

/* Rows of the step buffers for the pack_size largest batches, so that any
 * members fit (pack_size: tenants training at once). Grows them only. */
static int size_rows(void)
{
    const spec_t *s = W.spec;
    W.pack_size =
        s->mode == SPEC_LORA && s->resources.pack_size > 0 && s->resources.pack_size < W.ntasks
            ? s->resources.pack_size
            : W.ntasks;
    int *Bs = malloc((size_t)W.ntasks * sizeof *Bs);
    if (!Bs) return weft_error("out of memory");
    for (int k = 0; k < W.ntasks; k++) Bs[k] = W.tasks[k].B;
    int sum = 0;
    for (int i = 0; i < W.pack_size; i++) {
        int best = i;
        for (int j = i + 1; j < W.ntasks; j++)
            if (Bs[j] > Bs[best]) best = j;
        int b = Bs[i];
        Bs[i] = Bs[best], Bs[best] = b;
        sum += Bs[i];
    }
    free(Bs);
    if (sum <= W.Bsum && W.inputs) return 0;
    W.Bsum = sum;
    size_t rows = (size_t)W.Bsum * (size_t)W.T;
    W.inputs = realloc(W.inputs, rows * sizeof *W.inputs);
    W.targets = realloc(W.targets, rows * sizeof *W.targets);
    W.pos = realloc(W.pos, rows * sizeof *W.pos);
    if (!W.window) W.window = malloc(((size_t)W.T + 1) * sizeof *W.window);
    if (!W.inputs || !W.targets || !W.window || !W.pos) return weft_error("out of memory");
    return 0;
}

static int setup_tasks(void)
{
    const spec_t *s = W.spec;
    W.ntasks = s->ntenants; /* a full spec's one tenant is the whole model */
    W.tasks = calloc((size_t)W.ntasks, sizeof *W.tasks);
    if (!W.tasks) return fail_with(EXIT_FAIL);
    int code = EXIT_DONE;
    for (int k = 0; k < W.ntasks && code == EXIT_DONE; k++) code = open_task(k);
    if ((code = agree(code)) != EXIT_DONE) return fail_with(code);
    if (size_rows() < 0) return fail_with(EXIT_FAIL);
    /* bad /val windows: a pack drops that tenant alone, a lone task stops */
    for (int k = 0; k < W.ntasks && code == EXIT_DONE; k++) {
        task_t *t = &W.tasks[k];
        if (!t->data) continue; /* dropped above */
        int bad = check_val(t) < 0;
        if (W.ntasks > 1)
            drop_bad_data(t, bad);
        else if (bad)
            code = EXIT_DATA;
    }
    if ((code = agree(code)) != EXIT_DONE) return fail_with(code);
    /* every tenant's targets are modules of this backbone, named if not */
    for (int k = 0; s->mode == SPEC_LORA && k < W.ntasks; k++) {
        unsigned targets;
        if (modules_resolve(s->tenants[k].lora.targets, W.model->cfg.arch, &targets) < 0) {
            weft_error_prefix("tenant %d", k);
            return fail_with(EXIT_SPEC);
        }
    }
    return EXIT_DONE;
}

#ifdef WEFT_HAVE_CUDA
/* resources.device = "cuda": one rank per GPU, the node-local rank picks the
 * device among those visible (CUDA_VISIBLE_DEVICES). No GPU, or fewer than
 * the node's ranks: one line from the lowest failing rank, exit 78. */
static int setup_gpu(void)
{
    MPI_Comm node;
    int lrank = 0, lsize = 1, code = EXIT_DONE;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, W.rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &lrank);
    MPI_Comm_size(node, &lsize);
    MPI_Comm_free(&node);
    int n = gpt2_cuda_device_count();
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    if (W.model->cfg.arch != ARCH_GPT2) {
        weft_error("resources.device = \"cuda\": the CUDA engine runs GPT-2 models only and %s "
                   "is of the Llama family: use device = \"cpu\"",
                   W.spec->model);
        code = EXIT_SPEC;
    } else if (n <= 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", weft_last_error());
        weft_error("resources.device = \"cuda\" but this machine has no usable GPU (%s): run it "
                   "where one is, or use device = \"cpu\"",
                   why);
        code = EXIT_SPEC;
    } else if (lrank >= n) {
        weft_error("resources.device = \"cuda\": %d ranks on this node but %d GPU(s) visible "
                   "(CUDA_VISIBLE_DEVICES=%s); one rank drives one GPU: lower resources.ranks or "
                   "give the run more GPUs",
                   lsize, n, vis ? vis : "unset");
        code = EXIT_SPEC;
    }
    gpt2_cuda_precision_t prec = W.spec->resources.precision == SPEC_PREC_BF16   ? GPT2_CUDA_BF16
                                 : W.spec->resources.precision == SPEC_PREC_TF32 ? GPT2_CUDA_TF32
                                                                                 : GPT2_CUDA_FP32;
    if (code == EXIT_DONE && (!(W.gpu = gpt2_cuda_new(W.model, prec, lrank)) ||
                              gpt2_cuda_alloc(W.gpu, W.tasks[0].B, W.T) < 0)) {
        /* Out of GPU memory will not change on a retry: 78, which weftd
         * does not retry (the line names the sizes tried). */
        const char *e = weft_last_error();
        code = strstr(e, "out of GPU memory") ||
                       (!strncmp(e, "CUDA:", 5) && strstr(e, "out of memory"))
                   ? EXIT_SPEC
                   : EXIT_FAIL;
    }
    int first = code != EXIT_DONE ? W.rank : W.world;
    MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == W.rank) weft_report();
    code = agree(code);
#ifdef WEFT_HAVE_NCCL
    /* NCCL's id over MPI; any rank that cannot join: all sum with MPI. */
    const char *env = getenv("WEFT_NCCL");
    if (code == EXIT_DONE && W.world > 1 && !(env && !strcmp(env, "0"))) {
        ncclUniqueId id;
        int ok = 1;
        if (W.rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) ok = 0;
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (ok) {
            MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
            ncclResult_t r = ncclCommInitRank(&W.nccl, W.world, id, W.rank);
            if (r != ncclSuccess) W.nccl = NULL;
            ok = r == ncclSuccess;
            MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        }
        if (!ok && W.nccl) ncclCommDestroy(W.nccl), W.nccl = NULL;
        if (!ok && W.rank == 0) weft_warn("NCCL could not start: gradients are summed with MPI");
    }
#endif
    if (code == EXIT_DONE && W.rank == 0)
        weft_info("engine on %s (%s), %d rank(s), one GPU each, gradients summed with %s",
                  gpt2_cuda_device_name(W.gpu), gpt2_cuda_precision_name(prec), W.world,
#ifdef WEFT_HAVE_NCCL
                  W.nccl ? "NCCL" :
#endif
                  W.world > 1 ? "MPI"
                              : "nothing (one rank)");
    return code;
}

/* The device's parameters and moments into the host buffers (checkpoints and
 * the output model are written from the host, in the CPU engine's layout). */
static int gpu_to_host(void)
{
    if (!W.gpu) return 0;
    size_t n = W.model->nparams;
    return gpt2_cuda_get_params(W.gpu, W.model->params, n) |
           gpt2_cuda_get_moments(W.gpu, W.m, W.v, n);
}

static int host_to_gpu(void)
{
    if (!W.gpu) return 0;
    size_t n = W.model->nparams;
    return gpt2_cuda_set_params(W.gpu, W.model->params, n) |
           gpt2_cuda_set_moments(W.gpu, W.m, W.v, n);
}
#else
static int gpu_to_host(void)
{
    return 0;
}
static int host_to_gpu(void)
{
    return 0;
}
#endif

static int setup_full(void)
{
    const spec_train_t *t = &W.spec->train;
#ifdef WEFT_HAVE_CUDA
    if (W.spec->resources.device == SPEC_DEV_CUDA) {
        int code = setup_gpu();
        if (code != EXIT_DONE) return code;
        /* The ranks' gradients meet in a host buffer (MPI) when there are several. */
        if (W.world > 1 && !gpt2_grads(W.model)) return fail_with(EXIT_FAIL);
    } else
#endif
        if (gpt2_alloc(W.model, W.tasks[0].B, W.T) < 0 || !gpt2_grads(W.model))
        return fail_with(EXIT_FAIL);
    W.m = calloc(W.model->nparams, sizeof *W.m);
    W.v = calloc(W.model->nparams, sizeof *W.v);
    W.scale = malloc((size_t)W.tasks[0].B * sizeof *W.scale);
    if (!W.m || !W.v || !W.scale) return fail_with(EXIT_FAIL);
    W.sched = (schedule_t){sched_kind(t->schedule), (float)t->lr, (float)t->min_lr, t->warmup,
                           W.tasks[0].steps};
    W.adam = (adamw_hparams_t){(float)t->betas[0], (float)t->betas[1], (float)t->eps,
                               (float)t->weight_decay};
    return EXIT_DONE;
}

/* Tenant k's adapter shape and optimizer settings, from its spec. */
static void tenant_settings(int k, lora_spec_t *ls, lora_hparams_t *hp)
{
    const spec_tenant_t *tn = &W.spec->tenants[k];
    *ls = (lora_spec_t){.r = tn->lora.r,
                        .alpha = (float)tn->lora.alpha,
                        .use_rslora = tn->lora.rslora,
                        .targets = tn->lora.targets,
                        .dropout = (float)tn->lora.dropout,
                        .seed = (uint64_t)tn->train.seed};
    const spec_train_t *t = &tn->train;
    *hp = (lora_hparams_t){
        .sched = {sched_kind(t->schedule), (float)t->lr, (float)t->min_lr, t->warmup,
                  W.tasks[k].steps},
        .weight_decay = (float)t->weight_decay,
        .grad_clip = (float)t->grad_clip,
        .adam = {(float)t->betas[0], (float)t->betas[1], (float)t->eps, (float)t->weight_decay}};
}

static int setup_lora(void)
{
    if (W.spec->resources.device == SPEC_DEV_CUDA) {
        weft_error("resources.device = \"cuda\" trains full fine-tuning only in this version; "
                   "LoRA packs run on the CPU: use device = \"cpu\" for mode = \"lora\"");
        return fail_with(EXIT_SPEC);
    }
    lora_spec_t *ls = calloc((size_t)W.ntasks, sizeof *ls);
    W.hp = calloc((size_t)W.ntasks, sizeof *W.hp);
    if (!ls || !W.hp) return fail_with(EXIT_FAIL);
    for (int k = 0; k < W.ntasks; k++) tenant_settings(k, &ls[k], &W.hp[k]);
    W.pack = lora_pack_for(W.model, W.ntasks, ls, (size_t)W.Bsum * (size_t)W.T);
    free(ls);
    if (!W.pack) return fail_with(EXIT_SPEC);
    for (int k = 0; k < W.ntasks; k++) lora_pack_init_tenant(W.pack, k);
    W.trainer = lora_trainer_new(W.model, W.pack, W.hp, W.Bsum, W.T);
    if (!W.trainer) return fail_with(EXIT_FAIL);
    lora_trainer_set_threads(W.trainer, W.spec->resources.threads);
    if (W.spec->train.grad_accum > 1) {
        W.accum = calloc(lora_pack_size(W.pack), sizeof *W.accum);
        if (!W.accum) return fail_with(EXIT_FAIL);
    }
    return EXIT_DONE;
}

/* Rank 0: the adapter of tenant k's current version in its output folder
 * (a run without a coordinator; weftd names it in the spec instead). */
static int current_version(int k, char *adapter, size_t size, int *version)
{
    char dir[PATH_MAX];
    if (!W.publish || weft_path_join(dir, sizeof dir, W.spec->output, W.tasks[k].name) < 0)
        return 0;
    return publish_current(dir, adapter, size, version);
}

/* Tenants that continue last night's adapter, from task `from` on (0 on a
 * fresh start; on a resume or an admission, those the pack did not hold):
 * their init_adapter, or with `continue = true` their current version
 * (fresh optimizer state either way). One that cannot be loaded fails the
 * run at its start (exit 78), and fails alone when it joins a pack that
 * already trains. */
static int load_init_adapters(int from)
{
    int code = EXIT_DONE, n = W.ntasks - from;
    int *failed = calloc((size_t)(n > 0 ? n : 1), sizeof *failed);
    if (!failed) return weft_error("out of memory"), fail_with(EXIT_FAIL);
    if (W.rank == 0)
        for (int k = from; k < W.ntasks && code == EXIT_DONE; k++) {
            const spec_tenant_t *tn = &W.spec->tenants[k];
            char path[PATH_MAX];
            int rc = 0;
            snprintf(path, sizeof path, "%s", tn->init_adapter);
            if (W.tasks[k].state == TASK_FAILED) continue; /* its data, already */
            if (tn->train.cont) {
                char cur[PATH_MAX];
                int v = 0, got = current_version(k, cur, sizeof cur, &v);
                if (got < 0) {
                    rc = weft_error_prefix("tenant %s: continue", tn->name);
                    path[0] = 0;
                } else if (got) {
                    snprintf(path, sizeof path, "%s", cur);
                    weft_info("tenant %s continues its current version v%d", tn->name, v);
                } else if (!path[0]) {
                    weft_warn("tenant %s: continue = true but there is no earlier version in %s/%s; "
                              "a fresh start",
                              tn->name, W.spec->output, tn->name);
                }
            }
            if (rc == 0 && path[0] &&
                adapter_load(path, W.spec->model, W.backbone_sha, W.pack, k, NULL) < 0)
                rc = weft_error_prefix("tenant %s: init_adapter", W.tasks[k].name);
            if (rc < 0 && from == 0) code = EXIT_SPEC;
            if (rc < 0 && from > 0) {
                failed[k - from] = 1;
                snprintf(W.tasks[k].error, sizeof W.tasks[k].error, "%s", weft_last_error());
                weft_warn("%s; the others go on", W.tasks[k].error);
            }
        }
    if ((code = agree(code)) != EXIT_DONE) return free(failed), fail_with(code);
    MPI_Bcast(failed, n, MPI_INT, 0, MPI_COMM_WORLD);
    for (int k = from; k < W.ntasks; k++) {
        if (!failed[k - from]) continue;
        MPI_Bcast(W.tasks[k].error, sizeof W.tasks[k].error, MPI_CHAR, 0, MPI_COMM_WORLD);
        W.tasks[k].state = TASK_FAILED;
        W.tasks[k].saved = 1;
    }
    free(failed);
    bcast_floats(lora_pack_params(W.pack), lora_pack_size(W.pack));
    return EXIT_DONE;
}

static int task_active(const task_t *t);
static int evaluate_as(const unsigned char *mask, int report);

/* Every rank: each tenant with a current version (the spec's `baseline`,
 * else its output folder's current, without a coordinator) has that
 * version's validation loss measured on this run's /val windows, in the
 * tenant's own slot, whose parameters are put back after. A version that
 * cannot be loaded (another rank, targets or backbone) is a warning: the
 * new one is then promoted. From task `from` on: on a resume the
 * checkpoint has the others'. */
static int eval_baselines(int from)
{
    int K = W.ntasks, code = EXIT_DONE;
    unsigned char *mask = calloc((size_t)K, 1);
    if (!mask) return weft_error("out of memory"), fail_with(EXIT_FAIL);
    for (int k = from; k < K && code == EXIT_DONE; k++) {
        task_t *t = &W.tasks[k];
        int have = 0;
        if (W.rank == 0 && t->data && (task_active(t) || t->state == TASK_WAITING)) {
            int v = 0;
            const char *b = W.spec->tenants[k].baseline;
            if (b[0])
                snprintf(t->baseline, sizeof t->baseline, "%s", b);
            else if (current_version(k, t->baseline, sizeof t->baseline, &v) < 0) {
                snprintf(t->baseline_error, sizeof t->baseline_error, "%s", weft_last_error());
                if (weft_path_join(t->baseline, sizeof t->baseline, W.spec->output, t->name) < 0)
                    t->baseline[0] = '?';
            }
            have = t->baseline[0] && !t->baseline_error[0];
        }
        MPI_Bcast(&have, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (!have) continue;
        float *p = lora_pack_params(W.pack);
        size_t off = lora_pack_tenant_offset(W.pack, k), n = lora_pack_tenant_size(W.pack, k);
        float *mine = malloc(n * sizeof *mine);
        if (!mine) {
            code = EXIT_FAIL;
            break;
        }
        memcpy(mine, p + off, n * sizeof *p);
        int ok = 1;
        if (W.rank == 0 &&
            adapter_load(t->baseline, W.spec->model, W.backbone_sha, W.pack, k, NULL) < 0) {
            ok = 0;
            snprintf(t->baseline_error, sizeof t->baseline_error, "%s", weft_last_error());
            weft_warn("tenant %s: the current version %s cannot be evaluated (%s); the new one "
                      "will be promoted",
                      t->name, t->baseline, t->baseline_error);
        }
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (ok) {
            bcast_floats(p + off, n);
            double val = t->val_loss;
            mask[k] = 1;
            if (evaluate_as(mask, 0) < 0) code = EXIT_DATA;
            mask[k] = 0;
            t->baseline_loss = t->val_loss;
            t->val_loss = val;
            if (W.rank == 0 && code == EXIT_DONE)
                weft_info("tenant %s: its current version %s has validation loss %.6g on this "
                          "run's data",
                          t->name, t->baseline, t->baseline_loss);
        }
        memcpy(p + off, mine, n * sizeof *p);
        free(mine);
    }
    free(mask);
    return code == EXIT_DONE ? EXIT_DONE : fail_with(code);
}

/* Rank 0: a fresh run's identity (version.json's "run"), random. */
static void new_uid(void)
{
    unsigned char b[16] = {0};
    FILE *r = fopen("/dev/urandom", "rb");
    if (!r || fread(b, 1, sizeof b, r) != sizeof b) {
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        memcpy(b, &x, sizeof x);
    }
    if (r) fclose(r);
    for (int i = 0; i < 16; i++) snprintf(W.uid + 2 * i, 3, "%02x", b[i]);
}

/* ---- checkpoints ---- */

#define STATE_FORMAT "weft-run-state"

static int write_bytes(hid_t f, const char *name, const char *text)
{
    hsize_t n = strlen(text);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_NATIVE_UCHAR, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, text);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return st < 0 ? weft_error("cannot write %s", name) : 0;
}

static char *read_bytes(hid_t f, const char *name)
{
    int rank;
    hsize_t dims[8];
    if (h5_dataset_shape(f, name, &rank, dims) < 0 || rank != 1) return NULL;
    char *out = calloc(dims[0] + 1, 1);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (!out || d < 0 || H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        free(out);
        out = NULL;
        weft_error("cannot read %s", name);
    }
    if (d >= 0) H5Dclose(d);
    return out;
}

/* Every rank's cursors, gathered to rank 0: [world][ntasks][2]. */
static int64_t *gather_cursors(void)
{
    size_t n = (size_t)W.ntasks * 2;
    int64_t *mine = malloc(n * sizeof *mine);
    for (int k = 0; k < W.ntasks; k++) {
        mine[2 * k] = (int64_t)W.tasks[k].cursor.seed;
        mine[2 * k + 1] = (int64_t)W.tasks[k].cursor.next;
    }
    int64_t *all = W.rank == 0 ? malloc(n * (size_t)W.world * sizeof *all) : NULL;
    MPI_Gather(mine, (int)n, MPI_INT64_T, all, (int)n, MPI_INT64_T, 0, MPI_COMM_WORLD);
    free(mine);
    return all;
}

/* Rank 0's kept state of task k in its checkpoint group g (an open group
 * grp): the best so far, the baseline, the published version. */
static int write_kept(hid_t f, hid_t grp, const char *g, int k)
{
    const task_t *t = &W.tasks[k];
    int rc = h5_attr_write_i64(grp, "best_step", t->best_step) |
             h5_attr_write_f64(grp, "best_val_loss", t->best_loss) |
             h5_attr_write_str(grp, "baseline", t->baseline) |
             h5_attr_write_f64(grp, "baseline_val_loss", t->baseline_loss) |
             h5_attr_write_str(grp, "baseline_error", t->baseline_error) |
             h5_attr_write_i64(grp, "version", t->version) |
             h5_attr_write_i64(grp, "promoted", t->promoted);
    if (rc == 0 && W.pack && W.best && t->best_step >= 0) {
        char p[300];
        snprintf(p, sizeof p, "%s/best", g);
        rc = adapter_write_tensors(f, p, W.pack, k, W.best);
    }
    return rc;
}

/* The same read back; a checkpoint written before these existed has none. */
static int read_kept(hid_t f, hid_t grp, const char *g, int k)
{
    task_t *t = &W.tasks[k];
    if (h5_attr_exists(grp, "best_step") <= 0) return 0;
    int64_t v[3];
    if (h5_attr_read_i64(grp, "best_step", &v[0]) < 0 ||
        h5_attr_read_f64(grp, "best_val_loss", &t->best_loss) < 0 ||
        h5_attr_read_str(grp, "baseline", t->baseline, sizeof t->baseline) < 0 ||
        h5_attr_read_f64(grp, "baseline_val_loss", &t->baseline_loss) < 0 ||
        h5_attr_read_str(grp, "baseline_error", t->baseline_error, sizeof t->baseline_error) < 0 ||
        h5_attr_read_i64(grp, "version", &v[1]) < 0 || h5_attr_read_i64(grp, "promoted", &v[2]) < 0)
        return weft_error("%s: cannot read the kept state", g);
    t->best_step = v[0];
    t->version = (int)v[1];
    t->promoted = (int)v[2];
    if (W.pack && W.best && t->best_step >= 0) {
        char p[300];
        snprintf(p, sizeof p, "%s/best", g);
        if (adapter_read_tensors(f, p, W.pack, k, W.best) < 0) return -1;
    }
    return 0;
}

static int write_state(const char *path, const int64_t *cursors)
{
    hid_t f = h5_mem_create(); /* written out whole at the end (h5util.h) */
    if (f < 0) return weft_error_prefix("%s", path);
    char *resume = spec_resume_text(W.spec);
    int rc = h5_attr_write_str(f, "format", STATE_FORMAT) | h5_attr_write_i64(f, "version", 1) |
             h5_attr_write_i64(f, "step", W.step) | h5_attr_write_i64(f, "world", W.world) |
             h5_attr_write_i64(f, "metrics_bytes", reporter_metrics_bytes(W.rep)) |
             h5_attr_write_str(f, "backbone_sha256", W.backbone_sha) |
             h5_attr_write_str(f, "run_uid", W.uid) |
             write_bytes(f, "/resume_text", resume ? resume : "");
    free(resume);
    hsize_t cd[3] = {(hsize_t)W.world, (hsize_t)W.ntasks, 2};
    hid_t sp = H5Screate_simple(3, cd, NULL);
    hid_t d = H5Dcreate2(f, "/cursors", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, cursors) < 0) rc = -1;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    for (int k = 0; rc == 0 && k < W.ntasks; k++) {
        task_t *t = &W.tasks[k];
        char g[256];
        snprintf(g, sizeof g, "/tasks/%s", t->name);
        if (h5_make_parents(f, g) < 0) {
            rc = -1;
            break;
        }
        hid_t grp = H5Gcreate2(f, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        long tstep = W.pack ? lora_trainer_tenant_step(W.trainer, k) : (long)W.step;
        rc = grp < 0 ? -1
                     : h5_attr_write_i64(grp, "state", t->state) |
                           h5_attr_write_i64(grp, "step", tstep) |
                           h5_attr_write_i64(grp, "at_step", t->at_step) |
                           h5_attr_write_i64(grp, "tokens", t->tokens) |
                           h5_attr_write_i64(grp, "failed_at",
                                             W.pack ? lora_trainer_failed_at(W.trainer, k) : -1) |
                           h5_attr_write_i64(grp, "rng",
                                             W.pack ? (int64_t)lora_pack_rng(W.pack, k) : 0) |
                           h5_attr_write_f64(grp, "loss", t->loss) |
                           h5_attr_write_f64(grp, "val_loss", t->val_loss) |
                           h5_attr_write_str(grp, "error", t->error);
        if (rc == 0) rc = write_kept(f, grp, g, k);
        if (grp >= 0) H5Gclose(grp);
        if (rc == 0 && W.pack) {
            char p[300];
            const char *bufs[3] = {"params", "m", "v"};
            float *ptr[3] = {lora_pack_params(W.pack), lora_pack_m(W.pack), lora_pack_v(W.pack)};
            for (int b = 0; rc == 0 && b < 3; b++) {
                snprintf(p, sizeof p, "%s/%s", g, bufs[b]);
                rc = adapter_write_tensors(f, p, W.pack, k, ptr[b]);
            }
        }
    }
    if (rc < 0) {
        H5Fclose(f);
        return weft_error_prefix("%s", path);
    }
    return h5_mem_save(f, path);
}

/* A model-layout buffer as its own file (full mode: params, m, v). */
static int write_buffer(const char *path, const float *buf)
{
    hid_t f = h5_mem_create(); /* written out whole at the end (h5util.h) */
    if (f < 0) return weft_error_prefix("%s", path);
    if (model_file_write_tensors(f, W.model, buf) < 0) {
        H5Fclose(f);
        return weft_error_prefix("%s", path);
    }
    return h5_mem_save(f, path);
}

static int read_buffer(const char *path, float *buf)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return weft_error("cannot open %s", path);
    int rc = model_file_read_tensors(f, W.model, buf);
    H5Fclose(f);
    return rc < 0 ? weft_error_prefix("%s", path) : 0;
}

/* Every rank takes part (cursors are gathered); rank 0 writes. */
static int checkpoint(void)
{
    int64_t *cursors = gather_cursors();
    int code = EXIT_DONE;
    if (W.rank == 0) {
        const spec_train_t *t = &W.spec->train;
        ckpt_writer_t *cw = NULL;
        char p[PATH_MAX];
        int rc = reporter_sync(W.rep);
        if (rc == 0 && !(cw = ckpt_writer_new(W.spec->output, W.step))) rc = -1;
        if (rc == 0) rc = ckpt_writer_path(cw, "state.h5", p, sizeof p) | write_state(p, cursors);
        if (rc == 0 && !W.pack) rc = gpu_to_host();
        if (rc == 0 && !W.pack) {
            const char *names[3] = {"params.h5", "m.h5", "v.h5"};
            const float *bufs[3] = {W.model->params, W.m, W.v};
            for (int b = 0; rc == 0 && b < 3; b++)
                rc = ckpt_writer_path(cw, names[b], p, sizeof p) | write_buffer(p, bufs[b]);
            if (rc == 0 && W.best && W.tasks[0].best_step >= 0)
                rc = ckpt_writer_path(cw, "best.h5", p, sizeof p) | write_buffer(p, W.best);
        }
        if (rc == 0)
            rc = ckpt_writer_commit(&cw, t->keep_checkpoints);
        else
            ckpt_writer_destroy(&cw);
        if (rc < 0) {
            /* The previous checkpoint stays usable; training goes on. */
            weft_warn("checkpoint at step %" PRId64 " failed: %s", W.step, weft_last_error());
            code = EXIT_FAIL;
        } else {
            reporter_post(W.rep, WIRE_CHECKPOINT, json_pack("{s:I}", "step", (json_int_t)W.step));
        }
    }
    free(cursors);
    return agree(code);
}

/* Whether every task of the run state f ended (none is still training). */
static int all_tasks_ended(hid_t f)
{
    hid_t g = H5Gopen2(f, "/tasks", H5P_DEFAULT);
    H5G_info_t gi;
    int ended = g >= 0 && H5Gget_info(g, &gi) >= 0;
    for (hsize_t i = 0; ended && g >= 0 && i < gi.nlinks; i++) {
        char name[256];
        int64_t st = 0;
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            return H5Gclose(g), 0;
        hid_t t = H5Gopen2(g, name, H5P_DEFAULT);
        if (t < 0 || h5_attr_read_i64(t, "state", &st) < 0 || st == TASK_TRAINING) ended = 0;
        if (t >= 0) H5Gclose(t);
    }
    if (g >= 0) H5Gclose(g);
    return ended;
}

/* A LoRA run without a coordinator whose newest checkpoint shows every
 * tenant ended has published its versions: starting it again is the next
 * run (tonight's), so the old checkpoints go. */
static int next_run(const char *dir, hid_t f)
{
    if (!W.publish || W.spec->mode != SPEC_LORA || !all_tasks_ended(f)) return 0;
    weft_info("the run in %s ended (%s); this is the next run: new versions", W.spec->output, dir);
    DIR *d = opendir(W.spec->output);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "ckpt-", 5)) continue;
        char p[PATH_MAX];
        if (weft_path_join(p, sizeof p, W.spec->output, e->d_name) == 0) weft_rm_rf(p);
    }
    if (d) closedir(d);
    return 1;
}

/* Rank 0 finds and reads the newest good checkpoint; every rank takes its
 * part. Returns 1 resumed (with the size metrics.jsonl had then), 0 fresh
 * start, or a negated exit code. */
/* The resume text of spec s with its first n tenants: a checkpoint written
 * before tenants were admitted into the pack knows only those. */
static char *resume_text_of(const spec_t *s, int n)
{
    spec_t head = *s; /* shallow: spec_resume_text only reads */
    if (head.mode == SPEC_LORA && n < head.ntenants) head.ntenants = n;
    return spec_resume_text(&head);
}

static int resume(int allowed, int64_t *metrics_bytes_out)
{
    int found = 0, code = EXIT_DONE, held = W.ntasks; /* tasks the checkpoint knows */
    char dir[PATH_MAX] = "";
    int64_t step = 0, metrics_bytes = -1;
    int64_t *cursors = NULL;
    hid_t f = -1;
    if (W.rank == 0 && allowed) {
        int64_t s;
        found = ckpt_find_latest(W.spec->output, dir, sizeof dir, &s);
        if (found < 0) code = EXIT_FAIL, found = 0;
        if (found) {
            char p[PATH_MAX];
            weft_path_join(p, sizeof p, dir, "state.h5");
            f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
            if (f >= 0 && next_run(dir, f)) {
                H5Fclose(f);
                f = -1;
                found = 0;
            }
        }
        if (found) {
            char p[PATH_MAX];
            weft_path_join(p, sizeof p, dir, "state.h5");
            char fmt[32] = "";
            char *saved = NULL, *now_text = NULL;
            int crank = 0;
            hsize_t cdims[8];
            if (f < 0 || h5_attr_read_str(f, "format", fmt, sizeof fmt) < 0 ||
                strcmp(fmt, STATE_FORMAT) || h5_attr_read_i64(f, "step", &step) < 0 ||
                h5_attr_read_i64(f, "metrics_bytes", &metrics_bytes) < 0 ||
                (h5_attr_exists(f, "run_uid") > 0 &&
                 h5_attr_read_str(f, "run_uid", W.uid, sizeof W.uid) < 0) ||
                !(saved = read_bytes(f, "/resume_text"))) {
                weft_error("%s: not a weft run state; remove that checkpoint folder", p);
                code = EXIT_FAIL;
            } else if (h5_dataset_shape(f, "/cursors", &crank, cdims) < 0 || crank != 3 ||
                       cdims[1] < 1 || cdims[2] != 2) {
                weft_error("%s: no data cursors of the shape [ranks][tasks][2]; remove that "
                           "checkpoint folder",
                           p);
                code = EXIT_FAIL;
            } else {
                /* Tenants admitted after this checkpoint follow the ones it
                 * holds in the spec: it is compared with those alone (one
                 * it holds that the spec lacks is a difference). */
                char why[512];
                held = cdims[1] < (hsize_t)W.ntasks ? (int)cdims[1] : W.ntasks;
                now_text = resume_text_of(W.spec, held);
                if (spec_resume_explain(saved, now_text, why, sizeof why)) {
                    weft_error("the spec changed since %s was written (%s); resuming would mix "
                               "two runs: restore the spec, or give a new output folder",
                               dir, why);
                    code = EXIT_SPEC;
                }
            }
            free(saved);
            free(now_text);
            if (code == EXIT_DONE && (cdims[0] != (hsize_t)W.world || cdims[1] != (hsize_t)held)) {
                weft_error("%s: data cursors of %llu rank(s) and %llu task(s), not %d and %d; "
                           "remove that checkpoint folder",
                           p, (unsigned long long)cdims[0], (unsigned long long)cdims[1], W.world,
                           held);
                code = EXIT_FAIL;
            }
            if (code == EXIT_DONE) {
                cursors = malloc((size_t)W.world * (size_t)held * 2 * sizeof *cursors);
                hid_t d = H5Dopen2(f, "/cursors", H5P_DEFAULT);
                if (d < 0 ||
                    H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, cursors) < 0)
                    code = EXIT_FAIL, weft_error("%s: cannot read the data cursors", p);
                if (d >= 0) H5Dclose(d);
            }
        }
    }
    if ((code = agree(code)) != EXIT_DONE) {
        if (f >= 0) H5Fclose(f);
        free(cursors);
        return -fail_with(code);
    }
    MPI_Bcast(&found, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!found) return 0;
    MPI_Bcast(&step, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(&metrics_bytes, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(&held, 1, MPI_INT, 0, MPI_COMM_WORLD);
    W.step = step;
    W.fresh_from = held;
    size_t n = (size_t)held * 2;
    int64_t *mine = malloc(n * sizeof *mine);
    MPI_Scatter(cursors, (int)n, MPI_INT64_T, mine, (int)n, MPI_INT64_T, 0, MPI_COMM_WORLD);
    for (int k = 0; k < held; k++) {
        W.tasks[k].cursor.seed = (uint64_t)mine[2 * k];
        W.tasks[k].cursor.next = (uint64_t)mine[2 * k + 1];
    }
    free(mine);
    free(cursors);
    /* Per-task state: rank 0 reads, then broadcasts. */
    for (int k = 0; k < held; k++) {
        task_t *t = &W.tasks[k];
        int64_t v[6] = {0, 0, 0, 0, -1, 0};
        double d[2] = {NAN, NAN};
        if (W.rank == 0) {
            char g[256];
            snprintf(g, sizeof g, "/tasks/%s", t->name);
            hid_t grp = H5Gopen2(f, g, H5P_DEFAULT);
            int64_t st = 0;
            if (grp < 0 || h5_attr_read_i64(grp, "state", &st) < 0 ||
                h5_attr_read_i64(grp, "step", &v[1]) < 0 ||
                h5_attr_read_i64(grp, "at_step", &v[2]) < 0 ||
                h5_attr_read_i64(grp, "tokens", &v[3]) < 0 ||
                h5_attr_read_i64(grp, "failed_at", &v[4]) < 0 ||
                h5_attr_read_i64(grp, "rng", &v[5]) < 0 ||
                h5_attr_read_f64(grp, "loss", &d[0]) < 0 ||
                h5_attr_read_f64(grp, "val_loss", &d[1]) < 0 ||
                h5_attr_read_str(grp, "error", t->error, sizeof t->error) < 0)
                code = EXIT_FAIL;
            if (code == EXIT_DONE && (st < TASK_TRAINING || st > TASK_WAITING))
                code = EXIT_FAIL,
                weft_error("%s: tenant %s has no state %lld", dir, t->name, (long long)st);
            v[0] = st;
            if (grp >= 0) H5Gclose(grp);
            if (code == EXIT_DONE && W.pack) {
                char p[300];
                const char *bufs[3] = {"params", "m", "v"};
                float *ptr[3] = {lora_pack_params(W.pack), lora_pack_m(W.pack),
                                 lora_pack_v(W.pack)};
                for (int b = 0; code == EXIT_DONE && b < 3; b++) {
                    snprintf(p, sizeof p, "%s/%s", g, bufs[b]);
                    if (adapter_read_tensors(f, p, W.pack, k, ptr[b]) < 0) code = EXIT_FAIL;
                }
            }
            if (code == EXIT_DONE && grp >= 0) {
                hid_t again = H5Gopen2(f, g, H5P_DEFAULT);
                if (again < 0 || read_kept(f, again, g, k) < 0) code = EXIT_FAIL;
                if (again >= 0) H5Gclose(again);
            }
        }
        if ((code = agree(code)) != EXIT_DONE) break;
        MPI_Bcast(v, 6, MPI_INT64_T, 0, MPI_COMM_WORLD);
        MPI_Bcast(d, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        MPI_Bcast(t->error, sizeof t->error, MPI_CHAR, 0, MPI_COMM_WORLD);
        t->state = (task_state_t)v[0];
        t->at_step = v[2];
        t->tokens = v[3];
        t->loss = d[0];
        t->val_loss = d[1];
        if (W.pack) {
            lora_trainer_set_tenant_step(W.trainer, k, (long)v[1]);
            lora_pack_set_rng(W.pack, k, (uint64_t)v[5]);
        }
        t->saved = t->state != TASK_TRAINING && t->state != TASK_WAITING;
    }
    if (f >= 0) H5Fclose(f);
    if (code != EXIT_DONE) return -fail_with(code);
    if (W.pack) {
        bcast_floats(lora_pack_params(W.pack), lora_pack_size(W.pack));
        bcast_floats(lora_pack_m(W.pack), lora_pack_size(W.pack));
        bcast_floats(lora_pack_v(W.pack), lora_pack_size(W.pack));
    } else {
        if (W.rank == 0) {
            const char *names[3] = {"params.h5", "m.h5", "v.h5"};
            float *bufs[3] = {W.model->params, W.m, W.v};
            for (int b = 0; code == EXIT_DONE && b < 3; b++) {
                char p[PATH_MAX];
                if (weft_path_join(p, sizeof p, dir, names[b]) < 0 || read_buffer(p, bufs[b]) < 0)
                    code = EXIT_FAIL;
            }
            char bp[PATH_MAX];
            if (code == EXIT_DONE && W.best && W.tasks[0].best_step >= 0 &&
                (weft_path_join(bp, sizeof bp, dir, "best.h5") < 0 || read_buffer(bp, W.best) < 0))
                code = EXIT_FAIL;
        }
        if ((code = agree(code)) != EXIT_DONE) return -fail_with(code);
        bcast_floats(W.model->params, W.model->nparams);
        bcast_floats(W.m, W.model->nparams);
        bcast_floats(W.v, W.model->nparams);
        if (agree(host_to_gpu() < 0 ? EXIT_FAIL : EXIT_DONE) != EXIT_DONE)
            return -fail_with(EXIT_FAIL);
    }
    if (W.rank == 0) weft_info("resuming from %s (step %" PRId64 ")", dir, step);
    for (int k = held; W.rank == 0 && k < W.ntasks; k++)
        weft_info("tenant %s was admitted after step %" PRId64 ": it waits for a slot, from its "
                  "step 0",
                  W.tasks[k].name, step);
    *metrics_bytes_out = metrics_bytes;
    return 1;
}

/* ---- one step ---- */

/* Fills task t's B rows of inputs, targets and document positions from its
 * stream of windows or rows of documents; *trainable += its targets. */
static int fill_rows(task_t *t, int *in, int *tg, int *pos, int B, int64_t *trainable)
{
    for (int b = 0; b < B; b++) {
        size_t r = (size_t)b * W.T;
        int rc = 0;
        if (t->boundaries) {
            rc = docpack_next_row(t->rows, &t->cursor, in + r, tg + r, pos + r);
        } else if (t->rows) {
            rc = docpack_stream_row(t->rows, &t->cursor, in + r, tg + r, pos + r);
        } else {
            rc = shardset_next_window(t->data, &t->cursor, W.window);
            for (int i = 0; rc == 0 && i < W.T; i++) {
                in[r + i] = W.window[i];
                tg[r + i] = W.window[i + 1];
                pos[r + i] = i;
            }
        }
        if (rc < 0) return weft_error_prefix("tenant %s", t->name);
        for (int i = 0; i < W.T; i++) *trainable += tg[r + i] >= 0;
    }
    return 0;
}

static int task_active(const task_t *t)
{
    return t->state == TASK_TRAINING;
}

/* The span of the pack's flat buffers from the first training tenant's
 * slice to the end of the last one's (lo = hi when none trains). */
static void active_span(size_t *lo, size_t *hi)
{
    *lo = lora_pack_size(W.pack), *hi = 0;
    for (int k = 0; k < W.ntasks; k++) {
        if (!task_active(&W.tasks[k])) continue;
        size_t off = lora_pack_tenant_offset(W.pack, k);
        size_t end = off + lora_pack_tenant_size(W.pack, k);
        if (off < *lo) *lo = off;
        if (end > *hi) *hi = end;
    }
    if (*hi < *lo) *lo = *hi;
}

/* Early-stopping rung index of a task at its step s (rungs at rung_steps *
 * rung_eta^k, up to its last step), or -1 when s is no rung. */
static int task_rung(const task_t *t, int64_t s)
{
    const spec_train_t *tr = t->train;
    if (tr->rung_steps <= 0 || tr->rung_eta < 2 || s > t->steps) return -1;
    int64_t r = tr->rung_steps;
    for (int k = 0; r <= s; k++) {
        if (r == s) return k;
        if (r > INT64_MAX / tr->rung_eta) break;
        r *= tr->rung_eta;
    }
    return -1;
}

/* Every rank's verdict on its share of a step, taken before the gradient
 * all-reduce so that all ranks leave the step together: the rank that failed
 * says why (only it knows), and every rank returns -1. */
static int step_failed(int rc)
{
    if (rc < 0) weft_report();
    return agree(rc < 0 ? EXIT_DATA : EXIT_DONE) != EXIT_DONE ? -1 : 0;
}

/* Forward and backward of one optimizer step on this rank, gradients summed
 * over ranks and averaged: losses[k] is this rank's loss of task k. */
static int compute_step(float *losses, double *grad_norm, int64_t *trainable)
{
    int accum = W.spec->train.grad_accum;
    for (int k = 0; k < W.ntasks; k++) losses[k] = 0, trainable[k] = 0;
#ifdef WEFT_HAVE_CUDA
    if (W.gpu) {
        task_t *t = &W.tasks[0];
        if (gpt2_cuda_zero_grad(W.gpu) < 0) return step_failed(-1);
        for (int a = 0; a < accum; a++) {
            float loss;
            if (fill_rows(t, W.inputs, W.targets, W.pos, t->B, &trainable[0]) < 0 ||
                gpt2_cuda_forward(W.gpu, W.inputs, W.targets, t->B, W.T, &loss) < 0)
                return step_failed(-1);
            size_t valid = gpt2_cuda_valid_targets(W.gpu);
            for (int b = 0; b < t->B; b++)
                W.scale[b] = valid ? 1.0f / ((float)valid * (float)accum) : 0.0f;
            if (gpt2_cuda_backward(W.gpu, W.scale) < 0) return step_failed(-1);
            losses[0] += loss / (float)accum;
        }
        if (step_failed(0) < 0) return -1;
#ifdef WEFT_HAVE_NCCL
        if (W.nccl) {
            float *g = gpt2_cuda_grads_device(W.gpu);
            cudaStream_t st = (cudaStream_t)gpt2_cuda_stream(W.gpu);
            double t_ar = weft_clock();
            int rc = ncclAllReduce(g, g, W.model->nparams, ncclFloat, ncclSum, W.nccl, st) ==
                                 ncclSuccess &&
                             cudaStreamSynchronize(st) == cudaSuccess
                         ? 0
                         : weft_error("NCCL: the gradients' sum failed");
            W.allreduce_s += weft_clock() - t_ar;
            if (rc == 0) rc = gpt2_cuda_scale_grads(W.gpu, 1.0f / (float)W.world);
            if (step_failed(rc) < 0) return -1;
        } else
#endif
            if (W.world > 1) {
            /* MPI on host buffers: the same sum, in the same order, as the CPU path. */
            size_t n = W.model->nparams;
            if (step_failed(gpt2_cuda_get_grads(W.gpu, W.model->grads, n)) < 0) return -1;
            double t_ar = weft_clock();
            allreduce_floats(W.model->grads, n);
            W.allreduce_s += weft_clock() - t_ar;
            float inv = 1.0f / (float)W.world;
            for (size_t i = 0; i < n; i++) W.model->grads[i] *= inv;
            if (step_failed(gpt2_cuda_set_grads(W.gpu, W.model->grads, n)) < 0) return -1;
        }
        *grad_norm = gpt2_cuda_grad_norm(W.gpu);
        return step_failed(*grad_norm < 0 ? -1 : 0);
    }
#endif
    if (!W.pack) {
        task_t *t = &W.tasks[0];
        gpt2_zero_grad(W.model);
        W.model->pos = t->boundaries ? W.pos : NULL;
        for (int a = 0; a < accum; a++) {
            float loss;
            if (fill_rows(t, W.inputs, W.targets, W.pos, t->B, &trainable[0]) < 0 ||
                gpt2_forward(W.model, W.inputs, W.targets, t->B, W.T, &loss) < 0)
                return step_failed(-1);
            size_t valid = gpt2_valid_targets(W.model);
            for (int b = 0; b < t->B; b++)
                W.scale[b] = valid ? 1.0f / ((float)valid * (float)accum) : 0.0f;
            if (gpt2_backward(W.model, W.scale) < 0) return step_failed(-1);
            losses[0] += loss / (float)accum;
        }
        if (step_failed(0) < 0) return -1;
        double t_ar = weft_clock();
        allreduce_floats(W.model->grads, W.model->nparams);
        W.allreduce_s += weft_clock() - t_ar;
        float inv = 1.0f / (float)W.world;
        for (size_t i = 0; i < W.model->nparams; i++) W.model->grads[i] *= inv;
        *grad_norm = gpt2_grad_norm(W.model);
        return 0;
    }
    lora_batch_t *batches = calloc((size_t)W.ntasks, sizeof *batches);
    float *l = calloc((size_t)W.ntasks, sizeof *l);
    /* Only the span of the tenants training is summed and reduced: waiting
     * and ended tenants' slices are left alone. */
    size_t lo, hi;
    active_span(&lo, &hi);
    size_t n = hi - lo;
    float *g = lora_pack_grads(W.pack) + lo, *acc = W.accum ? W.accum + lo : NULL;
    int rc = batches && l ? 0 : weft_error("out of memory");
    if (acc) memset(acc, 0, n * sizeof *acc);
    for (int a = 0; rc == 0 && a < accum; a++) {
        size_t row = 0;
        for (int k = 0; rc == 0 && k < W.ntasks; k++) {
            task_t *t = &W.tasks[k];
            int B = task_active(t) ? t->B : 0;
            batches[k] = (lora_batch_t){W.inputs + row * W.T, W.targets + row * W.T, B};
            lora_trainer_set_docs(W.trainer, k, t->boundaries ? W.pos + row * W.T : NULL);
            if (B)
                rc = fill_rows(t, W.inputs + row * W.T, W.targets + row * W.T, W.pos + row * W.T,
                               B, &trainable[k]);
            row += (size_t)B;
        }
        if (rc == 0) rc = lora_trainer_forward_backward(W.trainer, batches, l);
        for (int k = 0; k < W.ntasks; k++) losses[k] += batches[k].B ? l[k] / (float)accum : 0;
        if (rc == 0 && acc)
            for (size_t i = 0; i < n; i++) acc[i] += g[i] / (float)accum;
    }
    free(batches);
    free(l);
    if (step_failed(rc) < 0) return -1;
    if (acc) memcpy(g, acc, n * sizeof *g);
    double t_ar = weft_clock();
    allreduce_floats(g, n);
    W.allreduce_s += weft_clock() - t_ar;
    float inv = 1.0f / (float)W.world;
    for (size_t i = 0; i < n; i++) g[i] *= inv;
    *grad_norm = 0;
    return 0;
}

/* ---- evaluation ---- */

static int64_t task_step(int k)
{
    return W.pack ? lora_trainer_tenant_step(W.trainer, k) : W.step;
}

static int tenant_dir(const task_t *t, char *out, size_t n);

/* Where task k's best so far is written: <output>/<tenant>/best.h5 (lora),
 * <output>/best.h5 (full). */
static int best_path(int k, char *out, size_t n)
{
    char dir[PATH_MAX];
    if (!W.pack) return weft_path_join(out, n, W.spec->output, "best.h5");
    if (tenant_dir(&W.tasks[k], dir, sizeof dir) < 0 || weft_mkdir_p(dir, 0700) < 0) return -1;
    return weft_path_join(out, n, dir, "best.h5");
}

/* Task k's adapter (or the model) from buf, laid out as the pack's
 * parameters (or the model's), written atomically at path. */
static int save_params(int k, const float *buf, int64_t step, const char *path)
{
    if (!W.pack) {
        gpt2_t view = *W.model; /* the same model with buf as its parameters */
        view.params = (float *)buf;
        /* a "bpe" model's output carries the backbone's tokenizer */
        int bpe = !strcmp(W.tokenizer, TOK_KIND_BPE);
        tok_t *tok = bpe ? tok_h5_load(W.spec->model) : NULL;
        if (bpe && !tok) return -1;
        int rc = model_file_save_tok(&view, W.tokenizer, tok, path);
        tok_destroy(&tok);
        return rc;
    }
    adapter_info_t info;
    memset(&info, 0, sizeof info);
    snprintf(info.tenant, sizeof info.tenant, "%s", W.tasks[k].name);
    memcpy(info.base_sha256, W.backbone_sha, sizeof info.base_sha256);
    info.steps = step;
    return adapter_save_from(path, W.pack, k, &info, buf);
}

/* Rank 0, after task k's evaluation: a lower validation loss than any seen
 * after a step is kept in W.best and, with keep = "best", written at once
 * (atomically) as best.h5. A write that fails is a warning: the copy in
 * memory (and in checkpoints) is what the run publishes. */
static void note_best(int k)
{
    task_t *t = &W.tasks[k];
    int64_t step = task_step(k);
    if (W.rank != 0 || step < 1 || !isfinite(t->val_loss)) return;
    if (!isnan(t->best_loss) && !(t->val_loss < t->best_loss)) return;
    t->best_loss = t->val_loss;
    t->best_step = step;
    if (!W.best) return;
    if (gpu_to_host() < 0) { /* a full run on a GPU: its parameters are there */
        weft_warn("step %" PRId64 ": the best parameters could not be copied from the GPU: %s",
                  step, weft_last_error());
        return;
    }
    size_t off = W.pack ? lora_pack_tenant_offset(W.pack, k) : 0;
    size_t n = W.pack ? lora_pack_tenant_size(W.pack, k) : W.model->nparams;
    const float *live = W.pack ? lora_pack_params(W.pack) : W.model->params;
    memcpy(W.best + off, live + off, n * sizeof *live);
    char path[PATH_MAX];
    if (t->train->keep == SPEC_KEEP_BEST &&
        (best_path(k, path, sizeof path) < 0 || save_params(k, W.best, step, path) < 0))
        weft_warn("%s: the best so far (step %" PRId64 ") not written: %s", t->name, step,
                  weft_last_error());
}

/* An evaluation of the tasks in mask that is reported and may keep a best. */
static int evaluate(const unsigned char *mask)
{
    return evaluate_as(mask, 1);
}

/* Validation loss of the tasks in mask over their eval_windows windows,
 * window i taken by rank i mod world. Every rank takes part. report: the
 * losses go out as metrics and may become the best; else only val_loss is
 * set (the baseline of a version). */
static int evaluate_as(const unsigned char *mask, int report)
{
    int K = W.ntasks;
    double *sums = calloc((size_t)K * 2, sizeof *sums);
    int64_t *nwin = calloc((size_t)K, sizeof *nwin);
    if (!sums || !nwin) return weft_error("out of memory");
    int64_t rounds = 0;
    for (int k = 0; k < K; k++) {
        if (!mask[k]) continue;
        task_t *t = &W.tasks[k];
        int64_t avail = val_windows(t);
        nwin[k] = t->train->eval_windows < avail ? t->train->eval_windows : avail;
        int64_t mine = nwin[k] > W.rank ? (nwin[k] - W.rank + W.world - 1) / W.world : 0;
        int64_t r = (mine + t->B - 1) / t->B;
        if (r > rounds) rounds = r;
    }
    MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    lora_batch_t *batches = calloc((size_t)K, sizeof *batches);
    float *l = calloc((size_t)K, sizeof *l);
    int rc = 0;
    for (int64_t r = 0; rc == 0 && r < rounds; r++) {
        size_t row = 0;
        for (int k = 0; rc == 0 && k < K; k++) {
            task_t *t = &W.tasks[k];
            int B = 0;
            for (int b = 0; mask[k] && b < t->B; b++) {
                int64_t i = W.rank + (int64_t)W.world * (r * t->B + b);
                if (i >= nwin[k]) break;
                size_t r = (row + (size_t)B) * W.T;
                if (val_row(t, i, W.inputs + r, W.targets + r, W.pos + r) < 0) {
                    rc = -1;
                    break;
                }
                B++;
            }
            batches[k] = (lora_batch_t){W.inputs + row * W.T, W.targets + row * W.T, B};
            if (W.trainer)
                lora_trainer_set_docs(W.trainer, k, t->boundaries ? W.pos + row * W.T : NULL);
            row += (size_t)B;
        }
        if (rc < 0) break;
        if (W.pack) {
            if (row > 0) rc = lora_trainer_eval(W.trainer, batches, l);
            /* each tenant's mean over its trained-on targets (the answers) */
            for (int k = 0; rc == 0 && k < K; k++)
                if (batches[k].B) {
                    size_t valid = 0, n = (size_t)batches[k].B * W.T;
                    for (size_t i = 0; i < n; i++) valid += batches[k].targets[i] >= 0;
                    sums[2 * k] += (double)l[k] * (double)valid;
                    sums[2 * k + 1] += (double)valid;
                }
        } else if (batches[0].B) {
            float loss;
            size_t valid;
#ifdef WEFT_HAVE_CUDA
            if (W.gpu) {
                rc = gpt2_cuda_forward(W.gpu, batches[0].inputs, batches[0].targets, batches[0].B,
                                       W.T, &loss);
                valid = gpt2_cuda_valid_targets(W.gpu);
            } else
#endif
            {
                W.model->pos = W.tasks[0].boundaries ? W.pos : NULL;
                rc = gpt2_forward(W.model, batches[0].inputs, batches[0].targets, batches[0].B, W.T,
                                  &loss);
                valid = gpt2_valid_targets(W.model);
            }
            sums[0] += (double)loss * (double)valid;
            sums[1] += (double)valid;
        }
    }
    free(batches);
    free(l);
    if (agree(rc < 0 ? EXIT_DATA : EXIT_DONE) != EXIT_DONE) {
        free(sums);
        free(nwin);
        return -1;
    }
    MPI_Allreduce(MPI_IN_PLACE, sums, K * 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (int k = 0; k < K; k++) {
        if (!mask[k] || sums[2 * k + 1] == 0) continue;
        task_t *t = &W.tasks[k];
        t->val_loss = sums[2 * k] / sums[2 * k + 1];
        if (!report) continue;
        note_best(k);
        if (W.rank == 0) {
            json_t *m = json_pack(
                "{s:s, s:i, s:s, s:s, s:I, s:f, s:I, s:f}", "run", W.run, "attempt", W.attempt,
                "tenant", t->name, "kind", "eval", "step",
                (json_int_t)(W.pack ? lora_trainer_tenant_step(W.trainer, k) : W.step), "val_loss",
                t->val_loss, "windows", (json_int_t)nwin[k], "elapsed", weft_clock() - W.t0);
            int rung = task_rung(t, W.pack ? lora_trainer_tenant_step(W.trainer, k) : W.step);
            if (rung >= 0) json_object_set_new(m, "rung", json_integer(rung));
            reporter_metric(W.rep, m);
        }
    }
    free(sums);
    free(nwin);
    return 0;
}

/* ---- outputs ---- */

static int tenant_dir(const task_t *t, char *out, size_t n)
{
    return weft_path_join(out, n, W.spec->output, t->name);
}

/* The parameters task k publishes and their step: the best by validation
 * loss, or the last (keep = "last", or no evaluation after a step). */
static const float *kept(int k, int64_t *step)
{
    const task_t *t = &W.tasks[k];
    if (t->train->keep == SPEC_KEEP_BEST && W.best && t->best_step >= 0) {
        *step = t->best_step;
        return W.best;
    }
    *step = task_step(k);
    return W.pack ? lora_pack_params(W.pack) : W.model->params;
}

/* What task k's version says about itself, with the promotion verdict. */
static publish_info_t publish_info(int k)
{
    task_t *t = &W.tasks[k];
    int64_t step;
    const float *buf = kept(k, &step);
    publish_info_t i = {.tenant = t->name,
                        .run_uid = W.uid,
                        .keep = t->train->keep == SPEC_KEEP_BEST ? "best" : "last",
                        .step = step,
                        .steps = task_step(k),
                        .val_loss = buf == W.best ? t->best_loss : t->val_loss,
                        .baseline = t->baseline,
                        .baseline_val_loss = t->baseline_loss,
                        .baseline_error = t->baseline_error,
                        .always = t->train->promote == SPEC_PROMOTE_ALWAYS};
    publish_decide(&i);
    return i;
}

/* Rank 0 writes a finished task's output: the model (full), or the
 * tenant's version folder staged in <output>/<tenant>/new/ and, without a
 * coordinator, installed as v<N> (publish.h). */
static int save_output(int k)
{
    task_t *t = &W.tasks[k];
    char dir[PATH_MAX], path[PATH_MAX], best[PATH_MAX], nd[PATH_MAX], metrics[PATH_MAX];
    int64_t step;
    const float *buf = kept(k, &step);
    if (best_path(k, best, sizeof best) < 0) return -1;
    if (!W.pack) {
        if (weft_path_join(path, sizeof path, W.spec->output, "model.h5") < 0 ||
            gpu_to_host() < 0 || save_params(k, buf, step, path) < 0)
            return -1;
        unlink(best);
        return 0;
    }
    if (tenant_dir(t, dir, sizeof dir) < 0 || weft_path_join(nd, sizeof nd, dir, "new") < 0 ||
        weft_path_join(metrics, sizeof metrics, W.spec->output, "metrics.jsonl") < 0)
        return -1;
    weft_rm_rf(nd);
    if (weft_mkdir_p(nd, 0700) < 0 || weft_path_join(path, sizeof path, nd, "adapter.h5") < 0 ||
        save_params(k, buf, step, path) < 0)
        return -1;
    publish_info_t info = publish_info(k);
    if (reporter_sync(W.rep) < 0 || publish_stage(dir, W.spec->model, metrics, &info) < 0)
        return -1;
    unlink(best);
    t->promoted = info.promoted;
    if (!W.publish) return 0;
    if (publish_install(dir, &info, t->train->keep_versions, &t->version) < 0) return -1;
    weft_info("tenant %s: adapter of step %" PRId64 " published as v%d, %s (%s)", t->name, step,
              t->version, info.promoted ? "promoted to current" : "not promoted", info.why);
    return 0;
}

/* A task's line in result.json and DONE. */
static json_t *task_json(int k)
{
    task_t *t = &W.tasks[k];
    char out[PATH_MAX] = "", staged[PATH_MAX] = "";
    if (t->state == TASK_DONE || t->state == TASK_STOPPED) {
        if (W.pack) {
            char dir[PATH_MAX], v[32];
            snprintf(v, sizeof v, "v%d/adapter.h5", t->version);
            if (tenant_dir(t, dir, sizeof dir) == 0 &&
                weft_path_join(staged, sizeof staged, dir, "new") == 0)
                weft_path_join(out, sizeof out, W.publish ? dir : staged,
                               W.publish ? v : "adapter.h5");
            if (W.publish) staged[0] = 0;
        } else {
            weft_path_join(out, sizeof out, W.spec->output, "model.h5");
        }
    }
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I}", "name", t->name, "status", task_state_names[t->state],
                  "steps", (json_int_t)t->at_step, "tokens", (json_int_t)t->tokens);
    json_object_set_new(o, "loss", isnan(t->loss) ? json_null() : json_real(t->loss));
    json_object_set_new(o, "val_loss",
                        isnan(t->val_loss) ? json_null() : json_real(t->val_loss));
    if (out[0]) json_object_set_new(o, "output", json_string(out));
    if (t->state == TASK_DONE || t->state == TASK_STOPPED) {
        int64_t step;
        const float *buf = kept(k, &step);
        json_object_set_new(o, "keep", json_string(t->train->keep ? "last" : "best"));
        json_object_set_new(o, "best_step", json_integer(step));
        double v = buf == W.best ? t->best_loss : t->val_loss;
        json_object_set_new(o, "best_val_loss", isfinite(v) ? json_real(v) : json_null());
    }
    if ((t->state == TASK_DONE || t->state == TASK_STOPPED) && W.pack) {
        publish_info_t info = publish_info(k);
        json_object_set_new(o, "run_uid", json_string(W.uid));
        json_object_set_new(o, "promoted", json_boolean(info.promoted));
        json_object_set_new(o, "why", json_string(info.why));
        json_object_set_new(o, "baseline_val_loss", isfinite(t->baseline_loss)
                                                        ? json_real(t->baseline_loss)
                                                        : json_null());
        if (t->version) json_object_set_new(o, "version", json_integer(t->version));
        if (staged[0]) json_object_set_new(o, "staged", json_string(staged));
    }
    if (t->error[0]) json_object_set_new(o, "error", json_string(t->error));
    return o;
}

static int write_result(const char *status, double wall)
{
    json_t *tenants = json_array();
    for (int k = 0; k < W.ntasks; k++) json_array_append_new(tenants, task_json(k));
    json_t *r = json_pack("{s:s, s:i, s:s, s:s, s:i, s:f, s:o}", "run", W.run, "attempt", W.attempt,
                          "mode", spec_mode_name(W.spec->mode), "status", status, "ranks", W.world,
                          "wall_time", wall, "tenants", tenants);
    /* Rank 0's seconds in training steps and in their all-reduces (the
     * gradient's and the control word's, waiting for slower ranks included),
     * and its CPU seconds in steps: what weft-bench dp reads. */
    json_object_set_new(r, "step_s", json_real(W.step_s));
    json_object_set_new(r, "allreduce_s", json_real(W.allreduce_s));
    json_object_set_new(r, "step_cpu_s", json_real(W.step_cpu_s));
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    int rc = weft_path_join(path, sizeof path, W.spec->output, "result.json");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (rc == 0 && json_dump_file(r, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
        rc = weft_error("cannot write %s", tmp);
    if (rc == 0) rc = weft_fsync_path(tmp) | weft_rename_durable(tmp, path);
    if (rc == 0)
        reporter_post(W.rep, WIRE_DONE,
                      json_pack("{s:s, s:O}", "status", status, "tenants", tenants));
    json_decref(r);
    return rc;
}

/* ---- the loop ---- */

/* "  N trained tok/s" for chat data (t->rows), "" for raw text. */
static const char *trained_rate(const task_t *t, int64_t trainable, double dt)
{
    static char buf[48];
    buf[0] = 0;
    if (t->rows) snprintf(buf, sizeof buf, "  %.0f trained tok/s", (double)trainable / dt);
    return buf;
}

/* A task has ended at this step: mark it; a finished one is evaluated, and
 * its output (a stopped one's too) written and announced at once (a DONE
 * that names the tenant), so that the coordinator ends its job while the
 * pack goes on. */
static int end_task(int k, task_state_t how, const char *why)
{
    task_t *t = &W.tasks[k];
    t->state = how;
    t->at_step = W.pack ? lora_trainer_tenant_step(W.trainer, k) : W.step;
    if (why) snprintf(t->error, sizeof t->error, "%s", why);
    if (t->rows && docpack_skipped(t->rows))
        weft_info("tenant %s, rank %d: %" PRId64 " documents drawn had no trainable token within "
                  "seq_len %d and were skipped",
                  t->name, W.rank, docpack_skipped(t->rows), W.T);
    if (how != TASK_DONE && how != TASK_STOPPED) return 0;
    if (how == TASK_DONE) {
        unsigned char *mask = calloc((size_t)W.ntasks, 1);
        if (!mask) return weft_error("out of memory");
        mask[k] = 1;
        int rc = evaluate(mask);
        free(mask);
        if (rc < 0) return -1;
    }
    int code = EXIT_DONE;
    if (W.rank == 0 && save_output(k) < 0) code = EXIT_FAIL;
    t->saved = 1;
    if (agree(code) != EXIT_DONE) return -1;
    if (W.rank == 0 && W.pack) {
        json_t *o = task_json(k);
        json_object_set_new(o, "tenant", json_string(t->name));
        json_object_del(o, "name");
        reporter_post(W.rep, WIRE_DONE, o);
    }
    return 0;
}

/* Free slots of the pack go to waiting tenants, in spec order, at this step
 * boundary: each starts at its own step 0 with its initial adapter, data
 * cursor and schedule, as it would alone; with evaluation on, its untrained
 * point is measured first. Every rank decides alike (states are the same
 * everywhere). */
static int admit(unsigned char *mask)
{
    if (!W.pack) return 0;
    int active = 0, any = 0;
    for (int k = 0; k < W.ntasks; k++) active += task_active(&W.tasks[k]);
    memset(mask, 0, (size_t)W.ntasks);
    for (int k = 0; k < W.ntasks && active < W.pack_size; k++) {
        task_t *t = &W.tasks[k];
        if (t->state != TASK_WAITING) continue;
        t->state = TASK_TRAINING;
        mask[k] = 1;
        active++, any = 1;
        if (W.rank == 0 && W.step > 0)
            printf("step %5lld: tenant %s takes a free slot of the pack\n", (long long)W.step,
                   t->name),
                fflush(stdout);
    }
    if (any && W.spec->train.eval_every > 0) return evaluate(mask);
    return 0;
}

static int any_active(void)
{
    for (int k = 0; k < W.ntasks; k++)
        if (task_active(&W.tasks[k])) return 1;
    return 0;
}

/* ---- tenants admitted into the running pack (ADMIT) ---- */

/* The pack's buffers for W.ntasks tenants, the first `from` carried over
 * from the pack they trained in: adapters, gradients, moments, dropout
 * streams and step counts, bit for bit (slices are laid out in tenant
 * order, so theirs keep their offsets). The others start at PEFT's
 * initialisation. A newcomer whose adapter this backbone cannot hold fails
 * alone, in a slot shaped as tenant 0's. Every rank; -1 on this rank's
 * failure. */
static int grow_pack(int from)
{
    int K = W.ntasks;
    lora_spec_t *ls = calloc((size_t)K, sizeof *ls);
    lora_hparams_t *hp = realloc(W.hp, (size_t)K * sizeof *hp);
    if (hp) W.hp = hp;
    if (!ls || !hp) return free(ls), weft_error("out of memory");
    lora_dims_t dims;
    gpt2_lora_dims(&W.model->cfg, &dims);
    for (int k = 0; k < K; k++) {
        tenant_settings(k, &ls[k], &W.hp[k]);
        unsigned resolved;
        task_t *t = &W.tasks[k];
        if (k < from || (lora_spec_check(&ls[k]) == 0 &&
                         lora_targets_resolve(ls[k].targets, &dims, &resolved) == 0))
            continue;
        if (t->state != TASK_FAILED) {
            snprintf(t->error, sizeof t->error, "lora: %s", weft_last_error());
            t->state = TASK_FAILED;
            t->saved = 1;
        }
        ls[k] = ls[0];
    }
    lora_pack_t *pack = lora_pack_for(W.model, K, ls, (size_t)W.Bsum * (size_t)W.T);
    free(ls);
    if (!pack) return -1;
    size_t n = lora_pack_size(W.pack);
    if (lora_pack_tenant_offset(pack, from) != n) {
        lora_pack_destroy(&pack);
        return weft_error("the grown pack does not keep the layout of the first %d tenants", from);
    }
    float *from_buf[4] = {lora_pack_params(W.pack), lora_pack_grads(W.pack), lora_pack_m(W.pack),
                          lora_pack_v(W.pack)};
    float *to_buf[4] = {lora_pack_params(pack), lora_pack_grads(pack), lora_pack_m(pack),
                        lora_pack_v(pack)};
    for (int b = 0; b < 4; b++) memcpy(to_buf[b], from_buf[b], n * sizeof(float));
    for (int k = 0; k < from; k++) lora_pack_set_rng(pack, k, lora_pack_rng(W.pack, k));
    for (int k = from; k < K; k++) lora_pack_init_tenant(pack, k);
    lora_trainer_t *tr = lora_trainer_new(W.model, pack, W.hp, W.Bsum, W.T);
    if (!tr) {
        lora_pack_destroy(&pack);
        lora_attach(W.model, W.pack);
        return -1;
    }
    lora_trainer_set_threads(tr, W.spec->resources.threads);
    for (int k = 0; k < from; k++)
        lora_trainer_set_tenant_step(tr, k, lora_trainer_tenant_step(W.trainer, k));
    lora_trainer_destroy(&W.trainer); /* the model keeps the new pack attached */
    lora_pack_destroy(&W.pack);
    W.pack = pack;
    W.trainer = tr;
    size_t size = lora_pack_size(pack);
    if (W.accum && !(W.accum = realloc(W.accum, size * sizeof *W.accum)))
        return weft_error("out of memory");
    if (W.best) {
        float *best = realloc(W.best, size * sizeof *best);
        if (!best) return weft_error("out of memory");
        memset(best + n, 0, (size - n) * sizeof *best);
        W.best = best;
    }
    return 0;
}

/* Rank 0 tells the coordinator that a tenant it admitted fails alone. */
static void admitted_fails(const char *name, const char *why)
{
    weft_warn("tenant %s cannot join the pack: %s; the others go on", name, why);
    reporter_post(W.rep, WIRE_FAIL, json_pack("{s:s, s:s}", "tenant", name, "error", why));
}

/* ADMIT (docs/PROTOCOL.md): the coordinator appended tenants to the run's
 * spec file. At this step boundary every rank reads the file again, and the
 * tenants it lists after those the pack holds join as waiting tasks, each
 * as it would start alone: its data opened and checked, its initial
 * adapter loaded, its current version measured, its step 0 ahead; the
 * pack is rebuilt around them (grow_pack) and nothing of the others
 * changes. A file whose first tenants are not those the pack holds changes
 * nothing, and the tenants the order named (rank 0's `named`) fail alone;
 * one that lists no more tenants (an order repeated to a group that read
 * the file at its start) changes nothing either. */
static int take_admitted(const json_t *named)
{
    int K = W.ntasks, code = EXIT_DONE;
    char why[sizeof W.spec_file + 512] = "";
    spec_t *s = read_spec();
    if (!s) {
        snprintf(why, sizeof why, "the run's spec %s cannot be read", W.spec_file);
    } else if (s->mode != SPEC_LORA || s->ntenants < K) {
        snprintf(why, sizeof why, "%s no longer lists the %d tenant(s) the pack holds", W.spec_file,
                 K);
    } else {
        char *was = resume_text_of(W.spec, K), *now = resume_text_of(s, K), diff[400];
        if (!was || !now || spec_resume_explain(was, now, diff, sizeof diff))
            snprintf(why, sizeof why, "%s changed what the pack trains (%s)", W.spec_file,
                     was && now ? diff : "out of memory");
        free(was);
        free(now);
    }
    for (size_t i = 0; W.rank == 0 && i < json_array_size(named); i++) {
        const char *name = json_string_value(json_array_get(named, i));
        int held = 0, listed = 0;
        for (int k = 0; k < K; k++) held |= !strcmp(W.tasks[k].name, name);
        for (int k = 0; s && k < s->ntenants; k++) listed |= !strcmp(s->tenants[k].name, name);
        if (held) continue; /* an order repeated */
        if (why[0])
            admitted_fails(name, why);
        else if (!listed)
            admitted_fails(name, "the run's spec does not list it");
    }
    if (why[0] || s->ntenants == K) {
        spec_destroy(&s);
        return EXIT_DONE;
    }
    task_t *tasks = realloc(W.tasks, (size_t)s->ntenants * sizeof *tasks);
    if ((code = agree(tasks ? EXIT_DONE : EXIT_FAIL)) != EXIT_DONE) {
        if (tasks) W.tasks = tasks;
        spec_destroy(&s);
        return weft_error("out of memory"), fail_with(code);
    }
    W.tasks = tasks;
    memset(tasks + K, 0, (size_t)(s->ntenants - K) * sizeof *tasks);
    for (int k = 0; k < K; k++) { /* the same tenants, now in the new spec */
        tasks[k].name = s->tenants[k].name;
        tasks[k].train = &s->tenants[k].train;
    }
    spec_destroy(&W.spec);
    W.spec = s;
    W.ntasks = s->ntenants;
    for (int k = K; k < W.ntasks; k++) {
        task_t *t = &W.tasks[k];
        if (open_task(k) == EXIT_DONE) continue;
        /* its batch does not split over the ranks: it fails alone */
        snprintf(t->error, sizeof t->error, "%s", weft_last_error());
        t->B = 0, t->steps = 1, t->state = TASK_FAILED;
    }
    if ((code = agree(size_rows() < 0 || grow_pack(K) < 0 ? EXIT_FAIL : EXIT_DONE)) != EXIT_DONE)
        return fail_with(code);
    for (int k = K; k < W.ntasks; k++)
        if (W.tasks[k].data) drop_bad_data(&W.tasks[k], check_val(&W.tasks[k]) < 0);
    if ((code = load_init_adapters(K)) != EXIT_DONE) return code;
    for (int k = K; k < W.ntasks; k++) {
        task_t *t = &W.tasks[k];
        if (t->state == TASK_FAILED) {
            t->saved = 1;
            if (W.rank == 0) admitted_fails(t->name, t->error);
        } else if (W.rank == 0) {
            printf("step %5lld: tenant %s joins the pack (admitted by the coordinator), %lld "
                   "steps\n",
                   (long long)W.step, t->name, (long long)t->steps),
                fflush(stdout);
        }
    }
    return eval_baselines(K);
}

/* The training loop's per-task buffers for K tasks (again when tenants
 * join): losses, the control word, a mask, trainable targets. */
static int train_buffers(int K, float **losses, double **ctl, unsigned char **mask,
                         int64_t **trainable)
{
    float *l = realloc(*losses, (size_t)K * sizeof *l);
    if (l) *losses = l;
    double *c = realloc(*ctl, ((size_t)K * 3 + 2) * sizeof *c);
    if (c) *ctl = c;
    unsigned char *m = realloc(*mask, (size_t)K);
    if (m) *mask = m;
    int64_t *t = realloc(*trainable, (size_t)K * sizeof *t);
    if (t) *trainable = t;
    return l && c && m && t ? 0 : weft_error("out of memory");
}

static int train(void)
{
    int K = W.ntasks;
    float *losses = NULL;
    /* Control word, summed over ranks: losses, stop, cancelled tenants,
     * tenants stopped early, tenants admitted (rank 0 took an ADMIT). */
    size_t nctl = (size_t)K * 3 + 2;
    double *ctl = NULL;
    unsigned char *mask = NULL;
    int64_t *trainable = NULL;
    json_t *admits = NULL, *carried = NULL; /* rank 0's */
    if (train_buffers(K, &losses, &ctl, &mask, &trainable) < 0) return EXIT_FAIL;
    memset(mask, 0, (size_t)K);
    int code = EXIT_DONE;
    int64_t last_ckpt = W.step;
    int64_t print_every = W.tasks[0].steps / 20 > 0 ? W.tasks[0].steps / 20 : 1;
    /* A fresh start measures the untrained point first: for LoRA that is the
     * backbone alone (B = 0), the baseline each adapter is judged against. */
    if (!W.pack && W.step == 0 && W.spec->train.eval_every > 0) {
        for (int k = 0; k < K; k++) mask[k] = task_active(&W.tasks[k]);
        if (evaluate(mask) < 0) code = EXIT_DATA;
    }
    if (code == EXIT_DONE && admit(mask) < 0) code = EXIT_DATA;
    while (any_active() && code == EXIT_DONE) {
        guard_fault_point(W.rank, W.step);
        guard_progress(W.step);
        double t_step = weft_clock(), ar_before = W.allreduce_s, c_step = cpu_now();
        double gnorm = 0;
        if (compute_step(losses, &gnorm, trainable) < 0) {
            code = EXIT_DATA;
            break;
        }
        MPI_Allreduce(MPI_IN_PLACE, trainable, K, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
        memset(ctl, 0, nctl * sizeof *ctl);
        for (int k = 0; k < K; k++) ctl[k] = losses[k];
        ctl[K] = guard_stop_requested() ? 1 : 0;
        if (W.rank == 0) {
            int preempt = 0;
            admits = reporter_admits(W.rep);
            ctl[3 * K + 1] = admits ? 1 : 0;
            json_t *names = reporter_orders(W.rep, &preempt);
            if (preempt) ctl[K] = 1;
            /* A CANCEL of a tenant admitted at this same boundary is
             * matched at the next one, once the tenant has joined. */
            if (carried) {
                if (names) json_array_extend(carried, names);
                json_decref(names);
                names = carried;
                carried = NULL;
            }
            size_t i;
            json_t *v;
            json_array_foreach(names, i, v)
            {
                int k = 0;
                while (k < K && strcmp(json_string_value(v), W.tasks[k].name)) k++;
                if (k < K)
                    ctl[K + 1 + k] = 1;
                else if (admits)
                    json_array_append(carried ? carried : (carried = json_array()), v);
            }
            json_decref(names);
            names = reporter_stops(W.rep);
            json_array_foreach(names, i,
                               v) for (int k = 0; k < K;
                                       k++) if (!strcmp(json_string_value(v), W.tasks[k].name))
                ctl[2 * K + 1 + k] = 1;
            json_decref(names);
        }
        double t_ar = weft_clock();
        MPI_Allreduce(MPI_IN_PLACE, ctl, (int)nctl, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        W.allreduce_s += weft_clock() - t_ar;
        /* The optimizer step, the same on every rank. */
        if (W.pack) {
            /* Every rank judges a tenant's health on the same, reduced loss. */
            for (int k = 0; k < K; k++)
                if (task_active(&W.tasks[k]))
                    lora_trainer_set_tenant_loss(W.trainer, k, (float)(ctl[k] / W.world));
            lora_trainer_update(W.trainer);
        } else {
            const spec_train_t *t = &W.spec->train;
            float lr = schedule_lr(&W.sched, (long)W.step);
#ifdef WEFT_HAVE_CUDA
            if (W.gpu) {
                int rc = 0;
                if (isfinite(gnorm) &&
                    (gpt2_cuda_grad_clip(W.gpu, gnorm, (float)t->grad_clip) < 0 ||
                     gpt2_cuda_adamw(W.gpu, lr, &W.adam, GPT2_DECAY_DEFAULT, (long)W.step + 1) < 0))
                    rc = -1, weft_report();
                if ((code = agree(rc < 0 ? EXIT_FAIL : EXIT_DONE)) != EXIT_DONE) break;
            } else
#endif
                grad_clip(W.model->grads, W.model->nparams, gnorm, (float)t->grad_clip);
            if (!isfinite(gnorm)) {
                end_task(0, TASK_FAILED, "the loss or gradient became NaN or infinite");
                code = EXIT_DATA;
            } else
#ifdef WEFT_HAVE_CUDA
                if (!W.gpu)
#endif
            {
                gpt2_adamw(W.model, W.m, W.v, lr, &W.adam, GPT2_DECAY_DEFAULT, (long)W.step + 1);
            }
        }
        W.step++;
        double dt = weft_clock() - t_step;
        W.step_s += dt;
        W.step_cpu_s += cpu_now() - c_step;
        double ar_step = W.allreduce_s - ar_before;
        for (int k = 0; k < K && code == EXIT_DONE; k++) {
            task_t *t = &W.tasks[k];
            if (!task_active(t)) continue;
            long tstep = W.pack ? lora_trainer_tenant_step(W.trainer, k) : (long)W.step;
            int64_t tok = (int64_t)t->train->batch_size * W.T;
            t->tokens += tok;
            t->loss = ctl[k] / W.world;
            if (W.pack && lora_trainer_failed_at(W.trainer, k) >= 0) {
                char why[128];
                snprintf(why, sizeof why, "loss or gradient not finite at step %ld",
                         lora_trainer_failed_at(W.trainer, k));
                end_task(k, TASK_FAILED, why);
                if (W.rank == 0) {
                    weft_warn("tenant %s failed: %s; the others go on", t->name, why);
                    reporter_post(W.rep, WIRE_FAIL,
                                  json_pack("{s:s, s:s}", "tenant", t->name, "error", why));
                }
                continue;
            }
            if (W.rank == 0) {
                double lr = W.pack ? lora_trainer_lr(W.trainer, k)
                                   : schedule_lr(&W.sched, (long)W.step - 1);
                double gn = W.pack ? lora_trainer_grad_norm(W.trainer, k) : gnorm;
                json_t *m =
                    json_pack("{s:s, s:i, s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:f}", "run",
                              W.run, "attempt", W.attempt, "tenant", t->name, "kind", "train",
                              "step", (json_int_t)tstep, "steps", (json_int_t)t->steps, "loss",
                              t->loss, "lr", lr, "grad_norm", gn, "tokens", (json_int_t)t->tokens,
                              "tokens_per_s", (double)tok / dt, "elapsed", weft_clock() - W.t0);
                json_object_set_new(m, "allreduce_s", json_real(ar_step));
                /* chat data: the step's targets the loss was taken on (the
                 * answers), all ranks, and their rate beside tokens_per_s */
                if (t->rows) {
                    json_object_set_new(m, "trainable_tokens", json_integer(trainable[k]));
                    json_object_set_new(m, "trainable_tokens_per_s",
                                        json_real((double)trainable[k] / dt));
                }
                reporter_metric(W.rep, m);
                if (tstep % print_every == 0 || tstep == t->steps)
                    printf("step %5ld/%-5lld %-16s loss %.4f  lr %.2e  %.0f tok/s%s\n", tstep,
                           (long long)t->steps, t->name, t->loss, lr, (double)tok / dt,
                           trained_rate(t, trainable[k], dt)),
                        fflush(stdout);
            }
            if (ctl[K + 1 + k] > 0) {
                end_task(k, TASK_CANCELLED, "cancelled");
                continue;
            }
            if (tstep >= t->steps) {
                if (end_task(k, TASK_DONE, NULL) < 0)
                    code = fail_with(EXIT_FAIL); /* its output could not be saved: say why */
                continue;
            }
            if (ctl[2 * K + 1 + k] > 0) {
                if (W.rank == 0)
                    printf("step %5ld/%-5lld %-16s stopped early by the coordinator\n", tstep,
                           (long long)t->steps, t->name),
                        fflush(stdout);
                if (end_task(k, TASK_STOPPED, "stopped early") < 0) code = fail_with(EXIT_FAIL);
            }
        }
        /* A tenant still waiting for a slot may be cancelled too: it never
         * trains (it would otherwise be admitted later, its order lost). */
        for (int k = 0; k < K && code == EXIT_DONE; k++)
            if (W.tasks[k].state == TASK_WAITING && ctl[K + 1 + k] > 0)
                end_task(k, TASK_CANCELLED, "cancelled");
        if (W.rank == 0) reporter_set_step(W.rep, W.step);
        if (code != EXIT_DONE) break;
        /* Periodic evaluation of the tasks still training, each at its own
         * step (every eval_every, and at each early-stopping rung). */
        int ev = W.spec->train.eval_every, due = 0;
        for (int k = 0; k < K; k++) {
            task_t *t = &W.tasks[k];
            long ts = W.pack ? lora_trainer_tenant_step(W.trainer, k) : (long)W.step;
            mask[k] =
                task_active(t) && ts > 0 && ((ev > 0 && ts % ev == 0) || task_rung(t, ts) >= 0);
            due |= mask[k];
        }
        if (due && evaluate(mask) < 0) code = EXIT_DATA;
        /* Tenants the coordinator admitted join the waiting ones, after
         * this step's ends, so that the slots those freed count. */
        if (code == EXIT_DONE && ctl[3 * K + 1] > 0) {
            code = take_admitted(admits);
            if (code == EXIT_DONE && W.ntasks != K) {
                K = W.ntasks;
                nctl = (size_t)K * 3 + 2;
                if (train_buffers(K, &losses, &ctl, &mask, &trainable) < 0) code = EXIT_FAIL;
            }
        }
        json_decref(admits);
        admits = NULL;
        /* Slots freed at this step go to waiting tenants. */
        if (code == EXIT_DONE && admit(mask) < 0) code = EXIT_DATA;
        int ce = W.spec->train.checkpoint_every;
        int stop = ctl[K] > 0;
        if (code == EXIT_DONE && ((ce > 0 && W.step % ce == 0) || stop || !any_active())) {
            if (checkpoint() == EXIT_DONE)
                last_ckpt = W.step;
            else if (stop)
                code = EXIT_FAIL;
        }
        if (code == EXIT_DONE && stop && any_active()) {
            if (W.rank == 0)
                weft_info("stop requested: checkpointed at step %" PRId64 ", exiting 75",
                          last_ckpt);
            code = EXIT_REQUEUE;
        }
    }
    json_decref(admits);
    json_decref(carried);
    free(losses);
    free(ctl);
    free(mask);
    free(trainable);
    return code;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-worker RUN.cfg [--endpoint EP] [--run ID] [--attempt N]\n"
            "                   [--resume auto|never] [--watchdog SECONDS]\n\n"
            "Trains one run (mpirun -np R weft-worker RUN.cfg, or srun --mpi=pmix).\n"
            "  --endpoint EP     report to weftd at EP (else metrics.jsonl only)\n"
            "  --run ID          run id in messages (default: the spec's name)\n"
            "  --attempt N       attempt number (default: 1 + SLURM_RESTART_COUNT)\n"
            "  --resume MODE     auto: from the newest valid checkpoint (default); never\n"
            "  --watchdog S      abort the group after S seconds without a step (default 600)\n"
            "exit codes: 0 done, 75 checkpointed on a signal, 65 bad data, 78 bad spec, 1 other\n");
}

int main(int argc, char **argv)
{
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &W.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &W.world);
    W.mpi_multiple = provided >= MPI_THREAD_MULTIPLE;
    weft_log_init("weft-worker");
    h5_quiet();
    W.t0 = weft_clock();
    const char *spec_path = NULL, *run = NULL, *resume_mode = "auto";
    double watchdog = 600;
    const char *env_wd = getenv("WEFT_WATCHDOG");
    if (env_wd) watchdog = atof(env_wd);
    const char *rc_env = getenv("SLURM_RESTART_COUNT");
    W.attempt = 1 + (rc_env ? atoi(rc_env) : 0);
    static const struct option opts[] = {{"endpoint", required_argument, 0, 'e'},
                                         {"run", required_argument, 0, 'r'},
                                         {"attempt", required_argument, 0, 'a'},
                                         {"resume", required_argument, 0, 'R'},
                                         {"watchdog", required_argument, 0, 'w'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c, code = EXIT_DONE;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            W.endpoint = optarg;
            break;
        case 'r':
            run = optarg;
            break;
        case 'a':
            W.attempt = atoi(optarg);
            break;
        case 'R':
            resume_mode = optarg;
            break;
        case 'w':
            watchdog = atof(optarg);
            break;
        case 'h':
            if (W.rank == 0) usage(stdout);
            MPI_Finalize();
            return 0;
        default:
            code = EXIT_SPEC;
        }
    }
    if (code == EXIT_DONE && (optind != argc - 1 || W.attempt < 1 ||
                              (strcmp(resume_mode, "auto") && strcmp(resume_mode, "never")))) {
        if (W.rank == 0) usage(stderr);
        code = EXIT_SPEC;
    }
    W.publish = !W.endpoint; /* with a coordinator, weftd installs the versions */
    if (code == EXIT_DONE) {
        spec_path = argv[optind];
        if (guard_fault_parse(getenv("WEFT_FAULT"), W.attempt) < 0) code = fail_with(EXIT_FAIL);
    }
    if (code == EXIT_DONE) code = load_spec(spec_path);
    if (code == EXIT_DONE) {
        snprintf(W.run, sizeof W.run, "%s", run ? run : W.spec->name);
        par_set_threads(W.spec->resources.threads);
        code = load_backbone();
    }
    if (code == EXIT_DONE) code = setup_tasks();
    if (code == EXIT_DONE) code = W.spec->mode == SPEC_LORA ? setup_lora() : setup_full();
    if (code == EXIT_DONE && W.rank == 0 && weft_mkdir_p(W.spec->output, 0755) < 0)
        code = EXIT_FAIL;
    if (code == EXIT_DONE && W.rank == 0) {
        size_t n = W.pack ? lora_pack_size(W.pack)
                          : W.spec->train.keep == SPEC_KEEP_BEST ? W.model->nparams : 0;
        if (n && !(W.best = calloc(n, sizeof *W.best))) code = fail_with(EXIT_FAIL);
    }
    if (code == EXIT_DONE) code = agree(code);
    int64_t metrics_bytes = 0;
    int resumed = 0;
    if (code == EXIT_DONE) {
        resumed = resume(!strcmp(resume_mode, "auto"), &metrics_bytes);
        if (resumed < 0)
            code = -resumed;
        else if (W.pack && W.fresh_from < W.ntasks)
            code = load_init_adapters(W.fresh_from);
        for (int k = 0; k < W.ntasks; k++) /* dropped for its data: stays so on a resume */
            if (!W.tasks[k].data) W.tasks[k].state = TASK_FAILED, W.tasks[k].saved = 1;
        if (W.rank == 0 && !W.uid[0]) new_uid();
    }
    if (code == EXIT_DONE && W.rank == 0) {
        W.rep =
            reporter_new(W.spec->output, W.run, W.attempt, W.endpoint, resumed ? metrics_bytes : 0);
        if (!W.rep) code = fail_with(EXIT_FAIL);
    }
    if (code == EXIT_DONE) code = agree(code);
    if (code == EXIT_DONE) {
        if (W.rank == 0) {
            json_t *names = json_array();
            for (int k = 0; k < W.ntasks; k++)
                json_array_append_new(names, json_string(W.tasks[k].name));
            reporter_post(W.rep, WIRE_HELLO,
                          json_pack("{s:o, s:i, s:I, s:s}", "tenants", names, "ranks", W.world,
                                    "step", (json_int_t)W.step, "mode",
                                    spec_mode_name(W.spec->mode)));
            for (int k = 0; k < W.ntasks; k++)
                if (!W.tasks[k].data ||
                    (k >= W.fresh_from && W.fresh_from > 0 && W.tasks[k].state == TASK_FAILED))
                    reporter_post(W.rep, WIRE_FAIL,
                                  json_pack("{s:s, s:s}", "tenant", W.tasks[k].name, "error",
                                            W.tasks[k].error));
            printf("weft-worker: run %s attempt %d: %s, %d task(s), %d rank(s), %s\n", W.run,
                   W.attempt, spec_mode_name(W.spec->mode), W.ntasks, W.world,
                   resumed ? "resumed" : "fresh start");
            fflush(stdout);
        }
        guard_signals();
        if (guard_watchdog_start(watchdog, W.rank, W.mpi_multiple) < 0) code = EXIT_FAIL;
    }
    if (code == EXIT_DONE && W.pack && W.fresh_from < W.ntasks) code = eval_baselines(W.fresh_from);
    if (code == EXIT_DONE) code = train();
    if (code == EXIT_DONE && W.rank == 0) {
        int bad = 0;
        for (int k = 0; k < W.ntasks; k++) bad |= W.tasks[k].state == TASK_FAILED;
        if (write_result(bad && W.ntasks == 1 ? "failed" : "done", weft_clock() - W.t0) < 0)
            code = fail_with(EXIT_FAIL);
        if (reporter_flush(W.rep, 10) > 0)
            weft_warn("the coordinator did not acknowledge everything; the outbox keeps it");
    }
    guard_watchdog_stop();
    reporter_destroy(&W.rep);
#ifdef WEFT_HAVE_NCCL
    if (W.nccl) ncclCommDestroy(W.nccl);
#endif
#ifdef WEFT_HAVE_CUDA
    gpt2_cuda_destroy(&W.gpu);
#endif
    code = agree(code);
    MPI_Finalize();
    return code;
}
