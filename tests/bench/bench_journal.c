/*
 * bench-journal - what the audit trail's triggers cost per issued
 * certificate: journal_cert_record (one certificate per transaction, as
 * one Signer.Issue call alone gets it) with the triggers, then with them
 * dropped, alternately, in a journal of its own. Not a test.
 *
 *   bench-journal [DIR [N [ROUNDS [on|off]]]]   (default /dev/shm, 3000, 5)
 *
 * Prints the median microseconds per certificate of each and their ratio.
 * With on or off, only that journal is written: under valgrind
 * --tool=callgrind, the difference of the instruction counts of two runs
 * with different N is what N certificates cost, which repeats where wall
 * time does not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal.h"
#include "log.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
triggers(const char *path, int on)
{
	sqlite3 *db = NULL;
	int rc;

	(void)on;
	rc = sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db,
	    "DROP TRIGGER IF EXISTS audit_cert_issued", NULL, NULL,
	    NULL) == SQLITE_OK ? 0 : -1;
	sqlite3_close(db);
	return rc;
}

/* A journal at path with one CA; *ca_id set. */
static journal *
open_one(const char *path, int on, int64_t *ca_id)
{
	char why[256];
	journal *j = NULL;
	journal_ca ca;

	if (journal_open(path, &j, why, sizeof why) != 0) {
		fprintf(stderr, "bench-journal: %s\n", why);
		exit(1);
	}
	if (!on) {
		journal_close(j);
		if (triggers(path, 0) != 0 || journal_open(path, &j, why,
		    sizeof why) != 0) {
			fprintf(stderr, "bench-journal: cannot drop the"
			    " trigger\n");
			exit(1);
		}
	}
	memset(&ca, 0, sizeof ca);
	ca.name = "root";
	ca.generation = "2026a";
	ca.key_label = "root-2026a";
	ca.role = 1;
	ca.state = 2;
	ca.key_type = 1;
	ca.subject = "/CN=Root";
	ca.path_len = -1;
	ca.created_at = 1;
	if (journal_ca_insert(j, &ca) != 0) {
		fprintf(stderr, "bench-journal: CA insert failed\n");
		exit(1);
	}
	*ca_id = ca.id;
	return j;
}

/* One round: n certificates; microseconds per certificate. */
static double
round_us(journal *j, int64_t ca_id, int n, int *serial)
{
	static uint8_t der[600], key[32];
	char s[40];
	journal_cert c;
	double t0;

	memset(&c, 0, sizeof c);
	c.ca_id = ca_id;
	c.subject = "CN=1111";
	c.device_id = "1111";
	c.key_sha256 = key;
	c.not_after = 2000000000;
	c.profile = "device:widgiot";
	c.der = der;
	c.der_len = sizeof der;
	t0 = now_us();
	for (int i = 0; i < n; i++) {
		snprintf(s, sizeof s, "%032X", (*serial)++);
		c.serial = s;
		if (journal_cert_record(j, &c) != 0) {
			fprintf(stderr, "bench-journal: record failed\n");
			exit(1);
		}
	}
	return (now_us() - t0) / n;
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/dev/shm";
	int n = argc > 2 ? atoi(argv[2]) : 3000;
	int rounds = argc > 3 ? atoi(argv[3]) : 5, serial = 1;
	const char *only = argc > 4 ? argv[4] : "";
	char pon[512], poff[512];
	double on[64], off[64];
	journal *jon, *joff;
	int64_t id_on, id_off;

	if (rounds > 64)
		rounds = 64;
	log_init("bench-journal", LOG_LEVEL_WARN);
	snprintf(pon, sizeof pon, "%s/bench-journal-on-%d.db", dir, getpid());
	snprintf(poff, sizeof poff, "%s/bench-journal-off-%d.db", dir,
	    getpid());
	/* Both made by this code; "off" loses the trigger on certs. */
	jon = open_one(pon, 1, &id_on);
	joff = open_one(poff, 0, &id_off);
	for (int r = 0; r < rounds; r++) {
		on[r] = strcmp(only, "off") == 0 ? 0 :
		    round_us(jon, id_on, n, &serial);
		off[r] = strcmp(only, "on") == 0 ? 0 :
		    round_us(joff, id_off, n, &serial);
		printf("round %d: with triggers %.1f us, without %.1f us\n", r + 1,
		    on[r], off[r]);
	}
	qsort(on, (size_t)rounds, sizeof on[0], cmp);
	qsort(off, (size_t)rounds, sizeof off[0], cmp);
	printf("median us per certificate: with %.1f, without %.1f; +%.1f us"
	    " (%.0f %%)\n", on[rounds / 2], off[rounds / 2],
	    on[rounds / 2] - off[rounds / 2],
	    100 * (on[rounds / 2] / off[rounds / 2] - 1));
	journal_close(jon);
	journal_close(joff);
	for (const char *p = pon; p; p = p == pon ? poff : NULL) {
		char q[600];

		unlink(p);
		snprintf(q, sizeof q, "%s-wal", p);
		unlink(q);
		snprintf(q, sizeof q, "%s-shm", p);
		unlink(q);
	}
	return 0;
}
