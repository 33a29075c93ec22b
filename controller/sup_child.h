/* sup_child: the child side of the supervisor's fork (see sup.h for the
 * rules): parent-death signal, own process group, stdin from /dev/null,
 * output to logfd (or the controller's stderr), no inherited descriptors,
 * default signals, then exec; with group set, through the guard process
 * that takes a forking child's whole process group down with it.
 * Ownership: nothing; this never returns. */
#ifndef KV_CTL_SUP_CHILD_H
#define KV_CTL_SUP_CHILD_H

#include <sys/types.h>

/* In the child, right after fork: argv[0] is the path to exec, logfd (or
 * -1) gets stdout and stderr, parent is the controller's pid. */
void sup_child_run(char *const *argv, int group, int logfd, pid_t parent)
    __attribute__((noreturn));

#endif
