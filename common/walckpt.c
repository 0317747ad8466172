/*
 * walckpt.c - when a writing SQLite connection checkpoints its WAL (see
 * walckpt.h).
 */
#include <stddef.h>

#include "walckpt.h"

/* After each commit of db, in the committing thread: SQLite's own rule
 * (sqlite3_wal_autocheckpoint) with a higher bar for bulk commits. */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	walckpt *w = arg;

	if (pages >= (w->bulk ? w->bulk_pages : w->pages)) {
		/* PASSIVE, as SQLite's: it fails (SQLITE_BUSY) rather than
		 * wait, and the next commit tries again. */
		(void)sqlite3_wal_checkpoint_v2(db, name,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		w->checkpoints++;
	}
	return SQLITE_OK;
}

void
walckpt_install(walckpt *w, sqlite3 *db)
{
	w->pages = WALCKPT_PAGES;
	w->bulk_pages = WALCKPT_BULK_PAGES;
	w->bulk = 0;
	w->checkpoints = 0;
	sqlite3_wal_hook(db, wal_hook, w);
}
