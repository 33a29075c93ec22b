#include "events.h"

#include "hlc.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct events_entry {
    uint64_t id, t_ms;
    char kind[16];
    char text[EVENTS_TEXT_MAX];
} events_entry;

static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;
static events_entry events_ring[EVENTS_MAX];
static uint64_t events_next = 1; /* the id the next event gets */

void events_add(const char *kind, const char *fmt, ...)
{
    events_entry e = {.t_ms = hlc_wall_us() / 1000u};
    va_list ap;

    snprintf(e.kind, sizeof e.kind, "%s", kind);
    va_start(ap, fmt);
    vsnprintf(e.text, sizeof e.text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&events_mu);
    e.id = events_next++;
    events_ring[e.id % EVENTS_MAX] = e;
    pthread_mutex_unlock(&events_mu);
}

cJSON *events_json(uint64_t after)
{
    cJSON *a = cJSON_CreateArray();
    uint64_t first;

    pthread_mutex_lock(&events_mu);
    first = events_next > EVENTS_MAX ? events_next - EVENTS_MAX : 1;
    if (after + 1 > first)
        first = after + 1;
    for (uint64_t id = first; a && id < events_next; id++) {
        const events_entry *e = &events_ring[id % EVENTS_MAX];
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            break;
        cJSON_AddNumberToObject(o, "id", (double)e->id);
        cJSON_AddNumberToObject(o, "t_ms", (double)e->t_ms);
        cJSON_AddStringToObject(o, "kind", e->kind);
        cJSON_AddStringToObject(o, "text", e->text);
        cJSON_AddItemToArray(a, o);
    }
    pthread_mutex_unlock(&events_mu);
    return a;
}

uint64_t events_last_id(void)
{
    uint64_t id;

    pthread_mutex_lock(&events_mu);
    id = events_next - 1;
    pthread_mutex_unlock(&events_mu);
    return id;
}
