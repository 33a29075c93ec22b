#include "sup.h"

#include "sup_child.h"

#include "clock.h"
#include "events.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct sup_child {
    sup_spec spec;           /* argv and pidfile point into the copies below */
    char **argv;             /* owned copy */
    char *pidfile;           /* owned copy or NULL */
    char logpath[PATH_MAX];  /* "" when children log to our stderr */
    enum sup_state state;
    pid_t pid;
    unsigned restarts;
    unsigned consecutive;    /* quick failures in a row, for the backoff */
    int64_t started_ms;
    int64_t due_ms;          /* RESTARTING: when to start again */
    char last_exit[64];
};

struct sup {
    pthread_mutex_t mu;
    struct sup_child *kids;
    size_t n, cap;
    sup_opts opts;
    char *log_dir;
    int sigfd;
    int wakefd;
    int exit_requested;
    int exit_code;
};

static const int sup_signals[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP};

void sup_sigset(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof sup_signals / sizeof sup_signals[0]; i++)
        sigaddset(set, sup_signals[i]);
}

int sup_block_signals(void)
{
    sigset_t set;
    sup_sigset(&set);
    return pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : -1;
}

int64_t sup_now_ms(void)
{
    return (int64_t)clock_mono_ms();
}

int64_t sup_backoff_delay(int64_t base_ms, int64_t max_ms, unsigned consecutive)
{
    int64_t d = base_ms > 0 ? base_ms : 1;

    if (max_ms < d)
        max_ms = d;
    for (unsigned i = 0; i < consecutive && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

const char *sup_state_name(enum sup_state st)
{
    switch (st) {
    case SUP_RUNNING: return "running";
    case SUP_RESTARTING: return "restarting";
    case SUP_STOPPING: return "stopping";
    case SUP_STOPPED: break;
    }
    return "stopped";
}

void sup_describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "status 0x%x", (unsigned)status);
}

sup_t *sup_new(const sup_opts *o)
{
    sup_t *s = calloc(1, sizeof *s);
    sigset_t set;

    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->opts = *o;
    if (o->log_dir && *o->log_dir)
        s->log_dir = strdup(o->log_dir);
    s->opts.log_dir = s->log_dir;
    sup_sigset(&set);
    s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->sigfd < 0 || s->wakefd < 0) {
        log_error("sup: signalfd/eventfd: %s", strerror(errno));
        sup_free(s);
        return NULL;
    }
    return s;
}

static void sup_free_argv(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

static char **sup_copy_argv(char *const *argv)
{
    size_t n = 0;
    char **out;

    while (argv[n])
        n++;
    if (n == 0 || n > SUP_MAX_ARGS)
        return NULL;
    out = calloc(n + 1, sizeof *out);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(argv[i]);
        if (out[i] == NULL) {
            sup_free_argv(out);
            return NULL;
        }
    }
    return out;
}

void sup_free(sup_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        sup_free_argv(s->kids[i].argv);
        free(s->kids[i].pidfile);
    }
    free(s->kids);
    free(s->log_dir);
    if (s->sigfd >= 0)
        close(s->sigfd);
    if (s->wakefd >= 0)
        close(s->wakefd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int sup_add(sup_t *s, const sup_spec *spec)
{
    struct sup_child *c;
    int idx = -1;

    if (spec->argv == NULL || spec->argv[0] == NULL)
        return -1;
    pthread_mutex_lock(&s->mu);
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct sup_child *k = realloc(s->kids, cap * sizeof *k);
        if (k == NULL)
            goto out;
        s->kids = k;
        s->cap = cap;
    }
    c = &s->kids[s->n];
    memset(c, 0, sizeof *c);
    c->spec = *spec;
    c->argv = sup_copy_argv(spec->argv);
    c->pidfile = spec->pidfile ? strdup(spec->pidfile) : NULL;
    if (c->argv == NULL) {
        free(c->pidfile);
        goto out;
    }
    c->spec.argv = c->argv;
    c->spec.pidfile = c->pidfile;
    if (s->log_dir)
        snprintf(c->logpath, sizeof c->logpath, "%s/%s.log", s->log_dir,
                 spec->name);
    c->state = SUP_STOPPED;
    idx = (int)s->n++;
out:
    pthread_mutex_unlock(&s->mu);
    return idx;
}

size_t sup_count(sup_t *s)
{
    size_t n;
    pthread_mutex_lock(&s->mu);
    n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- supervisor thread ---- */

static void sup_cmdline(char *const *argv, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; argv[i] && o + 1 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? " " : "", argv[i]);
}

/* A start that did not happen: try again after the backoff. Lock held. */
static int sup_spawn_failed(sup_t *s, struct sup_child *c)
{
    c->state = SUP_RESTARTING;
    c->due_ms = sup_now_ms() +
                sup_backoff_delay(s->opts.backoff_ms, s->opts.backoff_max_ms,
                                  c->consecutive++);
    return -1;
}

/* Called with the lock held. */
static int sup_spawn(sup_t *s, struct sup_child *c)
{
    int logfd = -1;
    pid_t parent = getpid();
    pid_t pid;
    char cmd[1024];

    /* The child's parent-death signal (sup_child.c) fires when the thread
     * that forked it ends, not the process. The main thread ends only with
     * the process (main returns into exit), so it alone may fork: a child
     * forked by a thread that later returns would be killed then. */
    if (gettid() != parent) {
        log_error("%s: not started: the supervisor forks from the main "
                  "thread only", c->spec.name);
        return sup_spawn_failed(s, c);
    }
    if (c->logpath[0]) {
        logfd = open(c->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                     0644);
        if (logfd < 0)
            log_warn("%s: cannot open %s (%s); logging to stderr",
                     c->spec.name, c->logpath, strerror(errno));
    }
    if (c->pidfile)
        unlink(c->pidfile); /* never clean up after a stale one */
    pid = fork();
    if (pid == 0)
        sup_child_run(c->argv, c->spec.group, logfd, parent);
    if (pid > 0)
        setpgid(pid, pid); /* both sides, so the group exists at once */
    if (logfd >= 0)
        close(logfd);
    if (pid < 0) {
        log_error("%s: fork: %s", c->spec.name, strerror(errno));
        return sup_spawn_failed(s, c);
    }
    c->pid = pid;
    c->state = SUP_RUNNING;
    c->started_ms = sup_now_ms();
    sup_cmdline(c->argv, cmd, sizeof cmd);
    log_info("started %s (pid %d): %s", c->spec.name, (int)pid, cmd);
    return 0;
}

int sup_start_all(sup_t *s)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++)
        if (s->kids[i].state == SUP_STOPPED && sup_spawn(s, &s->kids[i]) < 0)
            rc = -1;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* A guarded child (nginx) whose guard died abruptly may have left its own
 * process group behind: the pid file names the group leader. */
static void sup_cleanup_group(const struct sup_child *c)
{
    FILE *f;
    long pid = 0;

    if (!c->spec.group || c->pidfile == NULL)
        return;
    f = fopen(c->pidfile, "r");
    if (f == NULL)
        return;
    if (fscanf(f, "%ld", &pid) == 1 && pid > 1 && pid != (long)getpid() &&
        kill(-(pid_t)pid, SIGKILL) == 0)
        log_debug("%s: killed what was left of process group %ld",
                  c->spec.name, pid);
    fclose(f);
    unlink(c->pidfile);
}

static struct sup_child *sup_by_pid(sup_t *s, pid_t pid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->kids[i].pid == pid)
            return &s->kids[i];
    return NULL;
}

/* Reap every exited child; schedule restarts. Lock held. */
static void sup_reap_locked(sup_t *s)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct sup_child *c = sup_by_pid(s, pid);
        int64_t now = sup_now_ms();
        int64_t up;

        if (c == NULL)
            continue;
        up = now - c->started_ms;
        sup_describe_status(status, c->last_exit, sizeof c->last_exit);
        c->pid = 0;
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            sup_cleanup_group(c);
        if (c->state == SUP_STOPPING || c->state == SUP_STOPPED) {
            c->state = SUP_STOPPED;
            log_info("%s (pid %d) stopped: %s", c->spec.name, (int)pid,
                     c->last_exit);
            continue;
        }
        if (c->spec.once) {
            c->state = SUP_STOPPED;
            log_info("%s (pid %d) exited: %s after %lld ms up (not "
                     "restarted)", c->spec.name, (int)pid, c->last_exit,
                     (long long)up);
            continue;
        }
        if (up >= SUP_STABLE_MS)
            c->consecutive = 0;
        int64_t delay = sup_backoff_delay(s->opts.backoff_ms,
                                          s->opts.backoff_max_ms,
                                          c->consecutive);
        c->consecutive++;
        c->restarts++;
        c->state = SUP_RESTARTING;
        c->due_ms = now + delay;
        log_warn("%s (pid %d) died: %s after %lld ms up; restart #%u in %lld ms",
                 c->spec.name, (int)pid, c->last_exit, (long long)up,
                 c->restarts, (long long)delay);
        events_add("restart", "%s (pid %d) died: %s; restart #%u in %lld ms",
                   c->spec.name, (int)pid, c->last_exit, c->restarts,
                   (long long)delay);
    }
}

static void sup_drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) > 0)
        ;
}

/* Read pending signals: returns the first SIGINT/SIGTERM/SIGHUP seen, 0 if
 * none. When a stop signal comes in the same batch as SIGCHLD, the children
 * that exited are counted as stopping, not as crashes. */
static int sup_read_signals(sup_t *s)
{
    struct signalfd_siginfo si;
    int stop = 0;

    while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        if (!stop && (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM ||
                      si.ssi_signo == SIGHUP))
            stop = (int)si.ssi_signo;
    pthread_mutex_lock(&s->mu);
    if (stop)
        for (size_t i = 0; i < s->n; i++)
            if (s->kids[i].state == SUP_RUNNING)
                s->kids[i].state = SUP_STOPPING;
    /* SIGCHLD is coalesced: always sweep. */
    sup_reap_locked(s);
    pthread_mutex_unlock(&s->mu);
    return stop;
}

int sup_run(sup_t *s)
{
    for (;;) {
        struct pollfd p[2];
        int timeout = -1;
        int64_t now = sup_now_ms();

        pthread_mutex_lock(&s->mu);
        if (s->exit_requested) {
            int code = s->exit_code;
            pthread_mutex_unlock(&s->mu);
            return code;
        }
        for (size_t i = 0; i < s->n; i++) {
            struct sup_child *c = &s->kids[i];
            if (c->state != SUP_RESTARTING)
                continue;
            if (c->due_ms <= now) {
                sup_spawn(s, c);
                if (c->state == SUP_RUNNING)
                    continue;
            }
            int64_t wait = c->due_ms - now;
            if (wait < 0)
                wait = 0;
            if (timeout < 0 || wait < timeout)
                timeout = (int)(wait > INT_MAX ? INT_MAX : wait);
        }
        pthread_mutex_unlock(&s->mu);

        p[0].fd = s->sigfd;
        p[0].events = POLLIN;
        p[1].fd = s->wakefd;
        p[1].events = POLLIN;
        if (poll(p, 2, timeout) < 0 && errno != EINTR) {
            log_error("sup: poll: %s", strerror(errno));
            return 1;
        }
        if (p[1].revents & POLLIN)
            sup_drain(s->wakefd);
        if (p[0].revents & POLLIN) {
            int sig = sup_read_signals(s);
            if (sig) {
                log_info("received %s, stopping the cluster",
                         sig == SIGINT ? "SIGINT"
                         : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
                return 0;
            }
        }
    }
}

static size_t sup_count_state(sup_t *s, enum sup_state st)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->kids[i].state == st;
    return n;
}

void sup_stop_all(sup_t *s, int64_t grace_ms)
{
    int64_t deadline = sup_now_ms() + grace_ms;
    int forced = 0;

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        struct sup_child *c = &s->kids[i];
        if (c->state == SUP_RESTARTING)
            c->state = SUP_STOPPED;
        else if (c->state == SUP_RUNNING || c->state == SUP_STOPPING) {
            c->state = SUP_STOPPING;
            kill(c->pid, SIGTERM);
        }
    }
    pthread_mutex_unlock(&s->mu);

    for (;;) {
        struct pollfd p = {.fd = s->sigfd, .events = POLLIN};
        int64_t left;
        size_t n;

        pthread_mutex_lock(&s->mu);
        sup_reap_locked(s);
        n = sup_count_state(s, SUP_STOPPING);
        pthread_mutex_unlock(&s->mu);
        if (n == 0)
            return;
        left = deadline - sup_now_ms();
        if (left <= 0 || forced)
            break;
        if (poll(&p, 1, (int)left) > 0 && sup_read_signals(s)) {
            log_warn("second stop signal: killing the children now");
            forced = 1;
        }
    }

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        struct sup_child *c = &s->kids[i];
        if (c->state == SUP_STOPPING && c->pid > 0) {
            log_warn("%s (pid %d) did not stop in time: SIGKILL",
                     c->spec.name, (int)c->pid);
            kill(c->pid, SIGKILL);
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        struct sup_child *c = &s->kids[i];
        int status;
        if (c->state != SUP_STOPPING || c->pid <= 0)
            continue;
        if (waitpid(c->pid, &status, 0) == c->pid) {
            sup_describe_status(status, c->last_exit, sizeof c->last_exit);
            sup_cleanup_group(c);
        }
        c->pid = 0;
        c->state = SUP_STOPPED;
    }
    pthread_mutex_unlock(&s->mu);
}

static void sup_wake(sup_t *s)
{
    uint64_t one = 1;
    if (write(s->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("sup: wake: %s", strerror(errno));
}

void sup_request_exit(sup_t *s, int code)
{
    pthread_mutex_lock(&s->mu);
    if (!s->exit_requested) {
        s->exit_requested = 1;
        s->exit_code = code;
    }
    pthread_mutex_unlock(&s->mu);
    sup_wake(s);
}

int sup_stop_child(sup_t *s, size_t i)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (i >= s->n) {
        rc = -1;
    } else {
        struct sup_child *c = &s->kids[i];
        if (c->state == SUP_RUNNING) {
            c->state = SUP_STOPPING;
            kill(c->pid, SIGTERM);
        } else if (c->state == SUP_RESTARTING) {
            c->state = SUP_STOPPED;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sup_start_child(sup_t *s, size_t i)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (i >= s->n) {
        rc = -1;
    } else if (s->kids[i].state == SUP_STOPPED) {
        s->kids[i].state = SUP_RESTARTING;
        s->kids[i].due_ms = sup_now_ms();
        s->kids[i].consecutive = 0;
    }
    pthread_mutex_unlock(&s->mu);
    sup_wake(s);
    return rc;
}

int sup_signal_child(sup_t *s, size_t i, int sig)
{
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    /* Under the lock the pid cannot be reaped (and reused) meanwhile. */
    if (i < s->n && s->kids[i].pid > 0)
        rc = kill(s->kids[i].pid, sig);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sup_set_spec(sup_t *s, size_t i, const char *role, char *const *argv)
{
    char **copy = argv ? sup_copy_argv(argv) : NULL;
    int rc = 0;

    if (argv && copy == NULL)
        return -1;
    pthread_mutex_lock(&s->mu);
    if (i >= s->n) {
        rc = -1;
    } else {
        struct sup_child *c = &s->kids[i];
        if (role)
            snprintf(c->spec.role, sizeof c->spec.role, "%s", role);
        if (copy) {
            sup_free_argv(c->argv);
            c->argv = copy;
            c->spec.argv = copy;
            copy = NULL;
        }
    }
    pthread_mutex_unlock(&s->mu);
    sup_free_argv(copy);
    return rc;
}

int sup_find(sup_t *s, const char *name)
{
    int idx = -1;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->kids[i].spec.name, name) == 0) {
            idx = (int)i;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return idx;
}

int sup_get(sup_t *s, size_t i, sup_info *out)
{
    int64_t now = sup_now_ms();

    pthread_mutex_lock(&s->mu);
    if (i >= s->n) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    const struct sup_child *c = &s->kids[i];
    memset(out, 0, sizeof *out);
    memcpy(out->name, c->spec.name, sizeof out->name);
    memcpy(out->kind, c->spec.kind, sizeof out->kind);
    memcpy(out->role, c->spec.role, sizeof out->role);
    memcpy(out->url, c->spec.url, sizeof out->url);
    memcpy(out->last_exit, c->last_exit, sizeof out->last_exit);
    out->shard = c->spec.shard;
    out->replica = c->spec.replica;
    out->port = c->spec.port;
    out->state = c->state;
    out->pid = c->pid;
    out->restarts = c->restarts;
    out->started_ms = c->started_ms;
    out->uptime_ms = c->pid > 0 ? now - c->started_ms : 0;
    out->next_start_ms = c->state == SUP_RESTARTING && c->due_ms > now
                             ? c->due_ms - now
                             : 0;
    pthread_mutex_unlock(&s->mu);
    return 0;
}
