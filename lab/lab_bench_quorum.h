/* lab_bench_quorum: `kvctl bench quorum`, the write-quorum study of the leader/follower seed
 *.
 *
 * For W = 1..N it starts a one-shard cluster with kv-controller (normal
 * mode: a primary and N secondaries, cluster.write_quorum = W, policy any,
 * every replication batch to every secondary delayed by uniform(0, MAX) ms:
 * store.repl_delay_random), writes --writes keys one after the other
 * straight to the primary (PUT /internal/kv/{key}: it answers once W
 * secondaries hold the write) and times each write. A write's latency is
 * then the W-th smallest of N independent uniform delays, whose mean is
 * W / (N + 1) x MAX: the order-statistic expectation the study checks.
 *
 * Independence needs each write to be its own replication batch on every
 * secondary: a secondary still sleeping on the previous write's batch would
 * add its remaining sleep. So after each write the bench waits until every
 * secondary has acknowledged it (the primary's /health lists each
 * secondary's acked_seq) before the next one; that wait is not timed.
 *
 * After the writes of one W, every replica's live records (GET
 * /internal/changes) must be identical (kvctl_parity_replicas) and hold
 * every key written; then the cluster is stopped (SIGTERM).
 *
 * Every W runs at once, each on its own cluster and thread: a write mostly
 * sleeps (the delays), so the clusters barely compete for the CPU, and the
 * study takes as long as one W instead of N of them. That buys the sample
 * size the 10 % check needs: at W = 1 the standard error of the mean is
 * 8.5 % of the expectation with 100 writes, 4.9 % with the default 300.
 *
 * Outputs under --out: quorum_vs_latency.csv and quorum_vs_latency.png
 * (gnuplot: mean with its 95 % interval and p99 against W, the expectation
 * line and the expected p99). Exit 1 when a parity check or a write fails. */
#ifndef KV_LAB_BENCH_QUORUM_H
#define KV_LAB_BENCH_QUORUM_H

struct kvctl_opts;

/* kvctl bench: the command function (argv after "bench"). */
int lab_bench_quorum_cmd(const struct kvctl_opts *o, int argc, char **argv);

#endif
