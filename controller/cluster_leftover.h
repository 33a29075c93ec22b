/* cluster_leftover: what an earlier run of this cluster left running, found
 * and stopped before the preflight port check.
 *
 * Only nginx can leave anything: the stores, the queue and the api processes
 * die with the controller (parent-death SIGKILL), and nginx's master stops
 * its workers when its guard dies (sup.h, docs/ARCHITECTURE.md "Local
 * supervision"). Its workers outlive it only when the master itself was
 * SIGKILLed together with the guard, when nginx.bin is set-user-ID or has
 * file capabilities (the kernel then drops the parent-death signal), or
 * after a build older than that rule. They then hold nginx.port, answer 502
 * and keep the cluster from starting again.
 *
 * Contract: cluster_leftover_reclaim_nginx kills only processes that are
 * provably that: members of the process group named by the run directory's
 * nginx.pid (nginx removes the file when it exits cleanly), whose leader
 * (the master) is gone, that run the nginx binary. A live leader is a
 * running nginx (maybe this cluster's, started twice) and is left alone.
 * Ownership: nothing is kept. */
#ifndef KV_CTL_CLUSTER_LEFTOVER_H
#define KV_CTL_CLUSTER_LEFTOVER_H

#include "cluster.h"

/* SIGKILL the nginx workers an earlier run left behind and wait (up to
 * 2 s) until they are gone, so that their port is free; then remove the
 * stale pid file. Call after cluster_preflight_check_binaries (which finds
 * the nginx binary) and before cluster_preflight_check_ports. Returns how
 * many processes were killed (0 when nothing was left; nothing to do when
 * the nodes are external). */
int cluster_leftover_reclaim_nginx(const cluster_t *cl);

#endif
