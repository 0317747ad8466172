/*
 * rate.h - issuance rate caps: a global token bucket and a per-device
 * fixed window. Past either, the caller answers RESOURCE_EXHAUSTED.
 * In memory: a restart forgets the windows (the journal keeps the record).
 */
#ifndef SF_RATE_H
#define SF_RATE_H

typedef struct rate rate;

/* device_max certificates per device per window_s seconds; global_rate per
 * second sustained with bursts of global_burst. */
rate *rate_new(int device_max, int window_s, double global_rate,
    int global_burst);
void rate_free(rate *r);
/* Change the caps (SIGHUP). */
void rate_set(rate *r, int device_max, int window_s, double global_rate,
    int global_burst);
/* 0 if allowed (and counted), SF_ELIMIT otherwise. */
int rate_take_global(rate *r);
int rate_take_device(rate *r, const char *device_id);
/* Give back a device's count when the issuance did not happen. */
void rate_return_device(rate *r, const char *device_id);

#endif
