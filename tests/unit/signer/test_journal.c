/*
 * Unit tests of signer/journal.c on a real SQLite file in a temporary
 * directory: the pragmas the durability promise rests on (WAL,
 * synchronous=FULL, read on the journal's own connections), CAs and their
 * uniqueness rules, group commit from 8 threads, a duplicate serial inside
 * a batch (refused alone, the rest of the batch committed), certificate
 * lookups, listing, counting and revocation, device registration outcomes
 * (also within one batch), and that a reopened journal keeps everything.
 * A CA's generations in a journal of their own: a rotation inserts the
 * new one and retires the old one in one transaction (or neither), a
 * state change sets its time, a CA's revocation takes its own
 * certificate along, and batches of revocations stop at their size and
 * count what is left.
 *
 * Environment: SF_JOURNAL_THREADS, SF_JOURNAL_RECORDS (optional: the
 * concurrency test's threads and records per thread, default 8 x 500).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <sqlite3.h>

#include "err.h"
#include "journal.h"
#include "journal_int.h"   /* the writer's walckpt */
#include "log.h"
#include "util.h"
#include "../../tap.h"

/* common.proto numbers. */
enum { ROLE_ROOT = 1, ROLE_INTERMEDIATE = 2, ROLE_ISSUING = 3 };
enum { ST_PENDING = 1, ST_ACTIVE = 2, ST_RETIRING = 3, ST_RETIRED = 4,
    ST_REVOKED = 5 };
enum { CERT_ACTIVE = 1, CERT_REVOKED = 4, DEVICE_ACTIVE = 2 };

static char tmpdir[64], dbpath[128];

/* ---- the journal's own SQLite connections ---- */

/*
 * synchronous is a property of a connection, not of the file, so it is
 * read on the connections journal_open() makes: an auto extension sees
 * every connection the process opens.
 */
static sqlite3 *seen_db[8];
static int nseen;

static int
capture_db(sqlite3 *db, const char **err, const void *api)
{
	(void)err;
	(void)api;
	if (nseen < (int)(sizeof seen_db / sizeof seen_db[0]))
		seen_db[nseen++] = db;
	return SQLITE_OK;
}

static char *
pragma_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	char *r = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		r = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return r;
}

/* The details of EXPLAIN QUERY PLAN for sql, joined; NULL on error. */
static char *
query_plan(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	char *q, buf[1024] = "";

	if (asprintf(&q, "EXPLAIN QUERY PLAN %s", sql) < 0)
		return NULL;
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
		free(q);
		return NULL;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		strncat(buf, (const char *)sqlite3_column_text(st, 3),
		    sizeof buf - strlen(buf) - 2);
		strncat(buf, ";", sizeof buf - strlen(buf) - 1);
	}
	sqlite3_finalize(st);
	free(q);
	return strdup(buf);
}

static long long
query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long r = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		r = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return r;
}

static sqlite3 *wdb;       /* the journal's writing connection */
static atomic_int commits;

static int
count_commit(void *arg)
{
	(void)arg;
	atomic_fetch_add(&commits, 1);
	return 0;
}

static journal *
open_journal(const char *what)
{
	char why[256] = "";
	journal *j = NULL;
	int rc;

	nseen = 0;
	sqlite3_auto_extension((void (*)(void))capture_db);
	rc = journal_open(dbpath, &j, why, sizeof why);
	sqlite3_cancel_auto_extension((void (*)(void))capture_db);
	is_int(rc, 0, "%s: journal_open (%s)", what, why);
	wdb = NULL;
	for (int i = 0; i < nseen; i++)
		if (sqlite3_db_readonly(seen_db[i], "main") == 0)
			wdb = seen_db[i];
	return j;
}

static void
test_pragmas(void)
{
	char why[256] = "", bad[200];
	journal *j = NULL;
	sqlite3 *db = NULL;
	char *s;
	int ro = 0, rw = 0;

	j = open_journal("fresh file");
	if (j == NULL)
		return;
	is_int(nseen, 2, "journal_open makes two connections");
	for (int i = 0; i < nseen; i++) {
		if (sqlite3_db_readonly(seen_db[i], "main") == 1)
			ro++;
		else
			rw++;
	}
	is_int(rw, 1, "one writing connection");
	is_int(ro, 1, "one read-only connection");
	if (wdb) {
		s = pragma_text(wdb, "PRAGMA journal_mode");
		is_str(s, "wal", "writing connection: journal_mode=WAL");
		free(s);
		is_int(query_int(wdb, "PRAGMA synchronous"), 2,
		    "writing connection: synchronous=FULL (2)");
		is_int(query_int(wdb, "PRAGMA foreign_keys"), 1,
		    "writing connection: foreign_keys=ON");
	}
	journal_close(j);

	/* An outside connection sees the file in WAL mode, with the schema. */
	ok(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK, "sqlite3 opens the journal file");
	s = pragma_text(db, "PRAGMA journal_mode");
	is_str(s, "wal", "the file is in WAL mode (persistent)");
	free(s);
	is_int(query_int(db, "PRAGMA user_version"), 4, "schema version 4");
	is_int(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type ="
	    " 'table' AND name IN ('cas', 'certs', 'devices')"), 3,
	    "tables cas, certs, devices");
	is_int(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type ="
	    " 'index' AND name = 'certs_device'"), 0,
	    "no index certs_device (certs_live begins with device_id)");
	s = query_plan(db, "SELECT serial FROM certs WHERE device_id = 'd'"
	    " AND status IN (1, 2) AND not_after > 0");
	ok(s && strstr(s, "certs_live") != NULL, "a device's live certificates"
	    " are read through certs_live (%s)", s ? s : "?");
	free(s);
	sqlite3_close(db);

	/* A journal made before 2026-12-06 has certs_device: open drops it. */
	db = NULL;
	if (sqlite3_open(dbpath, &db) == SQLITE_OK)
		ok(sqlite3_exec(db, "CREATE INDEX certs_device ON"
		    " certs(device_id)", NULL, NULL, NULL) == SQLITE_OK,
		    "an old journal's certs_device made again");
	sqlite3_close(db);
	if ((j = open_journal("journal with certs_device")) != NULL) {
		if (wdb)
			is_int(query_int(wdb, "SELECT count(*) FROM"
			    " sqlite_master WHERE name = 'certs_device'"), 0,
			    "journal_open drops certs_device");
		journal_close(j);
	}

	snprintf(bad, sizeof bad, "%s/no/such/dir/journal.db", tmpdir);
	j = NULL;
	is_int(journal_open(bad, &j, why, sizeof why), SF_EDB,
	    "journal in a missing directory: SF_EDB");
	ok(j == NULL, "no journal");
	ok(why[0] != '\0', "  and why says so (%s)", why);
	journal_close(NULL);
	ok(1, "journal_close(NULL) is harmless");
}

/* ---- CAs ---- */

static uint8_t root_der[] = { 0x30, 0x03, 0x02, 0x01, 0x07 };

static void
fill_ca(journal_ca *ca, const char *name, const char *gen, int role,
    const char *label)
{
	memset(ca, 0, sizeof *ca);
	ca->name = (char *)name;
	ca->generation = (char *)gen;
	ca->role = role;
	ca->state = ST_ACTIVE;
	ca->key_label = (char *)label;
	ca->key_type = 1;
	ca->subject = "/C=US/O=Org/CN=x";
	ca->path_len = -1;
	ca->created_at = 1700000000;
}

static int64_t root_id, inter_id, pend_id, dup_id;

static int
same_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Insert a root, an intermediate, a pending issuing CA and a second
 * root generation (sets root_id, inter_id, pend_id, dup_id); root and
 * inter keep what was inserted. */
static void
insert_cas(journal *j, journal_ca *root, journal_ca *inter)
{
	journal_ca pend, dup;

	fill_ca(root, "root", "2026a", ROLE_ROOT, "root-2026a");
	root->key_type = 2;
	root->subject = "/C=US/O=Automatra/CN=Automatra Root CA";
	root->serial = "0A0B";
	root->not_before = 1700000000;
	root->not_after = 1900000000;
	root->cert_der = root_der;
	root->cert_len = sizeof root_der;
	root->crl_url = "http://crl.example.net/root.crl";
	root->ocsp_url = "http://ocsp.example.net/root";
	root->ca_issuers_url = "http://ca.example.net/root.crt";
	is_int(journal_ca_insert(j, root), 0, "insert root CA");
	ok(root->id > 0, "root gets an id (%lld)", (long long)root->id);
	root_id = root->id;

	fill_ca(inter, "widgiot", "2026a", ROLE_INTERMEDIATE,
	    "intermediate-widgiot-2026a");
	inter->parent_id = root_id;
	inter->product_line = "widgiot";
	inter->path_len = 1;
	inter->permitted = "DNS:.widgiot.example.net\nIP:10.0.0.0/255.0.0.0";
	inter->excluded = "DNS:.bad.example.net";
	is_int(journal_ca_insert(j, inter), 0, "insert intermediate CA");
	inter_id = inter->id;
	ok(inter_id > root_id, "ids grow");

	fill_ca(&pend, "us-east-1.widgiot", "2026a", ROLE_ISSUING,
	    "issuing-widgiot-us-east-1-2026a");
	pend.parent_id = inter_id;
	pend.product_line = "widgiot";
	pend.region = "us-east-1";
	pend.state = ST_PENDING;
	pend.external_parent = 1;
	is_int(journal_ca_insert(j, &pend), 0, "insert pending issuing CA");
	pend_id = pend.id;

	fill_ca(&dup, "root", "2026a", ROLE_ROOT, "root-other-label");
	dup.id = 0;
	is_int(journal_ca_insert(j, &dup), SF_EEXIST,
	    "duplicate (name, generation): SF_EEXIST");
	fill_ca(&dup, "root", "2026b", ROLE_ROOT, "root-2026a");
	is_int(journal_ca_insert(j, &dup), SF_EEXIST,
	    "duplicate key label: SF_EEXIST");
	fill_ca(&dup, "root", "2026b", ROLE_ROOT, "root-2026b");
	dup.state = ST_PENDING;
	is_int(journal_ca_insert(j, &dup), 0,
	    "same name, another generation and label: inserted");
	dup_id = dup.id;
}

/* The CAs read back, each field as inserted, in creation order. */
static void
check_ca_rows(const journal_ca *v, const journal_ca *root,
    const journal_ca *inter)
{
	is_int(v[0].id, root_id, "in creation order: the root");
	is_int(v[1].id, inter_id, "in creation order: the"
	    " intermediate");
	is_int(v[2].id, pend_id, "in creation order: the pending CA");
	is_int(v[3].id, dup_id, "in creation order: the second"
	    " generation");
	is_str(v[0].name, "root", "root: name");
	is_str(v[0].generation, "2026a", "root: generation");
	is_int(v[0].role, ROLE_ROOT, "root: role");
	is_int(v[0].parent_id, 0, "root: no parent (0)");
	is_int(v[0].key_type, 2, "root: key type");
	is_str(v[0].key_label, "root-2026a", "root: key label");
	is_str(v[0].subject, root->subject, "root: subject");
	is_str(v[0].serial, "0A0B", "root: serial");
	is_int(v[0].not_before, 1700000000, "root: not_before");
	is_int(v[0].not_after, 1900000000, "root: not_after");
	is_int(v[0].path_len, -1, "root: path_len -1");
	is_int(v[0].cert_len, sizeof root_der, "root: certificate"
	    " length");
	ok(v[0].cert_der ? memcmp(v[0].cert_der, root_der,
	    v[0].cert_len) == 0 : 0, "root: certificate bytes");
	is_str(v[0].crl_url, root->crl_url, "root: CRL URL");
	is_str(v[0].ocsp_url, root->ocsp_url, "root: OCSP URL");
	is_str(v[0].ca_issuers_url, root->ca_issuers_url,
	    "root: caIssuers URL");
	is_str(v[0].product_line, "", "root: NULL product line reads as \"\"");
	is_int(v[0].created_at, 1700000000, "root: created_at");
	is_int(v[0].crl_number, 0, "root: CRL number starts at 0");
	is_int(v[1].parent_id, root_id, "intermediate: parent id");
	is_int(v[1].path_len, 1, "intermediate: path_len");
	is_str(v[1].permitted, inter->permitted, "intermediate: permitted");
	is_str(v[1].excluded, inter->excluded, "intermediate: excluded");
	is_str(v[2].region, "us-east-1", "issuing: region");
	is_int(v[2].state, ST_PENDING, "issuing: pending");
	is_int(v[2].external_parent, 1, "issuing: external parent");
	ok(v[2].cert_der == NULL, "pending CA has no certificate");
	is_int(v[2].cert_len, 0, "  and no certificate length");
	is_str(v[2].serial, "", "pending CA has no serial");
}

/* journal_ca_copy is deep, and journal_ca_fini clears what it frees. */
static void
check_ca_copy(const journal_ca *v)
{
	journal_ca cp, empty;

	memset(&cp, 0xa5, sizeof cp);
	is_int(journal_ca_copy(&cp, &v[1]), 0, "copy a CA");
	is_int(cp.id, v[1].id, "the copy: id");
	ok(same_str(cp.name, v[1].name), "the copy: name equal");
	ok(cp.name != v[1].name, "the copy: name copied (deep)");
	ok(same_str(cp.permitted, v[1].permitted),
	    "the copy: permitted equal");
	ok(cp.permitted != v[1].permitted,
	    "the copy: permitted copied (deep)");
	is_int(cp.parent_id, v[1].parent_id, "the copy: parent_id");
	is_int(cp.path_len, 1, "the copy: path_len");
	journal_ca_fini(&cp);
	is_int(journal_ca_copy(&cp, &v[0]), 0, "copy the root");
	ok(cp.cert_der != NULL, "the root's copy has a certificate");
	ok(cp.cert_der != v[0].cert_der, "  copied (deep)");
	is_int(cp.cert_len, v[0].cert_len, "  of the same length");
	ok(cp.cert_der ? memcmp(cp.cert_der, v[0].cert_der,
	    cp.cert_len) == 0 : 0, "  and the same bytes");
	journal_ca_fini(&cp);
	ok(cp.name == NULL, "journal_ca_fini clears the name");
	ok(cp.cert_der == NULL, "journal_ca_fini clears the"
	    " certificate");
	journal_ca_fini(&cp);
	journal_ca_fini(NULL);
	ok(1, "journal_ca_fini twice and on NULL is harmless");

	/* A copy of a struct with NULL strings gets empty strings. */
	memset(&empty, 0, sizeof empty);
	is_int(journal_ca_copy(&cp, &empty), 0, "copy a CA with NULL fields");
	is_str(cp.name, "", "a NULL name becomes \"\"");
	is_str(cp.external_chain, "", "a NULL chain becomes \"\"");
	ok(cp.cert_der == NULL, "a NULL certificate stays NULL");
	journal_ca_fini(&cp);
}

/* Setting a CA's certificate and state; CRL numbers per CA. */
static void
update_cas(journal *j)
{
	journal_ca *v = NULL;
	size_t n = 0;
	int64_t num;

	/* Certificate and state of the pending CA. */
	is_int(journal_ca_set_cert(j, pend_id, root_der, sizeof root_der,
	    "ABCDEF", 10, 20, ST_ACTIVE, "-----BEGIN CERTIFICATE-----\n", 0),
	    0, "set the pending CA's certificate");
	is_int(journal_ca_set_cert(j, pend_id, root_der, 3, "ABCDEF01", 11, 21,
	    ST_ACTIVE, NULL, 0), 0, "set it again without a chain");
	is_int(journal_ca_set_state(j, inter_id, ST_RETIRING, 30, 0), 0,
	    "set the intermediate retiring");
	is_int(journal_ca_set_state(j, 99999, ST_RETIRING, 30, 0), SF_ENOTFOUND,
	    "set state of an unknown CA: SF_ENOTFOUND");
	is_int(journal_ca_set_cert(j, 99999, root_der, 3, "00", 1, 2,
	    ST_ACTIVE, NULL, 0), SF_ENOTFOUND,
	    "set certificate of an unknown CA: SF_ENOTFOUND");
	if (journal_ca_list(j, &v, &n) == 0 && n == 4) {
		is_int(v[2].cert_len, 3, "certificate replaced: length");
		ok(v[2].cert_der ? memcmp(v[2].cert_der, root_der, 3) == 0 :
		    0, "certificate replaced: bytes");
		is_str(v[2].serial, "ABCDEF01", "serial set");
		is_int(v[2].not_before, 11, "notBefore set");
		is_int(v[2].not_after, 21, "notAfter set");
		is_int(v[2].state, ST_ACTIVE, "state set with the certificate");
		is_str(v[2].external_chain, "-----BEGIN CERTIFICATE-----\n",
		    "a NULL chain keeps the chain set before");
		is_int(v[1].state, ST_RETIRING, "intermediate is retiring");
		is_int(v[0].state, ST_ACTIVE, "root untouched");
	} else
		ok(0, "list CAs again");
	journal_ca_list_free(v, n);

	for (int64_t want = 1; want <= 3; want++) {
		is_int(journal_ca_next_crl_number(j, root_id, &num), 0,
		    "next CRL number of root");
		is_int(num, want, "CRL number %lld", (long long)want);
	}
	is_int(journal_ca_next_crl_number(j, inter_id, &num), 0,
	    "next CRL number of the intermediate");
	is_int(num, 1, "each CA counts its own CRLs");
	is_int(journal_ca_next_crl_number(j, 99999, &num), SF_ENOTFOUND,
	    "CRL number of an unknown CA: SF_ENOTFOUND");
}

static void
test_cas(journal *j)
{
	journal_ca root, inter, *v = NULL;
	size_t n = 0;

	insert_cas(j, &root, &inter);
	is_int(journal_ca_list(j, &v, &n), 0, "list CAs");
	is_int(n, 4, "four CAs");
	if (n == 4) {
		check_ca_rows(v, &root, &inter);
		check_ca_copy(v);
	}
	journal_ca_list_free(v, n);
	update_cas(j);
}

/* ---- certificates ---- */

struct rec {
	journal_cert c;
	char serial[40], subject[64], device[32];
	uint8_t fp[32];
	uint8_t der[48];
};

static void
fill_rec(struct rec *r, int64_t ca_id, int group, int i)
{
	memset(r, 0, sizeof *r);
	snprintf(r->serial, sizeof r->serial, "%02X%06X%024X", group, i, 0);
	snprintf(r->subject, sizeof r->subject, "/O=Org/CN=dev-%d-%d", group,
	    i);
	snprintf(r->device, sizeof r->device, "dev-%d-%d", group, i);
	for (int k = 0; k < 32; k++)
		r->fp[k] = (uint8_t)(group * 31 + i * 7 + k);
	memset(r->der, group, sizeof r->der);
	memcpy(r->der, &i, sizeof i);
	r->c.ca_id = ca_id;
	r->c.serial = r->serial;
	r->c.subject = r->subject;
	r->c.device_id = r->device;
	r->c.key_sha256 = r->fp;
	r->c.not_before = 1000 + i;
	r->c.not_after = 2000 + i;
	r->c.issued_at = 3000 + i;
	r->c.requester = "authz";
	r->c.profile = "device:widgiot";
	r->c.enrollment_id = "enr-1";
	r->c.replaces_serial = "";
	r->c.der = r->der;
	r->c.der_len = sizeof r->der;
}

struct worker {
	journal *j;
	int group, n;
	int fails;
	int dup_every;          /* also record a known serial every this many */
	int dups, dup_eexist;
	pthread_t th;
};

static struct rec known;   /* recorded before the threads start */

static void *
worker_main(void *p)
{
	struct worker *w = p;
	struct rec r, d;

	for (int i = 0; i < w->n; i++) {
		fill_rec(&r, root_id, w->group, i);
		if (journal_cert_record(w->j, &r.c) != 0)
			w->fails++;
		if (w->dup_every && i % w->dup_every == 0) {
			d = known;
			d.c.serial = d.serial;
			d.c.subject = "/CN=impostor";
			d.c.key_sha256 = d.fp;
			d.c.der = d.der;
			w->dups++;
			if (journal_cert_record(w->j, &d.c) == SF_EEXIST)
				w->dup_eexist++;
		}
	}
	return NULL;
}

static int
all_present(journal *j, int group, int n)
{
	journal_cert_row row;
	int missing = 0;

	for (int i = 0; i < n; i++) {
		struct rec r;

		fill_rec(&r, root_id, group, i);
		if (journal_cert_get(j, r.serial, root_id, &row) != 0) {
			missing++;
			continue;
		}
		if (strcmp(row.subject, r.subject) != 0 ||
		    memcmp(row.key_sha256, r.fp, 32) != 0 ||
		    row.der_len != sizeof r.der ||
		    memcmp(row.der, r.der, sizeof r.der) != 0)
			missing++;
		journal_cert_row_fini(&row);
	}
	return missing == 0;
}

static void
test_group_commit(journal *j)
{
	const char *e1 = getenv("SF_JOURNAL_THREADS"), *e2 =
	    getenv("SF_JOURNAL_RECORDS");
	int nth = e1 ? atoi(e1) : 8, per = e2 ? atoi(e2) : 500, fails = 0,
	    present = 1, dups = 0, eexist = 0;
	struct worker w[16];
	journal_cert_row row;
	int64_t cnt = 0, t0;

	if (nth < 1 || nth > 16)
		nth = 8;
	fill_rec(&known, root_id, 0xEE, 1);
	known.c.subject = "/CN=original";
	is_int(journal_cert_record(j, &known.c), 0, "record one certificate");

	if (wdb)
		sqlite3_commit_hook(wdb, count_commit, NULL);
	atomic_store(&commits, 0);
	t0 = sf_mono_ms();
	for (int i = 0; i < nth; i++) {
		w[i] = (struct worker){ j, i + 1, per, 0, 0, 0, 0, 0 };
		/* Half of the threads also try the known serial again. */
		if (i % 2)
			w[i].dup_every = 25;
		pthread_create(&w[i].th, NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < nth; i++) {
		pthread_join(w[i].th, NULL);
		fails += w[i].fails;
		dups += w[i].dups;
		eexist += w[i].dup_eexist;
	}
	if (wdb)
		sqlite3_commit_hook(wdb, NULL, NULL);
	tap_diag("%d x %d records in %lld ms, %d commits", nth, per,
	    (long long)(sf_mono_ms() - t0), atomic_load(&commits));
	is_int(fails, 0, "%d threads x %d records: every journal_cert_record"
	    " returns 0", nth, per);
	is_int(eexist, dups, "and each of the %d concurrent duplicates of a"
	    " known serial returns SF_EEXIST", dups);
	if (wdb) {
		ok(atomic_load(&commits) > 0, "the records were committed");
		ok(atomic_load(&commits) < nth * per + dups, "commits are"
		    " grouped (%d commits for %d records)",
		    atomic_load(&commits), nth * per + dups);
	}
	for (int i = 0; i < nth; i++)
		present &= all_present(j, i + 1, per);
	ok(present, "every record is there afterwards, byte for byte");
	is_int(journal_cert_count(j, root_id, &cnt), 0, "count");
	is_int(cnt, (int64_t)nth * per + 1, "and the count is exact");
	is_int(journal_cert_get(j, known.serial, root_id, &row), 0,
	    "the known serial is there");
	is_str(row.subject, "/CN=original", "with its original row");
	journal_cert_row_fini(&row);
}

/*
 * One batch for certain: an outside connection holds the write lock, so
 * the caller leading the commit waits in BEGIN IMMEDIATE with its first
 * record while the others queue up behind it; they become the next batch, a duplicate
 * among them.
 */
struct one {
	journal *j;
	struct rec r;
	int rc;
	pthread_t th;
};

static void *
one_main(void *p)
{
	struct one *o = p;

	o->rc = journal_cert_record(o->j, &o->r.c);
	return NULL;
}

static void
test_batch_duplicate(journal *j)
{
	enum { N = 12, DUP = 6, TWIN = 9 };
	struct one o[N];
	sqlite3 *lk = NULL;
	int good = 1, ncommits;
	int64_t before = 0, after = 0;
	journal_cert_row row;

	journal_cert_count(j, 0, &before);
	if (sqlite3_open_v2(dbpath, &lk, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK || sqlite3_exec(lk, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL) != SQLITE_OK) {
		ok(0, "an outside connection takes the write lock");
		sqlite3_close(lk);
		return;
	}
	if (wdb)
		sqlite3_commit_hook(wdb, count_commit, NULL);
	atomic_store(&commits, 0);
	for (int i = 0; i < N; i++) {
		o[i].j = j;
		o[i].rc = 99;
		fill_rec(&o[i].r, root_id, 0x70, i);
		if (i == DUP) {
			/* A serial the journal has already. */
			o[i].r.c.serial = known.serial;
		}
		if (i == TWIN) {
			/* A serial another record of the same batch uses. */
			snprintf(o[i].r.serial, sizeof o[i].r.serial, "%s",
			    o[TWIN - 1].r.serial);
		}
		pthread_create(&o[i].th, NULL, one_main, &o[i]);
		/* The first one is taken alone by the writer, which then
		 * waits for the lock; the others queue. */
		usleep(i == 0 ? 100000 : 10000);
	}
	usleep(300000);
	sqlite3_exec(lk, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(lk);
	for (int i = 0; i < N; i++)
		pthread_join(o[i].th, NULL);
	if (wdb)
		sqlite3_commit_hook(wdb, NULL, NULL);
	ncommits = atomic_load(&commits);
	is_int(o[DUP].rc, SF_EEXIST, "a known serial in a batch: SF_EEXIST");
	is_int(o[TWIN].rc, SF_EEXIST,
	    "the second of two equal serials in one batch: SF_EEXIST");
	for (int i = 0; i < N; i++)
		if (i != DUP && i != TWIN && o[i].rc != 0)
			good = 0;
	ok(good, "the other %d records of the batch return 0", N - 2);
	/* Two if the writer took the first record alone (the usual case),
	 * one if the others were queued before it looked. */
	if (wdb)
		ok(ncommits == 1 || ncommits == 2, "all of it in at most two"
		    " commits (%d): the rest was one batch", ncommits);
	journal_cert_count(j, 0, &after);
	is_int(after - before, N - 2, "exactly those %d records were added",
	    N - 2);
	good = 1;
	for (int i = 0; i < N; i++) {
		if (i == DUP || i == TWIN)
			continue;
		if (journal_cert_get(j, o[i].r.serial, root_id, &row) != 0) {
			good = 0;
			continue;
		}
		good &= strcmp(row.subject, o[i].r.subject) == 0;
		journal_cert_row_fini(&row);
	}
	ok(good, "and each of them is in the journal");
	is_int(journal_cert_get(j, o[TWIN - 1].r.serial, root_id, &row), 0,
	    "the first of the twins");
	is_str(row.subject, o[TWIN - 1].r.subject, "keeps its own row");
	journal_cert_row_fini(&row);
}

static void
test_record_errors(journal *j)
{
	journal_cert_row row;
	struct rec r;

	/* Before the fix every constraint failure read as "serial taken". */
	fill_rec(&r, 999999, 0x71, 1);
	is_int(journal_cert_record(j, &r.c), SF_EDB, "a certificate of an"
	    " unknown CA: SF_EDB, not SF_EEXIST (its serial is not taken)");
	fill_rec(&r, root_id, 0x71, 2);
	r.c.der = NULL;
	r.c.der_len = 0;
	is_int(journal_cert_record(j, &r.c), SF_EDB,
	    "a certificate without DER: SF_EDB, not SF_EEXIST");
	is_int(journal_cert_get(j, r.serial, 0, &row), SF_ENOTFOUND,
	    "and neither was stored");
	fill_rec(&r, inter_id, 0x71, 3);
	is_int(journal_cert_record(j, &r.c), 0, "the same serial space in"
	    " another CA is separate");
	fill_rec(&r, root_id, 0x71, 3);
	is_int(journal_cert_record(j, &r.c), 0,
	    "so the root may use the intermediate's serial");
}

static int
collect_revoked(const char *serial, int64_t when, int reason, void *arg)
{
	char *buf = arg;
	char line[96];

	snprintf(line, sizeof line, "%s@%lld/%d;", serial, (long long)when,
	    reason);
	strcat(buf, line);
	return 0;
}

static int
stop_revoked(const char *serial, int64_t when, int reason, void *arg)
{
	(*(int *)arg)++;
	return SF_EINTERNAL;
}

/* Look-ups of a by serial, with and without its CA. */
static void
check_cert_get(journal *j, const struct rec *a)
{
	journal_cert_row row;

	is_int(journal_cert_get(j, a->serial, inter_id, &row), 0, "get a");
	is_int(row.ca_id, inter_id, "a: CA id");
	is_str(row.ca_name, "widgiot", "a: CA name from the CA row");
	is_str(row.serial, a->serial, "a: serial");
	is_str(row.subject, a->subject, "a: subject");
	is_str(row.device_id, "widget-1", "a: device id");
	ok(memcmp(row.key_sha256, a->fp, 32) == 0, "a: key fingerprint");
	is_int(row.not_before, 1001, "a: notBefore");
	is_int(row.not_after, 2001, "a: notAfter");
	is_int(row.issued_at, 3001, "a: issued_at");
	is_str(row.requester, "authz", "a: requester");
	is_str(row.profile, "device:widgiot", "a: profile");
	is_str(row.enrollment_id, "enr-1", "a: enrollment id");
	is_int(row.status, CERT_ACTIVE, "a: active");
	is_int(row.der_len, sizeof a->der, "a: DER length");
	ok(row.der ? memcmp(row.der, a->der, row.der_len) == 0 : 0,
	    "a: DER bytes");
	journal_cert_row_fini(&row);
	is_int(journal_cert_get(j, a->serial, 0, &row), 0, "get a in any CA");
	is_int(row.ca_id, inter_id, "found in its CA");
	journal_cert_row_fini(&row);
	is_int(journal_cert_get(j, a->serial, root_id, &row), SF_ENOTFOUND,
	    "get a in another CA: SF_ENOTFOUND");
	is_int(journal_cert_get(j, "DEADBEEF", 0, &row), SF_ENOTFOUND,
	    "unknown serial: SF_ENOTFOUND");
}

/* Counting and listing, by CA, by device, in pages. */
static void
check_cert_lists(journal *j, const struct rec *a, const struct rec *b,
    const struct rec *c)
{
	journal_cert_row *v = NULL;
	size_t n = 0;
	int64_t cnt;

	is_int(journal_cert_count(j, inter_id, &cnt), 0, "count the"
	    " intermediate's certificates");
	is_int(cnt, 4, "four (three here, one from the serial-space test)");

	is_int(journal_cert_list(j, inter_id, "widget-1", "", 10, &v, &n), 0,
	    "list by CA and device");
	is_int(n, 2, "widget-1 has two certificates");
	if (n == 2) {
		is_str(v[0].serial, a->serial, "serial order: a first");
		is_str(v[1].serial, c->serial, "then c");
		is_str(v[1].profile, "server", "c: its profile");
	}
	journal_cert_rows_free(v, n);
	is_int(journal_cert_list(j, inter_id, NULL, "", 2, &v, &n), 0,
	    "list with a limit");
	is_int(n, 2, "limit 2: two rows");
	if (n == 2) {
		char after[40];

		snprintf(after, sizeof after, "%s", v[1].serial);
		journal_cert_rows_free(v, n);
		is_int(journal_cert_list(j, inter_id, NULL, after, 10, &v, &n),
		    0, "next page");
		is_int(n, 2, "the remaining two");
		ok(n > 0 ? strcmp(v[0].serial, after) > 0 : 0,
		    "the page starts after the last serial");
	}
	journal_cert_rows_free(v, n);
	is_int(journal_cert_list(j, 0, "widget-2", NULL, 100, &v, &n), 0,
	    "list by device in every CA");
	is_int(n, 1, "widget-2: one certificate");
	is_str(n > 0 ? v[0].serial : NULL, b->serial, "widget-2: b");
	journal_cert_rows_free(v, n);
	is_int(journal_cert_list(j, 0, "nobody", NULL, 100, &v, &n), 0,
	    "list for an unknown device");
	is_int(n, 0, "nothing");
	ok(v == NULL, "  and no array");
}

/* Revoking once, and the revoked list a CRL is made from. */
static void
check_cert_revoke(journal *j, const struct rec *a, const struct rec *b)
{
	journal_cert_row row;
	char buf[512] = "", want[512];
	int64_t cnt = -1;
	int calls = 0;

	is_int(journal_cert_revoke(j, inter_id, b->serial, 1, 5000), 0,
	    "revoke b (keyCompromise)");
	is_int(journal_cert_revoke(j, inter_id, b->serial, 4, 5001), SF_ESTATE,
	    "revoke b again: SF_ESTATE");
	is_int(journal_cert_revoke(j, inter_id, "DEADBEEF", 1, 5000),
	    SF_ENOTFOUND, "revoke an unknown serial: SF_ENOTFOUND");
	is_int(journal_cert_revoke(j, root_id, b->serial, 1, 5000),
	    SF_ENOTFOUND, "revoke b in another CA: SF_ENOTFOUND");
	is_int(journal_cert_revoke(j, inter_id, a->serial, 4, 5002), 0,
	    "revoke a (superseded)");
	is_int(journal_cert_get(j, b->serial, inter_id, &row), 0, "get b");
	is_int(row.status, CERT_REVOKED, "b: revoked");
	is_int(row.revoked_at, 5000, "b: at 5000 (the second revoke changed"
	    " nothing)");
	is_int(row.revocation_reason, 1, "b: reason 1, keyCompromise");
	journal_cert_row_fini(&row);

	is_int(journal_cert_revoked(j, inter_id, 0, collect_revoked, buf), 0,
	    "revoked list of the intermediate");
	snprintf(want, sizeof want, "%s@5002/4;%s@5000/1;", a->serial,
	    b->serial);
	is_str(buf, want, "a and b, in serial order, with time and reason");
	buf[0] = '\0';
	is_int(journal_cert_revoked(j, root_id, 0, collect_revoked, buf), 0,
	    "revoked list of the root");
	is_str(buf, "", "none");
	is_int(journal_cert_revoked(j, inter_id, 0, stop_revoked, &calls),
	    SF_EINTERNAL, "a callback's error stops the walk and is returned");
	is_int(calls, 1, "after one call");
	buf[0] = '\0';
	is_int(journal_cert_revoked(j, inter_id, (int64_t)1 << 40,
	    collect_revoked, buf), 0, "revoked list without the expired");
	is_str(buf, "", "both expired long before: none");
	is_int(journal_cert_revoked_count(j, inter_id, &cnt), 0,
	    "revoked count");
	is_int(cnt, 2, "two revoked in the intermediate");
	is_int(journal_cert_revoked_count(j, root_id, &cnt), 0,
	    "revoked count of the root");
	is_int(cnt, 0, "none in the root");
}

static void
test_certs(journal *j)
{
	journal_cert_row row;
	struct rec a, b, c;

	fill_rec(&a, inter_id, 0x20, 1);
	a.c.device_id = "widget-1";
	fill_rec(&b, inter_id, 0x20, 2);
	b.c.device_id = "widget-2";
	fill_rec(&c, inter_id, 0x20, 3);
	c.c.device_id = "widget-1";
	c.c.profile = "server";
	c.c.enrollment_id = "";
	is_int(journal_cert_record(j, &a.c), 0, "record a");
	is_int(journal_cert_record(j, &b.c), 0, "record b");
	is_int(journal_cert_record(j, &c.c), 0, "record c");

	check_cert_get(j, &a);
	check_cert_lists(j, &a, &b, &c);
	check_cert_revoke(j, &a, &b);

	/* A certificate row freed twice or zeroed is harmless. */
	memset(&row, 0, sizeof row);
	journal_cert_row_fini(&row);
	journal_cert_row_fini(NULL);
	journal_cert_rows_free(NULL, 0);
	ok(1, "journal_cert_row_fini on zeroes and NULL is harmless");
}

/* ---- devices ---- */

static void
fp_of(uint8_t fp[32], int k)
{
	for (int i = 0; i < 32; i++)
		fp[i] = (uint8_t)(k * 13 + i);
}

static void
test_devices(journal *j)
{
	uint8_t k1[32], k2[32], k3[32], k4[32], k5[32], got[32];
	journal_device d[12];
	int out[12];
	char *pl = NULL, *rg = NULL;

	fp_of(k1, 1);
	fp_of(k2, 2);
	fp_of(k3, 3);
	fp_of(k4, 4);
	fp_of(k5, 5);
	d[0] = (journal_device){ "1111", k1, "widgiot", "us-east-1" };
	d[1] = (journal_device){ "1112", k2, "widgiot", NULL };
	is_int(journal_device_register(j, d, 2, out), 0, "register two");
	is_int(out[0], JOURNAL_DEV_IMPORTED, "1111 imported");
	is_int(out[1], JOURNAL_DEV_IMPORTED, "1112 imported");

	d[0] = (journal_device){ "1111", k1, "widgiot", "us-east-1" };
	d[1] = (journal_device){ "1111", k3, "widgiot", "us-east-1" };
	d[2] = (journal_device){ "1113", k1, "widgiot", "us-east-1" };
	d[3] = (journal_device){ "1111", k1, "gadget", "us-east-1" };
	d[4] = (journal_device){ "1111", k1, "widgiot", "eu-west-1" };
	d[5] = (journal_device){ "1112", k2, "widgiot", "" };
	d[6] = (journal_device){ "1114", k4, "widgiot", "eu-west-1" };
	d[7] = (journal_device){ "1114", k4, "widgiot", "eu-west-1" };
	d[8] = (journal_device){ "1114", k5, "widgiot", "eu-west-1" };
	d[9] = (journal_device){ "1115", k4, "widgiot", "eu-west-1" };
	d[10] = (journal_device){ "1114", k4, "widgiot", "" };
	d[11] = (journal_device){ "1116", k5, "gadget", "" };
	memset(out, 0, sizeof out);
	is_int(journal_device_register(j, d, 12, out), 0, "register a batch"
	    " of every outcome");
	is_int(out[0], JOURNAL_DEV_UNCHANGED, "same id, key and place: unchanged");
	is_int(out[1], JOURNAL_DEV_ID_OTHER_KEY, "known id, other key: id has"
	    " other key");
	is_int(out[2], JOURNAL_DEV_KEY_OTHER_ID, "known key, other id: key has"
	    " other id");
	is_int(out[3], JOURNAL_DEV_OTHER_PLACE, "other product line: other place");
	is_int(out[4], JOURNAL_DEV_OTHER_PLACE, "other region: other place");
	is_int(out[5], JOURNAL_DEV_UNCHANGED, "NULL region and \"\" are the same");
	is_int(out[6], JOURNAL_DEV_IMPORTED, "new device: imported");
	is_int(out[7], JOURNAL_DEV_UNCHANGED, "the same device again in the"
	    " batch: unchanged");
	is_int(out[8], JOURNAL_DEV_ID_OTHER_KEY, "the batch's new id with"
	    " another key: id has other key");
	is_int(out[9], JOURNAL_DEV_KEY_OTHER_ID, "the batch's new key under"
	    " another id: key has other id");
	is_int(out[10], JOURNAL_DEV_OTHER_PLACE, "the batch's new device in"
	    " another region: other place");
	is_int(out[11], JOURNAL_DEV_IMPORTED, "a key refused earlier in the"
	    " batch is free for a new id");

	is_int(journal_device_get(j, "1111", got, &pl, &rg), 0, "get 1111");
	ok(memcmp(got, k1, 32) == 0, "1111 keeps its first key");
	is_str(pl, "widgiot", "1111: product line not overwritten");
	is_str(rg, "us-east-1", "1111: region not overwritten");
	free(pl);
	free(rg);
	is_int(journal_device_get(j, "1112", got, &pl, &rg), 0, "get 1112");
	is_str(rg, "", "1112: no region");
	free(pl);
	free(rg);
	is_int(journal_device_get(j, "1114", got, &pl, &rg), 0, "get 1114");
	ok(memcmp(got, k4, 32) == 0, "1114: its key");
	is_str(rg, "eu-west-1", "1114: its region");
	free(pl);
	free(rg);
	is_int(journal_device_get(j, "1113", got, &pl, &rg), SF_ENOTFOUND,
	    "1113 (refused) was not written");
	ok(pl == NULL, "and the product line is NULL");
	ok(rg == NULL, "and the region is NULL");
	is_int(journal_device_get(j, "1115", got, &pl, &rg), SF_ENOTFOUND,
	    "1115 (refused) was not written");
	is_int(journal_device_get(j, "1116", got, &pl, &rg), 0, "1116 was");
	free(pl);
	free(rg);
	is_int(journal_device_register(j, d, 0, out), 0, "an empty batch");
}

/* Everything issuance reads of a device, in one statement. */
static void
test_device_view(journal *j)
{
	journal_device_view v;
	journal_device d;
	struct rec r[3];
	uint8_t fp[32];
	int out = 0;

	fp_of(fp, 77);
	d = (journal_device){ "view-1", fp, "widgiot", "eu-west-1" };
	is_int(journal_device_register(j, &d, 1, &out), 0, "register view-1");
	is_int(journal_device_view_get(j, "view-1", "", 100, 2, &v), 0,
	    "view of a device without certificates");
	ok(memcmp(v.key_sha256, fp, 32) == 0 && strcmp(v.product_line,
	    "widgiot") == 0 && strcmp(v.region, "eu-west-1") == 0 &&
	    strcmp(v.origin, "") == 0, "  its key, product line, region,"
	    " origin");
	ok(v.live == 0 && v.has_cert == 0 && v.enrollment_seen == 0 &&
	    v.state == DEVICE_ACTIVE && v.birth_reuse == 0, "  no certificate,"
	    " active");
	journal_device_view_fini(&v);

	/* Three live certificates (not_after 2000+), one under "enr-v". */
	for (int i = 0; i < 3; i++) {
		fill_rec(&r[i], inter_id, 0x31, i);
		r[i].c.device_id = "view-1";
		r[i].c.enrollment_id = i == 0 ? "enr-v" : "";
		is_int(journal_cert_record(j, &r[i].c), 0, "record %d", i);
	}
	is_int(journal_device_view_get(j, "view-1", "enr-v", 100, 2, &v), 0,
	    "view with an enrollment id on record");
	is_int((int)v.live, 2, "  live certificates counted up to the cap");
	ok(v.has_cert && v.enrollment_seen, "  has certificates, the"
	    " enrollment id seen");
	journal_device_view_fini(&v);
	is_int(journal_device_view_get(j, "view-1", "enr-new", 100, 8, &v), 0,
	    "view with a new enrollment id");
	ok(v.live == 3 && !v.enrollment_seen, "  3 live, the id not seen");
	journal_device_view_fini(&v);
	is_int(journal_device_view_get(j, "view-1", "", 5000, 8, &v), 0,
	    "view after every certificate expired");
	ok(v.live == 0 && v.has_cert, "  none live, but some on record");
	journal_device_view_fini(&v);
	/* "" never matches the certificates recorded without an id. */
	is_int(journal_device_view_get(j, "view-1", "", 100, 8, &v), 0,
	    "view without an enrollment id");
	ok(!v.enrollment_seen, "  an empty id is never seen");
	journal_device_view_fini(&v);
	is_int(journal_device_view_get(j, "no-such", "", 100, 8, &v),
	    SF_ENOTFOUND, "an unknown device: SF_ENOTFOUND");
	ok(v.product_line == NULL, "  and nothing to free");
	journal_device_view_fini(&v);
	journal_device_view_fini(NULL);
}

/*
 * A factory batch commits without a checkpoint until the WAL holds the
 * bulk bar (common/walckpt.h); the next ordinary commit checkpoints. The
 * bars are lowered here: 64 pages, and a bulk bar no batch reaches; each
 * batch of 2000 devices (with their audit events) is hundreds of pages.
 */
#define BULK_BATCH 2000
static void
test_bulk_checkpoint(journal *j)
{
	static uint8_t fp[BULK_BATCH + 1][32];
	static char ids[BULK_BATCH + 1][16];
	static journal_device d[BULK_BATCH + 1];
	static int out[BULK_BATCH + 1];
	unsigned long before;
	int rc = 0, imported = 0;

	j->ckpt.pages = 64;
	j->ckpt.bulk_pages = 1 << 30;
	before = j->ckpt.checkpoints;
	for (int b = 0; b < 5 && rc == 0; b++) {
		int n = b < 4 ? BULK_BATCH : 1;

		for (int i = 0; i < n; i++) {
			unsigned seed = 500000 + b * BULK_BATCH + i;

			SHA256((const uint8_t *)&seed, sizeof seed, fp[i]);
			snprintf(ids[i], sizeof ids[i], "bulk-%d-%d", b, i);
			d[i] = (journal_device){ ids[i], fp[i], "widgiot", "" };
		}
		rc = journal_device_register(j, d, n, out);
		for (int i = 0; i < n; i++)
			imported += out[i] == JOURNAL_DEV_IMPORTED;
		if (b == 3) {
			is_int((int)(j->ckpt.checkpoints - before), 0, "bulk"
			    " checkpoint: no batch's commit checkpointed (one"
			    " each without the bulk mark)");
			is_int(j->ckpt.bulk, 0, "bulk checkpoint: the mark is"
			    " cleared after the commit");
		}
	}
	is_int(rc, 0, "bulk checkpoint: four batches of %d, then one device",
	    BULK_BATCH);
	is_int(imported, 4 * BULK_BATCH + 1, "bulk checkpoint: all imported");
	is_int((int)(j->ckpt.checkpoints - before), 1, "bulk checkpoint: the"
	    " single device's commit checkpoints what the batches left");
	j->ckpt.pages = WALCKPT_PAGES;
	j->ckpt.bulk_pages = WALCKPT_BULK_PAGES;
}


static void
test_reopen(void)
{
	journal *j = open_journal("reopened");
	journal_ca *v = NULL;
	journal_cert_row row;
	uint8_t got[32], k1[32];
	char *pl = NULL, *rg = NULL, buf[512] = "";
	size_t n = 0;
	int64_t num = 0, cnt = 0;

	if (j == NULL)
		return;
	if (wdb)
		is_int(query_int(wdb, "PRAGMA synchronous"), 2,
		    "reopened: synchronous=FULL again");
	is_int(journal_ca_list(j, &v, &n), 0, "reopened: list CAs");
	is_int(n, 4, "reopened: four CAs");
	if (n == 4) {
		is_str(v[0].name, "root", "reopened: root");
		is_str(v[2].serial, "ABCDEF01", "reopened: the set certificate");
		is_int(v[1].state, ST_RETIRING, "reopened: the set state");
	}
	journal_ca_list_free(v, n);
	is_int(journal_ca_next_crl_number(j, root_id, &num), 0,
	    "reopened: next CRL number");
	is_int(num, 4, "reopened: CRL numbers continue (4)");
	is_int(journal_cert_count(j, 0, &cnt), 0, "reopened: count");
	ok(cnt > 4000, "reopened: every certificate is still there (%lld)",
	    (long long)cnt);
	ok(all_present(j, 1, 100), "reopened: records of the threads");
	is_int(journal_cert_get(j, known.serial, root_id, &row), 0,
	    "reopened: the known serial");
	journal_cert_row_fini(&row);
	is_int(journal_cert_revoked(j, inter_id, 0, collect_revoked, buf), 0,
	    "reopened: revoked list");
	ok(strstr(buf, "@5000/1;") != NULL, "reopened: b's revocation kept"
	    " (%s)", buf);
	ok(strstr(buf, "@5002/4;") != NULL, "reopened: a's revocation kept"
	    " (%s)", buf);
	fp_of(k1, 1);
	is_int(journal_device_get(j, "1111", got, &pl, &rg), 0,
	    "reopened: device 1111");
	ok(memcmp(got, k1, 32) == 0, "reopened: with its key");
	is_str(pl, "widgiot", "reopened: and its product line");

	free(pl);
	free(rg);
	journal_close(j);
}

/* A version 1 journal (the walking skeleton's schema, one CA and one
 * device) is brought up to version 2 when opened; a journal newer than
 * this code is refused. */
static const char *V1_SCHEMA =
    "CREATE TABLE cas (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " generation TEXT NOT NULL, role INTEGER NOT NULL, parent_id INTEGER,"
    " product_line TEXT NOT NULL DEFAULT '', region TEXT NOT NULL DEFAULT '',"
    " state INTEGER NOT NULL, key_label TEXT NOT NULL UNIQUE,"
    " key_type INTEGER NOT NULL, subject TEXT NOT NULL,"
    " serial TEXT NOT NULL DEFAULT '', not_before INTEGER NOT NULL DEFAULT 0,"
    " not_after INTEGER NOT NULL DEFAULT 0,"
    " path_len INTEGER NOT NULL DEFAULT -1, cert_der BLOB,"
    " crl_url TEXT NOT NULL DEFAULT '', ocsp_url TEXT NOT NULL DEFAULT '',"
    " ca_issuers_url TEXT NOT NULL DEFAULT '',"
    " permitted TEXT NOT NULL DEFAULT '', excluded TEXT NOT NULL DEFAULT '',"
    " external_parent INTEGER NOT NULL DEFAULT 0,"
    " external_chain TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL,"
    " crl_number INTEGER NOT NULL DEFAULT 0, UNIQUE (name, generation));"
    "CREATE TABLE certs (ca_id INTEGER NOT NULL REFERENCES cas(id),"
    " serial TEXT NOT NULL, subject TEXT NOT NULL,"
    " device_id TEXT NOT NULL DEFAULT '', key_sha256 BLOB NOT NULL,"
    " not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
    " issued_at INTEGER NOT NULL, requester TEXT NOT NULL DEFAULT '',"
    " profile TEXT NOT NULL DEFAULT '', enrollment_id TEXT NOT NULL DEFAULT '',"
    " replaces_serial TEXT NOT NULL DEFAULT '', cert_der BLOB NOT NULL,"
    " status INTEGER NOT NULL DEFAULT 1, revoked_at INTEGER NOT NULL DEFAULT 0,"
    " revocation_reason INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (ca_id, serial));"
    "CREATE TABLE devices (device_id TEXT PRIMARY KEY,"
    " key_sha256 BLOB NOT NULL UNIQUE, product_line TEXT NOT NULL,"
    " region TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL);"
    "INSERT INTO cas (name, generation, role, state, key_label, key_type,"
    " subject, created_at) VALUES ('root', '2026a', 1, 2, 'root-2026a', 2,"
    " '/CN=Root', 1);"
    "INSERT INTO devices VALUES ('1111', x'"
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',"
    " 'widgiot', '', 1);"
    "PRAGMA user_version = 1;";

/* Run sql on the database at path; 0 on success. */
static int
sql_at(const char *path, const char *sql, int *version)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_open(path, &db) != SQLITE_OK)
		goto out;
	if (sql && sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	if (version) {
		if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st,
		    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
			goto out;
		*version = sqlite3_column_int(st, 0);
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

static void
test_migration(void)
{
	char path[300], why[256] = "";
	journal *j = NULL;
	journal_ca *cas = NULL;
	size_t n = 0;
	uint8_t fp[32];
	char *pl = NULL, *rg = NULL;
	int version = 0;

	snprintf(path, sizeof path, "%s/v1.db", tmpdir);
	is_int(sql_at(path, V1_SCHEMA, NULL), 0, "make a version 1 journal");
	is_int(journal_open(path, &j, why, sizeof why), 0,
	    "a version 1 journal opens (%s)", why);
	if (j == NULL)
		return;
	is_int(sql_at(path, NULL, &version), 0, "read its version");
	is_int(version, 4, "it is version 4 now");
	is_int(journal_ca_list(j, &cas, &n), 0, "its CAs list");
	is_int((int)n, 1, "the CA is still there");
	if (n == 1)
		is_str(cas[0].name, "root", "with its name");
	journal_ca_list_free(cas, n);
	is_int(journal_device_get(j, "1111", fp, &pl, &rg), 0,
	    "the device is still there");
	is_str(pl, "widgiot", "with its product line");
	free(pl);
	free(rg);
	is_int(sql_at(path, "SELECT crl_shards, retired_at FROM cas;"
	    "SELECT ack_deadline FROM certs;"
	    "SELECT state, updated_at FROM devices;"
	    "SELECT der FROM crls; SELECT der FROM ocsp;", NULL), 0,
	    "the new columns and tables exist");
	journal_close(j);
	j = NULL;
	is_int(journal_open(path, &j, why, sizeof why), 0,
	    "it opens again as version 4 (%s)", why);
	journal_close(j);
	j = NULL;
	is_int(sql_at(path, "SELECT origin, birth_serial, birth_reuse FROM"
	    " devices; SELECT name, crl_der FROM manufacturers;", NULL), 0,
	    "version 3's columns and table exist");
	is_int(sql_at(path, "PRAGMA user_version = 5;", NULL), 0,
	    "pretend a newer secretfree wrote it");
	is_int(journal_open(path, &j, why, sizeof why), SF_ECONFIG,
	    "a newer journal is refused");
	ok(strstr(why, "version 5") != NULL, "saying its version (%s)", why);
	journal_close(j);
}

/* A version 2 journal (version 1 and what version 2 added) becomes
 * version 3 with its devices kept, each a factory import. */
static const char *V2_ADD =
    "ALTER TABLE cas ADD COLUMN crl_shards INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE cas ADD COLUMN retired_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE cas ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE cas ADD COLUMN revocation_reason INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE certs ADD COLUMN ack_deadline INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE certs ADD COLUMN acked_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN state INTEGER NOT NULL DEFAULT 2;"
    "ALTER TABLE devices ADD COLUMN state_reason TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE devices ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE crls (ca_id INTEGER NOT NULL REFERENCES cas(id),"
    " shard INTEGER NOT NULL, crl_number INTEGER NOT NULL,"
    " this_update INTEGER NOT NULL, next_update INTEGER NOT NULL,"
    " revoked_count INTEGER NOT NULL DEFAULT 0,"
    " revocations INTEGER NOT NULL DEFAULT 0, der BLOB NOT NULL,"
    " PRIMARY KEY (ca_id, shard));"
    "PRAGMA user_version = 2;";

static void
test_migration_v2(void)
{
	char path[300], why[256] = "", *origin = NULL;
	journal *j = NULL;
	journal_device_row d;
	int version = 0, reuse = -1, has = -1;

	snprintf(path, sizeof path, "%s/v2.db", tmpdir);
	is_int(sql_at(path, V1_SCHEMA, NULL), 0, "make a version 1 journal");
	is_int(sql_at(path, V2_ADD, &version), 0, "make it version 2");
	is_int(version, 2, "it is version 2");
	is_int(journal_open(path, &j, why, sizeof why), 0,
	    "a version 2 journal opens (%s)", why);
	if (j == NULL)
		return;
	is_int(sql_at(path, NULL, &version), 0, "read its version");
	is_int(version, 4, "it is version 4 now");
	is_int(journal_device_info(j, "1111", 0, &d), 0,
	    "the device is still there");
	is_str(d.origin, "", "a factory import");
	journal_device_row_fini(&d);
	is_int(journal_device_birth(j, "1111", &origin, &reuse, &has), 0,
	    "its birth fields read");
	ok(origin && *origin == '\0' && reuse == 0 && has == 0,
	    "no origin, no reuse, no certificate");
	free(origin);
	journal_close(j);
}

/* Manufacturers and devices registered by birth certificates. */
static void
test_manufacturers(void)
{
	char path[300], why[256] = "", other[64], *origin = NULL;
	uint8_t k1[32], k2[32], der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	journal *j = NULL;
	journal_mfr m, *v = NULL;
	journal_device_row d;
	size_t n = 0;
	int reuse = -1, has = -1;

	snprintf(path, sizeof path, "%s/mfr.db", tmpdir);
	if (journal_open(path, &j, why, sizeof why) != 0) {
		ok(0, "open %s: %s", path, why);
		return;
	}
	memset(&m, 0, sizeof m);
	memset(k1, 0x11, 32);
	memset(k2, 0x22, 32);
	m.name = "acme";
	m.product_line = "widgiot";
	m.subject = "CN=Acme Root";
	memcpy(m.spki_sha256, k1, 32);
	m.cert_der = der;
	m.cert_len = sizeof der;
	m.created_at = 100;
	is_int(journal_mfr_insert(j, &m, other), 0, "a manufacturer");
	is_int(journal_mfr_insert(j, &m, other), SF_EEXIST,
	    "the same again: SF_EEXIST");
	m.name = "acme2";
	is_int(journal_mfr_insert(j, &m, other), SF_EEXIST,
	    "the same CA under another name: SF_EEXIST");
	is_str(other, "acme", "naming the first");
	memcpy(m.spki_sha256, k2, 32);
	m.product_line = "gadget";
	is_int(journal_mfr_insert(j, &m, other), 0, "another CA");
	is_int(journal_mfr_list(j, "widgiot", &v, &n), 0, "list by line");
	is_int(n, 1, "one for widgiot");
	journal_mfrs_free(v, n);
	is_int(journal_mfr_list(j, NULL, &v, &n), 0, "list all");
	is_int(n, 2, "two in all");
	if (n == 2)
		is_str(v[1].name, "acme2", "by name");
	journal_mfrs_free(v, n);
	is_int(journal_mfr_set_crl(j, "acme", der, sizeof der, 5), 0,
	    "a CRL");
	is_int(journal_mfr_set_crl(j, "acme", der, sizeof der, 5), SF_ESTATE,
	    "the same number again: SF_ESTATE");
	is_int(journal_mfr_set_crl(j, "acme", der, sizeof der, 6), 0,
	    "a newer one");
	is_int(journal_mfr_set_crl(j, "nobody", der, sizeof der, 6),
	    SF_ENOTFOUND, "an unknown manufacturer: SF_ENOTFOUND");
	is_int(journal_mfr_get(j, "acme", &m), 0, "get");
	ok(m.crl_len == sizeof der && m.crl_number == 6, "with its CRL");
	journal_mfr_fini(&m);

	is_int(journal_device_register_birth(j, "b-1", k1, "widgiot", "",
	    "birth:acme", "0A"), 0, "a device by its birth certificate");
	is_int(journal_device_register_birth(j, "b-1", k2, "widgiot", "",
	    "birth:acme", "0B"), SF_EEXIST, "again: SF_EEXIST");
	is_int(journal_device_register_birth(j, "b-2", k1, "widgiot", "",
	    "birth:acme", "0C"), SF_ECONFLICT,
	    "another id with its key: SF_ECONFLICT");
	is_int(journal_device_info(j, "b-1", 0, &d), 0, "its row");
	is_str(d.origin, "birth:acme", "its origin");
	is_str(d.birth_serial, "0A", "its birth serial");
	journal_device_row_fini(&d);
	is_int(journal_device_allow_birth(j, "b-1", 1), 0, "allow birth");
	is_int(journal_device_birth(j, "b-1", &origin, &reuse, &has), 0,
	    "read back");
	ok(reuse == 1 && has == 0, "reuse set, no certificate");
	free(origin);
	is_int(journal_device_allow_birth(j, "nobody", 1), SF_ENOTFOUND,
	    "unknown device: SF_ENOTFOUND");
	journal_close(j);
}

/* ---- a CA's generations ---- */

/* The state, retired_at and revoked_at of CA id. */
static int
ca_row(journal *j, int64_t id, int64_t *retired, int64_t *revoked)
{
	journal_ca *v = NULL;
	size_t n = 0;
	int st = -1;

	if (journal_ca_list(j, &v, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (v[i].id == id) {
				st = v[i].state;
				*retired = v[i].retired_at;
				*revoked = v[i].revoked_at;
			}
	journal_ca_list_free(v, n);
	return st;
}

static void
check_rotation(journal *j, journal_ca *a, journal_ca *b)
{
	journal_ca c, d;
	int64_t ret = 0, rev = 0;

	fill_ca(&c, "x.widgiot", "2026c", ROLE_ISSUING, "issuing-x-2026c");
	c.created_at = 7000;
	is_int(journal_ca_rotate(j, &c, 99999), SF_ENOTFOUND,
	    "rotate away from a CA that is not there: SF_ENOTFOUND");
	fill_ca(&c, "x.widgiot", "2026c", ROLE_ISSUING, "issuing-x-2026c");
	c.state = ST_PENDING;
	is_int(journal_ca_insert(j, &c), 0, "  the new one was not kept: its"
	    " name and label are free");
	fill_ca(&d, "x.widgiot", "2026d", ROLE_ISSUING, "issuing-x-2026d");
	is_int(journal_ca_rotate(j, &d, c.id), SF_ENOTFOUND,
	    "nor from a pending one: SF_ENOTFOUND");
	fill_ca(b, "x.widgiot", "2026b", ROLE_ISSUING, "issuing-x-2026b");
	b->created_at = 6000;
	is_int(journal_ca_rotate(j, b, a->id), 0, "rotate 2026a -> 2026b");
	is_int(ca_row(j, b->id, &ret, &rev), ST_ACTIVE, "  2026b active");
	is_int(ca_row(j, a->id, &ret, &rev), ST_RETIRING, "  2026a retiring");
	is_int(ret, 6000, "  since the new one was made");
	is_int(journal_ca_set_state(j, a->id, ST_RETIRED, 6500, 0), 0,
	    "retire 2026a");
	is_int(ca_row(j, a->id, &ret, &rev), ST_RETIRED, "  retired");
	is_int(ret, 6500, "  at that time");
}

static void
check_revocation(journal *j, int64_t parent, int64_t a, int64_t b)
{
	struct rec r;
	journal_revoked *out = NULL;
	journal_cert_row row;
	int64_t ids[] = { a, b }, left = -1, ret, rev;
	size_t n = 0;

	fill_rec(&r, parent, 0x30, 0);
	is_int(journal_cert_record(j, &r.c), 0, "the CA's own certificate");
	for (int i = 1; i <= 7; i++) {
		fill_rec(&r, i <= 4 ? a : b, 0x31, i);
		journal_cert_record(j, &r.c);
	}
	fill_rec(&r, parent, 0x30, 0);
	is_int(journal_ca_revoke(j, a, 1, &b, 1, 2, 8000, parent, r.serial), 0,
	    "revoke 2026a and 2026b below it");
	is_int(ca_row(j, a, &ret, &rev), ST_REVOKED, "  2026a revoked");
	is_int(rev, 8000, "  at its time");
	is_int(ca_row(j, b, &ret, &rev), ST_REVOKED, "  2026b too");
	is_int(journal_cert_get(j, r.serial, parent, &row), 0,
	    "  its own certificate");
	ok(row.status == CERT_REVOKED && row.revocation_reason == 1,
	    "  revoked, for its reason");
	journal_cert_row_fini(&row);
	is_int(journal_cert_revoke_batch(j, ids, 2, 2, 8000, 0, &out, &n,
	    &left), 0, "count what is left (max 0)");
	ok(n == 0 && left == 7, "  7, none revoked");
	is_int(journal_cert_revoke_batch(j, ids, 2, 2, 8000, 5, &out, &n,
	    &left), 0, "a batch of 5");
	ok(n == 5 && left == 2 && out && out[0].serial[0] &&
	    strncmp(out[0].device_id, "dev-", 4) == 0, "  5 revoked with their"
	    " serials and devices, 2 left");
	free(out);
	is_int(journal_cert_revoke_batch(j, ids, 2, 2, 8000, 5, &out, &n,
	    &left), 0, "the next batch");
	ok(n == 2 && left == 0, "  the last 2");
	free(out);
	is_int(journal_cert_revoke_batch(j, ids, 2, 2, 8000, 5, &out, &n,
	    &left), 0, "again");
	ok(n == 0 && left == 0 && out == NULL, "  nothing");
}

static void
test_generations(void)
{
	char path[300], why[256] = "";
	journal *j = NULL;
	journal_ca p, a, b;

	snprintf(path, sizeof path, "%s/generations.db", tmpdir);
	is_int(journal_open(path, &j, why, sizeof why), 0,
	    "a journal for CA generations (%s)", why);
	if (j == NULL)
		return;
	fill_ca(&p, "widgiot", "2026a", ROLE_INTERMEDIATE, "int-2026a");
	fill_ca(&a, "x.widgiot", "2026a", ROLE_ISSUING, "issuing-x-2026a");
	is_int(journal_ca_insert(j, &p), 0, "an intermediate");
	a.parent_id = p.id;
	is_int(journal_ca_insert(j, &a), 0, "an issuing CA, 2026a");
	check_rotation(j, &a, &b);
	check_revocation(j, p.id, a.id, b.id);
	journal_close(j);
}

int
main(void)
{
	journal *j;
	char cmd[128];

	log_init("test_journal", LOG_LEVEL_WARN);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/sf-journal.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	snprintf(dbpath, sizeof dbpath, "%s/journal.db", tmpdir);

	test_pragmas();
	if ((j = open_journal("second open")) != NULL) {
		test_cas(j);
		test_group_commit(j);
		test_batch_duplicate(j);
		test_record_errors(j);
		test_certs(j);
		test_devices(j);
		test_device_view(j);
		test_bulk_checkpoint(j);
		journal_close(j);
		test_generations();
		test_reopen();
	}
	test_migration();
	test_migration_v2();
	test_manufacturers();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
	return tap_done();
}
