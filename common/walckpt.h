/*
 * walckpt.h - when a writing SQLite connection checkpoints its WAL.
 *
 * SQLite checkpoints in the COMMIT that leaves the WAL at 1000 pages or
 * more (wal_autocheckpoint): the committing caller copies the WAL into the
 * database file and fsyncs it. For the small transactions of issuance that
 * keeps each checkpoint short, which the latency of every caller waiting
 * behind the write lock needs. A bulk transaction (a batch of a factory
 * import: thousands of rows with random key fingerprints) touches pages
 * all over its unique index, and a checkpoint after each such commit
 * copies most of that index again: gigabytes over a million records.
 * walckpt replaces SQLite's hook with the same rule and one difference:
 * a commit the caller marked bulk checkpoints only once the WAL holds
 * bulk_pages, so one checkpoint copies a page that several batches
 * rewrote once. The next ordinary commit checkpoints what is left.
 * Durability is the same either way: a commit is durable once in the WAL.
 */
#ifndef SF_WALCKPT_H
#define SF_WALCKPT_H

#include <sqlite3.h>

#define WALCKPT_PAGES      1000    /* SQLite's own default */
#define WALCKPT_BULK_PAGES 16384   /* 64 MiB of 4 KiB pages */

typedef struct {
	int pages;          /* checkpoint once the WAL holds this many */
	int bulk_pages;     /* ... or this many, for a bulk commit */
	int bulk;           /* the commit under way is bulk (writer's lock) */
	unsigned long checkpoints;  /* run by the hook (tests) */
} walckpt;

/*
 * Install w as db's WAL hook with the defaults above (db's writer, in WAL
 * mode; w must outlive db or sqlite3_wal_autocheckpoint must undo this).
 * Set w->bulk around a bulk transaction's COMMIT, under the lock that
 * serialises db's writers.
 */
void walckpt_install(walckpt *w, sqlite3 *db);

#endif
