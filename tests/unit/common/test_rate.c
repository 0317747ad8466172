/*
 * Unit tests of common/rate.c, the issuance caps as GCRA: the emission
 * math (the interval, the burst, the wait a refusal gives, long-run
 * rates), a burst across what was the fixed window's edge, giving one
 * back, rate_set keeping what each limit has used, replaying issuances
 * from the past (a restart), 200,000 distinct devices and the pruning,
 * and threads taking at once never getting past a cap. The clock is the
 * test's own (rate_test_clock), so every figure is exact; only the
 * thread test runs on the real clock.
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

#define MS 1000000LL
#define SEC 1000000000LL

static int64_t fake_now = 1000 * SEC;

static int64_t
fake_clock(void)
{
	return fake_now;
}

static void
advance_ms(int64_t ms)
{
	fake_now += ms * MS;
}

static rate *
fake_rate(int device_max, int window_s, double global_rate, int burst)
{
	rate *r = rate_new(device_max, window_s, global_rate, burst);

	if (r)
		rate_test_clock(r, fake_clock);
	return r;
}

/* How many of n takes succeed right now. */
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
		got += rate_take_device(r, id, NULL) == 0;
	return got;
}

/* The emission interval, the burst and the wait, to the millisecond. */
static void
test_math(void)
{
	rate *r = fake_rate(4, 2, 10.0, 3);
	int64_t retry = -1;
	int got;

	ok(r != NULL, "rate_new");
	if (r == NULL)
		return;
	/* 4 per 2 s: T = 500 ms, burst 4. */
	is_int(take_device_n(r, "d", 4), 4, "device, 4 per 2 s: a burst of 4");
	is_int(rate_take_device(r, "d", &retry), SF_ELIMIT, "the 5th refused");
	is_int(retry, 500, "  to come back in T = 2 s / 4 = 500 ms");
	advance_ms(499);
	is_int(rate_take_device(r, "d", &retry), SF_ELIMIT, "499 ms later:"
	    " still refused");
	is_int(retry, 1, "  for 1 ms more");
	advance_ms(1);
	is_int(rate_take_device(r, "d", &retry), 0, "500 ms: one more");
	is_int(rate_take_device(r, "d", &retry), SF_ELIMIT, "  and only one");
	is_int(retry, 500, "  the next in another 500 ms");
	advance_ms(1250);
	is_int(take_device_n(r, "d", 4), 2, "1250 ms later: two and a half"
	    " intervals give 2");
	advance_ms(10000);
	is_int(take_device_n(r, "d", 9), 4, "idle for long: the burst (4),"
	    " never more");

	/* Global: 10 per second, burst 3: T = 100 ms. */
	is_int(take_global_n(r, 5), 3, "global 10/s, burst 3: 3 at once");
	advance_ms(99);
	is_int(rate_take_global(r), SF_ELIMIT, "99 ms later: refused");
	advance_ms(1);
	is_int(take_global_n(r, 5), 1, "100 ms: one");
	/* A take every millisecond for 10 s (0 to 10,000 ms inclusive): the
	 * burst plus 10 s / 100 ms. */
	advance_ms(1000);
	got = 0;
	for (int i = 0; i <= 10000; i++) {
		got += rate_take_global(r) == 0;
		advance_ms(1);
	}
	is_int(got, 3 + 100, "a take every ms for 10 s at 10/s, burst 3:"
	    " 103 (burst + rate x time)");

	/* Per device over a long span: count per period on average. */
	advance_ms(10000);
	got = 0;
	for (int i = 0; i <= 60000; i++) {
		got += rate_take_device(r, "steady", NULL) == 0;
		advance_ms(1);
	}
	is_int(got, 4 + 60000 / 500, "a device asking every ms for 60 s,"
	    " 4 per 2 s: the burst then one per 500 ms (124)");
	rate_free(r);
	rate_free(NULL);
	ok(1, "rate_free(NULL) is harmless");
}

/*
 * The fixed window this replaced opened at a device's first request and
 * started counting again when it ended: one request at 0, the rest of the
 * cap just before the end and the whole cap again just after it gave
 * twice the cap in a moment. GCRA has no edge.
 */
static void
test_window_edge(void)
{
	rate *r = fake_rate(5, 10, 1000.0, 1000);
	int64_t retry = 0;

	is_int(rate_take_device(r, "edge", NULL), 0, "5 per 10 s: one at 0 s");
	advance_ms(9900);
	is_int(take_device_n(r, "edge", 4), 4, "four at 9.9 s, the old"
	    " window's last moment");
	advance_ms(100);
	is_int(take_device_n(r, "edge", 5), 1, "five at 10.0 s, where the old"
	    " window started again: 1 (what 0.1 s after a full burst adds to"
	    " the one left), not 5");
	is_int(rate_take_device(r, "edge", &retry), SF_ELIMIT, "refused");
	is_int(retry, 1900, "  the next at 11.9 s, one interval (10 s / 5)"
	    " after the slot 10.0 s took");
	advance_ms(9000);
	is_int(take_device_n(r, "edge", 5), 4, "9 s later: 4 of 5 back");

	/* Straddling the edge from a standing start. */
	advance_ms(60000);
	is_int(take_device_n(r, "edge2", 5), 5, "a full burst at 59.99 s");
	advance_ms(20);
	is_int(take_device_n(r, "edge2", 5), 0, "and nothing 20 ms later");
	rate_free(r);
}

static void
test_device(void)
{
	rate *r = fake_rate(3, 3600, 1000.0, 1000);
	char longid[DEVICE_ID_MAX + 2];

	is_int(take_device_n(r, "1111", 3), 3, "device 1111: 3 allowed");
	is_int(rate_take_device(r, "1111", NULL), SF_ELIMIT,
	    "device 1111: the 4th refused");
	is_int(take_device_n(r, "1112", 3), 3, "device 1112 unaffected: 3");
	is_int(rate_take_device(r, "1112", NULL), SF_ELIMIT,
	    "and then refused too");
	rate_return_device(r, "1111");
	is_int(rate_take_device(r, "1111", NULL), 0, "rate_return_device gives"
	    " one back");
	is_int(rate_take_device(r, "1111", NULL), SF_ELIMIT, "exactly one");
	rate_return_device(r, "never-seen");
	ok(1, "returning for an unknown device is harmless");
	rate_return_device(r, "1113");
	is_int(take_device_n(r, "1113", 5), 3, "a return before any take"
	    " gives nothing extra");
	for (int i = 0; i < 10; i++)
		rate_return_device(r, "1113");
	is_int(take_device_n(r, "1113", 5), 3, "ten returns after three takes:"
	    " still 3 at most (the burst)");
	is_int(take_device_n(r, "1111a", 4), 3, "a longer id is another device");
	memset(longid, 'a', sizeof longid);
	longid[DEVICE_ID_MAX] = '\0';
	is_int(take_device_n(r, longid, 4), 3, "a 64-character id works");
	longid[DEVICE_ID_MAX] = 'a';
	longid[DEVICE_ID_MAX + 1] = '\0';
	is_int(rate_take_device(r, longid, NULL), SF_EINVAL,
	    "a 65-character id: SF_EINVAL");
	is_int(rate_replay_device(r, longid, sf_now()), SF_EINVAL,
	    "  in a replay too");
	rate_free(r);
}

static void
test_set(void)
{
	rate *r = fake_rate(2, 3600, 0.001, 3);

	is_int(take_device_n(r, "s1", 5), 2, "cap 2 per hour");
	rate_set(r, 4, 3600, 0.001, 3);
	is_int(take_device_n(r, "s1", 5), 2, "rate_set to 4: the 2 used stay"
	    " used, 2 more");
	rate_set(r, 2, 3600, 0.001, 3);
	is_int(rate_take_device(r, "s1", NULL), SF_ELIMIT, "rate_set back to"
	    " 2 with 4 used: refused");
	advance_ms(3600 * 1000);
	is_int(rate_take_device(r, "s1", NULL), SF_ELIMIT, "an hour later the"
	    " 4 used at the new rate (30 min each) leave 2 in debt: refused");
	advance_ms(1800 * 1000);
	is_int(rate_take_device(r, "s1", NULL), 0, "half an hour more: one");
	rate_set(r, 1, 3600, 0.001, 3);
	is_int(rate_take_device(r, "s2", NULL), 0, "rate_set to 1: a new device"
	    " gets 1");
	is_int(rate_take_device(r, "s2", NULL), SF_ELIMIT, "and no more");

	is_int(take_global_n(r, 10), 3, "global burst 3");
	rate_set(r, 1, 3600, 0.001, 10);
	is_int(take_global_n(r, 10), 7, "rate_set to burst 10: the 3 used stay"
	    " used, 7 more");
	rate_set(r, 1, 3600, 0.001, 2);
	is_int(rate_take_global(r), SF_ELIMIT, "rate_set to burst 2 with 10"
	    " used: refused");
	rate_set(r, 1, 3600, 100.0, 2);
	advance_ms(50);
	is_int(take_global_n(r, 20), 0, "rate_set to 100/s: the 10 used are"
	    " 100 ms of it; 50 ms on, none");
	advance_ms(60);
	is_int(take_global_n(r, 20), 2, "110 ms on: the burst of 2");

	/* A shorter window applies to devices using theirs. */
	rate_set(r, 1, 3600, 0.001, 2);
	is_int(take_device_n(r, "s3", 2), 1, "s3: 1 per hour");
	rate_set(r, 1, 1, 0.001, 2);
	advance_ms(1000);
	is_int(rate_take_device(r, "s3", NULL), 0, "window shortened to 1 s: s3"
	    " may again a second later");
	rate_free(r);
}

/* Issuances from before a restart, replayed as the signer does. */
static void
test_replay(void)
{
	rate *r = fake_rate(3, 3600, 1000.0, 1000);
	int64_t now = sf_now(), retry = 0;

	for (int i = 0; i < 3; i++)
		is_int(rate_replay_device(r, "r1", now - 5), 0, "replay an"
		    " issuance 5 s ago (%d)", i + 1);
	is_int(rate_take_device(r, "r1", &retry), SF_ELIMIT, "3 per hour, 3"
	    " replayed from 5 s ago: the next refused");
	ok(retry >= 1190 * 1000 && retry <= 1195 * 1000, "  for 20 minutes"
	    " less 5 s (%lld ms)", (long long)retry);
	/* Spread over the hour: what has drained is available again. */
	rate_replay_device(r, "r2", now - 3000);
	rate_replay_device(r, "r2", now - 2000);
	rate_replay_device(r, "r2", now - 100);
	is_int(take_device_n(r, "r2", 3), 2, "three replayed at -3000, -2000"
	    " and -100 s (20 min each): 2 available");
	rate_replay_device(r, "r3", now - 7200);
	is_int(take_device_n(r, "r3", 4), 3, "one replayed from two hours ago:"
	    " the whole burst");
	rate_replay_device(r, "r4", now + 60);
	is_int(take_device_n(r, "r4", 4), 2, "one 'in the future' (the clock"
	    " was set back) counts as now");
	rate_free(r);
}

static void
test_many(void)
{
	enum { N = 200000 };
	rate *r = fake_rate(1, 3600, 1e6, 1000000);
	char id[32];
	int first = 0, second = 0, third = 0;

	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "dev-%07d", i);
		first += rate_take_device(r, id, NULL) == 0;
	}
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "dev-%07d", i);
		second += rate_take_device(r, id, NULL) == SF_ELIMIT;
	}
	is_int(first, N, "%d distinct devices: each gets its one", N);
	is_int(second, N, "and each is refused its second");
	for (int i = 0; i < N; i += 1000) {
		snprintf(id, sizeof id, "dev-%07d", i);
		rate_return_device(r, id);
		third += rate_take_device(r, id, NULL) == 0;
	}
	is_int(third, N / 1000, "returns still find their device among %d", N);
	rate_free(r);

	/*
	 * 1 per second: the table is pruned once it is large. A device back at
	 * full burst must count from there, one still in debt must not be
	 * forgotten.
	 */
	r = fake_rate(1, 1, 1e6, 1000000);
	for (int i = 0; i < 120000; i++) {
		snprintf(id, sizeof id, "old-%07d", i);
		rate_take_device(r, id, NULL);
	}
	advance_ms(1100);
	rate_take_device(r, "fresh", NULL);
	first = 0;
	for (int i = 0; i < 120000; i += 10) {
		snprintf(id, sizeof id, "old-%07d", i);
		first += rate_take_device(r, id, NULL) == 0;
	}
	is_int(first, 12000, "a second later the old devices may again"
	    " (pruned or not)");
	is_int(rate_take_device(r, "fresh", NULL), SF_ELIMIT, "one in debt"
	    " survives the pruning");
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
		t->got += (t->id ? rate_take_device(t->r, t->id, NULL) :
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

/* The real clock: at 500 per hour nothing comes back during the test. */
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
	test_math();
	test_window_edge();
	test_device();
	test_set();
	test_replay();
	test_many();
	test_threads();
	return tap_done();
}
