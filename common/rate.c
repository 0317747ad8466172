/*
 * rate.c - issuance rate caps (see rate.h).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pubkey.h"
#include "rate.h"
#include "util.h"

#define NBUCKETS_MIN 4096

struct dev {
	struct dev *next;
	int64_t window_start;   /* ms */
	int count;
	char id[DEVICE_ID_MAX + 1];
};

struct rate {
	pthread_mutex_t lock;
	int device_max;
	int64_t window_ms;
	double global_rate;
	double global_burst;
	double tokens;
	int64_t last_ms;
	struct dev **buckets;     /* grows with the devices seen */
	size_t nbuckets;
	size_t ndev;
	int64_t last_prune;
};

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

rate *
rate_new(int device_max, int window_s, double global_rate, int global_burst)
{
	rate *r = calloc(1, sizeof *r);

	if (r == NULL)
		return NULL;
	r->nbuckets = NBUCKETS_MIN;
	if ((r->buckets = calloc(r->nbuckets, sizeof *r->buckets)) == NULL) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	rate_set(r, device_max, window_s, global_rate, global_burst);
	r->tokens = r->global_burst;
	r->last_ms = sf_mono_ms();
	return r;
}

void
rate_set(rate *r, int device_max, int window_s, double global_rate,
    int global_burst)
{
	pthread_mutex_lock(&r->lock);
	r->device_max = device_max;
	r->window_ms = (int64_t)window_s * 1000;
	r->global_rate = global_rate;
	r->global_burst = global_burst;
	if (r->tokens > r->global_burst)
		r->tokens = r->global_burst;
	pthread_mutex_unlock(&r->lock);
}

void
rate_free(rate *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct dev *d = r->buckets[i];

		while (d) {
			struct dev *n = d->next;
			free(d);
			d = n;
		}
	}
	free(r->buckets);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int
rate_take_global(rate *r)
{
	int64_t now = sf_mono_ms();
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	r->tokens += (double)(now - r->last_ms) * r->global_rate / 1000.0;
	if (r->tokens > r->global_burst)
		r->tokens = r->global_burst;
	r->last_ms = now;
	if (r->tokens >= 1.0)
		r->tokens -= 1.0;
	else
		rc = SF_ELIMIT;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Drop windows that have ended, so memory follows active devices only. */
static void
prune(rate *r, int64_t now)
{
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct dev **pp = &r->buckets[i];

		while (*pp) {
			if (now - (*pp)->window_start >= r->window_ms) {
				struct dev *d = *pp;

				*pp = d->next;
				free(d);
				r->ndev--;
			} else
				pp = &(*pp)->next;
		}
	}
	r->last_prune = now;
}

/* Keep chains short: double the table when it holds twice its size. */
static void
grow(rate *r)
{
	size_t n = r->nbuckets * 2;
	struct dev **nb = calloc(n, sizeof *nb);

	if (nb == NULL)
		return;  /* keep the old table: slower, still right */
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct dev *d = r->buckets[i];

		while (d) {
			struct dev *next = d->next;
			uint32_t h = hash(d->id) % n;

			d->next = nb[h];
			nb[h] = d;
			d = next;
		}
	}
	free(r->buckets);
	r->buckets = nb;
	r->nbuckets = n;
}

int
rate_take_device(rate *r, const char *id)
{
	int64_t now = sf_mono_ms();
	struct dev *d;
	uint32_t h;
	int rc = 0;

	if (strlen(id) > DEVICE_ID_MAX)
		return SF_EINVAL;
	pthread_mutex_lock(&r->lock);
	if (r->ndev > 100000 && now - r->last_prune > 1000)
		prune(r, now);
	if (r->ndev > 2 * r->nbuckets)
		grow(r);
	h = hash(id) % r->nbuckets;
	for (d = r->buckets[h]; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			break;
	if (d == NULL) {
		if ((d = calloc(1, sizeof *d)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		sf_strlcpy(d->id, id, sizeof d->id);
		d->window_start = now;
		d->next = r->buckets[h];
		r->buckets[h] = d;
		r->ndev++;
	}
	if (now - d->window_start >= r->window_ms) {
		d->window_start = now;
		d->count = 0;
	}
	if (d->count >= r->device_max)
		rc = SF_ELIMIT;
	else
		d->count++;
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void
rate_return_device(rate *r, const char *id)
{
	uint32_t h;

	pthread_mutex_lock(&r->lock);
	h = hash(id) % r->nbuckets;
	for (struct dev *d = r->buckets[h]; d; d = d->next)
		if (strcmp(d->id, id) == 0) {
			if (d->count > 0)
				d->count--;
			break;
		}
	pthread_mutex_unlock(&r->lock);
}
