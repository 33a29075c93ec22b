/* events: what just happened to the cluster, for the dashboard's event
 * list (GET /ui/state, controller/ui_state.h): failovers with their epoch,
 * children that died and restart, migrations moving through their phases,
 * queue spills. A ring of the last EVENTS_MAX, each with an id that only
 * grows (the page asks for what it has not seen) and the wall-clock time.
 * The log still says everything; this is the short list a person reads.
 *
 * Threads: events_add from any thread (one mutex); the ring is the
 * process's own, like the metrics registry, so the modules that report do
 * not need a handle threaded through them. */
#ifndef KV_CONTROLLER_EVENTS_H
#define KV_CONTROLLER_EVENTS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#define EVENTS_MAX 200
#define EVENTS_TEXT_MAX 200

/* kind: "failover", "restart", "exit", "migration", "spill", "ready". */
void events_add(const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The events with id > after, oldest first, as a JSON array. */
cJSON *events_json(uint64_t after);
/* The id of the newest event (0: none yet). */
uint64_t events_last_id(void);

#endif
