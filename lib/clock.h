/* clock: the two clocks the processes need: monotonic time for measuring
 * and scheduling, and the CLOCK_REALTIME deadline pthread_cond_timedwait
 * takes. */
#ifndef KV_CLOCK_H
#define KV_CLOCK_H

#include <stdint.h>
#include <time.h>

uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
/* The absolute time ms milliseconds from now, for pthread_cond_timedwait. */
struct timespec clock_deadline_ms(uint64_t ms);
/* The same, us microseconds from now. */
struct timespec clock_deadline_us(uint64_t us);

#endif
