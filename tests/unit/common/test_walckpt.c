/*
 * Unit tests of common/walckpt.c, when the writer checkpoints its WAL, on
 * a real database file in WAL mode with small bars (64 pages, 1024 for
 * bulk commits; the commits here add 100 to 300 pages each): an ordinary
 * commit past the bar checkpoints, so the WAL restarts each time; a bulk
 * commit does not until the WAL holds the bulk bar, so a few bulk commits
 * share one checkpoint; the next ordinary commit checkpoints what they
 * left; every row is there at the end, read by a new connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "walckpt.h"
#include "../../tap.h"

#define ROWS 1000       /* per commit: 100 to 300 WAL pages */

static char dir[] = "/tmp/sf-walckpt-XXXXXX";
static char path[256], aux[300];

static sqlite3 *
open_db(void)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* One commit of n rows with random 32-byte keys (a random index, as the
 * device tables have). */
static int
commit_rows(sqlite3 *db, int n)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (exec(db, "BEGIN IMMEDIATE") != 0 ||
	    sqlite3_prepare_v2(db, "INSERT INTO t (k, v) VALUES"
	    " (randomblob(32), zeroblob(200))", -1, &st, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < n; i++) {
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
		sqlite3_reset(st);
	}
	rc = exec(db, "COMMIT");
out:
	sqlite3_finalize(st);
	if (rc != 0)
		exec(db, "ROLLBACK");
	return rc;
}

static long
count_rows(void)
{
	sqlite3 *db = open_db();
	sqlite3_stmt *st = NULL;
	long n = -1;

	if (db && sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st,
	    NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

int
main(void)
{
	walckpt w;
	sqlite3 *db;
	unsigned long before;
	long rows = 0;
	int ok_all;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/t.db", dir);
	db = open_db();
	ok(db && exec(db, "PRAGMA journal_mode=WAL") == 0 &&
	    exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY,"
	    " k BLOB NOT NULL UNIQUE, v BLOB)") == 0, "database in WAL mode");
	walckpt_install(&w, db);
	is_int(w.pages, WALCKPT_PAGES, "default bar: SQLite's");
	is_int(w.bulk_pages, WALCKPT_BULK_PAGES, "default bulk bar");
	w.pages = 64;
	w.bulk_pages = 1024;

	ok_all = 1;
	for (int i = 0; i < 5; i++) {
		ok_all &= commit_rows(db, ROWS) == 0;
		rows += ROWS;
	}
	ok(ok_all, "5 ordinary commits");
	is_int((int)w.checkpoints, 5, "each ordinary commit past the bar"
	    " checkpointed");

	/* Bulk: the WAL grows past 1024 pages before a checkpoint: 20
	 * commits share a few (20 if the mark were ignored, 0 with no
	 * checkpoint at all). */
	before = w.checkpoints;
	ok_all = 1;
	for (int i = 0; i < 3; i++) {
		w.bulk = 1;
		ok_all &= commit_rows(db, ROWS) == 0;
		w.bulk = 0;
		rows += ROWS;
	}
	is_int((int)(w.checkpoints - before), 0, "3 bulk commits (under 1024"
	    " pages): no checkpoint yet");
	for (int i = 0; i < 17; i++) {
		w.bulk = 1;
		ok_all &= commit_rows(db, ROWS) == 0;
		w.bulk = 0;
		rows += ROWS;
	}
	ok(ok_all, "20 bulk commits");
	ok(w.checkpoints - before >= 1 && w.checkpoints - before <= 8,
	    "20 bulk commits shared %lu checkpoints", w.checkpoints - before);

	/* Leave pages in the WAL: bulk commits until one does not
	 * checkpoint. */
	for (int i = 0; i < 10; i++) {
		before = w.checkpoints;
		w.bulk = 1;
		commit_rows(db, ROWS);
		w.bulk = 0;
		rows += ROWS;
		if (w.checkpoints == before)
			break;
	}
	before = w.checkpoints;
	ok(commit_rows(db, 1) == 0, "an ordinary commit of one row");
	rows += 1;
	is_int((int)(w.checkpoints - before), 1, "it checkpoints what the"
	    " bulk commits left");
	is_int((int)count_rows(), (int)rows, "a new connection reads every"
	    " row");

	sqlite3_close(db);
	snprintf(aux, sizeof aux, "%s-wal", path);
	unlink(aux);
	snprintf(aux, sizeof aux, "%s-shm", path);
	unlink(aux);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
