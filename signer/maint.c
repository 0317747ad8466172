/*
 * maint.c - the signer's background task thread (see maint.h). One mutex
 * guards the schedule; a second one (`run`) is held while tasks run, so
 * that maint_run_now() and the thread never run tasks at the same time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "maint.h"
#include "util.h"

#define MAX_TASKS 16

struct task {
	char name[32];
	maint_fn fn;
	void *arg;
	int period_s;
	int64_t next_ms;        /* monotonic */
};

struct maint {
	pthread_mutex_t lock;   /* the fields below */
	pthread_cond_t cond;
	pthread_mutex_t run;    /* held while tasks run */
	struct task tasks[MAX_TASKS];
	int ntasks;
	int delay_ms;
	int64_t kick_at_ms;     /* 0: no kick pending */
	int stop;
	int started;
	pthread_t thread;
};

maint *
maint_new(int delay_ms)
{
	maint *m = calloc(1, sizeof *m);
	pthread_condattr_t ca;

	if (m == NULL)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->run, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	m->delay_ms = delay_ms > 0 ? delay_ms : 1000;
	return m;
}

int
maint_add(maint *m, const char *name, maint_fn fn, void *arg, int period_s)
{
	struct task *t;

	if (m == NULL || fn == NULL || period_s <= 0 || m->started)
		return SF_EINVAL;
	if (m->ntasks == MAX_TASKS)
		return SF_ENOMEM;
	t = &m->tasks[m->ntasks++];
	sf_strlcpy(t->name, name, sizeof t->name);
	t->fn = fn;
	t->arg = arg;
	t->period_s = period_s;
	t->next_ms = 0;
	return 0;
}

/* Run the tasks that are due (all of them when `all`), holding m->run;
 * the schedule is read and written under m->lock. */
static int
run_tasks(maint *m, int all)
{
	int due[MAX_TASKS], first = 0;
	int64_t now_ms = sf_mono_ms(), now = sf_now();

	pthread_mutex_lock(&m->run);
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < m->ntasks; i++)
		due[i] = all || m->tasks[i].next_ms <= now_ms;
	pthread_mutex_unlock(&m->lock);
	for (int i = 0; i < m->ntasks; i++) {
		struct task *t = &m->tasks[i];
		int rc;

		if (!due[i])
			continue;
		/* name, fn, arg and period never change after maint_start. */
		if ((rc = t->fn(t->arg, now)) != 0) {
			log_warnx("maintenance task %s: %s", t->name,
			    sf_strerror(rc));
			if (first == 0)
				first = rc;
		}
		pthread_mutex_lock(&m->lock);
		t->next_ms = sf_mono_ms() + (int64_t)t->period_s * 1000;
		pthread_mutex_unlock(&m->lock);
	}
	pthread_mutex_unlock(&m->run);
	return first;
}

/* The monotonic time the thread should next wake, in ms. */
static int64_t
next_wake(const maint *m)
{
	int64_t w = INT64_MAX;

	for (int i = 0; i < m->ntasks; i++)
		if (m->tasks[i].next_ms < w)
			w = m->tasks[i].next_ms;
	if (m->kick_at_ms && m->kick_at_ms < w)
		w = m->kick_at_ms;
	return w;
}

static void *
thread_main(void *arg)
{
	maint *m = arg;

	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		int64_t wake = next_wake(m), now = sf_mono_ms();
		int kicked;

		if (wake > now) {
			struct timespec ts;

			if (wake == INT64_MAX)
				wake = now + 3600 * 1000;
			ts.tv_sec = wake / 1000;
			ts.tv_nsec = (wake % 1000) * 1000000;
			pthread_cond_timedwait(&m->cond, &m->lock, &ts);
			continue;
		}
		kicked = m->kick_at_ms != 0 && m->kick_at_ms <= now;
		if (kicked)
			m->kick_at_ms = 0;
		pthread_mutex_unlock(&m->lock);
		run_tasks(m, kicked);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int
maint_start(maint *m)
{
	if (m == NULL || m->started)
		return SF_EINVAL;
	if (pthread_create(&m->thread, NULL, thread_main, m) != 0)
		return SF_EINTERNAL;
	m->started = 1;
	return 0;
}

void
maint_kick(maint *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	/* The first kick sets the time; later ones ride along with it. */
	if (m->kick_at_ms == 0) {
		m->kick_at_ms = sf_mono_ms() + m->delay_ms;
		pthread_cond_signal(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
}

int
maint_run_now(maint *m)
{
	if (m == NULL)
		return 0;
	return run_tasks(m, 1);
}

void
maint_free(maint *m)
{
	if (m == NULL)
		return;
	if (m->started) {
		pthread_mutex_lock(&m->lock);
		m->stop = 1;
		pthread_cond_signal(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
	}
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->run);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
