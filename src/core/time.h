/*
 * core/time.h - clocks.
 */
#ifndef PT_CORE_TIME_H
#define PT_CORE_TIME_H

#include <stdint.h>

/* Monotonic nanoseconds (CLOCK_MONOTONIC). */
uint64_t pt_time_mono_ns(void);
/* Wall clock nanoseconds since the epoch. */
uint64_t pt_time_real_ns(void);

#endif
