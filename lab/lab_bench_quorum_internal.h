/* lab_bench_quorum_internal: what the quorum study's two files share:
 * lab_bench_quorum.c (the command, one W's writes and their statistics,
 * the outputs) and lab_bench_quorum_cluster.c (one W's cluster: ports,
 * kv-controller, readiness, stop, and Ctrl-C). */
#ifndef KV_LAB_BENCH_QUORUM_INTERNAL_H
#define KV_LAB_BENCH_QUORUM_INTERNAL_H

#include "clock.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define LAB_BENCH_QUORUM_MAX_FOLLOWERS 9         /* cluster.replicas is at most 10 */
#define LAB_BENCH_QUORUM_READY_TIMEOUT_S 60.0
#define LAB_BENCH_QUORUM_STOP_GRACE_S 15.0
#define LAB_BENCH_QUORUM_PORT_LO 10000            /* below the ephemeral range */
#define LAB_BENCH_QUORUM_PORT_HI 32000
#define LAB_BENCH_QUORUM_PORT_BLOCK 200           /* as tests/integration/cluster.py */
#define LAB_BENCH_QUORUM_LOCK_DIR "/tmp/kvtest-ports"
#define LAB_BENCH_QUORUM_VALUE_BYTES 64

typedef struct lab_bench_quorum_opts {
    int followers;
    long max_delay_ms;
    int writes;
    const char *out;
    int random;                     /* uniform(0, MAX) (1) or MAX always (0) */
    int only_w;                     /* 0: every W */
    int keep;                       /* keep the temporary directories */
    int verbose;
} lab_bench_quorum_opts;

typedef struct lab_bench_quorum_result {
    int w;
    int ok_writes, failed_writes;
    double mean_ms, p50_ms, p99_ms, max_ms, sd_ms, se_ms;
    double expected_ms, expected_p99_ms, expected_se_ms, deviation_pct;
    int parity_ok;
    size_t keys;
    char note[256];
} lab_bench_quorum_result;

typedef struct lab_bench_quorum_cluster {
    char dir[512];
    char controller[64];
    char primary[256];
    char secondaries[LAB_BENCH_QUORUM_MAX_FOLLOWERS][256];
    int nsec;
    int base_port, nginx_port;
    int lock_fd;
    pid_t pid;
} lab_bench_quorum_cluster;

static inline double lab_bench_quorum_now(void)
{
    return (double)clock_mono_us() / 1e6;
}

static inline void lab_bench_quorum_sleep_ms(double ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                          .tv_nsec = (long)(fmod(ms, 1000.0) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Start the cluster for one W (in a new /tmp/kvbench-quorum-* directory)
 * and wait until it is ready: its topology has one primary and N
 * secondaries, and the primary knows every secondary. 0 or -1 (said on
 * stderr); stop it with lab_bench_quorum_cluster_stop either way. */
int lab_bench_quorum_cluster_start(const lab_bench_quorum_opts *o, int w,
                                   const char *bin, lab_bench_quorum_cluster *c);
/* Stop it (SIGTERM, then SIGKILL after a grace) and remove its directory
 * unless keep (then it says where it is). */
void lab_bench_quorum_cluster_stop(lab_bench_quorum_cluster *c, int w, int keep);
/* Wait until every secondary has acknowledged seq (the primary's /health).
 * 0, or -1 after timeout_ms. */
int lab_bench_quorum_cluster_wait_acked(const lab_bench_quorum_cluster *c,
                                        uint64_t seq, long timeout_ms);
/* SIGINT and SIGTERM stop the running clusters and remove their
 * directories (unless keep) before kvctl exits. */
void lab_bench_quorum_cluster_on_signals(int keep);

#endif
