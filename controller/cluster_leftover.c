/* cluster_leftover: an earlier run's nginx workers (cluster_leftover.h). */
#include "cluster_leftover.h"

#include "clock.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLUSTER_LEFTOVER_MAX 256       /* workers; nginx.workers is far below */
#define CLUSTER_LEFTOVER_WAIT_MS 2000  /* a SIGKILLed process is gone at once */

/* State letter and process group of pid from /proc/<pid>/stat; 0 when the
 * process does not exist (or cannot be read). */
static char cluster_leftover_stat(long pid, long *pgrp)
{
    char path[64], buf[512];
    FILE *f;
    size_t n;
    char state = 0;
    const char *p;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
    if (p == NULL || sscanf(p + 1, " %c %*d %ld", &state, pgrp) != 2)
        return 0;
    return state;
}

/* Alive: exists and is not a zombie (a zombie holds no socket). */
static int cluster_leftover_alive(long pid)
{
    long pgrp;
    char st = cluster_leftover_stat(pid, &pgrp);
    return st != 0 && st != 'Z' && st != 'X';
}

static int cluster_leftover_runs(long pid, const char *exe)
{
    char path[64], buf[PATH_MAX];
    ssize_t n;

    snprintf(path, sizeof path, "/proc/%ld/exe", pid);
    n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        return 0; /* gone, or somebody else's process */
    buf[n] = '\0';
    return strcmp(buf, exe) == 0;
}

static long cluster_leftover_read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 1)
        pid = 0;
    fclose(f);
    return pid;
}

int cluster_leftover_reclaim_nginx(const cluster_t *cl)
{
    char exe[PATH_MAX];
    long killed[CLUSTER_LEFTOVER_MAX];
    int n = 0;
    long leader;
    DIR *d;
    struct dirent *e;

    if (!cl->supervise || cl->nginx_bin[0] == '\0')
        return 0;
    leader = cluster_leftover_read_pid(cl->nginx_pidfile);
    if (leader == 0 || cluster_leftover_alive(leader))
        return 0; /* no earlier master, or one that still runs */
    if (realpath(cl->nginx_bin, exe) == NULL)
        return 0;
    d = opendir("/proc");
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < CLUSTER_LEFTOVER_MAX) {
        char *end;
        long pid = strtol(e->d_name, &end, 10), pgrp = 0;
        char st;

        if (*end != '\0' || pid <= 1 || pid == (long)getpid())
            continue;
        st = cluster_leftover_stat(pid, &pgrp);
        if (st == 0 || st == 'Z' || st == 'X' || pgrp != leader ||
            !cluster_leftover_runs(pid, exe))
            continue;
        if (kill((pid_t)pid, SIGKILL) == 0)
            killed[n++] = pid;
    }
    closedir(d);
    if (n > 0) {
        uint64_t deadline = clock_mono_ms() + CLUSTER_LEFTOVER_WAIT_MS;
        int left;
        do {
            struct timespec tick = {0, 10 * 1000000L};
            left = 0;
            for (int i = 0; i < n; i++)
                left += cluster_leftover_alive(killed[i]);
            if (left > 0)
                nanosleep(&tick, NULL);
        } while (left > 0 && clock_mono_ms() < deadline);
        log_warn("nginx: killed %d process(es) an earlier run left behind "
                 "(process group %ld of %s, whose master is gone)%s", n,
                 leader, cl->nginx_pidfile,
                 left > 0 ? "; some are still exiting" : "");
    }
    unlink(cl->nginx_pidfile); /* stale: its master is gone */
    return n;
}
