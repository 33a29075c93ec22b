/* cluster_state: the controller's topology state on disk.
 *
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
/* Write it atomically (rename); 0 or -1. */
int cluster_state_save(cluster_t *cl);

#endif
