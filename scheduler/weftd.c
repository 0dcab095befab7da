/* weftd.c: the coordinator's main, in the order it runs: options, the home
 * folder and its lock, keys, the ROUTER socket, then one zmq_poll loop and
 * the round discipline: every message of a round is handled inside one
 * transaction, and its replies and ACKs leave only after that transaction
 * commits. */
#include "common/clock.h"
#include "config.h"
#include "common/auth.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "jobs/spec.h"
#include "scheduler/weftd.h"
#include "scheduler/zap.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include <sysexits.h>

weftd_t server;

#define ROUND_MAX 1000 /* messages handled in one transaction */
/* Seconds of handling after which a round commits and its replies leave, so
 * that a flood of large requests cannot hold back everyone's answers. */
#define ROUND_BUDGET 0.02
#define POLL_MS      100

double weftd_now(void)
{
    return weft_clock();
}

void weftd_reply(const uint8_t *rid, size_t rid_len, wire_cmd_t cmd, json_t *body)
{
    if (server.nreplies == server.capreplies) {
        size_t cap = server.capreplies ? server.capreplies * 2 : 64;
        reply_t *r = realloc(server.replies, cap * sizeof *r);
        if (!r) {
            json_decref(body);
            return;
        }
        server.replies = r;
        server.capreplies = cap;
    }
    /* The answer to the request being handled echoes its "req". */
    if (server.req && body && (cmd == WIRE_REPLY || cmd == WIRE_ERROR) &&
        rid_len == server.req_rid_len && !memcmp(rid, server.req_rid, rid_len))
        json_object_set(body, "req", server.req);
    reply_t *r = &server.replies[server.nreplies++];
    memcpy(r->rid, rid, rid_len);
    r->rid_len = rid_len;
    r->cmd = cmd;
    r->body = body;
}

void weftd_reply_error(const uint8_t *rid, size_t rid_len, const char *kind, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    weftd_reply(rid, rid_len, WIRE_ERROR, json_pack("{s:s, s:s}", "error", kind, "message", text));
}

/* Sends the round's replies (after COMMIT), or drops them (after ROLLBACK)
 * and tells each sender the store failed. */
static void flush_replies(int committed)
{
    for (size_t i = 0; i < server.nreplies; i++) {
        reply_t *r = &server.replies[i];
        if (committed) {
            wire_send(server.router, r->rid, r->rid_len, r->cmd, r->body, ZMQ_DONTWAIT);
        } else if (r->cmd != WIRE_ACK) {
            json_t *e = json_pack("{s:s, s:s}", "error", "store", "message",
                                  "the coordinator could not store this; try again");
            json_t *req = json_object_get(r->body, "req");
            if (req) json_object_set(e, "req", req);
            wire_send(server.router, r->rid, r->rid_len, WIRE_ERROR, e, ZMQ_DONTWAIT);
            json_decref(e);
        }
        json_decref(r->body);
    }
    server.nreplies = 0;
}

/* One round: drain up to ROUND_MAX messages inside one transaction. */
static void round_messages(void)
{
    wire_rx_t rx = {.accept = WIRE_FROM_CLIENT | WIRE_FROM_WORKER, .max_json = server.max_json};
    int began = 0, failed = 0;
    double start = weftd_now();
    for (int i = 0; i < ROUND_MAX && !server.stop && weftd_now() - start < ROUND_BUDGET; i++) {
        wire_msg_t *msg = NULL;
        wire_reject_t rej;
        int rc = wire_recv_admit(server.router, &rx, weftd_admit, NULL, ZMQ_DONTWAIT, &msg, &rej);
        if (rc == WIRE_AGAIN) break;
        if (rc == WIRE_REJECTED) {
            server.rejected[rej.code]++;
            server.handled++;
            /* A message over its size limit is dropped, counted, never answered. */
            if (rej.rid_len && rej.code != WIRE_REJ_OVERSIZE)
                wire_send_error(server.router, rej.rid, rej.rid_len, rej.code, rej.text,
                                ZMQ_DONTWAIT);
            continue;
        }
        if (rc < 0) {
            weft_warn("receive failed: %s", weft_last_error());
            break;
        }
        if (!began) {
            if (store_begin(server.store) < 0) {
                weft_warn("%s", weft_last_error());
                wire_msg_destroy(&msg);
                break;
            }
            began = 1;
        }
        server.handled++;
        int worker = wire_cmd_senders(msg->cmd) & WIRE_FROM_WORKER;
        if (!worker) {
            server.req = json_object_get(msg->body, "req");
            memcpy(server.req_rid, msg->rid, msg->rid_len);
            server.req_rid_len = msg->rid_len;
        }
        int hr = worker ? monitor_handle(msg) : api_handle(msg);
        server.req = NULL;
        wire_msg_destroy(&msg);
        if (hr < 0) {
            failed = 1;
            weft_warn("store failure, rolling back the round: %s", weft_last_error());
            break;
        }
    }
    if (!began) {
        flush_replies(1);
        return;
    }
    if (!failed && store_commit(server.store) == 0) {
        flush_replies(1);
        return;
    }
    store_rollback(server.store);
    monitor_reload();
    flush_replies(0);
}

/* ZeroMQ closes a connection that sends a frame over ZMQ_MAXMSGSIZE before
 * weftd sees anything of it, and its monitor does not say why a connection
 * ended: the daemon's STATUS counts every closed connection ("disconnects"),
 * those cut off for size among them. */
static int watch_router(void)
{
    const char *ep = "inproc://weftd-router-monitor";
    if (zmq_socket_monitor(server.router, ep, ZMQ_EVENT_DISCONNECTED) < 0 ||
        !(server.mon = zmq_socket(server.zctx, ZMQ_PAIR)) || zmq_connect(server.mon, ep) < 0)
        return weft_error("monitoring the ROUTER: %s", zmq_strerror(zmq_errno()));
    return 0;
}

static void count_disconnects(void)
{
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, server.mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return;
        }
        uint16_t event = 0; /* frame 1: event (2 bytes), value (4); frame 2: endpoint */
        if (zmq_msg_size(&part) >= 2) memcpy(&event, zmq_msg_data(&part), 2);
        if (event == ZMQ_EVENT_DISCONNECTED) server.disconnects++;
        while (zmq_msg_more(&part)) {
            zmq_msg_close(&part);
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, server.mon, 0) < 0) break;
        }
        zmq_msg_close(&part);
    }
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        server.reload = 1;
    else
        server.stop = 1;
}

/* SIGHUP: the clients folder again, all or nothing. */
static void reload_clients(void)
{
    server.reload = 0;
    if (!server.zap) {
        weft_info("SIGHUP: no CURVE endpoint, no client keys to reload");
        return;
    }
    int before = zap_clients(server.zap), n = zap_reload_clients(server.zap, server.clients);
    if (n < 0)
        weft_warn("SIGHUP: %s; the %d client key(s) loaded before stay", weft_last_error(), before);
    else
        weft_info("SIGHUP: %d client key(s) from %s (were %d)", n, server.clients, before);
}

/* Takes the home's lock; a second weftd is told who holds it. A weftd
 * killed a moment ago may hold it a little longer (while the kernel tears
 * it down, or through a child between fork and exec), so a restart right
 * after a crash waits up to LOCK_WAIT seconds before giving up. */
#define LOCK_WAIT 3.0
static int lock_home(void)
{
    char path[PATH_MAX];
    if (weft_path_join(path, sizeof path, server.home, "weftd.pid") < 0) return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return weft_error("%s: cannot open: %s", path, strerror(errno));
    int locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    for (int i = 0; !locked && i < (int)(LOCK_WAIT / 0.05); i++) {
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
        locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    }
    if (!locked) {
        char buf[32] = "";
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        close(fd);
        return weft_error("another weftd (pid %d) is running on %s; stop it first or use "
                          "another --home",
                          atoi(buf), server.home);
    }
    server.lock_fd = fd;
    return 0;
}

/* Writes this process's pid into the locked pid file (after daemonizing). */
static int write_pid(void)
{
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(server.lock_fd, 0) < 0 || pwrite(server.lock_fd, pid, (size_t)n, 0) != n)
        return weft_error("cannot write weftd.pid in %s", server.home);
    return 0;
}

static int setup_home(const char *home)
{
    if (home) {
        snprintf(server.home, sizeof server.home, "%s", home);
    } else if (getenv("WEFT_HOME") && *getenv("WEFT_HOME")) {
        snprintf(server.home, sizeof server.home, "%s", getenv("WEFT_HOME"));
    } else {
        const char *h = getenv("HOME");
        if (!h || snprintf(server.home, sizeof server.home, "%s/.weft", h) >= PATH_MAX)
            return weft_error("no home folder: give --home DIR or set WEFT_HOME");
    }
    if (weft_mkdir_p(server.home, 0700) < 0 || chmod(server.home, 0700) < 0)
        return weft_error_prefix("home %s", server.home);
    char *abs = realpath(server.home, NULL);
    if (!abs) return weft_error("home %s: %s", server.home, strerror(errno));
    snprintf(server.home, sizeof server.home, "%s", abs);
    free(abs);
    if (weft_path_join(server.runs_dir, sizeof server.runs_dir, server.home, "runs") < 0 ||
        weft_path_join(server.data_dir, sizeof server.data_dir, server.home, "data") < 0 ||
        weft_path_join(server.tenants_dir, sizeof server.tenants_dir, server.home, "tenants") < 0 ||
        weft_mkdir_p(server.tenants_dir, 0700) < 0 || chmod(server.tenants_dir, 0700) < 0 ||
        weft_mkdir_p(server.runs_dir, 0700) < 0 || weft_mkdir_p(server.data_dir, 0700) < 0)
        return -1;
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: weftd [--home DIR] [--endpoint EP] [--executor local|slurm] [--slots N]\n"
                 "             [--pack-size K] [--liveness SECONDS] [--foreground]\n"
                 "             [--no-refill]\n\n"
                 "  --home DIR        state folder (default $WEFT_HOME, else ~/.weft)\n"
                 "  --endpoint EP     ZeroMQ endpoint (default ipc://HOME/weftd.sock)\n"
                 "  --executor NAME   where runs go: local (mpirun on this machine) or slurm\n"
                 "                    (sbatch; partition, account, time from SBATCH_* variables)\n"
                 "  --slots N         MPI ranks run at once (default: number of cores)\n"
                 "  --pack-size K     tenants training at once in a LoRA run (default 16)\n"
                 "  --no-refill       runs of at most K jobs each, never refilled (by default,\n"
                 "                    when the slots cannot hold every queued job's pack, the\n"
                 "                    runs take them all and admit them as slots free, and a\n"
                 "                    job submitted later joins a run that trains)\n"
                 "  --liveness S      seconds of silence before a run is lost (default 30)\n"
                 "  --gpus 0,1,...    GPUs the local executor hands out, one per rank of a\n"
                 "                    device = \"cuda\" run (CUDA_VISIBLE_DEVICES; default: none\n"
                 "                    managed, a run sees every GPU)\n"
                 "  --foreground      stay attached; log to stderr\n\n"
                 "A tcp endpoint is CURVE-encrypted and admits only listed client keys:\n"
                 "  --server-key FILE weftd's key pair (default HOME/server.key; weft keygen)\n"
                 "  --clients DIR     admitted clients' public keys, *.pub with their roles\n"
                 "                    (default HOME/clients)\n"
                 "  --insecure-tcp    no keys: anyone who reaches the port is admin\n"
                 "Limits on what clients send (default):\n"
                 "  --max-message N   bytes of a message's JSON (1048576)\n"
                 "  --max-spec N      bytes of a submitted spec (1048576)\n"
                 "  --max-tenants N   tenants per spec (4096)\n"
                 "  --max-trials N    trials per sweep (10000)\n"
                 "  --max-watch N     open WATCH streams in all (256)\n"
                 "  --max-watch-per-client N  open WATCH streams per client (8)\n");
}

/* A fresh CURVE key for a run's next attempt, in RUNS/<run>/worker.key (mode
 * 0600), admitted as worker:<run>; the launch passes its path to the workers
 * in WEFT_WORKER_KEY. Without CURVE, no key. */
int weftd_worker_key(int64_t run)
{
    if (!server.zap) {
        unsetenv("WEFT_WORKER_KEY");
        return 0;
    }
    char name[64], dir[PATH_MAX], path[PATH_MAX], role[96];
    snprintf(name, sizeof name, "%lld", (long long)run);
    snprintf(role, sizeof role, "worker:%lld", (long long)run);
    auth_key_t key;
    if (weft_path_join(dir, sizeof dir, server.runs_dir, name) < 0 || weft_mkdir_p(dir, 0700) < 0 ||
        weft_path_join(path, sizeof path, dir, "worker.key") < 0 || auth_key_mint(&key, role) < 0)
        return -1;
    snprintf(key.server_key, sizeof key.server_key, "%s", server.server_key);
    if (auth_key_write(&key, path, true) < 0 || zap_add_run(server.zap, name, key.public_key) < 0)
        return -1;
    setenv("WEFT_WORKER_KEY", path, 1);
    return 0;
}

/* After a restart: admits again the keys of the runs that go on. */
static void load_worker_keys(void)
{
    for (live_run_t *r = server.runs; server.zap && r; r = r->next) {
        char run[32], name[64], path[PATH_MAX];
        auth_key_t key;
        snprintf(run, sizeof run, "%lld", (long long)r->id);
        snprintf(name, sizeof name, "%s/worker.key", run);
        if (weft_path_join(path, sizeof path, server.runs_dir, name) < 0 ||
            auth_key_read(path, &key) < 0 || zap_add_run(server.zap, run, key.public_key) < 0)
            weft_warn("run %lld: its workers cannot reconnect over tcp: %s", (long long)r->id,
                      weft_last_error());
    }
}

/* Numeric option value in lo..hi, or -1 after a message. */
static long long opt_num(const char *name, const char *text, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "weftd: --%s wants a whole number in %lld..%lld, not '%s'\n", name, lo, hi,
                text);
        return -1;
    }
    return v;
}

/* Forks into the background once ready: the parent exits 0 only when the
 * child has bound its socket (or reports the child's error). */
static int daemonize(int *ready_fd)
{
    int p[2];
    if (pipe(p) < 0) return weft_error("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork: %s", strerror(errno));
    if (pid > 0) {
        close(p[1]);
        char buf[1024];
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        if (n <= 0) {
            fprintf(stderr, "weftd: failed to start; see %s/weftd.log\n", server.home);
            _exit(1);
        }
        buf[n] = 0;
        if (buf[0] != 'O') {
            fprintf(stderr, "weftd: error: %s\n", buf);
            _exit(1);
        }
        printf("weftd: running (pid %d) on %s\n", (int)pid, server.endpoint);
        fflush(stdout);
        _exit(0);
    }
    close(p[0]);
    setsid();
    char log[PATH_MAX];
    if (weft_path_join(log, sizeof log, server.home, "weftd.log") == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2), close(fd);
        if (nul >= 0) dup2(nul, 0), close(nul);
    }
    *ready_fd = p[1];
    return 0;
}

static void tell_parent(int fd, const char *what)
{
    if (fd < 0) return;
    ssize_t n = write(fd, what, strlen(what));
    (void)n;
    close(fd);
}

/* Open MPI's mpirun refuses root unless both variables are 1, and then
 * every attempt of every run fails within a second: as root, weftd sets them
 * for its own children (mpirun, and sbatch's environment). */
static void allow_mpirun_as_root(void)
{
    if (geteuid() != 0) return;
    static const char *vars[] = {"OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(vars[i]);
        if (v && !strcmp(v, "1")) continue;
        setenv(vars[i], "1", 1);
        weft_info("running as root: %s=1 set for mpirun", vars[i]);
    }
}

/* What the command line asked for, beyond the numbers it sets in server. */
typedef struct {
    const char *home, *endpoint, *executor, *gpus;
    const char *server_key, *clients; /* NULL: in the home */
    int foreground;
    int insecure_tcp;
    int tcp;                                   /* the endpoint is tcp:// */
    char ipc_endpoint[sizeof server.endpoint]; /* beside a tcp one: the local admin's */
    auth_key_t skey;                           /* weftd's CURVE pair (tcp, keys) */
} options_t;

#define GO_ON -1 /* parse_options: no exit code, weftd starts */

/* The server's defaults, then the command line over them: GO_ON, or the
 * exit code (0 after --help or --version, EX_USAGE after a message). */
static int parse_options(int argc, char **argv, options_t *o)
{
    *o = (options_t){.executor = "local"};
    server.slots = (int)sysconf(_SC_NPROCESSORS_ONLN);
    server.pack_size = 16;
    server.liveness = 30;
    server.max_watchers = 256;
    server.max_watch_client = 8;
    spec_limits_t sl = spec_limits_default();
    server.max_json = WIRE_MAX_JSON;
    server.max_spec = sl.max_spec_bytes;
    server.max_tenants = sl.max_tenants;
    server.max_trials = sl.max_trials;
    server.lock_fd = -1;
    static const struct option opts[] = {{"home", required_argument, 0, 'H'},
                                         {"endpoint", required_argument, 0, 'e'},
                                         {"executor", required_argument, 0, 'x'},
                                         {"slots", required_argument, 0, 's'},
                                         {"pack-size", required_argument, 0, 'k'},
                                         {"liveness", required_argument, 0, 'l'},
                                         {"foreground", no_argument, 0, 'f'},
                                         {"no-refill", no_argument, 0, 'N'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {"insecure-tcp", no_argument, 0, 'I'},
                                         {"server-key", required_argument, 0, 'K'},
                                         {"clients", required_argument, 0, 'C'},
                                         {"max-message", required_argument, 0, 'M'},
                                         {"max-spec", required_argument, 0, 'S'},
                                         {"max-tenants", required_argument, 0, 'T'},
                                         {"max-trials", required_argument, 0, 'R'},
                                         {"max-watch", required_argument, 0, 'W'},
                                         {"max-watch-per-client", required_argument, 0, 'w'},
                                         {"gpus", required_argument, 0, 'G'},
                                         {0, 0, 0, 0}};
    long long v = 0;
    int c, li = 0;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'H':
            o->home = optarg;
            break;
        case 'e':
            o->endpoint = optarg;
            break;
        case 'x':
            o->executor = optarg;
            break;
        case 'G':
            o->gpus = optarg;
            break;
        case 's':
            server.slots = (int)strtol(optarg, &end, 10);
            break;
        case 'k':
            server.pack_size = (int)strtol(optarg, &end, 10);
            break;
        case 'l':
            server.liveness = strtod(optarg, &end);
            break;
        case 'f':
            o->foreground = 1;
            break;
        case 'N':
            server.no_refill = 1;
            break;
        case 'I':
            o->insecure_tcp = 1;
            break;
        case 'K':
            o->server_key = optarg;
            break;
        case 'C':
            o->clients = optarg;
            break;
        case 'M':
            if ((v = opt_num("max-message", optarg, 1024, 256LL << 20)) < 0) return EX_USAGE;
            server.max_json = (size_t)v;
            break;
        case 'S':
            if ((v = opt_num("max-spec", optarg, 64, 64LL << 20)) < 0) return EX_USAGE;
            server.max_spec = (size_t)v;
            break;
        case 'T':
            if ((v = opt_num("max-tenants", optarg, 1, 1 << 20)) < 0) return EX_USAGE;
            server.max_tenants = (int)v;
            break;
        case 'R':
            if ((v = opt_num("max-trials", optarg, 1, 1 << 20)) < 0) return EX_USAGE;
            server.max_trials = (int)v;
            break;
        case 'W':
            if ((v = opt_num("max-watch", optarg, 1, 1 << 20)) < 0) return EX_USAGE;
            server.max_watchers = (int)v;
            break;
        case 'w':
            if ((v = opt_num("max-watch-per-client", optarg, 1, 1 << 20)) < 0) return EX_USAGE;
            server.max_watch_client = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("weftd %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
        if (end && (*end || end == optarg)) {
            fprintf(stderr, "weftd: --%s wants a number, not '%s'\n", opts[li].name, optarg);
            return EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weftd: unexpected argument '%s'; see weftd --help\n", argv[optind]);
        return EX_USAGE;
    }
    if (server.slots < 1 || server.pack_size < 1 || server.pack_size > 256 ||
        server.liveness <= 0) {
        fprintf(stderr, "weftd: --slots and --liveness must be positive, --pack-size 1..256\n");
        return EX_USAGE;
    }
    if (strcmp(o->executor, "local") && strcmp(o->executor, "slurm")) {
        fprintf(stderr, "weftd: unknown executor '%s' (this build knows: local, slurm)\n",
                o->executor);
        return EX_USAGE;
    }
    return GO_ON;
}

/* The home folder, and the endpoints in it: the one served
 * (ipc://HOME/weftd.sock unless given) and, beside a tcp one, the local
 * admin's ipc socket. 0, or the exit code after a message. */
static int set_up_home(options_t *o)
{
    if (setup_home(o->home) < 0) {
        weft_report();
        return 1;
    }
    if (o->endpoint)
        snprintf(server.endpoint, sizeof server.endpoint, "%s", o->endpoint);
    else if (snprintf(server.endpoint, sizeof server.endpoint, "ipc://%s/weftd.sock",
                      server.home) >= (int)sizeof server.endpoint) {
        fprintf(stderr, "weftd: home path too long for an ipc endpoint\n");
        return EX_USAGE;
    }
    o->tcp = !strncmp(server.endpoint, "tcp://", 6);
    if (o->tcp && snprintf(o->ipc_endpoint, sizeof o->ipc_endpoint, "ipc://%s/weftd.sock",
                           server.home) >= (int)sizeof o->ipc_endpoint) {
        fprintf(stderr, "weftd: home path too long for an ipc endpoint\n");
        return EX_USAGE;
    }
    return 0;
}

/* A tcp endpoint: CURVE with weftd's key pair, unless --insecure-tcp. The
 * local ipc socket (in the 0700 home) is bound beside it, for the local
 * admin. 0, or EX_USAGE after a message. */
static int set_up_keys(options_t *o)
{
    if (o->tcp && !o->insecure_tcp) {
        char def[PATH_MAX];
        const char *path = o->server_key;
        if (!path && weft_path_join(def, sizeof def, server.home, "server.key") == 0) path = def;
        if (!path || auth_key_read(path, &o->skey) < 0 || !o->skey.secret_key[0]) {
            fprintf(stderr,
                    "weftd: %s needs CURVE keys: %s\n"
                    "  make weftd's pair with 'weft keygen -o %s/server', admit clients by "
                    "copying their .pub files (weft keygen --role ...) into %s/clients, or "
                    "start with --insecure-tcp (anyone who reaches the port is admin)\n",
                    server.endpoint,
                    path ? (o->skey.role[0] && !o->skey.secret_key[0]
                                ? "the server key file holds no secret key"
                                : weft_last_error())
                         : "no server key",
                    server.home, server.home);
            return EX_USAGE;
        }
        snprintf(server.server_key, sizeof server.server_key, "%s", o->skey.public_key);
    }
    /* In the foreground, the warning after binding is on this terminal already. */
    if (o->tcp && o->insecure_tcp && !o->foreground)
        fprintf(stderr,
                "weftd: warning: %s is NOT authenticated (--insecure-tcp): anyone who "
                "reaches it is admin\n",
                server.endpoint);
    return 0;
}

/* The store (HOME/weft.db) and the executors. -1 with weft_error set. */
static int open_store_and_executors(const options_t *o)
{
    char db[PATH_MAX];
    if (weft_path_join(db, sizeof db, server.home, "weft.db") < 0 ||
        !(server.store = store_open(db)) ||
        !(server.exec = exec_local_new(NULL, getenv("WEFT_WORKER"), server.endpoint)) ||
        exec_local_set_gpus(server.exec, o->gpus) < 0 ||
        (!strcmp(o->executor, "slurm") &&
         !(server.slurm = exec_slurm_new(getenv("WEFT_WORKER"), server.endpoint, server.home))))
        return -1;
    return 0;
}

/* The ROUTER bound to its endpoint (and, for tcp, to the local ipc socket
 * first), with CURVE and the ZAP handler unless --insecure-tcp, and its
 * monitor. -1 with weft_error set. */
static int open_socket(const options_t *o)
{
    server.zctx = zmq_ctx_new();
    /* A frame over the JSON limit never reaches weftd: ZeroMQ drops it and
     * closes its connection (counted in "disconnects", see watch_router).
     * The margin is CURVE's envelope around a frame (33 bytes); a frame
     * within it reaches wire_recv, which drops and counts it (oversize). */
    wire_opts_t wo = wire_opts_default();
    wo.max_msg = (int64_t)server.max_json + WIRE_CURVE_MARGIN;
    /* Messages queued per connection before ZeroMQ stops reading it: at
     * most this many frames of --max-message held for one peer. */
    wo.rcvhwm = 100;
    /* Replies leave with ZMQ_DONTWAIT: a client with many requests in flight
     * must not find its replies dropped at the default 1000. */
    wo.sndhwm = 100000;
    const char *first = o->tcp ? o->ipc_endpoint : server.endpoint;
    if (!strncmp(first, "ipc://", 6)) unlink(first + 6);
    if (o->tcp && !o->insecure_tcp) {
        char clients_def[PATH_MAX];
        const char *clients = o->clients;
        if (!clients &&
            weft_path_join(clients_def, sizeof clients_def, server.home, "clients") == 0)
            clients = clients_def;
        snprintf(server.clients, sizeof server.clients, "%s", clients);
        server.zap = zap_new(server.zctx, clients);
        if (!server.zap) return -1;
        if (zap_clients(server.zap) == 0)
            weft_warn("no client keys in %s: only workers can use %s", clients, server.endpoint);
    }
    server.router = wire_router_new(server.zctx, first, &wo);
    if (server.router && o->tcp) {
        /* Options are taken at bind: the ipc listener above stays plain. */
        int on = 1;
        const char *secret = o->skey.secret_key;
        if (!o->insecure_tcp &&
            (zmq_setsockopt(server.router, ZMQ_ZAP_DOMAIN, "weft", 4) < 0 ||
             zmq_setsockopt(server.router, ZMQ_CURVE_SERVER, &on, sizeof on) < 0 ||
             zmq_setsockopt(server.router, ZMQ_CURVE_SECRETKEY, secret, strlen(secret)) < 0)) {
            weft_error("setting CURVE on %s: %s", server.endpoint, zmq_strerror(zmq_errno()));
            zmq_close(server.router);
            server.router = NULL;
        } else if (zmq_bind(server.router, server.endpoint) < 0) {
            weft_error("binding the ROUTER to %s: %s", server.endpoint, zmq_strerror(zmq_errno()));
            zmq_close(server.router);
            server.router = NULL;
        }
    }
    if (!server.router) return -1;
    if (!strncmp(first, "ipc://", 6)) chmod(first + 6, 0600);
    if (watch_router() < 0) return -1;
    if (o->tcp && o->insecure_tcp)
        weft_warn("%s is NOT authenticated (--insecure-tcp): anyone who reaches it is admin",
                  server.endpoint);
    return 0;
}

/* The event loop (Redis style) until SIGTERM or SIGINT: one zmq_poll over
 * the ROUTER and its monitor, a round of messages, then the runs' and the
 * watchers' cron. The parent of a daemon is told "OK" before it starts. */
static void serve(int ready_fd)
{
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
    weft_info("listening on %s (home %s, %d slots, packs of %d)", server.endpoint, server.home,
              server.slots, server.pack_size);
    tell_parent(ready_fd, "OK");
    int backlog = 0;
    while (!server.stop) {
        zmq_pollitem_t it[2] = {{server.router, 0, ZMQ_POLLIN, 0}, {server.mon, 0, ZMQ_POLLIN, 0}};
        zmq_poll(it, 2, backlog ? 0 : POLL_MS);
        if (it[1].revents & ZMQ_POLLIN) count_disconnects();
        if (server.reload) reload_clients();
        round_messages();
        if (monitor_cron() < 0) weft_warn("%s", weft_last_error());
        backlog = api_watch_cron();
    }
    weft_info("stopping; running groups go on and reconnect to the next weftd");
}

/* Frees what weftd holds; whatever of it was opened. */
static void shut_down(void)
{
    api_watchers_drop_all();
    monitor_free_all();
    if (server.mon) {
        zmq_socket_monitor(server.router, NULL, 0);
        zmq_close(server.mon);
    }
    if (server.router) zmq_close(server.router);
    zap_destroy(&server.zap);
    if (server.zctx) zmq_ctx_term(server.zctx);
    exec_local_destroy(&server.exec);
    exec_slurm_destroy(&server.slurm);
    store_destroy(&server.store);
    free(server.replies);
    if (server.lock_fd >= 0) close(server.lock_fd);
}

int main(int argc, char **argv)
{
    weft_log_init("weftd");
    options_t o;
    int rc = parse_options(argc, argv, &o);
    if (rc != GO_ON) return rc;
    if ((rc = set_up_home(&o)) != 0 || (rc = set_up_keys(&o)) != 0) return rc;
    int ready_fd = -1;
    if (lock_home() < 0 || (!o.foreground && daemonize(&ready_fd) < 0) || write_pid() < 0) {
        weft_report();
        return 1;
    }
    allow_mpirun_as_root();
    if (open_store_and_executors(&o) == 0 && open_socket(&o) == 0 && monitor_recover() == 0) {
        load_worker_keys();
        serve(ready_fd);
        rc = 0;
    } else {
        tell_parent(ready_fd, weft_last_error());
        weft_report();
        rc = 1;
    }
    shut_down();
    return rc;
}
