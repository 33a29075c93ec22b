#include "reaper.h"

#include "clock.h"
#include "log.h"
#include "repl_send.h"
#include "store_stats.h"
#include "topo.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct reaper {
    reaper_opts o;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

/* One pass, when this store may reap now. 1 when it came full (more are
 * due). */
static int reaper_pass(reaper_t *r)
{
    uint64_t n = 0;
    int more = 0, rc;
    topo_t *t;

    if (!role_is_primary(r->o.role) || sdb_resyncing(r->o.db) ||
        (r->o.may_apply && !r->o.may_apply(r->o.may_apply_arg)))
        return 0;
    t = store_migrate_write_begin(r->o.mig, r->o.role);
    if (t && t->phase != TOPO_PHASE_NONE) {
        store_migrate_write_end(r->o.mig, t);
        return 0;
    }
    rc = sdb_reap(r->o.db, sdb_now_ms(r->o.db), REAPER_BATCH, &n, &more);
    store_migrate_write_end(r->o.mig, t);
    if (n) {
        store_stats_add(STORE_STATS_REAPED, (int64_t)n);
        repl_send_notify(role_repl(r->o.role));
        log_debug("reaper: %" PRIu64 " expired records became tombstones", n);
    }
    return rc == 0 && more;
}

static void *reaper_main(void *arg)
{
    reaper_t *r = arg;

    pthread_setname_np(pthread_self(), "reaper"); /* top -H, perf */
    /* Background work: the foreground keeps the CPU it needs. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), REAPER_NICE) != 0)
        log_debug("reaper: setpriority: %s", strerror(errno));
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        int more;

        pthread_mutex_unlock(&r->mu);
        more = reaper_pass(r);
        pthread_mutex_lock(&r->mu);
        if (!r->stopping)
            clock_cond_wait_ms(&r->cv, &r->mu,
                               more ? REAPER_PAUSE_MS : REAPER_IDLE_MS);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

reaper_t *reaper_start(const reaper_opts *o)
{
    reaper_t *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->o = *o;
    pthread_mutex_init(&r->mu, NULL);
    clock_cond_init(&r->cv);
    if (pthread_create(&r->thr, NULL, reaper_main, r) != 0) {
        log_error("reaper: cannot start its thread");
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

void reaper_stop(reaper_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thr, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
