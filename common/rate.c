/*
 * rate.c - issuance rate caps: GCRA, globally and per device (see rate.h).
 *
 * Times are nanoseconds of the monotonic clock in int64_t. An emission
 * interval is at least 1 ns and at most MAX_T (a century): a global rate
 * of 1e-12 per second is no rate at all, and keeping every product
 * (T * burst, T * count) below 2^62 means no sum of them can overflow.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "pubkey.h"
#include "rate.h"
#include "util.h"

#define NBUCKETS_MIN 4096
#define NS 1000000000LL
#define MAX_T (100LL * 365 * 86400 * NS)
#define MAX_OFFSET (INT64_C(1) << 62)
/* The TAT of a device seen for the first time: long past, at full burst
 * (a replay may put its first issuance before the clock's zero). */
#define NEVER (INT64_MIN / 4)

struct dev {
	struct dev *next;
	int64_t tat;            /* theoretical arrival time, ns */
	char id[DEVICE_ID_MAX + 1];
};

/* One GCRA limit: emission interval t and burst offset (burst * t). */
struct gcra {
	int64_t t;
	int64_t offset;
};

struct rate {
	pthread_mutex_t lock;
	struct gcra dev;          /* per device */
	struct gcra glob;         /* global */
	int64_t glob_tat;
	struct dev **buckets;     /* grows with the devices seen */
	size_t nbuckets;
	size_t ndev;
	int64_t last_prune;
	int64_t (*clock)(void);
};

static int64_t
clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static int64_t
now_ns(const rate *r)
{
	return r->clock ? r->clock() : clock_ns();
}

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

/* count per period_ns, burst at once. */
static struct gcra
gcra_make(double period_ns, double count, double burst)
{
	struct gcra g;
	double t = count > 0 ? period_ns / count : (double)MAX_T;

	if (!(t >= 1))
		t = 1;
	if (t > (double)MAX_T)
		t = (double)MAX_T;
	g.t = (int64_t)t;
	if (burst < 1)
		burst = 1;
	g.offset = burst * (double)g.t >= (double)MAX_OFFSET ? MAX_OFFSET :
	    (int64_t)burst * g.t;
	return g;
}

/*
 * The GCRA test at now for a limit whose TAT is *tat: 0 and *tat moved on
 * by one interval, or SF_ELIMIT and *wait_ns until it would pass.
 */
static int
gcra_take(const struct gcra *g, int64_t *tat, int64_t now, int64_t *wait_ns)
{
	int64_t base = *tat > now ? *tat : now;
	int64_t allow_at = base + g->t - g->offset;

	if (allow_at > now) {
		if (wait_ns)
			*wait_ns = allow_at - now;
		return SF_ELIMIT;
	}
	*tat = base + g->t;
	return 0;
}

/* A TAT kept over a change of interval: the same number of requests
 * still to drain, each now worth the new interval. */
static int64_t
gcra_rescale(int64_t tat, int64_t now, int64_t old_t, int64_t new_t)
{
	double debt;

	if (tat <= now || old_t == new_t || old_t <= 0)
		return tat;
	debt = (double)(tat - now) / (double)old_t * (double)new_t;
	return debt >= (double)MAX_OFFSET ? now + MAX_OFFSET :
	    now + (int64_t)debt;
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
	r->glob_tat = NEVER;
	r->dev = gcra_make((double)window_s * NS, device_max, device_max);
	r->glob = gcra_make((double)NS, global_rate, global_burst);
	return r;
}

void
rate_set(rate *r, int device_max, int window_s, double global_rate,
    int global_burst)
{
	struct gcra dev = gcra_make((double)window_s * NS, device_max,
	    device_max);
	struct gcra glob = gcra_make((double)NS, global_rate, global_burst);
	int64_t now;

	pthread_mutex_lock(&r->lock);
	now = now_ns(r);
	for (size_t i = 0; i < r->nbuckets; i++)
		for (struct dev *d = r->buckets[i]; d; d = d->next)
			d->tat = gcra_rescale(d->tat, now, r->dev.t, dev.t);
	r->glob_tat = gcra_rescale(r->glob_tat, now, r->glob.t, glob.t);
	r->dev = dev;
	r->glob = glob;
	pthread_mutex_unlock(&r->lock);
}

void
rate_test_clock(rate *r, int64_t (*fn)(void))
{
	pthread_mutex_lock(&r->lock);
	r->clock = fn;
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
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = gcra_take(&r->glob, &r->glob_tat, now_ns(r), NULL);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Forget devices back at full burst (TAT passed): memory follows the
 * devices that are using their limit. */
static void
prune(rate *r, int64_t now)
{
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct dev **pp = &r->buckets[i];

		while (*pp) {
			if ((*pp)->tat <= now) {
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

/* With the lock held: id's entry, made (at full burst) if create; now is
 * only for pruning. */
static struct dev *
dev_find(rate *r, const char *id, int64_t now, int create)
{
	struct dev *d;
	uint32_t h;

	if (create && r->ndev > 100000 && now - r->last_prune > NS)
		prune(r, now);
	if (create && r->ndev > 2 * r->nbuckets)
		grow(r);
	h = hash(id) % r->nbuckets;
	for (d = r->buckets[h]; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			return d;
	if (!create || (d = calloc(1, sizeof *d)) == NULL)
		return NULL;
	sf_strlcpy(d->id, id, sizeof d->id);
	d->tat = NEVER;
	d->next = r->buckets[h];
	r->buckets[h] = d;
	r->ndev++;
	return d;
}

int
rate_take_device(rate *r, const char *id, int64_t *retry_ms)
{
	struct dev *d;
	int64_t now, wait = 0;
	int rc;

	if (strlen(id) > DEVICE_ID_MAX)
		return SF_EINVAL;
	pthread_mutex_lock(&r->lock);
	now = now_ns(r);
	if ((d = dev_find(r, id, now, 1)) == NULL)
		rc = SF_ENOMEM;
	else if ((rc = gcra_take(&r->dev, &d->tat, now, &wait)) != 0 &&
	    retry_ms)
		*retry_ms = (wait + 999999) / 1000000;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void
rate_return_device(rate *r, const char *id)
{
	struct dev *d;

	pthread_mutex_lock(&r->lock);
	if ((d = dev_find(r, id, 0, 0)) != NULL && d->tat > NEVER)
		d->tat -= r->dev.t;
	pthread_mutex_unlock(&r->lock);
}

int
rate_replay_device(rate *r, const char *id, int64_t when)
{
	struct dev *d;
	int64_t now, at, ago = sf_now() - when;
	int rc = 0;

	if (strlen(id) > DEVICE_ID_MAX)
		return SF_EINVAL;
	/* Seconds ago on the wall clock, as a point on ours; a time in the
	 * future (the clock was set back) is now. */
	if (ago < 0)
		ago = 0;
	if (ago > MAX_T / NS)
		ago = MAX_T / NS;
	pthread_mutex_lock(&r->lock);
	now = now_ns(r);
	at = now - ago * NS;
	if ((d = dev_find(r, id, now, 1)) == NULL)
		rc = SF_ENOMEM;
	else
		d->tat = (d->tat > at ? d->tat : at) + r->dev.t;
	pthread_mutex_unlock(&r->lock);
	return rc;
}
