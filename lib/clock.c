#include "clock.h"

uint64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

uint64_t clock_mono_ms(void)
{
    return clock_mono_us() / 1000;
}

struct timespec clock_deadline_us(uint64_t us)
{
    struct timespec ts;
    uint64_t ns;

    clock_gettime(CLOCK_REALTIME, &ts);
    ns = (uint64_t)ts.tv_nsec + us * 1000ULL;
    ts.tv_sec += (time_t)(ns / 1000000000ULL);
    ts.tv_nsec = (long)(ns % 1000000000ULL);
    return ts;
}

struct timespec clock_deadline_ms(uint64_t ms)
{
    return clock_deadline_us(ms * 1000ULL);
}
