/* sup_child: what runs in a forked child of the supervisor (sup_child.h).
 * Between fork and exec only async-signal-safe calls are made. */
#include "sup_child.h"

#include "sup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long the nginx guard waits for its child after SIGTERM before it kills
 * the whole group (below the controller's 5 s grace). */
#define SUP_CHILD_GUARD_GRACE_MS 4000

static void sup_child_write(const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (parts[i] && write(STDERR_FILENO, parts[i], strlen(parts[i])) < 0)
            return;
}

static void sup_child_close_fds_from(int lowfd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
        return;
#endif
    struct rlimit rl;
    long max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (long)rl.rlim_cur < max)
        max = (long)rl.rlim_cur;
    for (long fd = lowfd; fd < max; fd++)
        close((int)fd);
}

static void sup_child_default_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
}

static void sup_child_unblock_all(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void sup_child_exec(char *const *argv) __attribute__((noreturn));

static void sup_child_exec(char *const *argv)
{
    sup_child_unblock_all();
    execv(argv[0], argv);
    sup_child_write("kv-controller: cannot execute ", argv[0], "\n");
    _exit(127);
}

/* Exit the way the guarded child did, so the supervisor logs the real cause. */
static void sup_child_guard_exit(int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        sigset_t one;
        signal(sig, SIG_DFL);
        sigemptyset(&one);
        sigaddset(&one, sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
        _exit(128 + sig);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

static int64_t sup_child_guard_wait(pid_t pid, int64_t ms, int *status)
{
    sigset_t chld;
    struct timespec ts;
    int64_t deadline = sup_now_ms() + ms;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    for (;;) {
        if (waitpid(pid, status, WNOHANG) == pid)
            return 1;
        int64_t left = deadline - sup_now_ms();
        if (left <= 0)
            return 0;
        ts.tv_sec = left / 1000;
        ts.tv_nsec = (left % 1000) * 1000000;
        sigtimedwait(&chld, NULL, &ts);
    }
}

/* The guard: runs the real child in its own process group and takes the
 * whole group down with it. Signals of sup_signals stay blocked here and are
 * taken with sigwaitinfo. */
static void sup_child_guard(char *const *argv, pid_t controller)
{
    pid_t self = getpid();
    pid_t pid;
    sigset_t set;
    int status = 0;

    prctl(PR_SET_NAME, "kv-guard", 0, 0, 0);
    pid = fork();
    if (pid < 0)
        _exit(127);
    if (pid == 0) {
        setpgid(0, 0);
        /* The guard's own death is this child's parent death. SIGTERM, not
         * SIGKILL: nginx's master cannot act on a SIGKILL, and its workers,
         * which are its children and not ours, would be left behind with
         * the listening socket (issue 11, finding 11: the guard SIGKILLed
         * together with the controller, as `pkill -9 -f kv-controller` and
         * `kill -9 $(pidof kv-controller)` do, since the guard runs the
         * controller's binary). On SIGTERM the master stops its workers
         * (SIGTERM, SIGKILL after about 1.5 s), waits for them and exits.
         * Before nginx has installed its handlers SIGTERM's default action
         * ends it, and then no worker exists yet. Checked after the prctl:
         * a guard gone before it took effect leaves nothing to signal us. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 || getppid() != self)
            _exit(127);
        sup_child_exec(argv);
    }
    setpgid(pid, pid); /* both sides, so the group exists before any kill */
    sup_sigset(&set);
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig == SIGCHLD) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                kill(-pid, SIGKILL); /* workers left behind by a dead master */
                sup_child_guard_exit(status);
            }
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (getppid() != controller) { /* the controller died */
                kill(-pid, SIGKILL);
                waitpid(pid, &status, 0);
                _exit(0);
            }
            kill(pid, SIGTERM);
            if (!sup_child_guard_wait(pid, SUP_CHILD_GUARD_GRACE_MS, &status)) {
                kill(-pid, SIGKILL);
                waitpid(pid, &status, 0);
            } else {
                kill(-pid, SIGKILL);
            }
            _exit(0);
        }
    }
}

void sup_child_run(char *const *argv, int group, int logfd, pid_t parent)
{
    /* Parent death: SIGKILL for a plain child; the guard wants SIGTERM so it
     * can take its process group down before it goes. */
    if (prctl(PR_SET_PDEATHSIG, group ? SIGTERM : SIGKILL, 0, 0, 0) < 0)
        _exit(127);
    if (getppid() != parent)
        _exit(0); /* the controller is already gone */
    /* Own process group: a Ctrl-C in the terminal (or a killpg of the
     * controller's group) reaches the controller only, which then stops the
     * children in order. */
    setpgid(0, 0);
    int nullfd = open("/dev/null", O_RDONLY);
    if (nullfd >= 0 && nullfd != STDIN_FILENO) {
        dup2(nullfd, STDIN_FILENO);
        close(nullfd);
    }
    if (logfd >= 0) {
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
    } else {
        dup2(STDERR_FILENO, STDOUT_FILENO);
    }
    sup_child_close_fds_from(3);
    sup_child_default_signals();
    if (group)
        sup_child_guard(argv, parent);
    sup_child_exec(argv);
}

