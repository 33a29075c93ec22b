/* clock: the one monotonic clock every process measures, schedules and
 * waits with. Timed condition waits run on CLOCK_MONOTONIC too, so that a
 * wall-clock step (NTP, a VM resumed) neither cuts a wait short nor makes
 * it last for hours: a condition variable a timed wait is used on must be
 * made with clock_cond_init. Wall-clock time is for the hybrid logical
 * clock (lib/hlc) and log lines only. */
#ifndef KV_CLOCK_H
#define KV_CLOCK_H

#include <pthread.h>
#include <stdint.h>

uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
/* A condition variable whose timed waits measure CLOCK_MONOTONIC. 0 or -1. */
int clock_cond_init(pthread_cond_t *cv);
/* pthread_cond_timedwait for at most us microseconds (ms milliseconds) on a
 * condition variable made with clock_cond_init: 0 when woken, ETIMEDOUT. */
int clock_cond_wait_us(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t us);
int clock_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms);

#endif
