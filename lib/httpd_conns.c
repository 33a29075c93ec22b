#include "httpd_conns.h"

#include "clock.h"
#include "log.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* How often httpd_conns_sweep looks at the table. */
#define HTTPD_CONNS_SWEEP_MS 100

struct httpd_conns_slot {
    int fd;
    unsigned char addr[16];    /* IPv4 mapped into IPv6 */
    int used;
    int busy;                  /* a request is in progress */
    int served;                /* sent a head before: the deadline is met */
    int closing;               /* shut down, waiting for httpd_conns_close */
    uint64_t idle_ms;          /* accepted, or its last answer sent */
};

struct httpd_conns {
    pthread_mutex_t mu;
    httpd_conns_slot *slots;
    unsigned cap;              /* max_total plus room for closing ones */
    unsigned max_total, max_per_ip;
    uint64_t head_timeout_ms;
    _Atomic uint64_t next_sweep_ms;
    httpd_conns_stats st;      /* under mu; open is counted on demand */
};

httpd_conns *httpd_conns_new(unsigned max_total, unsigned max_per_ip,
                             unsigned head_timeout_ms)
{
    httpd_conns *t = calloc(1, sizeof *t);

    if (t == NULL)
        return NULL;
    t->max_total = max_total ? max_total : 1;
    t->max_per_ip = max_per_ip ? max_per_ip : t->max_total;
    t->head_timeout_ms = head_timeout_ms;
    t->cap = httpd_conns_capacity(t->max_total);
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

unsigned httpd_conns_capacity(unsigned max_total)
{
    /* A connection shut down to make room keeps its slot until its loop
     * closes it (its next pass): the spare slots hold those. */
    return max_total + max_total / 8 + 16;
}

void httpd_conns_free(httpd_conns *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
}

static void httpd_conns_addr(const struct sockaddr *sa, unsigned char out[16])
{
    memset(out, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

/* Under mu. */
static void httpd_conns_shut(httpd_conns_slot *s)
{
    s->closing = 1;
    shutdown(s->fd, SHUT_RDWR);
}

/* The oldest idle, counted connection, of addr when addr is not NULL. */
static httpd_conns_slot *httpd_conns_victim(httpd_conns *t,
                                            const unsigned char *addr)
{
    httpd_conns_slot *best = NULL;

    for (unsigned i = 0; i < t->cap; i++) {
        httpd_conns_slot *s = &t->slots[i];
        if (!s->used || s->closing || s->busy ||
            (addr && memcmp(s->addr, addr, 16) != 0))
            continue;
        if (best == NULL || s->idle_ms < best->idle_ms)
            best = s;
    }
    return best;
}

httpd_conns_slot *httpd_conns_open(httpd_conns *t, int fd,
                                   const struct sockaddr *sa)
{
    unsigned char addr[16];
    unsigned same = 0, total = 0;
    httpd_conns_slot *free_slot = NULL, *victim = NULL;

    httpd_conns_addr(sa, addr);
    pthread_mutex_lock(&t->mu);
    for (unsigned i = 0; i < t->cap; i++) {
        httpd_conns_slot *s = &t->slots[i];
        if (!s->used) {
            if (free_slot == NULL)
                free_slot = s;
            continue;
        }
        if (s->closing)
            continue;
        total++;
        same += memcmp(s->addr, addr, 16) == 0;
    }
    if (same >= t->max_per_ip)
        victim = httpd_conns_victim(t, addr);
    else if (total >= t->max_total)
        victim = httpd_conns_victim(t, NULL);
    if (free_slot == NULL ||
        ((same >= t->max_per_ip || total >= t->max_total) && victim == NULL)) {
        t->st.refused++;
        pthread_mutex_unlock(&t->mu);
        shutdown(fd, SHUT_RDWR);
        return NULL;
    }
    if (victim) {
        httpd_conns_shut(victim);
        t->st.evicted++;
    }
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->used = 1;
    free_slot->fd = fd;
    memcpy(free_slot->addr, addr, 16);
    free_slot->idle_ms = clock_mono_ms();
    pthread_mutex_unlock(&t->mu);
    return free_slot;
}

void httpd_conns_close(httpd_conns *t, httpd_conns_slot *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    s->used = 0;
    pthread_mutex_unlock(&t->mu);
}

void httpd_conns_busy(httpd_conns *t, httpd_conns_slot *s, int busy)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    s->busy = busy;
    s->served = 1;
    if (!busy)
        s->idle_ms = clock_mono_ms();
    pthread_mutex_unlock(&t->mu);
}

void httpd_conns_sweep(httpd_conns *t)
{
    uint64_t now = clock_mono_ms();
    uint64_t next = atomic_load_explicit(&t->next_sweep_ms, memory_order_relaxed);

    if (t->head_timeout_ms == 0 || now < next ||
        !atomic_compare_exchange_strong(&t->next_sweep_ms, &next,
                                        now + HTTPD_CONNS_SWEEP_MS))
        return;
    pthread_mutex_lock(&t->mu);
    for (unsigned i = 0; i < t->cap; i++) {
        httpd_conns_slot *s = &t->slots[i];
        if (s->used && !s->closing && !s->served &&
            now - s->idle_ms > t->head_timeout_ms) {
            httpd_conns_shut(s);
            t->st.head_timeouts++;
        }
    }
    pthread_mutex_unlock(&t->mu);
}

void httpd_conns_get_stats(httpd_conns *t, httpd_conns_stats *st)
{
    pthread_mutex_lock(&t->mu);
    *st = t->st;
    st->open = 0;
    for (unsigned i = 0; i < t->cap; i++)
        st->open += t->slots[i].used && !t->slots[i].closing;
    pthread_mutex_unlock(&t->mu);
}
