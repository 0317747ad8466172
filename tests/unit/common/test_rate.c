/*
 * Unit tests of common/rate.c, the signer's issuance caps: the global
 * token bucket (burst, refusal, refill, the burst as ceiling), the
 * per-device window (the cap, other devices, giving one back, expiry),
 * rate_set, 200,000 distinct devices, and threads taking at once never
 * getting past a cap. Sleeps are short: rates of 100/s, windows of 1 s.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "pubkey.h"
#include "rate.h"
#include "util.h"
#include "../../tap.h"

/* How many of n takes of the global bucket succeed right now. */
static int
take_global_n(rate *r, int n)
{
	int got = 0;

	for (int i = 0; i < n; i++)
		got += rate_take_global(r) == 0;
	return got;
}

static int
take_device_n(rate *r, const char *id, int n)
{
	int got = 0;

	for (int i = 0; i < n; i++)
		got += rate_take_device(r, id) == 0;
	return got;
}

/*
 * At 100/s a token comes every 10 ms, so a thread that is not scheduled
 * for a while may see more than the burst; the checks allow exactly what
 * the elapsed time can have added (ms / 10, rounded up).
 */
static int
refill_bound(int64_t since_ms)
{
	return (int)((sf_mono_ms() - since_ms + 9) / 10);
}

static void
test_global(void)
{
	int64_t t0 = sf_mono_ms();
	rate *r = rate_new(10, 3600, 100.0, 5);
	int got, extra;

	ok(r != NULL, "rate_new");
	if (r == NULL)
		return;
	got = take_global_n(r, 7);
	extra = refill_bound(t0);
	ok(got == 5 || (extra > 0 && got >= 5 && got <= 5 + extra),
	    "a full bucket: a burst of 5, then SF_ELIMIT (%d of 7)", got);
	/* 100/s: one token per 10 ms. */
	usleep(35000);
	got = take_global_n(r, 10);
	ok(got >= 2 && got <= 5, "35 ms later: refilled at about 100/s (%d"
	    " tokens)", got);
	/* Idle for longer than a burst takes to refill: the burst caps it. */
	usleep(200000);
	t0 = sf_mono_ms();
	got = take_global_n(r, 20);
	extra = refill_bound(t0);
	ok(got == 5 || (extra > 0 && got <= 5 + extra), "200 ms idle: only"
	    " the burst (5), not 20 (%d)", got);
	rate_free(r);
	rate_free(NULL);
	ok(1, "rate_free(NULL) is harmless");

	/* A sustained rate over half a second stays near the rate. */
	r = rate_new(10, 3600, 100.0, 1);
	{
		int64_t ms;

		t0 = sf_mono_ms();
		got = 0;
		while ((ms = sf_mono_ms() - t0) < 500) {
			got += rate_take_global(r) == 0;
			usleep(1000);
		}
		ms = sf_mono_ms() - t0;
		ok(got >= 20 && got <= 1 + (int)(ms / 10) + 1, "%lld ms at"
		    " 100/s, burst 1: %d taken", (long long)ms, got);
	}
	rate_free(r);
}

static void
test_device(void)
{
	rate *r = rate_new(3, 3600, 1000.0, 1000);
	char longid[DEVICE_ID_MAX + 2];

	is_int(take_device_n(r, "1111", 3), 3, "device 1111: 3 allowed");
	is_int(rate_take_device(r, "1111"), SF_ELIMIT,
	    "device 1111: the 4th refused");
	is_int(take_device_n(r, "1112", 3), 3, "device 1112 unaffected: 3");
	is_int(rate_take_device(r, "1112"), SF_ELIMIT, "and then refused too");
	rate_return_device(r, "1111");
	is_int(rate_take_device(r, "1111"), 0, "rate_return_device gives one"
	    " back");
	is_int(rate_take_device(r, "1111"), SF_ELIMIT, "exactly one");
	rate_return_device(r, "never-seen");
	ok(1, "returning for an unknown device is harmless");
	rate_return_device(r, "1113");
	is_int(take_device_n(r, "1113", 5), 3, "a return before any take"
	    " gives nothing extra");
	/* Returns never go below zero. */
	for (int i = 0; i < 10; i++)
		rate_return_device(r, "1113");
	is_int(take_device_n(r, "1113", 5), 3, "ten returns after three takes:"
	    " still 3 at most");
	/* Ids differing in one character, and ids of hash neighbours. */
	is_int(take_device_n(r, "1111a", 4), 3, "a longer id is another device");
	memset(longid, 'a', sizeof longid);
	longid[DEVICE_ID_MAX] = '\0';
	is_int(take_device_n(r, longid, 4), 3, "a 64-character id works");
	longid[DEVICE_ID_MAX] = 'a';
	longid[DEVICE_ID_MAX + 1] = '\0';
	is_int(rate_take_device(r, longid), SF_EINVAL,
	    "a 65-character id: SF_EINVAL");
	rate_free(r);
}

/* Check a refusal only while the window can still be running. */
static void
refused_in_window(rate *r, const char *id, int64_t start, int64_t win_ms,
    const char *what)
{
	int rc = rate_take_device(r, id);

	if (sf_mono_ms() - start < win_ms)
		is_int(rc, SF_ELIMIT, "%s", what);
	else
		tap_skip("the machine was too slow for this window");
}

static void
test_window(void)
{
	rate *r = rate_new(2, 1, 1000.0, 1000);
	int64_t w1, w2;

	w1 = sf_mono_ms();
	is_int(take_device_n(r, "w1", 3), 2, "1 s window: 2 allowed");
	usleep(500000);
	refused_in_window(r, "w1", w1, 1000, "half a second later: still"
	    " refused");
	w2 = sf_mono_ms();
	is_int(take_device_n(r, "w2", 3), 2, "w2 starts its own window now");
	usleep(600000);
	is_int(take_device_n(r, "w1", 3), 2, "after the window: 2 again");
	refused_in_window(r, "w2", w2, 1000, "w2's window has not ended yet");
	usleep(500000);
	is_int(take_device_n(r, "w2", 3), 2, "and then it has");
	rate_free(r);
}

static void
test_set(void)
{
	rate *r = rate_new(2, 3600, 0.001, 3);

	is_int(take_device_n(r, "s1", 5), 2, "cap 2");
	rate_set(r, 4, 3600, 0.001, 3);
	is_int(take_device_n(r, "s1", 5), 2, "rate_set to 4: two more for the"
	    " same window");
	rate_set(r, 1, 3600, 0.001, 3);
	is_int(rate_take_device(r, "s2"), 0, "rate_set to 1: a new device"
	    " gets 1");
	is_int(rate_take_device(r, "s2"), SF_ELIMIT, "and no more");

	is_int(take_global_n(r, 10), 3, "global burst 3");
	rate_set(r, 1, 3600, 0.001, 10);
	is_int(rate_take_global(r), SF_ELIMIT, "a larger burst adds no tokens"
	    " by itself");
	rate_set(r, 1, 3600, 100.0, 10);
	usleep(50000);
	{
		int got = take_global_n(r, 20);

		ok(got >= 3 && got <= 10, "rate_set to 100/s: it refills (%d)",
		    got);
	}
	rate_free(r);

	/* A smaller burst trims the tokens at once. */
	r = rate_new(1, 3600, 0.001, 10);
	is_int(take_global_n(r, 3), 3, "a bucket of 10: take 3");
	rate_set(r, 1, 3600, 0.001, 2);
	is_int(take_global_n(r, 10), 2, "rate_set to burst 2: 2 of the 7 left");
	rate_set(r, 1, 3600, 0.001, 10);
	is_int(rate_take_global(r), SF_ELIMIT, "and raising it again gives"
	    " nothing back");

	/* A shorter window applies to running windows. */
	rate_set(r, 1, 3600, 0.001, 2);
	is_int(take_device_n(r, "s3", 2), 1, "s3: 1 in a long window");
	rate_set(r, 1, 1, 0.001, 2);
	usleep(1100000);
	is_int(rate_take_device(r, "s3"), 0, "window shortened to 1 s: s3"
	    " may again after it");
	rate_free(r);
}

static void
test_many(void)
{
	enum { N = 200000 };
	rate *r = rate_new(1, 3600, 1e6, 1000000);
	char id[32];
	int first = 0, second = 0, third = 0;
	int64_t t0 = sf_mono_ms();

	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "dev-%07d", i);
		first += rate_take_device(r, id) == 0;
	}
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "dev-%07d", i);
		second += rate_take_device(r, id) == SF_ELIMIT;
	}
	tap_diag("%d devices, twice each: %lld ms", N,
	    (long long)(sf_mono_ms() - t0));
	is_int(first, N, "%d distinct devices: each gets its one", N);
	is_int(second, N, "and each is refused its second");
	for (int i = 0; i < N; i += 1000) {
		snprintf(id, sizeof id, "dev-%07d", i);
		rate_return_device(r, id);
		third += rate_take_device(r, id) == 0;
	}
	is_int(third, N / 1000, "returns still find their device among %d", N);
	rate_free(r);

	/*
	 * With a 1 s window the table is pruned once it is large; a device
	 * whose window ended must count from zero, and one whose window is
	 * running must not be forgotten.
	 */
	r = rate_new(1, 1, 1e6, 1000000);
	for (int i = 0; i < 120000; i++) {
		snprintf(id, sizeof id, "old-%07d", i);
		rate_take_device(r, id);
	}
	usleep(1100000);
	t0 = sf_mono_ms();
	rate_take_device(r, "fresh");
	first = second = 0;
	for (int i = 0; i < 120000; i += 10) {
		snprintf(id, sizeof id, "old-%07d", i);
		first += rate_take_device(r, id) == 0;
	}
	is_int(first, 12000, "after the window, old devices start again"
	    " (pruned or not)");
	refused_in_window(r, "fresh", t0, 1000, "a running window survives"
	    " the pruning");
	rate_free(r);
}

struct taker {
	rate *r;
	const char *id;   /* NULL: global */
	int n, got;
	pthread_t th;
};

static void *
taker_main(void *p)
{
	struct taker *t = p;

	for (int i = 0; i < t->n; i++)
		t->got += (t->id ? rate_take_device(t->r, t->id) :
		    rate_take_global(t->r)) == 0;
	return NULL;
}

static int
run_takers(rate *r, const char *id, int n)
{
	struct taker t[4];
	int got = 0;

	for (int i = 0; i < 4; i++) {
		t[i] = (struct taker){ r, id, n, 0, 0 };
		pthread_create(&t[i].th, NULL, taker_main, &t[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i].th, NULL);
		got += t[i].got;
	}
	return got;
}

static void
test_threads(void)
{
	rate *r = rate_new(500, 3600, 1e-6, 1000);

	is_int(run_takers(r, NULL, 5000), 1000, "4 threads x 5000 global"
	    " takes: exactly the burst of 1000");
	is_int(run_takers(r, "shared", 5000), 500, "4 threads x 5000 takes of"
	    " one device: exactly its cap of 500");
	rate_free(r);
}

int
main(void)
{
	test_global();
	test_device();
	test_window();
	test_set();
	test_many();
	test_threads();
	return tap_done();
}
