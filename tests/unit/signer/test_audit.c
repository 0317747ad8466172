/*
 * Unit tests of the audit trail: the chain function (common/auditchain.c)
 * against a vector computed with Python's hashlib, its verification over
 * an array of events for every kind of damage, and the journal's triggers
 * (signer/journal_audit.c) on a real SQLite file: every change appends an
 * event in its own transaction, a journal made fresh starts with
 * journal-created, a stock SQLite connection cannot change the audited
 * tables (no sf_chain), and a row of audit_events edited, deleted,
 * inserted or reordered behind the journal's back is named by
 * journal_audit_verify with its seq and what was done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "auditchain.h"
#include "err.h"
#include "journal.h"
#include "log.h"
#include "util.h"
#include "../../tap.h"

static char tmpdir[64];

/* ---- the chain over an array ---- */

#define NEV 6

typedef struct {
	audit_row *v;
	size_t n, i;
} arr;

static int
arr_next(void *a, audit_row *r)
{
	arr *x = a;

	if (x->i >= x->n)
		return 0;
	*r = x->v[x->i++];
	return 1;
}

static int
arr_find(void *a, const char *hash, int64_t *seq)
{
	arr *x = a;

	for (size_t i = 0; i < x->n; i++)
		if (strcmp(x->v[i].hash, hash) == 0) {
			*seq = x->v[i].seq;
			return 1;
		}
	return 0;
}

static int
arr_next_prev(void *a, int64_t seq, char prev[65])
{
	arr *x = a;

	for (size_t i = 0; i < x->n; i++)
		if (x->v[i].seq > seq) {
			memcpy(prev, x->v[i].prev, 65);
			return 1;
		}
	return 0;
}

static void
make_chain(audit_row *v, size_t n)
{
	static const char *kinds[] = { "journal-created", "ca-created",
	    "device-registered", "certificate-issued", "certificate-revoked",
	    "crl-signed" };
	char prev[65] = AUDIT_ZERO_HASH;

	for (size_t i = 0; i < n; i++) {
		v[i].seq = (int64_t)i + 1;
		v[i].at = 1700000000 + (int64_t)i;
		v[i].kind = kinds[i % 6];
		v[i].subject = "s";
		v[i].detail = "{\"n\":1}";
		memcpy(v[i].prev, prev, 65);
		audit_chain_hash(prev, v[i].seq, v[i].at, v[i].kind,
		    v[i].subject, v[i].detail, v[i].hash);
		memcpy(prev, v[i].hash, 65);
	}
}

static void
check_arr(audit_row *v, size_t n, int64_t bad, int damage, const char *what)
{
	arr x = { v, n, 0 };
	audit_source src = { &x, arr_next, arr_find, arr_next_prev, 0 };
	audit_report rep;

	is_int(audit_chain_verify(&src, 1, AUDIT_ZERO_HASH, &rep), 0,
	    "%s: the walk works", what);
	is_int((int)rep.first_bad, (int)bad, "%s: first bad seq (%s)", what,
	    rep.problem);
	is_str(audit_damage_name(rep.damage), audit_damage_name(damage),
	    "%s: named as %s", what, audit_damage_name(damage));
}

static void
test_chain(void)
{
	audit_row v[NEV], w[NEV + 1], t;
	char h[65];

	is_int(audit_chain_hash(AUDIT_ZERO_HASH, 1, 1700000000,
	    "journal-created", "journal", "{\"a\":1}", h), 0, "hash works");
	is_str(h, "70ce7eff2f9debfb11e32cf1131549f841f35fc8177ca916c5fac0195b3c"
	    "6516", "hash = SHA-256(prev \\n seq \\t at \\t kind \\t subject"
	    " \\t detail), as Python computes it");

	make_chain(v, NEV);
	check_arr(v, NEV, 0, AUDIT_INTACT, "intact");

	/* edited: a field changed, the hash left */
	make_chain(v, NEV);
	v[2].subject = "forged";
	check_arr(v, NEV, 3, AUDIT_EDITED, "detail edited");

	/* edited and its hash recomputed: the next one does not chain */
	make_chain(v, NEV);
	v[2].subject = "forged";
	audit_chain_hash(v[2].prev, 3, v[2].at, v[2].kind, v[2].subject,
	    v[2].detail, v[2].hash);
	check_arr(v, NEV, 3, AUDIT_EDITED, "edited, hash recomputed");

	/* its prev changed */
	make_chain(v, NEV);
	memset(v[3].prev, 'a', 64);
	check_arr(v, NEV, 4, AUDIT_EDITED, "prev edited");

	/* deleted: a gap */
	make_chain(v, NEV);
	memmove(&v[2], &v[3], 3 * sizeof v[0]);
	check_arr(v, NEV - 1, 3, AUDIT_DELETED, "deleted");

	/* deleted and renumbered */
	make_chain(v, NEV);
	memmove(&v[2], &v[3], 3 * sizeof v[0]);
	for (int i = 2; i < NEV - 1; i++)
		v[i].seq--;
	check_arr(v, NEV - 1, 3, AUDIT_DELETED, "deleted, renumbered");

	/* reordered: 3 and 4 swapped (seq swapped with them) */
	make_chain(v, NEV);
	t = v[2];
	v[2] = v[3];
	v[3] = t;
	v[2].seq = 3;
	v[3].seq = 4;
	check_arr(v, NEV, 3, AUDIT_REORDERED, "reordered");

	/* reordered: 3 moved to the end */
	make_chain(w, NEV);
	t = w[2];
	memmove(&w[2], &w[3], 3 * sizeof w[0]);
	w[NEV - 1] = t;
	w[NEV - 1].seq = NEV + 1;
	check_arr(w, NEV, 3, AUDIT_REORDERED, "moved to the end");

	/* inserted as 3, the rest renumbered, with a made-up hash */
	make_chain(w, NEV);
	memmove(&w[3], &w[2], (NEV - 2) * sizeof w[0]);
	for (int i = 3; i <= NEV; i++)
		w[i].seq++;
	w[2].kind = "certificate-revoked";
	memset(w[2].hash, 'b', 64);
	check_arr(w, NEV + 1, 3, AUDIT_INSERTED, "inserted, bad hash");

	/* inserted as 3 with a hash computed properly: 4 chains to 2 */
	make_chain(w, NEV);
	memmove(&w[3], &w[2], (NEV - 2) * sizeof w[0]);
	for (int i = 3; i <= NEV; i++)
		w[i].seq++;
	w[2].kind = "certificate-revoked";
	audit_chain_hash(w[2].prev, 3, w[2].at, w[2].kind, w[2].subject,
	    w[2].detail, w[2].hash);
	check_arr(w, NEV + 1, 3, AUDIT_INSERTED, "inserted, good hash");

	/* a partial export verifies from where it starts */
	{
		arr x = { v, NEV, 2 };
		audit_source src = { &x, arr_next, arr_find, arr_next_prev, 0 };
		audit_report rep;

		make_chain(v, NEV);
		is_int(audit_chain_verify(&src, 0, NULL, &rep), 0,
		    "partial: walk");
		ok(rep.first_bad == 0 && rep.events == NEV - 2 &&
		    rep.last_seq == NEV, "partial: intact from event 3 on");
	}
}

/* ---- the journal ---- */

static int
sql(const char *path, const char *q, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	rc = sqlite3_exec(db, q, NULL, NULL, &msg);
	if (err)
		snprintf(err, errlen, "%s", msg ? msg : "");
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static int64_t
sql_int(const char *path, const char *q)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void
fill_events(journal *j)
{
	journal_ca ca;
	journal_device d[2];
	journal_cert c;
	journal_crl crl;
	uint8_t k1[32], k2[32], kc[32], der[] = { 0x30, 0x03, 0x02, 0x01, 1 };
	int outcome[2], changed = 0;

	memset(&ca, 0, sizeof ca);
	ca.name = "root";
	ca.generation = "2026a";
	ca.role = 1;
	ca.state = 2;
	ca.key_label = "root-2026a";
	ca.key_type = 1;
	ca.subject = "/CN=Root";
	ca.path_len = -1;
	ca.created_at = 1700000000;
	ca.cert_der = der;
	ca.cert_len = sizeof der;
	is_int(journal_ca_insert(j, &ca), 0, "a CA");
	memset(k1, 1, 32);
	memset(k2, 2, 32);
	memset(kc, 3, 32);
	d[0] = (journal_device){ "1111", k1, "widgiot", "" };
	d[1] = (journal_device){ "2222", k2, "widgiot", "" };
	is_int(journal_device_register(j, d, 2, outcome), 0, "two devices");
	memset(&c, 0, sizeof c);
	c.ca_id = ca.id;
	c.serial = "0A";
	c.subject = "CN=1111";
	c.device_id = "1111";
	c.key_sha256 = kc;
	c.not_before = 1;
	c.not_after = 2000000000;
	c.issued_at = 1700000001;
	c.profile = "device:widgiot";
	c.der = der;
	c.der_len = sizeof der;
	is_int(journal_cert_record(j, &c), 0, "a certificate");
	is_int(journal_cert_revoke(j, ca.id, "0A", 1, 1700000002), 0,
	    "its revocation");
	memset(&crl, 0, sizeof crl);
	crl.crl_number = 1;
	crl.this_update = 1700000002;
	crl.next_update = 1700086402;
	crl.der = der;
	crl.der_len = sizeof der;
	is_int(journal_crl_put(j, ca.id, &crl, 1), 0, "a CRL");
	is_int(journal_device_set_state(j, "2222", 3, "lost", 1700000003,
	    &changed), 0,
	    "a device disabled");
}

static void
verify_copy(const char *base, const char *name, const char *tamper,
    int64_t bad, int damage)
{
	char path[300], cmd[700], why[256] = "", err[256] = "";
	journal *j = NULL;
	audit_report rep;
	int64_t cps = 0;

	snprintf(path, sizeof path, "%s/%s.db", tmpdir, name);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", base, path);
	if (system(cmd) != 0) {
		ok(0, "%s: copy", name);
		return;
	}
	is_int(sql(path, tamper, err, sizeof err), 0, "%s: tamper with a"
	    " stock SQLite connection (%s)", name, err);
	if (journal_open(path, &j, why, sizeof why) != 0) {
		ok(0, "%s: open (%s)", name, why);
		return;
	}
	is_int(journal_audit_verify(j, &rep, &cps), 0, "%s: verify works",
	    name);
	is_int((int)rep.first_bad, (int)bad, "%s: first broken link (%s)",
	    name, rep.problem);
	is_str(audit_damage_name(rep.damage), audit_damage_name(damage),
	    "%s: named as %s", name, audit_damage_name(damage));
	journal_close(j);
}

static void
test_journal(void)
{
	char path[300], why[256] = "", err[256] = "";
	journal *j = NULL;
	journal_audit_event *ev = NULL;
	journal_audit_checkpoint cp, *cv = NULL;
	audit_report rep;
	int64_t seq = 0, cps = -1;
	char head[65];
	size_t n = 0;
	uint8_t sig[] = { 1, 2, 3 };
	static const char *want[] = { "journal-created", "ca-created",
	    "device-registered", "device-registered", "certificate-issued",
	    "certificate-revoked", "crl-signed", "device-disabled" };
	const size_t nwant = sizeof want / sizeof want[0];

	snprintf(path, sizeof path, "%s/journal.db", tmpdir);
	if (journal_open(path, &j, why, sizeof why) != 0) {
		ok(0, "open (%s)", why);
		return;
	}
	fill_events(j);
	is_int(journal_audit_list(j, 0, 0, 100, &ev, &n), 0, "list events");
	is_int((int)n, (int)nwant, "one event per change, and the first");
	for (size_t i = 0; i < n && i < nwant; i++)
		is_str(ev[i].kind, want[i], "event %zu: %s %s %s", i + 1,
		    ev[i].kind, ev[i].subject, ev[i].detail);
	if (n >= 5)
		ok(strstr(ev[4].detail, "\"ca\":\"root/2026a\"") &&
		    strstr(ev[4].detail, "\"device\":\"1111\""),
		    "certificate-issued names its CA and device");
	journal_audit_events_free(ev, n);
	is_int(journal_audit_list(j, 3, 0, 2, &ev, &n), 0, "list a page");
	ok(n == 2 && ev[0].seq == 4 && ev[1].seq == 5, "after 3, 2 events");
	journal_audit_events_free(ev, n);
	is_int(journal_audit_head(j, &seq, head), 0, "head");
	is_int((int)seq, (int)nwant, "head is the last event");
	is_int(journal_audit_verify(j, &rep, &cps), 0, "verify");
	is_int((int)rep.first_bad, 0, "the chain is intact (%s)", rep.problem);
	is_int((int)rep.events, (int)nwant, "every event walked");
	memset(&cp, 0, sizeof cp);
	cp.seq = seq;
	memcpy(cp.head, head, 65);
	cp.at = 1700000005;
	cp.key_label = "audit";
	cp.signature = sig;
	cp.signature_len = sizeof sig;
	is_int(journal_audit_checkpoint_put(j, &cp), 0, "a checkpoint");
	is_int(journal_audit_checkpoint_put(j, &cp), 0, "the same again: kept"
	    " out");
	is_int(journal_audit_checkpoints(j, 0, -1, 10, &cv, &n), 0,
	    "read checkpoints");
	ok(n == 1 && cv[0].seq == seq && strcmp(cv[0].head, head) == 0 &&
	    cv[0].signature_len == 3, "one checkpoint, as written");
	journal_audit_checkpoints_free(cv, n);
	is_int(journal_audit_verify(j, &rep, &cps), 0, "verify again");
	ok(rep.first_bad == 0 && cps == 1, "intact, its checkpoint matches");
	journal_close(j);

	/* A stock connection has no sf_chain: it cannot change the tables. */
	ok(sql(path, "UPDATE devices SET state = 2 WHERE device_id = '2222'",
	    err, sizeof err) != 0 && strstr(err, "sf_") != NULL,
	    "a stock sqlite3 cannot change an audited table (%s)", err);
	is_int((int)sql_int(path, "SELECT state FROM devices WHERE device_id"
	    " = '2222'"), 3, "the device is still disabled");

	/* Tampering with audit_events, one row each time. */
	verify_copy(path, "edit", "UPDATE audit_events SET detail ="
	    " '{\"forged\":1}' WHERE seq = 5", 5, AUDIT_EDITED);
	verify_copy(path, "delete", "DELETE FROM audit_events WHERE seq = 4",
	    4, AUDIT_DELETED);
	verify_copy(path, "delete-last", "DELETE FROM audit_events WHERE seq ="
	    " 8", 8, AUDIT_DELETED);
	verify_copy(path, "insert-end", "INSERT INTO audit_events SELECT 9,"
	    " at, 'certificate-revoked', '0B', detail, hash, hash FROM"
	    " audit_events WHERE seq = 8", 9, AUDIT_INSERTED);
	verify_copy(path, "insert-middle", "UPDATE audit_events SET seq = -seq"
	    " WHERE seq >= 5; UPDATE audit_events SET seq = 1 - seq WHERE"
	    " seq < 0; INSERT INTO audit_events SELECT 5, at,"
	    " 'certificate-revoked', '0B', detail, prev, hash FROM"
	    " audit_events WHERE seq = 6", 5, AUDIT_INSERTED);
	verify_copy(path, "reorder", "UPDATE audit_events SET seq = -1 WHERE"
	    " seq = 5; UPDATE audit_events SET seq = 5 WHERE seq = 6;"
	    " UPDATE audit_events SET seq = 6 WHERE seq = -1", 5,
	    AUDIT_REORDERED);
	verify_copy(path, "checkpoint", "UPDATE audit_checkpoints SET head ="
	    " '00'", 8, AUDIT_CHECKPOINT);
}

static void
test_upgrade(void)
{
	char path[300], why[256] = "";
	journal *j = NULL;
	journal_audit_event *ev = NULL;
	size_t n = 0;

	snprintf(path, sizeof path, "%s/v3.db", tmpdir);
	/* A version 3 journal: today's schema without the audit. */
	if (journal_open(path, &j, why, sizeof why) != 0) {
		ok(0, "open (%s)", why);
		return;
	}
	journal_close(j);
	is_int(sql(path, "DROP TRIGGER audit_ca_created; DROP TRIGGER"
	    " audit_ca_changed; DROP TRIGGER audit_cert_issued; DROP TRIGGER"
	    " audit_cert_status; DROP TRIGGER audit_device_registered; DROP"
	    " TRIGGER audit_device_changed; DROP TRIGGER audit_crl_signed;"
	    " DROP TRIGGER audit_mfr_registered; DROP TRIGGER audit_mfr_crl;"
	    " DROP TABLE audit_events; DROP TABLE audit_head; DROP TABLE"
	    " audit_checkpoints; PRAGMA user_version = 3;", NULL, 0), 0,
	    "make it a version 3 journal");
	is_int((int)sql_int(path, "SELECT count(*) FROM sqlite_master WHERE"
	    " name LIKE 'audit%'"), 0, "nothing of the audit left in it");
	is_int(sql(path, "INSERT INTO cas (name, generation, role, state,"
	    " key_label, key_type, subject, created_at) VALUES ('root',"
	    " '2026a', 1, 2, 'root-2026a', 2, '/CN=Root', 1)", NULL, 0), 0,
	    "with a CA");
	is_int(journal_open(path, &j, why, sizeof why), 0, "it opens (%s)",
	    why);
	if (j == NULL)
		return;
	is_int((int)sql_int(path, "PRAGMA user_version"), 4, "version 4 now");
	is_int(journal_audit_list(j, 0, 0, 10, &ev, &n), 0, "list");
	ok(n == 1 && strcmp(ev[0].kind, "journal-upgraded") == 0 &&
	    strstr(ev[0].detail, "\"from_version\":3") &&
	    strstr(ev[0].detail, "\"cas\":1"), "the chain starts with"
	    " journal-upgraded, counting what was there (%s)",
	    n ? ev[0].detail : "");
	journal_audit_events_free(ev, n);
	journal_close(j);
}

int
main(void)
{
	char cmd[128];

	log_init("test_audit", LOG_LEVEL_WARN);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/sf-audit.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	test_chain();
	test_journal();
	test_upgrade();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
	return tap_done();
}
