/*
 * maint.h - the signer's background work: one thread that runs the
 * registered tasks (regenerate CRLs, refresh pre-signed OCSP responses,
 * revoke renewals nobody acknowledged, ...) every period, and soon after a
 * kick.
 *
 * A kick is how a change asks for the work it makes necessary: a
 * revocation kicks, and the CRL task finds what is stale. Kicks are
 * coalesced: the thread waits `delay_ms` after the first kick before it
 * runs, so that a thousand revocations in a burst give one new CRL.
 * Tasks run one after another in that thread, never concurrently with
 * each other; each must decide from the journal what needs doing, so a
 * task that fails simply runs again at its next turn.
 */
#ifndef SF_MAINT_H
#define SF_MAINT_H

#include <stdint.h>

typedef struct maint maint;

/*
 * A task. now: seconds since the epoch. Returns 0 or an SF_E* code (logged
 * with the task's name; the task runs again at its next turn).
 */
typedef int (*maint_fn)(void *arg, int64_t now);

/* A scheduler whose kicks are coalesced over delay_ms (0: 1000). */
maint *maint_new(int delay_ms);
/*
 * Register fn under name, run every period_s seconds (> 0) and after each
 * kick. Before maint_start only. SF_EINVAL, SF_ENOMEM.
 */
int maint_add(maint *m, const char *name, maint_fn fn, void *arg,
    int period_s);
/* Start the thread; the tasks first run at once. SF_EINTERNAL. */
int maint_start(maint *m);
/* Ask for a run of every task within delay_ms. NULL-safe, any thread. */
void maint_kick(maint *m);
/* Run every task now in the caller's thread, waiting for a run the thread
 * has under way to finish first (for tests and for callers that need the
 * result before they answer). Returns the first task's error, else 0. */
int maint_run_now(maint *m);
/* Stop the thread (a task under way finishes) and free. NULL-safe. */
void maint_free(maint *m);

#endif
