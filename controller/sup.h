/* sup: the local process supervisor of kv-controller.
 *
 * It starts child processes (fork + exec), reaps them, restarts the ones that
 * exit unexpectedly with an exponential backoff, and stops them all on
 * SIGINT/SIGTERM. Every child gets PR_SET_PDEATHSIG(SIGKILL), so nothing
 * outlives a controller that is killed with SIGKILL.
 *
 * Threading: one thread, the one that calls sup_run() (the main thread), owns
 * the processes: it forks (PR_SET_PDEATHSIG follows the thread that forked, so
 * that thread must live as long as the controller; sup_spawn refuses to fork
 * from any thread but the main one), reaps with waitpid and
 * reads the signals through a signalfd. Other threads (HTTP handlers, the
 * readiness waiter, later the failover logic) only read snapshots and post
 * requests (stop, start, signal, new argv) that the supervisor thread carries
 * out; every public function is thread-safe unless said otherwise.
 *
 * Signals: sup_block_signals() must run in the main thread before any other
 * thread is created, so that SIGCHLD, SIGINT, SIGTERM and SIGHUP are blocked
 * everywhere and reach the signalfd only. Children start with an empty signal
 * mask and default dispositions.
 *
 * Children that fork themselves (nginx: master + workers) are started with
 * `group = 1`: the supervisor forks a small guard process that puts the real
 * child in its own process group, forwards SIGTERM to it, and kills the whole
 * group when the child ends or when the controller dies (the guard's
 * parent-death signal is SIGTERM, which it handles). The guarded child's own
 * parent-death signal is SIGTERM too, which nginx's master answers by
 * stopping its workers: a guard SIGKILLed together with the controller (it
 * runs the controller's binary, so `pkill -9 -f kv-controller` hits it)
 * leaves no worker behind either. docs/ARCHITECTURE.md, "Local supervision",
 * says what happens to every child when the controller dies.
 *
 * Process groups: every child runs in its own process group, so a Ctrl-C in
 * the terminal (or a signal to the controller's group, as `timeout` sends)
 * reaches the controller only, and it stops the children itself. SIGHUP
 * (terminal closed) stops the cluster like SIGINT and SIGTERM.
 *
 * Input and output: stdin is /dev/null; stdout and stderr go to the
 * controller's stderr, or, when log_dir is set, are appended to
 * log_dir/<name>.log.
 *
 * Ownership: sup_new allocates, sup_free frees (after sup_stop_all). Specs are
 * copied by sup_add. */
#ifndef KV_CTL_SUP_H
#define KV_CTL_SUP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SUP_NAME_MAX 48
#define SUP_ROLE_MAX 16
#define SUP_URL_MAX 128
#define SUP_MAX_ARGS 64

/* How long a child must stay up before its backoff starts over. */
#define SUP_STABLE_MS 10000

enum sup_state {
    SUP_STOPPED = 0,  /* not running and not to be restarted */
    SUP_RUNNING,      /* process alive */
    SUP_RESTARTING,   /* exited unexpectedly, waiting for its backoff */
    SUP_STOPPING      /* SIGTERM sent, not reaped yet */
};

typedef struct sup_spec {
    char name[SUP_NAME_MAX];  /* "store-0-1", "queue", "api-0", "nginx" */
    char kind[SUP_ROLE_MAX];  /* "store", "queue", "api", "nginx" */
    char role[SUP_ROLE_MAX];  /* "primary", "secondary", "queue", "api", "nginx" */
    int shard, replica;       /* -1 when not a store */
    uint16_t port;
    char url[SUP_URL_MAX];    /* where it answers (http://host:port) */
    char *const *argv;        /* argv[0] = executable path; NULL-terminated */
    int group;                /* start under a guard in its own process group */
    const char *pidfile;      /* group children: the child's own pid file,
                                 used to clean up if the guard is killed */
    int once;                 /* never restarted: an exit leaves it STOPPED
                                 (the lab's nodes, whose replacement is the
                                 lab's business) */
} sup_spec;

/* A copy of one child's state for status pages. */
typedef struct sup_info {
    char name[SUP_NAME_MAX];
    char kind[SUP_ROLE_MAX];
    char role[SUP_ROLE_MAX];
    int shard, replica;
    uint16_t port;
    char url[SUP_URL_MAX];
    enum sup_state state;
    pid_t pid;                /* 0 when not running */
    unsigned restarts;        /* unexpected exits that led to a restart */
    int64_t started_ms;       /* CLOCK_MONOTONIC ms of the last start, 0 never */
    int64_t uptime_ms;        /* 0 when not running */
    int64_t next_start_ms;    /* ms from now to the next restart (RESTARTING) */
    char last_exit[64];       /* "exit 1", "signal 9 (Killed)", "" */
} sup_info;

typedef struct sup_opts {
    int64_t backoff_ms;       /* first restart delay */
    int64_t backoff_max_ms;   /* cap of the doubling */
    const char *log_dir;      /* NULL: children write to our stderr */
} sup_opts;

typedef struct sup sup_t;

/* Block the supervisor's signals in the calling thread (call first, from
 * main, before any thread exists). 0 or -1. */
int sup_block_signals(void);
/* The signals the supervisor takes (SIGCHLD, SIGINT, SIGTERM, SIGHUP). */
void sup_sigset(sigset_t *set);

sup_t *sup_new(const sup_opts *o);
void sup_free(sup_t *s);

/* Register a child (not started yet). Returns its index or -1. Any thread,
 * any time: a child added after sup_start_all starts with sup_start_child
 * (the lab's spawns). */
int sup_add(sup_t *s, const sup_spec *spec);
size_t sup_count(sup_t *s);

/* Start every registered child (supervisor thread). 0, or -1 when a fork
 * failed (the ones started keep running: call sup_stop_all). */
int sup_start_all(sup_t *s);

/* The supervisor loop: reaps, restarts, serves requests, until SIGINT,
 * SIGTERM, SIGHUP or sup_request_exit. Returns the exit code to use (0 for a signal). */
int sup_run(sup_t *s);

/* SIGTERM every child, wait up to grace_ms, SIGKILL the rest, reap them all
 * (supervisor thread). A second SIGINT/SIGTERM meanwhile skips the wait. */
void sup_stop_all(sup_t *s, int64_t grace_ms);

/* Thread-safe requests. */
void sup_request_exit(sup_t *s, int code);   /* make sup_run return code */
int sup_stop_child(sup_t *s, size_t i);      /* SIGTERM, no restart */
int sup_start_child(sup_t *s, size_t i);     /* start a stopped child now */
int sup_signal_child(sup_t *s, size_t i, int sig); /* kill(pid, sig) */
/* Replace a child's role and argv for its next start (failover seam). */
int sup_set_spec(sup_t *s, size_t i, const char *role, char *const *argv);
int sup_find(sup_t *s, const char *name);    /* index or -1 */
/* Copy out one child's state. 0, or -1 when i is out of range. */
int sup_get(sup_t *s, size_t i, sup_info *out);

const char *sup_state_name(enum sup_state st);
/* "exit 3", "signal 9 (Killed)" for a waitpid status. */
void sup_describe_status(int status, char *buf, size_t len);
/* Restart delay after `consecutive` quick failures (0 = first). */
int64_t sup_backoff_delay(int64_t base_ms, int64_t max_ms, unsigned consecutive);
/* Monotonic clock in ms. */
int64_t sup_now_ms(void);

#endif
