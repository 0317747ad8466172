/*
 * Unit tests of signer/maint.c: tasks run at start and every period; a
 * burst of kicks within the delay gives one run, not one per kick; a
 * kick runs every task, due or not; maint_run_now runs them in the
 * caller's thread and reports the first error; a failing task runs again
 * at its next turn; maint_free stops the thread.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "maint.h"
#include "util.h"
#include "../../tap.h"

struct counter {
	atomic_int runs;
	int fail;
};

static int
count(void *arg, int64_t now)
{
	struct counter *c = arg;

	(void)now;
	atomic_fetch_add(&c->runs, 1);
	return c->fail ? SF_EDB : 0;
}

/* Wait up to ms for c->runs to reach want; its value. */
static int
wait_runs(struct counter *c, int want, int ms)
{
	int64_t end = sf_mono_ms() + ms;

	while (atomic_load(&c->runs) < want && sf_mono_ms() < end)
		usleep(5000);
	return atomic_load(&c->runs);
}

static void
test_start_and_kicks(void)
{
	struct counter fast = { 0, 0 }, slow = { 0, 0 };
	maint *m = maint_new(200);

	ok(m != NULL, "a scheduler with 200 ms of coalescing");
	is_int(maint_add(m, "fast", count, &fast, 3600), 0, "add a task");
	is_int(maint_add(m, "slow", count, &slow, 3600), 0,
	    "add a second task");
	is_int(maint_add(m, "bad", count, &slow, 0), SF_EINVAL,
	    "a period of 0 is refused");
	is_int(maint_start(m), 0, "start");
	is_int(maint_add(m, "late", count, &slow, 1), SF_EINVAL,
	    "no task is added once it runs");
	is_int(wait_runs(&fast, 1, 2000), 1, "each task runs once at start");
	is_int(wait_runs(&slow, 1, 2000), 1, "the second one too");
	for (int i = 0; i < 100; i++)
		maint_kick(m);
	usleep(100 * 1000);
	is_int(atomic_load(&fast.runs), 1, "100 kicks: nothing before the"
	    " delay");
	is_int(wait_runs(&fast, 2, 2000), 2, "then one run for the burst");
	usleep(400 * 1000);
	is_int(atomic_load(&fast.runs), 2, "and only one");
	is_int(atomic_load(&slow.runs), 2, "a kick runs every task");
	is_int(maint_run_now(m), 0, "run now");
	is_int(atomic_load(&fast.runs), 3, "run now runs each task in the"
	    " caller's thread");
	maint_free(m);
	ok(1, "maint_free stops the thread");
	maint_free(NULL);
	maint_kick(NULL);
	ok(1, "NULL is harmless to free and kick");
}

static void
test_period_and_failure(void)
{
	struct counter c = { 0, 1 };
	maint *m = maint_new(0);

	is_int(maint_add(m, "failing", count, &c, 1), 0,
	    "a failing task every second");
	is_int(maint_start(m), 0, "start");
	ok(wait_runs(&c, 3, 5000) >= 3, "it runs again at each turn"
	    " (%d runs)", atomic_load(&c.runs));
	is_int(maint_run_now(m), SF_EDB, "run now reports its error");
	maint_free(m);
}

int
main(void)
{
	log_init("test_maint", LOG_LEVEL_WARN);
	test_start_and_kicks();
	test_period_and_failure();
	return tap_done();
}
