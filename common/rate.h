/*
 * rate.h - issuance rate caps: one global limit and one per device, each
 * a GCRA (generic cell rate algorithm, as Let's Encrypt's rate limits and
 * ATM's cell policing use it). Past either, the caller answers
 * RESOURCE_EXHAUSTED.
 *
 * GCRA keeps one time per limit, the theoretical arrival time (TAT): when
 * the limit would be back to full had it been used at exactly its rate.
 * A limit of `count` per `period` with burst `burst` has the emission
 * interval T = period / count; a request at time now is allowed when
 *
 *     max(TAT, now) + T - burst * T <= now
 *
 * and then TAT becomes max(TAT, now) + T; otherwise it is refused and may
 * come back at max(TAT, now) + T - burst * T. From idle, `burst` requests
 * pass at once, then one every T: in any span of `period` at most
 * burst + count requests, and over a long time at most count per period.
 * Unlike a fixed window there is no edge at which the count starts again,
 * so twice the cap cannot be had by asking just before and just after
 * one.
 *
 * Per device the count and the burst are both device_max (device_max per
 * window_s, at most device_max at once); globally global_rate per second
 * with bursts of global_burst. State is in memory: a daemon that must not
 * forget its devices' use over a restart replays what it issued
 * (rate_replay_device). Devices back at full burst are forgotten.
 */
#ifndef SF_RATE_H
#define SF_RATE_H

#include <stdint.h>

typedef struct rate rate;

/* device_max certificates per device per window_s seconds (and at most
 * device_max at once); global_rate per second sustained, bursts of
 * global_burst. */
rate *rate_new(int device_max, int window_s, double global_rate,
    int global_burst);
void rate_free(rate *r);
/*
 * Change the limits (SIGHUP). What each limit has used is kept, counted
 * in requests: a device that had 2 of its 3 used has 2 of a new cap of 4
 * used, and one more a cap of 2 away; the same for the global limit.
 */
void rate_set(rate *r, int device_max, int window_s, double global_rate,
    int global_burst);
/* 0 if allowed (and counted), SF_ELIMIT otherwise. */
int rate_take_global(rate *r);
/*
 * 0 if allowed (and counted); SF_ELIMIT otherwise, with *retry_ms (may be
 * NULL) the milliseconds until the device may again; SF_EINVAL for an id
 * longer than DEVICE_ID_MAX; SF_ENOMEM.
 */
int rate_take_device(rate *r, const char *device_id, int64_t *retry_ms);
/* Give back a device's take when the issuance did not happen. */
void rate_return_device(rate *r, const char *device_id);
/*
 * A certificate issued to device_id at when (seconds since the epoch, in
 * the past): counted as if it had been taken then. A daemon replays what
 * it issued in the last period at start-up, oldest first per device.
 * SF_EINVAL, SF_ENOMEM as rate_take_device.
 */
int rate_replay_device(rate *r, const char *device_id, int64_t when);

/* Tests: take the time (nanoseconds, monotonic) from now_ns instead of
 * the clock; NULL restores the clock. */
void rate_test_clock(rate *r, int64_t (*now_ns)(void));

#endif
