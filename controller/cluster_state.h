/* cluster_state: the controller's topology state on disk.
 *
 * {"epoch":E,"next_id":N,"created_shards":C,
 *  "shards":[{"id","epoch","primary","handoff_seq","failovers"[,"urls"]}],
 *  "migration":{"id","kind":"add|remove","shard","phase","from","to",
 *               "share","started_unix_ms","phase_unix_ms"[,"ended_unix_ms",
 *               "error"]}}
 * The stored shard list is authoritative at start (cluster_state_load
 * rebuilds the nodes from it); "urls" are an external shard's stores given
 * to POST /shards; "migration" is the current or the last one.
 * Topology state (epochs, primaries, handoff seqs) survives a restart of
 * the controller in cluster_t.state_path (<data_dir>/controller-state.json),
 * because the stores keep their epochs on disk: a controller that started
 * over at epoch 1 would be fenced.
 * Ownership: nothing is kept; the cluster_t is borrowed. */
#ifndef KV_CTL_CLUSTER_STATE_H
#define KV_CTL_CLUSTER_STATE_H

#include "cluster.h"

#include <stddef.h>

/* 0 (loaded, or no file), -1 + err when the file does not match this
 * cluster. */
int cluster_state_load(cluster_t *cl, char *err, size_t errlen);
/* The migration as the state file and GET /rebalance show it. */
cJSON *cluster_state_mig_json(const cluster_migration *m);
/* Write it atomically (rename); 0 or -1. */
int cluster_state_save(cluster_t *cl);
/* The same with cl->mu held by the caller: a change made under the lock is
 * on disk before any reader (GET /topology) can see it. */
int cluster_state_save_locked(cluster_t *cl);

#endif
