#include "resolve.h"

#include "clock.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESOLVE_WAITERS 64

typedef struct resolve_waiter {
    resolve_notify_fn fn;
    void *arg;
} resolve_waiter;

typedef struct resolve_entry {
    char name[256];
    struct sockaddr_storage addr;  /* port 0: callers set theirs */
    socklen_t addrlen;
    int have;                      /* addr holds an answer */
    int trying;                    /* the thread is looking it up now */
    int64_t tried_ms, used_ms;     /* last lookup started, last asked for */
    char err[160];                 /* why the last lookup failed, or "" */
    resolve_waiter waiters[RESOLVE_WAITERS];
    size_t nwaiters;
    struct resolve_entry *next;
} resolve_entry;

static pthread_mutex_t resolve_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resolve_done; /* for resolve_wait; monotonic, resolve_once */
static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static void resolve_init_once(void)
{
    clock_cond_init(&resolve_done);
}
static resolve_entry *resolve_entries;

static void resolve_set_port(struct sockaddr_storage *a, uint16_t port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons(port);
    else if (a->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

int resolve_literal(const char *name, uint16_t port, struct sockaddr_storage *out,
                    socklen_t *outlen)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;

    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, name, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        *outlen = sizeof *s4;
    } else if (inet_pton(AF_INET6, name, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        *outlen = sizeof *s6;
    } else {
        return 0;
    }
    resolve_set_port(out, port);
    return 1;
}

void resolve_ntop(const struct sockaddr_storage *a, char *buf, size_t len)
{
    const void *p = a->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)a)->sin_addr;
    if (inet_ntop(a->ss_family, p, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "?");
}

/* One lookup, on a thread of its own: a name whose lookup hangs (a stopped
 * container's: 10 s here) holds up nobody else's. Entries are never freed,
 * so e stays valid. */
static void *resolve_lookup_main(void *arg)
{
    resolve_entry *e = arg;
    char name[sizeof e->name];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc;

    pthread_mutex_lock(&resolve_mu);
    memcpy(name, e->name, sizeof name);
    pthread_mutex_unlock(&resolve_mu);
    rc = getaddrinfo(name, NULL, &hints, &res);
    pthread_mutex_lock(&resolve_mu);
    e->trying = 0;
    if (rc == 0 && res) {
        /* IPv4 first: our servers listen on IPv4 addresses. */
        const struct addrinfo *pick = res;
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
            if (ai->ai_family == AF_INET) {
                pick = ai;
                break;
            }
        memset(&e->addr, 0, sizeof e->addr);
        memcpy(&e->addr, pick->ai_addr, pick->ai_addrlen);
        e->addrlen = (socklen_t)pick->ai_addrlen;
        e->have = 1;
        e->err[0] = '\0';
    } else {
        /* Keep the address it had: the container may be restarting, and a
         * refused connection says so faster than DNS does. */
        snprintf(e->err, sizeof e->err, "cannot resolve %.100s: %s", name,
                 gai_strerror(rc));
        if (!e->have)
            log_warn("resolve: %s", e->err);
    }
    if (res)
        freeaddrinfo(res);
    /* Under the lock, so that resolve_cancel has really cancelled by the
     * time it returns. */
    for (size_t i = 0; i < e->nwaiters; i++)
        e->waiters[i].fn(e->waiters[i].arg);
    e->nwaiters = 0;
    pthread_once(&resolve_once, resolve_init_once);
    pthread_cond_broadcast(&resolve_done);
    pthread_mutex_unlock(&resolve_mu);
    return NULL;
}

/* Look e up again if its answer is older than the TTL and no lookup is
 * under way. Lock held. */
static void resolve_refresh(resolve_entry *e, int64_t now)
{
    pthread_t th;
    pthread_attr_t at;

    if (e->trying || (e->tried_ms != 0 && now - e->tried_ms < RESOLVE_TTL_MS))
        return;
    e->trying = 1;
    e->tried_ms = now;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, resolve_lookup_main, e) != 0) {
        e->trying = 0;
        snprintf(e->err, sizeof e->err, "cannot start a lookup of %.100s", e->name);
    }
    pthread_attr_destroy(&at);
}

/* The entry for name, made if new. Lock held. */
static resolve_entry *resolve_get(const char *name, char *err, size_t errlen)
{
    resolve_entry *e;

    for (e = resolve_entries; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    if (strlen(name) >= sizeof e->name) {
        snprintf(err, errlen, "host name too long");
        return NULL;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->next = resolve_entries;
    resolve_entries = e;
    return e;
}

int resolve_lookup(const char *name, uint16_t port, struct sockaddr_storage *out,
                   socklen_t *outlen, resolve_notify_fn notify, void *arg,
                   char *err, size_t errlen)
{
    resolve_entry *e;
    int rc;

    if (resolve_literal(name, port, out, outlen))
        return RESOLVE_OK;
    pthread_mutex_lock(&resolve_mu);
    e = resolve_get(name, err, errlen);
    if (e == NULL) {
        pthread_mutex_unlock(&resolve_mu);
        return RESOLVE_FAILED;
    }
    e->used_ms = (int64_t)clock_mono_ms();
    resolve_refresh(e, e->used_ms);
    if (e->have) {
        memcpy(out, &e->addr, sizeof *out);
        *outlen = e->addrlen;
        resolve_set_port(out, port);
        rc = RESOLVE_OK;
    } else if (e->err[0] && !e->trying && e->nwaiters == 0 &&
               e->used_ms - e->tried_ms < RESOLVE_TTL_MS) {
        /* Tried a moment ago, failed, and nobody is waiting for a retry. */
        snprintf(err, errlen, "%s", e->err);
        rc = RESOLVE_FAILED;
    } else if (notify && e->nwaiters < RESOLVE_WAITERS) {
        e->waiters[e->nwaiters++] = (resolve_waiter){notify, arg};
        rc = RESOLVE_PENDING;
    } else if (notify) {
        snprintf(err, errlen, "too many lookups of %.100s waiting", name);
        rc = RESOLVE_FAILED;
    } else {
        rc = RESOLVE_PENDING;
    }
    pthread_mutex_unlock(&resolve_mu);
    return rc;
}

void resolve_cancel(resolve_notify_fn notify, void *arg)
{
    pthread_mutex_lock(&resolve_mu);
    for (resolve_entry *e = resolve_entries; e; e = e->next)
        for (size_t i = 0; i < e->nwaiters;)
            if (e->waiters[i].fn == notify && e->waiters[i].arg == arg)
                e->waiters[i] = e->waiters[--e->nwaiters];
            else
                i++;
    pthread_mutex_unlock(&resolve_mu);
}

int resolve_wait(const char *name, uint16_t port, struct sockaddr_storage *out,
                 socklen_t *outlen, long timeout_ms, char *err, size_t errlen)
{
    int64_t end = (int64_t)clock_mono_ms() + timeout_ms;

    for (;;) {
        int rc = resolve_lookup(name, port, out, outlen, NULL, NULL, err, errlen);
        if (rc != RESOLVE_PENDING)
            return rc;
        int64_t left = end - (int64_t)clock_mono_ms();
        if (left <= 0) {
            snprintf(err, errlen, "resolving %.100s timed out after %ld ms", name,
                     timeout_ms);
            return RESOLVE_FAILED;
        }
        pthread_once(&resolve_once, resolve_init_once);
        pthread_mutex_lock(&resolve_mu);
        clock_cond_wait_ms(&resolve_done, &resolve_mu, (uint64_t)(left > 50 ? 50 : left));
        pthread_mutex_unlock(&resolve_mu);
    }
}
