#include "hlc.h"

#include <time.h>

uint64_t hlc_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

void hlc_init(hlc_t *h, hlc_clock_fn clock)
{
    atomic_init(&h->last, 0);
    h->clock = clock ? clock : hlc_wall_us;
}

uint64_t hlc_next(hlc_t *h)
{
    uint64_t now = h->clock();
    uint64_t phys = now > HLC_EPOCH_UNIX_US ? now - HLC_EPOCH_UNIX_US : 0;
    uint64_t last = atomic_load(&h->last);
    uint64_t next;

    do {
        next = phys > last ? phys : last + 1;
    } while (!atomic_compare_exchange_weak(&h->last, &last, next));
    return next;
}

void hlc_observe(hlc_t *h, uint64_t version)
{
    uint64_t last = atomic_load(&h->last);

    /* Not a version we could have made: ignore it rather than let one bad
     * record push the clock past 53 bits. */
    if (version >= HLC_MAX)
        return;
    while (version > last &&
           !atomic_compare_exchange_weak(&h->last, &last, version))
        ;
}
