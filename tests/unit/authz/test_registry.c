/*
 * Unit tests of authz's registry (registry*.c). Every case runs twice: against
 * ":memory:" (one connection) and against a file in a temporary directory
 * (WAL, a writing and a reading connection). A fresh registry per case.
 *
 * Covered: import outcomes, device get / list / paging / filters / state /
 * count, policies, templates, enroll_commit (device, thing, attributes,
 * group, policies; lookups by id, key and CSR; SF_EEXIST; rollback),
 * certificates and their status, renewal (windows, the acknowledgement
 * with a new key, the sweep of renewals past their deadline, windows
 * pulled forward), things and groups, four threads writing and reading
 * at once, and a file reopened.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "registry.h"
#include "registry_int.h"   /* the writer's walckpt */
#include "util.h"
#include "../../tap.h"

static void test_upgrade(void);
static void mirror_batch(registry *r, int64_t t0);
static void test_bulk_checkpoint(void);
static char tmpdir[256];
static const char *mode;      /* "memory" or "file" */
static int caseno;

#define OK(c, fmt, ...) ok(c, "[%s] " fmt, mode, ##__VA_ARGS__)
#define IS_INT(a, b, fmt, ...) is_int(a, b, "[%s] " fmt, mode, ##__VA_ARGS__)
#define IS_STR(a, b, fmt, ...) is_str(a, b, "[%s] " fmt, mode, ##__VA_ARGS__)

/*
 * Element i of a list of n, or an all-zero element when the list is
 * shorter, so that a check of a missing row fails instead of crashing;
 * STR_AT the same for an array of strings (NULL when short).
 */
#define AT(v, n, i) \
	((size_t)(i) < (size_t)(n) ? &(v)[i] : &(__typeof__(*(v))){ 0 })
#define STR_AT(v, n, i) ((size_t)(i) < (size_t)(n) ? (v)[i] : NULL)

/* ---- fixtures ---- */

/* A fake key: the registry stores SPKI bytes, it does not parse them. */
struct key {
	uint8_t spki[40];
	uint8_t fp[32];
};

static void
key_make(struct key *k, unsigned seed)
{
	for (size_t i = 0; i < sizeof k->spki; i++)
		k->spki[i] = (uint8_t)(seed * 31 + i * 7 + 1);
	memcpy(k->spki, &seed, sizeof seed);
	SHA256(k->spki, sizeof k->spki, k->fp);
}

static registry_import_rec
rec(const char *id, const struct key *k, const char *pl, const char *rg)
{
	registry_import_rec r = { id, k->spki, sizeof k->spki, k->fp, pl, rg };

	return r;
}

static void
fp_make(uint8_t fp[32], unsigned seed)
{
	SHA256((const uint8_t *)&seed, sizeof seed, fp);
}

/* An enrollment as enroll.c would record it; strings are static. */
static registry_enrollment
enr(const char *id, const char *device, const char *key, unsigned csr,
    const char *serial, int64_t created, int state, const char *replaces)
{
	registry_enrollment e;

	memset(&e, 0, sizeof e);
	e.enrollment_id = (char *)id;
	e.device_id = (char *)device;
	e.idempotency_key = (char *)key;
	fp_make(e.csr_sha256, csr);
	e.serial = (char *)serial;
	e.ca_name = (char *)"us-east-1.widgiot";
	e.certificate_pem = (char *)"-----BEGIN CERTIFICATE-----\nleaf\n"
	    "-----END CERTIFICATE-----\n";
	e.chain_pem = (char *)"-----BEGIN CERTIFICATE-----\nissuing\n"
	    "-----END CERTIFICATE-----\n";
	e.region = (char *)"us-east-1";
	e.not_before = created;
	e.not_after = created + 86400 * 365;
	e.created_at = created;
	e.state = state;
	e.replaces_serial = (char *)replaces;
	return e;
}

static registry *
open_case(const char *name)
{
	char path[512], why[256] = "";
	registry *r = NULL;
	int rc;

	if (strcmp(mode, "memory") == 0)
		snprintf(path, sizeof path, ":memory:");
	else
		snprintf(path, sizeof path, "%s/%02d-%s.db", tmpdir, ++caseno,
		    name);
	if ((rc = registry_open(path, &r, why, sizeof why)) != 0) {
		tap_diag("registry_open %s: %s (%s)", path, sf_strerror(rc),
		    why);
		return NULL;
	}
	return r;
}

static int
import1(registry *r, const char *id, unsigned seed, const char *pl,
    const char *rg)
{
	struct key k;
	registry_import_rec ri;
	int out = 0, rc;

	key_make(&k, seed);
	ri = rec(id, &k, pl, rg);
	if ((rc = registry_import(r, &ri, 1, &out)) != 0)
		return rc;
	return out;
}

static int
has_group(registry *r, const char *name, uint32_t *count)
{
	char **names = NULL;
	uint32_t *counts = NULL;
	size_t n = 0;
	int found = 0;

	if (registry_group_list(r, &names, &counts, &n) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0) {
			found = 1;
			if (count)
				*count = counts[i];
		}
	registry_strings_free(names, n);
	free(counts);
	return found;
}

/* a (which may be NULL) holds the n bytes of b. */
static int
same_bytes(const void *a, const void *b, size_t n)
{
	return a != NULL && memcmp(a, b, n) == 0;
}

static const char *
attr(const registry_thing *t, const char *name)
{
	for (size_t i = 0; i < t->nattrs; i++)
		if (strcmp(t->attr_names[i], name) == 0)
			return t->attr_values[i];
	return NULL;
}

/* ---- cases ---- */

static void
test_open(void)
{
	char path[512], why[256] = "";
	registry *r = NULL;
	sqlite3 *db = NULL;
	int rc;

	rc = registry_open("", &r, why, sizeof why);
	IS_INT(rc, SF_EINVAL, "open: an empty path is refused");
	OK(r == NULL, "open: nothing returned on error");
	if (strcmp(mode, "file") != 0)
		return;
	snprintf(path, sizeof path, "%s/no/such/dir/r.db", tmpdir);
	rc = registry_open(path, &r, why, sizeof why);
	OK(rc != 0, "open: a missing directory fails");
	OK(r == NULL, "open: a missing directory: nothing returned");
	OK(why[0] != '\0', "open: a missing directory: a reason (%s)", why);
	/* A file from a newer schema is refused, not reused. */
	snprintf(path, sizeof path, "%s/%02d-newer.db", tmpdir, ++caseno);
	if (sqlite3_open(path, &db) == SQLITE_OK)
		sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(db);
	why[0] = '\0';
	rc = registry_open(path, &r, why, sizeof why);
	IS_INT(rc, SF_EDB, "open: a newer schema version is refused");
	OK(r == NULL, "open: a newer schema: nothing returned");
	OK(strstr(why, "99") != NULL,
	    "open: a newer schema: the reason names it (%s)", why);
	test_upgrade();
}

/* The lifecycle's certificate columns, added by version 2. */
static const char *const V2_COLUMNS[] = { "revoked_at", "revocation_reason",
    "replaces_serial", "ack_deadline", "renew_after", "renew_before",
    "renew_note" };

/* A version 1 or 2 file (made by taking the later versions' columns
 * away) is upgraded when opened. */
static void
test_upgrade_from(int from)
{
	char path[300], why[256] = "", sql[128];
	registry *r = NULL;
	registry_mfr *m = NULL;
	size_t n = 9;
	sqlite3 *db = NULL;
	int rc;

	snprintf(path, sizeof path, "%s/%02d-v%d.db", tmpdir, ++caseno, from);
	IS_INT(registry_open(path, &r, why, sizeof why), 0,
	    "upgrade: make a registry (%s)", why);
	registry_close(r);
	r = NULL;
	OK(sqlite3_open(path, &db) == SQLITE_OK, "upgrade: open it with SQLite");
	IS_INT(sqlite3_exec(db, "DROP TABLE manufacturers;"
	    " ALTER TABLE devices DROP COLUMN origin", NULL, NULL, NULL),
	    SQLITE_OK, "upgrade: take version 3's table and column away");
	if (from == 1) {
		IS_INT(sqlite3_exec(db, "DROP INDEX certificates_pending",
		    NULL, NULL, NULL), SQLITE_OK,
		    "upgrade: take version 2's index away");
		for (size_t i = 0; i < sizeof V2_COLUMNS / sizeof V2_COLUMNS[0];
		    i++) {
			snprintf(sql, sizeof sql, "ALTER TABLE certificates"
			    " DROP COLUMN %s", V2_COLUMNS[i]);
			IS_INT(sqlite3_exec(db, sql, NULL, NULL, NULL),
			    SQLITE_OK, "upgrade: take %s away", V2_COLUMNS[i]);
		}
	}
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", from);
	IS_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK,
	    "upgrade: call it version %d", from);
	sqlite3_close(db);
	rc = registry_open(path, &r, why, sizeof why);
	IS_INT(rc, 0, "upgrade: a version %d registry opens (%s)", from, why);
	if (r) {
		IS_INT(registry_mfr_list(r, "", &m, &n), 0,
		    "upgrade: manufacturers list");
		IS_INT(n, 0, "upgrade: none yet");
		registry_mfrs_free(m, n);
	}
	registry_close(r);
	db = NULL;
	OK(sqlite3_open(path, &db) == SQLITE_OK, "upgrade: open it again");
	IS_INT(sqlite3_exec(db, "SELECT revoked_at, revocation_reason,"
	    " replaces_serial, ack_deadline, renew_after, renew_before,"
	    " renew_note FROM certificates", NULL, NULL, NULL), SQLITE_OK,
	    "upgrade: the version 2 columns are there");
	IS_INT(sqlite3_exec(db, "SELECT origin FROM devices; SELECT crl_pem"
	    " FROM manufacturers", NULL, NULL, NULL), SQLITE_OK,
	    "upgrade: the version 3 column and table are there");
	sqlite3_close(db);
}

static void
test_upgrade(void)
{
	test_upgrade_from(1);
	test_upgrade_from(2);
}

/* Manufacturers (mirrored) and a device registered by its birth
 * certificate. */
static void
test_mfr(registry *r)
{
	registry_mfr *m = NULL;
	registry_device d;
	registry_import_rec ri;
	struct key k;
	size_t n = 0;
	int out = 0;

	IS_INT(registry_mfr_put(r, "acme", "widgiot", "PEM1"), 0,
	    "mfr: put");
	IS_INT(registry_mfr_put(r, "acme", "widgiot", "PEM2"), 0,
	    "mfr: put again replaces");
	IS_INT(registry_mfr_put(r, "zeta", "gadget", "PEM3"), 0,
	    "mfr: another");
	IS_INT(registry_mfr_set_crl(r, "acme", "CRL", 4), 0, "mfr: a CRL");
	IS_INT(registry_mfr_set_crl(r, "nobody", "CRL", 4), SF_ENOTFOUND,
	    "mfr: CRL of nobody: SF_ENOTFOUND");
	IS_INT(registry_mfr_list(r, "widgiot", &m, &n), 0, "mfr: list");
	IS_INT(n, 1, "mfr: one of widgiot");
	if (n == 1) {
		OK(strcmp(m[0].certificate_pem, "PEM2") == 0 &&
		    strcmp(m[0].crl_pem, "CRL") == 0 && m[0].crl_number == 4,
		    "mfr: replaced, with its CRL");
	}
	registry_mfrs_free(m, n);
	IS_INT(registry_mfr_list(r, NULL, &m, &n), 0, "mfr: list all");
	IS_INT(n, 2, "mfr: two");
	registry_mfrs_free(m, n);
	key_make(&k, 777);
	ri = rec("born-1", &k, "widgiot", "");
	IS_INT(registry_import_birth(r, &ri, "birth:acme", &out), 0,
	    "mfr: a device by its birth certificate");
	IS_INT(out, REGISTRY_IMPORTED, "mfr: imported");
	IS_INT(registry_device_get(r, "born-1", &d), 0, "mfr: read it");
	OK(d.origin && strcmp(d.origin, "birth:acme") == 0,
	    "mfr: its origin");
	registry_device_fini(&d);
}

/* 1111 (key a, us-east-1) and 1112 (key b, any region), just imported. */
static void
import_new(registry *r, const struct key *ka)
{
	registry_device d;
	int64_t n = 0;

	registry_device_count(r, &n);
	IS_INT(n, 2, "import: two devices");
	IS_INT(registry_device_get(r, "1111", &d), 0,
	    "import: 1111 readable");
	IS_STR(d.device_id, "1111", "import: device id");
	IS_INT(d.spki_len, sizeof ka->spki, "import: SPKI length kept");
	OK(same_bytes(d.spki, ka->spki, sizeof ka->spki), "import: SPKI kept");
	OK(same_bytes(d.key_sha256, ka->fp, 32), "import: fingerprint kept");
	IS_STR(d.product_line, "widgiot", "import: product line");
	IS_STR(d.region, "us-east-1", "import: region");
	IS_INT(d.state, DEVICE_REGISTERED,
	    "import: new devices are REGISTERED");
	IS_STR(d.current_serial, "", "import: no current serial");
	OK(d.created_at > 0, "import: created_at set");
	IS_INT(d.updated_at, d.created_at, "import: updated_at = created_at");
	registry_device_fini(&d);
	OK(d.device_id == NULL, "device_fini zeroes the id");
	OK(d.spki == NULL, "device_fini zeroes the SPKI");
	registry_device_fini(NULL);
}

/* Records that clash with 1111 are refused and change nothing. */
static void
import_refusals(registry *r, const struct key *ka)
{
	struct key kc;
	registry_import_rec v[4];
	registry_device d;
	int out[4];

	key_make(&kc, 3);
	v[0] = rec("1111", &kc, "widgiot", "us-east-1");
	v[1] = rec("1113", ka, "widgiot", "us-east-1");
	v[2] = rec("1111", ka, "widgiot", "eu-west-1");
	v[3] = rec("1111", ka, "gadget", "us-east-1");
	IS_INT(registry_import(r, v, 4, out), 0,
	    "import: refusals are outcomes, not errors");
	IS_INT(out[0], REGISTRY_ID_OTHER_KEY, "import: known id, other key");
	IS_INT(out[1], REGISTRY_KEY_OTHER_ID, "import: known key, other id");
	IS_INT(out[2], REGISTRY_OTHER_PLACE, "import: other region");
	IS_INT(out[3], REGISTRY_OTHER_PLACE, "import: other product line");
	IS_INT(registry_device_get(r, "1113", &d), SF_ENOTFOUND,
	    "import: refused record wrote no row");
	registry_device_get(r, "1111", &d);
	OK(same_bytes(d.key_sha256, ka->fp, 32),
	    "import: refused records left 1111's key");
	IS_STR(d.region, "us-east-1",
	    "import: refused records left 1111's region");
	IS_STR(d.product_line, "widgiot",
	    "import: refused records left 1111's product line");
	registry_device_fini(&d);
	/* Key C was refused with 1111: it is free for a new id. */
	IS_INT(import1(r, "1114", 3, "widgiot", ""), REGISTRY_IMPORTED,
	    "import: a refused record's key stays unregistered");
}

/* Later records of a batch see earlier ones; a malformed record refuses
 * the whole batch. */
static void
import_batches(registry *r)
{
	struct key ke, kf;
	registry_import_rec v[4];
	registry_device d;
	int64_t n = 0;
	int out[4];

	key_make(&ke, 5);
	key_make(&kf, 6);
	v[0] = rec("1115", &ke, "widgiot", "");
	v[1] = rec("1115", &ke, "widgiot", "");
	v[2] = rec("1116", &ke, "widgiot", "");
	v[3] = rec("1115", &kf, "widgiot", "");
	IS_INT(registry_import(r, v, 4, out), 0,
	    "import: batch with duplicates");
	IS_INT(out[0], REGISTRY_IMPORTED,
	    "import: first of the batch imported");
	IS_INT(out[1], REGISTRY_UNCHANGED, "import: its repeat is UNCHANGED");
	IS_INT(out[2], REGISTRY_KEY_OTHER_ID,
	    "import: its key under another id");
	IS_INT(out[3], REGISTRY_ID_OTHER_KEY,
	    "import: its id with another key");
	IS_INT(registry_device_get(r, "1116", &d), SF_ENOTFOUND,
	    "import: 1116 not written");
	registry_device_count(r, &n);
	IS_INT(n, 4, "import: four devices");

	v[0] = rec("1117", &kf, "widgiot", "");
	v[1] = rec("1118", &kf, "widgiot", "");
	v[1].key_sha256 = NULL;
	IS_INT(registry_import(r, v, 2, out), SF_EINVAL,
	    "import: malformed record refused");
	IS_INT(registry_device_get(r, "1117", &d), SF_ENOTFOUND,
	    "import: nothing of that batch written");
	IS_INT(registry_import(r, v, 0, out), 0, "import: empty batch");
	IS_INT(registry_device_get(r, "nope", &d), SF_ENOTFOUND,
	    "device_get: unknown id");
}

static void
test_import(void)
{
	struct key ka, kb;
	registry_import_rec v[2];
	registry_device d;
	int64_t n = 0, upd;
	int out[2];
	registry *r;

	if ((r = open_case("import")) == NULL) {
		OK(0, "import: open");
		return;
	}
	key_make(&ka, 1);
	key_make(&kb, 2);
	v[0] = rec("1111", &ka, "widgiot", "us-east-1");
	v[1] = rec("1112", &kb, "widgiot", "");
	IS_INT(registry_import(r, v, 2, out), 0, "import: batch accepted");
	IS_INT(out[0], REGISTRY_IMPORTED, "import: 1111 imported");
	IS_INT(out[1], REGISTRY_IMPORTED, "import: 1112 imported");
	import_new(r, &ka);

	registry_device_get(r, "1111", &d);
	upd = d.updated_at;
	registry_device_fini(&d);
	IS_INT(registry_import(r, v, 2, out), 0, "import: re-import accepted");
	IS_INT(out[0], REGISTRY_UNCHANGED, "import: re-import: 1111 UNCHANGED");
	IS_INT(out[1], REGISTRY_UNCHANGED, "import: re-import: 1112 UNCHANGED");
	registry_device_count(r, &n);
	IS_INT(n, 2, "import: re-import adds nothing");
	registry_device_get(r, "1111", &d);
	IS_INT(d.updated_at, upd, "import: re-import touches nothing");
	registry_device_fini(&d);

	import_refusals(r, &ka);
	import_batches(r);
	registry_close(r);
}

/* Lists of the 25 devices: all of them, in order, then page by page. */
static void
device_pages(registry *r)
{
	registry_device *v = NULL;
	size_t n = 0, total = 0;
	char after[16] = "";
	int rc, pages = 0, sorted = 1;

	rc = registry_device_list(r, "", "", 0, "", 0, &v, &n);
	IS_INT(rc, 0, "devices: list all");
	IS_INT(n, 25, "devices: limit 0 is no limit");
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i - 1].device_id, v[i].device_id) >= 0)
			sorted = 0;
	OK(sorted, "devices: in id order");
	OK(AT(v, n, 0)->spki_len > 0, "devices: rows complete: SPKI");
	IS_STR(AT(v, n, 0)->device_id, "d00", "devices: rows complete: id");
	registry_devices_free(v, n);

	do {
		rc = registry_device_list(r, NULL, NULL, 0, after, 10, &v, &n);
		if (rc != 0)
			break;
		if (n > 0)
			snprintf(after, sizeof after, "%s",
			    v[n - 1].device_id);
		if (pages == 0)
			IS_STR(AT(v, n, 0)->device_id, "d00",
			    "devices: first page starts at d00");
		if (pages == 2)
			IS_INT(n, 5, "devices: last page holds the rest");
		total += n;
		pages++;
		registry_devices_free(v, n);
	} while (n > 0 && pages < 10);
	IS_INT(rc, 0, "devices: paging");
	IS_INT(total, 25, "devices: pages cover every device once");
	IS_INT(pages, 4, "devices: 10 + 10 + 5 + an empty page");
}

/* Lists by product line and region, and a device's state set and read. */
static void
device_filters(registry *r)
{
	registry_device *v = NULL, d;
	size_t n = 0;

	registry_device_list(r, "gadget", "", 0, "", 0, &v, &n);
	IS_INT(n, 12, "devices: product line filter");
	registry_devices_free(v, n);
	registry_device_list(r, "", "eu-west-1", 0, "", 0, &v, &n);
	IS_INT(n, 8, "devices: region filter");
	registry_devices_free(v, n);
	registry_device_list(r, "widgiot", "us-east-1", 0, "", 0, &v, &n);
	IS_INT(n, 5, "devices: both filters");
	registry_devices_free(v, n);

	IS_INT(registry_device_set_state(r, "d03", DEVICE_DISABLED), 0,
	    "devices: disable");
	registry_device_list(r, "", "", DEVICE_DISABLED, "", 0, &v, &n);
	IS_INT(n, 1, "devices: state filter: one disabled");
	IS_STR(AT(v, n, 0)->device_id, "d03", "devices: state filter: d03");
	registry_devices_free(v, n);
	registry_device_get(r, "d03", &d);
	IS_INT(d.state, DEVICE_DISABLED, "devices: state stored");
	OK(d.updated_at >= d.created_at, "devices: updated_at set");
	registry_device_fini(&d);
	IS_INT(registry_device_set_state(r, "d03", DEVICE_REGISTERED), 0,
	    "devices: enable again");
	registry_device_list(r, "", "", DEVICE_DISABLED, "", 0, &v, &n);
	IS_INT(n, 0, "devices: none disabled");
	registry_devices_free(v, n);
	IS_INT(registry_device_set_state(r, "zz", DEVICE_DISABLED),
	    SF_ENOTFOUND, "devices: set_state of an unknown id");
	IS_INT(registry_device_set_state(r, "d03", 9), SF_EINVAL,
	    "devices: set_state refuses an unknown state");
}

static void
test_devices(void)
{
	static const char *regions[] = { "us-east-1", "eu-west-1", "" };
	char id[16];
	int64_t count = 0;
	registry *r;

	if ((r = open_case("devices")) == NULL) {
		OK(0, "devices: open");
		return;
	}
	for (unsigned i = 0; i < 25; i++) {
		snprintf(id, sizeof id, "d%02u", i);
		import1(r, id, 100 + i, i % 2 ? "gadget" : "widgiot",
		    regions[i % 3]);
	}
	registry_device_count(r, &count);
	IS_INT(count, 25, "devices: count");
	device_pages(r);
	device_filters(r);
	test_mfr(r);
	registry_close(r);
}

static void
test_policies(void)
{
	char **names = NULL, **docs = NULL, *doc = NULL;
	size_t n = 0;
	registry *r;

	if ((r = open_case("policies")) == NULL) {
		OK(0, "policies: open");
		return;
	}
	IS_INT(registry_policy_put(r, "telemetry",
	    "{\"Version\":\"2012-10-17\",\"Statement\":[]}"), 0,
	    "policies: put");
	IS_INT(registry_policy_get(r, "telemetry", &doc), 0, "policies: get");
	IS_STR(doc, "{\"Version\":\"2012-10-17\",\"Statement\":[]}",
	    "policies: document kept");
	free(doc);
	IS_INT(registry_policy_put(r, "bad", "{\"a\":"), SF_EINVAL,
	    "policies: invalid JSON refused");
	IS_INT(registry_policy_get(r, "bad", &doc), SF_ENOTFOUND,
	    "policies: refused policy not stored");
	IS_INT(registry_policy_put(r, "telemetry", "not json"), SF_EINVAL,
	    "policies: invalid JSON does not replace");
	registry_policy_get(r, "telemetry", &doc);
	IS_STR(doc, "{\"Version\":\"2012-10-17\",\"Statement\":[]}",
	    "policies: old document still there");
	free(doc);
	IS_INT(registry_policy_put(r, "empty", ""), SF_EINVAL,
	    "policies: empty document refused");
	IS_INT(registry_policy_put(r, "", "{}"), SF_EINVAL,
	    "policies: empty name refused");
	IS_INT(registry_policy_put(r, "telemetry", "{\"v\":2}"), 0,
	    "policies: replace");
	registry_policy_get(r, "telemetry", &doc);
	IS_STR(doc, "{\"v\":2}", "policies: replaced");
	free(doc);
	registry_policy_put(r, "admin", "[1, 2, {\"x\": null}]");
	IS_INT(registry_policy_list(r, &names, &docs, &n), 0,
	    "policies: list");
	IS_INT(n, 2, "policies: listed: two");
	IS_STR(STR_AT(names, n, 0), "admin", "policies: listed by name: 1st");
	IS_STR(STR_AT(names, n, 1), "telemetry",
	    "policies: listed by name: 2nd");
	IS_STR(STR_AT(docs, n, 1), "{\"v\":2}",
	    "policies: listed with their documents");
	registry_strings_free(names, n);
	registry_strings_free(docs, n);
	registry_close(r);
}

/* A template stored once its policies exist, read back as it was given. */
static void
template_store(registry *r, const registry_template *t)
{
	registry_template g;
	uint32_t cnt = 9;

	IS_INT(registry_template_put(r, t), SF_ENOTFOUND,
	    "templates: policies must exist");
	IS_INT(registry_template_get(r, "widgiot", &g), SF_ENOTFOUND,
	    "templates: refused template not stored");
	registry_policy_put(r, "connect", "{}");
	registry_policy_put(r, "publish", "{}");
	IS_INT(registry_template_put(r, t), 0, "templates: put");
	IS_INT(registry_template_get(r, "widgiot", &g), 0, "templates: get");
	IS_STR(g.product_line, "widgiot", "templates: product line");
	IS_STR(g.thing_group, "fleet", "templates: group");
	IS_INT(g.npolicies, 2, "templates: two policies");
	IS_STR(STR_AT(g.policies, g.npolicies, 0), "connect",
	    "templates: policies in order: 1st");
	IS_STR(STR_AT(g.policies, g.npolicies, 1), "publish",
	    "templates: policies in order: 2nd");
	IS_INT(g.nattrs, 4, "templates: four attributes");
	IS_STR(STR_AT(g.attr_names, g.nattrs, 1), "where",
	    "templates: attributes in order");
	IS_STR(STR_AT(g.attr_values, g.nattrs, 1), "${region}/${device_id}",
	    "templates: attributes kept unexpanded");
	IS_STR(STR_AT(g.attr_values, g.nattrs, 3), "$5 a $",
	    "templates: a lone $ kept");
	registry_template_fini(&g);
	IS_INT(has_group(r, "fleet", &cnt), 1, "templates: the group exists");
	IS_INT(cnt, 0, "templates: the group is empty");
}

/* Bad attribute values and unknown policies refused; nothing replaced. */
static void
template_refusals(registry *r, registry_template *t)
{
	static char *bad_pols[] = { "nope" };
	char *bad_v[] = { "${serial" }, *bad_n[] = { "x" };
	registry_template g;

	t->attr_values = bad_v;
	t->attr_names = bad_n;
	t->nattrs = 1;
	IS_INT(registry_template_put(r, t), SF_EINVAL,
	    "templates: unterminated ${ refused");
	bad_v[0] = "${device_id}-${colour}";
	IS_INT(registry_template_put(r, t), SF_EINVAL,
	    "templates: unknown variable refused");
	t->policies = bad_pols;
	t->npolicies = 1;
	bad_v[0] = "${device_id}";
	IS_INT(registry_template_put(r, t), SF_ENOTFOUND,
	    "templates: an unknown policy refused on replace");
	registry_template_get(r, "widgiot", &g);
	IS_INT(g.nattrs, 4,
	    "templates: refused replacement kept the attributes");
	IS_INT(g.npolicies, 2,
	    "templates: refused replacement kept the policies");
	registry_template_fini(&g);
	/* What t now names is only good until this returns. */
	t->attr_values = t->attr_names = NULL;
	t->nattrs = 0;
}

/* A replacement with fewer children, a second template, the list. */
static void
template_replace(registry *r, registry_template *t, char **pols)
{
	char *n1[] = { "x" }, *v1[] = { "${device_id}" };
	registry_template g, *v;
	size_t n = 0;

	t->policies = pols;
	t->npolicies = 1;
	t->thing_group = "";
	t->attr_names = n1;
	t->attr_values = v1;
	t->nattrs = 1;
	IS_INT(registry_template_put(r, t), 0, "templates: replace");
	registry_template_get(r, "widgiot", &g);
	IS_INT(g.nattrs, 1, "templates: replaced attributes: one");
	IS_STR(STR_AT(g.attr_names, g.nattrs, 0), "x",
	    "templates: replaced attributes: x");
	IS_INT(g.npolicies, 1, "templates: replaced policies: one");
	IS_STR(g.thing_group, "", "templates: replaced group: none");
	registry_template_fini(&g);

	t->product_line = "gadget";
	t->nattrs = 0;
	t->attr_names = t->attr_values = NULL;
	IS_INT(registry_template_put(r, t), 0, "templates: second template");
	t->product_line = "";
	IS_INT(registry_template_put(r, t), SF_EINVAL,
	    "templates: a product line is required");
	IS_INT(registry_template_list(r, &v, &n), 0, "templates: list");
	IS_INT(n, 2, "templates: listed: two");
	IS_STR(AT(v, n, 0)->product_line, "gadget",
	    "templates: listed by product line: 1st");
	IS_STR(AT(v, n, 1)->product_line, "widgiot",
	    "templates: listed by product line: 2nd");
	IS_INT(AT(v, n, 1)->nattrs, 1, "templates: listed with attributes");
	IS_INT(AT(v, n, 0)->npolicies, 1, "templates: listed with policies");
	registry_templates_free(v, n);
}

static void
test_templates(void)
{
	char *pols[] = { "connect", "publish" };
	char *an[] = { "serial", "where", "line", "price" };
	char *av[] = { "${serial}", "${region}/${device_id}",
	    "${product_line}", "$5 a $" };
	registry_template t = { "widgiot", "fleet", pols, 2, an, av, 4 };
	registry *r;

	if ((r = open_case("templates")) == NULL) {
		OK(0, "templates: open");
		return;
	}
	template_store(r, &t);
	template_refusals(r, &t);
	template_replace(r, &t, pols);
	registry_close(r);
}

/* Policies p1 p2, template widgiot (group fleet), a device. */
static registry *
enroll_setup(const char *name, registry_template *tmpl)
{
	static char *pols[] = { "p1", "p2" };
	static char *an[] = { "serial", "where", "line", "id" };
	static char *av[] = { "${serial}", "${region}/${device_id}",
	    "${product_line}", "thing-${device_id}" };
	registry_template t = { "widgiot", "fleet", pols, 2, an, av, 4 };
	registry *r;

	if ((r = open_case(name)) == NULL)
		return NULL;
	registry_policy_put(r, "p1", "{\"allow\":\"connect\"}");
	registry_policy_put(r, "p2", "{\"allow\":\"publish\"}");
	registry_template_put(r, &t);
	if (registry_template_get(r, "widgiot", tmpl) != 0) {
		registry_close(r);
		return NULL;
	}
	import1(r, "devA", 1, "widgiot", "us-east-1");
	import1(r, "devB", 2, "widgiot", "");
	import1(r, "devG", 3, "gadget", "");
	return r;
}

/* devA's first enrollment (serial 0A1B2C at now): the device, its thing
 * as the template makes it, and the certificate row. */
static void
enroll_first(registry *r, int64_t now)
{
	registry_device d;
	registry_thing th;
	registry_cert *c = NULL;
	const registry_cert *c0;
	size_t n = 0;
	uint32_t cnt = 0;

	registry_device_get(r, "devA", &d);
	IS_INT(d.state, DEVICE_ACTIVE, "enroll: device ACTIVE");
	IS_STR(d.current_serial, "0A1B2C", "enroll: current serial");
	registry_device_fini(&d);

	IS_INT(registry_thing_get(r, "devA", &th), 0, "enroll: thing made");
	IS_STR(th.device_id, "devA", "enroll: thing of the device");
	IS_STR(th.certificate_serial, "0A1B2C", "enroll: thing's certificate");
	IS_STR(attr(&th, "serial"), "0A1B2C", "enroll: ${serial} expanded");
	IS_STR(attr(&th, "where"), "us-east-1/devA",
	    "enroll: ${region}/${device_id} expanded");
	IS_STR(attr(&th, "line"), "widgiot", "enroll: ${product_line}");
	IS_STR(attr(&th, "id"), "thing-devA", "enroll: text around a var");
	IS_INT(th.ngroups, 1, "enroll: thing in one group");
	IS_STR(STR_AT(th.groups, th.ngroups, 0), "fleet",
	    "enroll: thing in the template's group");
	OK(th.created_at > 0, "enroll: thing created_at");
	registry_thing_fini(&th);
	IS_INT(has_group(r, "fleet", &cnt), 1, "enroll: the group exists");
	IS_INT(cnt, 1, "enroll: group counts the thing");

	IS_INT(registry_cert_list(r, "devA", 0, &c, &n), 0,
	    "enroll: certificates of the device");
	IS_INT(n, 1, "enroll: one certificate");
	c0 = AT(c, n, 0);
	IS_STR(c0->serial, "0A1B2C", "enroll: certificate serial");
	IS_INT(c0->status, CERT_ACTIVE, "enroll: certificate ACTIVE");
	IS_STR(c0->enrollment_id, "enr-1", "enroll: certificate's enrollment");
	IS_STR(c0->ca_name, "us-east-1.widgiot", "enroll: certificate's CA");
	IS_INT(c0->not_after, now + 86400 * 365, "enroll: certificate's end");
	IS_INT(c0->issued_at, now, "enroll: certificate issued_at");
	IS_INT(c0->npolicies, 2, "enroll: two policies on the certificate");
	IS_STR(STR_AT(c0->policies, c0->npolicies, 0), "p1",
	    "enroll: policy p1 attached to the certificate");
	IS_STR(STR_AT(c0->policies, c0->npolicies, 1), "p2",
	    "enroll: policy p2 attached to the certificate");
	registry_certs_free(c, n);
}

/* e, as recorded, read back by id, by key, and not by CSR. */
static void
enroll_read_back(registry *r, const registry_enrollment *e)
{
	registry_enrollment g;

	IS_INT(registry_enrollment_get(r, "enr-1", &g), 0,
	    "enroll: enrollment by id");
	IS_STR(g.device_id, "devA", "enroll: read back: device id");
	IS_STR(g.idempotency_key, "k1", "enroll: read back: key");
	OK(same_bytes(g.csr_sha256, e->csr_sha256, 32),
	    "enroll: read back: CSR fingerprint");
	IS_STR(g.serial, "0A1B2C", "enroll: read back: serial");
	IS_STR(g.ca_name, e->ca_name, "enroll: read back: CA");
	IS_STR(g.certificate_pem, e->certificate_pem,
	    "enroll: read back: certificate");
	IS_STR(g.chain_pem, e->chain_pem, "enroll: read back: chain");
	IS_STR(g.region, "us-east-1", "enroll: read back: region");
	IS_INT(g.not_before, e->not_before, "enroll: read back: not_before");
	IS_INT(g.not_after, e->not_after, "enroll: read back: not_after");
	IS_INT(g.created_at, e->created_at, "enroll: read back: created_at");
	IS_INT(g.state, ENROLLMENT_ISSUED, "enroll: read back: state");
	IS_STR(g.replaces_serial, "", "enroll: read back: replaces nothing");
	registry_enrollment_fini(&g);
	IS_INT(registry_enrollment_get(r, "enr-x", &g), SF_ENOTFOUND,
	    "enroll: unknown enrollment id");

	IS_INT(registry_enrollment_by_key(r, "devA", "k1", &g), 0,
	    "enroll: by (device, key)");
	IS_STR(g.enrollment_id, "enr-1", "enroll: the right enrollment");
	registry_enrollment_fini(&g);
	IS_INT(registry_enrollment_by_key(r, "devA", "k2", &g), SF_ENOTFOUND,
	    "enroll: other key not found");
	IS_INT(registry_enrollment_by_key(r, "devB", "k1", &g), SF_ENOTFOUND,
	    "enroll: keys are scoped to the device");
	IS_INT(registry_enrollment_by_key(r, "devA", "", &g), SF_ENOTFOUND,
	    "enroll: no lookup by an empty key");
	IS_INT(registry_enrollment_by_csr(r, "devA", e->csr_sha256, 0, &g),
	    SF_ENOTFOUND, "enroll: one with a key is not found by CSR");
}

/* A racing retry, a taken enrollment id, a taken serial: SF_EEXIST,
 * nothing written. */
static void
enroll_duplicates(registry *r, const registry_template *tmpl, int64_t now)
{
	registry_enrollment e, g;
	registry_device d;
	registry_cert *c = NULL;
	size_t n = 0;

	e = enr("enr-3", "devA", "k1", 9, "0D", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, tmpl), SF_EEXIST,
	    "enroll: same (device, key) is SF_EEXIST");
	IS_INT(registry_enrollment_get(r, "enr-3", &g), SF_ENOTFOUND,
	    "enroll: the duplicate wrote no enrollment");
	registry_cert_list(r, "devA", 0, &c, &n);
	IS_INT(n, 1, "enroll: the duplicate wrote no certificate");
	registry_certs_free(c, n);
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "0A1B2C", "enroll: current serial unchanged");
	registry_device_fini(&d);
	e = enr("enr-1", "devB", "", 9, "0E", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), SF_EEXIST,
	    "enroll: a taken enrollment id is SF_EEXIST");
	e = enr("enr-4", "devB", "k1", 1, "0A1B2C", now, ENROLLMENT_ISSUED,
	    "");
	IS_INT(registry_enroll_commit(r, &e, NULL), SF_EEXIST,
	    "enroll: a taken serial is SF_EEXIST");
}

/* Without a key: found by CSR fingerprint within the window. */
static void
enroll_by_csr(registry *r, int64_t now)
{
	registry_enrollment e, g;
	registry_device d;
	registry_thing th;
	uint8_t fp[32];

	e = enr("enr-2", "devB", "", 7, "0B", now - 100, ENROLLMENT_ISSUED,
	    "");
	IS_INT(registry_enroll_commit(r, &e, NULL), 0,
	    "enroll: commit without key or template");
	fp_make(fp, 7);
	IS_INT(registry_enrollment_by_csr(r, "devB", fp, now - 3600, &g), 0,
	    "enroll: by (device, CSR) since an hour ago");
	IS_STR(g.enrollment_id, "enr-2", "enroll: the right one");
	registry_enrollment_fini(&g);
	IS_INT(registry_enrollment_by_csr(r, "devB", fp, now - 50, &g),
	    SF_ENOTFOUND, "enroll: not when created before since");
	IS_INT(registry_enrollment_by_csr(r, "devA", fp, 0, &g),
	    SF_ENOTFOUND, "enroll: CSR lookups are scoped to the device");
	e = enr("enr-5", "devB", "", 7, "0F", now - 10, ENROLLMENT_ISSUED, "");
	registry_enroll_commit(r, &e, NULL);
	registry_enrollment_by_csr(r, "devB", fp, 0, &g);
	IS_STR(g.enrollment_id, "enr-5", "enroll: the newest of a CSR");
	registry_enrollment_fini(&g);
	IS_INT(registry_thing_get(r, "devB", &th), SF_ENOTFOUND,
	    "enroll: no template, no thing");
	registry_device_get(r, "devB", &d);
	IS_INT(d.state, DEVICE_ACTIVE,
	    "enroll: a first enrollment without template: device ACTIVE");
	IS_STR(d.current_serial, "0F",
	    "enroll: a new first enrollment moves current_serial");
	registry_device_fini(&d);
}

/* Refusals, and a device disabled while it was being signed. */
static void
enroll_refusals(registry *r, const registry_template *tmpl, int64_t now)
{
	registry_enrollment e;
	registry_device d;

	e = enr("enr-6", "nobody", "", 1, "10", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), SF_ENOTFOUND,
	    "enroll: unknown device");
	e = enr("enr-7", "devG", "", 1, "11", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, tmpl), SF_EINVAL,
	    "enroll: another product line's template refused");
	e = enr("", "devA", "", 1, "12", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), SF_EINVAL,
	    "enroll: an enrollment id is required");

	/* It stays disabled. */
	registry_device_set_state(r, "devG", DEVICE_DISABLED);
	e = enr("enr-8", "devG", "", 1, "13", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), 0,
	    "enroll: an issued certificate is recorded for a disabled device");
	registry_device_get(r, "devG", &d);
	IS_INT(d.state, DEVICE_DISABLED,
	    "enroll: ...and the device stays DISABLED");
	IS_STR(d.current_serial, "13",
	    "enroll: ...holding the certificate recorded");
	registry_device_fini(&d);
}

static void
test_enroll(void)
{
	registry_template tmpl = { 0 };
	registry_enrollment e;
	int64_t now = sf_now();
	registry *r;

	if ((r = enroll_setup("enroll", &tmpl)) == NULL) {
		OK(0, "enroll: setup");
		return;
	}
	e = enr("enr-1", "devA", "k1", 1, "0A1B2C", now, ENROLLMENT_ISSUED,
	    "");
	IS_INT(registry_enroll_commit(r, &e, &tmpl), 0, "enroll: commit");
	enroll_first(r, now);
	enroll_read_back(r, &e);
	enroll_duplicates(r, &tmpl, now);
	enroll_by_csr(r, now);
	enroll_refusals(r, &tmpl, now);
	registry_template_fini(&tmpl);
	registry_close(r);
}

static void
test_rollback(void)
{
	char *pols[] = { "p1", "missing" };
	char *an[] = { "serial" }, *av[] = { "${serial}" };
	registry_template bad = { "widgiot", "rollback-group", pols, 2, an, av,
	    1 };
	registry_template tmpl = { 0 };
	registry_enrollment e, g;
	registry_device d;
	registry_thing th;
	registry_cert *c = NULL;
	size_t n = 9;
	registry *r;

	if ((r = enroll_setup("rollback", &tmpl)) == NULL) {
		OK(0, "rollback: setup");
		return;
	}
	e = enr("enr-r", "devA", "kr", 1, "AA01", sf_now(), ENROLLMENT_ISSUED,
	    "");
	IS_INT(registry_enroll_commit(r, &e, &bad), SF_ENOTFOUND,
	    "rollback: a template naming a missing policy fails");
	IS_INT(registry_enrollment_get(r, "enr-r", &g), SF_ENOTFOUND,
	    "rollback: no enrollment");
	IS_INT(registry_enrollment_by_key(r, "devA", "kr", &g), SF_ENOTFOUND,
	    "rollback: the key is free");
	registry_cert_list(r, "devA", 0, &c, &n);
	IS_INT(n, 0, "rollback: no certificate");
	registry_certs_free(c, n);
	registry_device_get(r, "devA", &d);
	IS_INT(d.state, DEVICE_REGISTERED, "rollback: device still REGISTERED");
	IS_STR(d.current_serial, "", "rollback: device has no serial");
	registry_device_fini(&d);
	IS_INT(registry_thing_get(r, "devA", &th), SF_ENOTFOUND,
	    "rollback: no thing");
	IS_INT(has_group(r, "rollback-group", NULL), 0, "rollback: no group");

	IS_INT(registry_enroll_commit(r, &e, &tmpl), 0,
	    "rollback: the same enrollment commits with a good template");
	registry_cert_list(r, "devA", 0, &c, &n);
	IS_INT(n, 1, "rollback: now recorded");
	IS_INT(AT(c, n, 0)->npolicies, 2, "rollback: now with its policies");
	registry_certs_free(c, n);
	registry_template_fini(&tmpl);
	registry_close(r);
}

/* devA holds 01; a rotation to 02 waits for its acknowledgement. */
static void
certs_rotation(registry *r, const registry_template *tmpl, int64_t t0)
{
	registry_enrollment e;
	registry_device d;
	registry_thing th;
	registry_cert *c = NULL;
	size_t n = 0;

	e = enr("e2", "devA", "rot", 2, "02", t0 + 10, ENROLLMENT_PENDING_ACK,
	    "01");
	IS_INT(registry_enroll_commit(r, &e, tmpl), 0, "certs: rotation");
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "01", "certs: device keeps its certificate");
	registry_device_fini(&d);
	registry_thing_get(r, "devA", &th);
	IS_STR(th.certificate_serial, "01", "certs: so does its thing");
	IS_STR(attr(&th, "serial"), "02", "certs: attributes re-expanded");
	IS_INT(th.ngroups, 1, "certs: still one group");
	registry_thing_fini(&th);

	IS_INT(registry_cert_list(r, "devA", 0, &c, &n), 0, "certs: list");
	IS_INT(n, 2, "certs: two certificates");
	IS_STR(AT(c, n, 0)->serial, "02", "certs: newest first");
	IS_STR(AT(c, n, 1)->serial, "01", "certs: then the older");
	IS_INT(AT(c, n, 0)->status, CERT_PENDING_ACK,
	    "certs: PENDING_ACK for a rotation");
	IS_INT(AT(c, n, 1)->status, CERT_ACTIVE,
	    "certs: the one it replaces still ACTIVE");
	IS_INT(AT(c, n, 0)->npolicies, 2, "certs: rotation has policies");
	registry_certs_free(c, n);
	registry_cert_list(r, "devA", 1, &c, &n);
	IS_INT(n, 1, "certs: limit");
	IS_STR(AT(c, n, 0)->serial, "02", "certs: limit keeps the newest");
	registry_certs_free(c, n);
	registry_cert_list(r, "devB", 0, &c, &n);
	IS_INT(n, 0, "certs: another device has none");
	registry_certs_free(c, n);
}

/* The rotation acknowledged: statuses, the device's current serial, the
 * enrollment's state. */
static void
certs_status(registry *r)
{
	registry_enrollment g;
	registry_device d;
	registry_thing th;
	registry_cert *c = NULL;
	size_t n = 0;

	IS_INT(registry_cert_set_status(r, "02", CERT_ACTIVE), 0,
	    "certs: acknowledge");
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "02", "certs: current_serial follows ACTIVE");
	registry_device_fini(&d);
	registry_thing_get(r, "devA", &th);
	IS_STR(th.certificate_serial, "02", "certs: thing follows too");
	registry_thing_fini(&th);
	IS_INT(registry_cert_set_status(r, "01", CERT_SUPERSEDED), 0,
	    "certs: supersede the old one");
	registry_cert_list(r, "devA", 0, &c, &n);
	IS_INT(n, 2, "certs: still two certificates");
	IS_INT(AT(c, n, 0)->status, CERT_ACTIVE, "certs: ACTIVE stored");
	IS_INT(AT(c, n, 1)->status, CERT_SUPERSEDED,
	    "certs: SUPERSEDED stored");
	registry_certs_free(c, n);
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "02", "certs: SUPERSEDED leaves current");
	registry_device_fini(&d);
	IS_INT(registry_cert_set_status(r, "99", CERT_ACTIVE), SF_ENOTFOUND,
	    "certs: unknown serial");
	IS_INT(registry_cert_set_status(r, "02", 42), SF_EINVAL,
	    "certs: unknown status");

	IS_INT(registry_enrollment_set_state(r, "e2",
	    ENROLLMENT_ACKNOWLEDGED), 0, "certs: enrollment acknowledged");
	registry_enrollment_get(r, "e2", &g);
	IS_INT(g.state, ENROLLMENT_ACKNOWLEDGED,
	    "certs: enrollment state stored");
	IS_STR(g.replaces_serial, "01",
	    "certs: enrollment names what it replaces");
	registry_enrollment_fini(&g);
	IS_INT(registry_enrollment_set_state(r, "nope",
	    ENROLLMENT_ACKNOWLEDGED), SF_ENOTFOUND,
	    "certs: unknown enrollment");
	IS_INT(registry_enrollment_set_state(r, "e2", 0), SF_EINVAL,
	    "certs: unknown enrollment state");
}

static void
test_certs(void)
{
	registry_template tmpl = { 0 };
	registry_enrollment e;
	int64_t t0 = sf_now() - 1000;
	registry *r;

	if ((r = enroll_setup("certs", &tmpl)) == NULL) {
		OK(0, "certs: setup");
		return;
	}
	e = enr("e1", "devA", "", 1, "01", t0, ENROLLMENT_ISSUED, "");
	registry_enroll_commit(r, &e, &tmpl);
	certs_rotation(r, &tmpl, t0);
	certs_status(r);
	registry_template_fini(&tmpl);
	registry_close(r);
}

/*
 * Mirrors of the signer: an orphan adopted (held only by a device that
 * holds nothing, with the signer's status), every certificate paged by
 * serial with its device, a revoked device that stays revoked.
 */
static void
test_adopt(void)
{
	registry_adopt_status active = { CERT_ACTIVE, 0, 0 };
	registry_adopt_status revoked = { CERT_REVOKED, 1, 1234 };
	registry_template tmpl = { 0 };
	registry_enrollment e;
	registry_device d;
	registry_thing th;
	registry_cert *c = NULL;
	size_t n = 0;
	int64_t t0 = sf_now() - 100;
	registry *r;

	if ((r = enroll_setup("adopt", &tmpl)) == NULL) {
		OK(0, "adopt: setup");
		return;
	}
	e = enr("enr-o1", "devA", "", 0, "0B01", t0, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_adopt(r, &e, &tmpl, &active), 0,
	    "adopt: an orphan of a device that holds nothing");
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "0B01", "adopt: the device holds it");
	IS_INT(d.state, DEVICE_ACTIVE, "adopt: and is ACTIVE");
	registry_device_fini(&d);
	IS_INT(registry_thing_get(r, "devA", &th), 0, "adopt: its thing is"
	    " made from the template");
	registry_thing_fini(&th);
	e = enr("enr-o2", "devA", "", 0, "0A02", t0 + 1, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_adopt(r, &e, &tmpl, &active), 0,
	    "adopt: a second orphan of the same device");
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "0B01", "adopt: the device keeps the one it"
	    " holds");
	registry_device_fini(&d);
	IS_INT(registry_enroll_adopt(r, &e, &tmpl, &active), SF_EEXIST,
	    "adopt: the same orphan again: SF_EEXIST");
	e = enr("enr-o3", "devB", "", 0, "0C03", t0 + 2, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_adopt(r, &e, NULL, &revoked), 0,
	    "adopt: a revoked orphan");
	registry_device_get(r, "devB", &d);
	IS_STR(d.current_serial, "", "adopt: held by nobody");
	registry_device_fini(&d);
	registry_cert_list(r, "devB", 0, &c, &n);
	IS_INT(AT(c, n, 0)->status, CERT_REVOKED, "adopt: recorded revoked");
	IS_INT(AT(c, n, 0)->revocation_reason, 1, "adopt: with its reason");
	IS_INT(AT(c, n, 0)->revoked_at, 1234, "adopt: and time");
	registry_certs_free(c, n);
	revoked.status = 42;
	IS_INT(registry_enroll_adopt(r, &e, NULL, &revoked), SF_EINVAL,
	    "adopt: a status out of range: SF_EINVAL");

	IS_INT(registry_cert_page(r, "", 2, &c, &n), 0, "page: the first");
	IS_INT(n, 2, "page: two");
	IS_STR(AT(c, n, 0)->serial, "0A02", "page: by serial");
	IS_STR(AT(c, n, 1)->serial, "0B01", "page: then the next");
	IS_STR(AT(c, n, 1)->device_id, "devA", "page: with the device");
	registry_certs_free(c, n);
	IS_INT(registry_cert_page(r, "0B01", 2, &c, &n), 0, "page: the next");
	IS_INT(n, 1, "page: the last one");
	IS_STR(AT(c, n, 0)->device_id, "devB", "page: of devB");
	registry_certs_free(c, n);

	IS_INT(registry_device_set_state(r, "devB", DEVICE_REVOKED), 0,
	    "a device revoked (the signer's mirror)");
	e = enr("enr-o4", "devB", "", 0, "0D04", t0 + 3, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), 0, "a certificate recorded"
	    " for it");
	registry_device_get(r, "devB", &d);
	IS_INT(d.state, DEVICE_REVOKED, "the device stays revoked");
	registry_device_fini(&d);
	registry_template_fini(&tmpl);
	registry_close(r);
}

/* Things t0..t4 of widgiot (group fleet-w), t5..t7 of gadget (fleet-g),
 * each enrolled once. */
static registry *
things_setup(void)
{
	static char *pw[] = { "p1" };
	static char *an[] = { "serial" }, *av[] = { "${serial}" };
	registry_template tw = { "widgiot", "fleet-w", pw, 1, an, av, 1 };
	registry_template tg = { "gadget", "fleet-g", NULL, 0, NULL, NULL, 0 };
	registry_enrollment e;
	char id[16], eid[16], serial[16];
	registry *r;

	if ((r = open_case("things")) == NULL)
		return NULL;
	registry_policy_put(r, "p1", "{}");
	registry_template_put(r, &tw);
	registry_template_put(r, &tg);
	for (unsigned i = 0; i < 8; i++) {
		int w = i < 5;

		snprintf(id, sizeof id, "t%u", i);
		snprintf(eid, sizeof eid, "e%u", i);
		snprintf(serial, sizeof serial, "%02X", i + 1);
		import1(r, id, 50 + i, w ? "widgiot" : "gadget", "");
		e = enr(eid, id, "", i, serial, sf_now(), ENROLLMENT_ISSUED,
		    "");
		registry_enroll_commit(r, &e, w ? &tw : &tg);
	}
	/* A repeated first enrollment of t0 (below). */
	e = enr("e0b", "t0", "", 77, "F0", sf_now(), ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, &tw), 0, "things: re-enroll t0");
	return r;
}

/* Lists of things: all, a group's, page by page. */
static void
things_lists(registry *r)
{
	registry_thing *v = NULL;
	char after[16] = "";
	size_t n = 0, total = 0;
	int pages = 0;

	IS_INT(registry_thing_list(r, "", "", 0, &v, &n), 0, "things: list");
	IS_INT(n, 8, "things: all of them");
	IS_STR(AT(v, n, 0)->name, "t0", "things: by name: first");
	IS_STR(AT(v, n, 7)->name, "t7", "things: by name: last");
	IS_INT(AT(v, n, 7)->ngroups, 1, "things: rows complete: groups");
	IS_STR(STR_AT(AT(v, n, 7)->groups, AT(v, n, 7)->ngroups, 0),
	    "fleet-g", "things: rows complete: group name");
	IS_INT(AT(v, n, 7)->nattrs, 0, "things: rows complete: no attributes");
	IS_INT(AT(v, n, 0)->nattrs, 1, "things: rows complete: attributes");
	registry_things_free(v, n);
	registry_thing_list(r, "fleet-g", NULL, 0, &v, &n);
	IS_INT(n, 3, "things: by group: three");
	IS_STR(AT(v, n, 0)->name, "t5", "things: by group: from t5");
	registry_things_free(v, n);
	registry_thing_list(r, "no-such-group", NULL, 0, &v, &n);
	IS_INT(n, 0, "things: an unknown group has none");
	registry_things_free(v, n);
	do {
		if (registry_thing_list(r, "fleet-w", after, 2, &v, &n) != 0)
			break;
		if (n)
			snprintf(after, sizeof after, "%s", v[n - 1].name);
		total += n;
		pages++;
		registry_things_free(v, n);
	} while (n > 0 && pages < 10);
	IS_INT(total, 5, "things: paging a group: every member once");
	IS_INT(pages, 4, "things: paging a group (2+2+1+0)");
}

static void
test_things(void)
{
	registry_thing th;
	char **names = NULL;
	uint32_t *counts = NULL;
	size_t n = 0;
	registry *r;

	if ((r = things_setup()) == NULL) {
		OK(0, "things: open");
		return;
	}
	/* The repeated first enrollment must not duplicate anything. */
	registry_thing_get(r, "t0", &th);
	IS_INT(th.nattrs, 1, "things: re-enrollment: one attribute");
	IS_STR(STR_AT(th.attr_values, th.nattrs, 0), "F0",
	    "things: re-enrollment updates the attribute in place");
	IS_INT(th.ngroups, 1, "things: re-enrollment: one group");
	IS_STR(th.certificate_serial, "F0",
	    "things: re-enrollment updates the serial in place");
	registry_thing_fini(&th);
	IS_INT(registry_thing_get(r, "t9", &th), SF_ENOTFOUND,
	    "things: unknown thing");
	things_lists(r);

	IS_INT(registry_group_list(r, &names, &counts, &n), 0,
	    "groups: list");
	IS_INT(n, 2, "groups: two");
	IS_STR(STR_AT(names, n, 0), "fleet-g", "groups: by name: first");
	IS_INT(n > 0 ? counts[0] : 0, 3, "groups: fleet-g has three");
	IS_STR(STR_AT(names, n, 1), "fleet-w", "groups: by name: second");
	IS_INT(n > 1 ? counts[1] : 0, 5, "groups: fleet-w has five");
	registry_strings_free(names, n);
	free(counts);
	registry_close(r);
}

struct worker {
	registry *r;
	int id;
	int errors;
	int first_error;
};

#define ROUNDS 25
#define BATCH 8

static void
worker_fail(struct worker *w, int rc)
{
	if (w->errors++ == 0)
		w->first_error = rc;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct key keys[BATCH];
	registry_import_rec recs[BATCH];
	char ids[BATCH][16], eid[32], serial[32];
	int out[BATCH], rc;

	for (int round = 0; round < ROUNDS; round++) {
		registry_device *v = NULL, d;
		registry_enrollment e, g;
		size_t n = 0;
		int64_t cnt;

		for (int i = 0; i < BATCH; i++) {
			unsigned seed = 100000u * (unsigned)(w->id + 1) +
			    (unsigned)(round * BATCH + i);

			snprintf(ids[i], sizeof ids[i], "w%d-%03d-%d", w->id,
			    round, i);
			key_make(&keys[i], seed);
			recs[i] = rec(ids[i], &keys[i], "widgiot", "");
		}
		if ((rc = registry_import(w->r, recs, BATCH, out)) != 0)
			worker_fail(w, rc);
		for (int i = 0; i < BATCH; i++)
			if (rc == 0 && out[i] != REGISTRY_IMPORTED)
				worker_fail(w, SF_EINTERNAL);
		snprintf(eid, sizeof eid, "we-%s", ids[0]);
		snprintf(serial, sizeof serial, "%02X%03X", w->id, round);
		e = enr(eid, ids[0], "k", 1, serial, sf_now(),
		    ENROLLMENT_ISSUED, "");
		if ((rc = registry_enroll_commit(w->r, &e, NULL)) != 0)
			worker_fail(w, rc);
		if ((rc = registry_enrollment_by_key(w->r, ids[0], "k",
		    &g)) != 0)
			worker_fail(w, rc);
		registry_enrollment_fini(&g);
		if ((rc = registry_device_get(w->r, ids[BATCH - 1], &d)) != 0)
			worker_fail(w, rc);
		registry_device_fini(&d);
		if ((rc = registry_device_list(w->r, "", "", 0, "", 50, &v,
		    &n)) != 0)
			worker_fail(w, rc);
		registry_devices_free(v, n);
		if ((rc = registry_device_count(w->r, &cnt)) != 0)
			worker_fail(w, rc);
	}
	return NULL;
}

static void
test_concurrency(void)
{
	struct worker w[4];
	pthread_t th[4];
	int64_t count = 0;
	int errors = 0, first = 0, started = 0;
	registry *r;

	if ((r = open_case("threads")) == NULL) {
		OK(0, "threads: open");
		return;
	}
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ r, i, 0, 0 };
		if (pthread_create(&th[i], NULL, worker_main, &w[i]) == 0)
			started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		if (w[i].errors && first == 0)
			first = w[i].first_error;
		errors += w[i].errors;
	}
	IS_INT(started, 4, "threads: four threads");
	OK(errors == 0, "threads: importing and reading at once, no errors "
	    "(first: %s)", errors ? sf_strerror(first) : "none");
	registry_device_count(r, &count);
	IS_INT(count, 4 * ROUNDS * BATCH, "threads: every device recorded");
	registry_close(r);
}

/*
 * Group commit (file registries): writers on eight threads share commits,
 * yet each put is durable when it returns (another connection sees it at
 * once), and a writer's failure undoes its own put only.
 */
#define GC_THREADS 8
#define GC_PUTS 25

struct gc {
	registry *r;
	const char *path;
	int id, errors, invisible, refused_ok;
};

static void *
gc_main(void *arg)
{
	struct gc *g = arg;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char name[32];

	if (sqlite3_open_v2(g->path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v2(db, "SELECT count(*) FROM"
	    " policies WHERE name = ?", -1, &st, NULL) != SQLITE_OK) {
		g->errors++;
		sqlite3_close(db);
		return NULL;
	}
	for (int i = 0; i < GC_PUTS; i++) {
		int bad = g->id == 0 && i % 5 == 4, rc;

		snprintf(name, sizeof name, "gc-%d-%02d", g->id, i);
		rc = registry_policy_put(g->r, name, bad ? "{not json" :
		    "{\"Version\":\"2012-10-17\"}");
		if (bad) {
			g->refused_ok += rc == SF_EINVAL;
			continue;
		}
		if (rc != 0) {
			g->errors++;
			continue;
		}
		sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_ROW ||
		    sqlite3_column_int(st, 0) != 1)
			g->invisible++;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}

/*
 * A factory batch commits without a checkpoint until the WAL holds the
 * bulk bar (common/walckpt.h); the next ordinary commit checkpoints. The
 * bars are lowered here: 64 pages, and a bulk bar no batch reaches; each
 * batch of 2000 records is a few hundred pages.
 */
#define BULK_BATCH 2000
static void
test_bulk_checkpoint(void)
{
	static struct key k[BULK_BATCH];
	static registry_import_rec v[BULK_BATCH];
	static char ids[BULK_BATCH][16];
	static int out[BULK_BATCH];
	unsigned long before;
	int rc = 0, imported = 0;
	registry *r;

	if (strcmp(mode, "file") != 0)
		return;
	if ((r = open_case("bulk")) == NULL) {
		OK(0, "bulk checkpoint: open");
		return;
	}
	r->w.ckpt.pages = 64;
	r->w.ckpt.bulk_pages = 1 << 30;
	before = r->w.ckpt.checkpoints;
	for (int b = 0; b < 4 && rc == 0; b++) {
		for (int i = 0; i < BULK_BATCH; i++) {
			snprintf(ids[i], sizeof ids[i], "bulk-%d-%d", b, i);
			key_make(&k[i], 100000 + b * BULK_BATCH + i);
			v[i] = rec(ids[i], &k[i], "widgiot", "");
		}
		rc = registry_import(r, v, BULK_BATCH, out);
		for (int i = 0; i < BULK_BATCH; i++)
			imported += out[i] == REGISTRY_IMPORTED;
	}
	IS_INT(rc, 0, "bulk checkpoint: four batches of %d", BULK_BATCH);
	IS_INT(imported, 4 * BULK_BATCH, "bulk checkpoint: all imported");
	IS_INT((int)(r->w.ckpt.checkpoints - before), 0, "bulk checkpoint: no"
	    " batch's commit checkpointed (one each without the bulk mark)");
	IS_INT(r->w.ckpt.bulk, 0, "bulk checkpoint: the mark is cleared after"
	    " the commit");
	IS_INT(registry_device_set_state(r, "bulk-0-0", DEVICE_DISABLED), 0,
	    "bulk checkpoint: an ordinary write");
	IS_INT((int)(r->w.ckpt.checkpoints - before), 1, "bulk checkpoint: its"
	    " commit checkpoints what the batches left");
	registry_close(r);
}

static void
test_group_commit(void)
{
	struct gc g[GC_THREADS];
	pthread_t th[GC_THREADS];
	char path[512], *doc = NULL;
	int errors = 0, invisible = 0, refused = 0, started = 0, present = 0;
	registry *r;

	if (strcmp(mode, "file") != 0)
		return;
	if ((r = open_case("group")) == NULL) {
		OK(0, "group commit: open");
		return;
	}
	snprintf(path, sizeof path, "%s/%02d-group.db", tmpdir, caseno);
	for (int i = 0; i < GC_THREADS; i++) {
		g[i] = (struct gc){ r, path, i, 0, 0, 0 };
		if (pthread_create(&th[i], NULL, gc_main, &g[i]) == 0)
			started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		errors += g[i].errors;
		invisible += g[i].invisible;
		refused += g[i].refused_ok;
	}
	IS_INT(started, GC_THREADS, "group commit: eight writers");
	IS_INT(errors, 0, "group commit: every valid put succeeds");
	IS_INT(invisible, 0, "group commit: each put is committed (seen by"
	    " another connection) when it returns");
	IS_INT(refused, GC_PUTS / 5, "group commit: the invalid puts are"
	    " refused (SF_EINVAL)");
	for (int t = 0; t < GC_THREADS; t++)
		for (int i = 0; i < GC_PUTS; i++) {
			char name[32];

			snprintf(name, sizeof name, "gc-%d-%02d", t, i);
			if (registry_policy_get(r, name, &doc) == 0)
				present++;
			free(doc);
			doc = NULL;
		}
	IS_INT(present, GC_THREADS * GC_PUTS - GC_PUTS / 5, "group commit:"
	    " every valid put is there, no refused one is");
	registry_close(r);
	/* And after a reopen: on disk, not only in a page cache. */
	if (registry_open(path, &r, NULL, 0) == 0) {
		IS_INT(registry_policy_get(r, "gc-7-24", &doc), 0,
		    "group commit: the last put survives a reopen");
		free(doc);
		registry_close(r);
	} else
		OK(0, "group commit: reopen");
}

static void
test_reopen(void)
{
	char path[512], why[256];
	registry_template tmpl = { 0 }, t2;
	registry_enrollment e, g;
	registry_device d;
	registry_thing th;
	int64_t count = -1;
	registry *r, *r2 = NULL;

	if (strcmp(mode, "memory") == 0) {
		/* Each ":memory:" registry is its own database. */
		r = open_case("memory-a");
		import1(r, "only-here", 1, "widgiot", "");
		registry_open(":memory:", &r2, why, sizeof why);
		if (r2)
			registry_device_count(r2, &count);
		IS_INT(count, 0, "reopen: another :memory: registry is empty");
		registry_close(r2);
		registry_close(r);
		return;
	}
	if ((r = enroll_setup("reopen", &tmpl)) == NULL) {
		OK(0, "reopen: setup");
		return;
	}
	snprintf(path, sizeof path, "%s/%02d-reopen.db", tmpdir, caseno);
	e = enr("enr-1", "devA", "k1", 1, "ABCD", sf_now(), ENROLLMENT_ISSUED,
	    "");
	registry_enroll_commit(r, &e, &tmpl);
	registry_close(r);
	registry_template_fini(&tmpl);

	IS_INT(registry_open(path, &r, why, sizeof why), 0, "reopen: open");
	if (r == NULL)
		return;
	registry_device_count(r, &count);
	IS_INT(count, 3, "reopen: devices kept");
	registry_device_get(r, "devA", &d);
	IS_INT(d.state, DEVICE_ACTIVE, "reopen: device state kept");
	IS_STR(d.current_serial, "ABCD", "reopen: device serial kept");
	registry_device_fini(&d);
	IS_INT(registry_enrollment_by_key(r, "devA", "k1", &g), 0,
	    "reopen: enrollment kept");
	registry_enrollment_fini(&g);
	IS_INT(registry_thing_get(r, "devA", &th), 0, "reopen: thing kept");
	registry_thing_fini(&th);
	IS_INT(registry_template_get(r, "widgiot", &t2), 0,
	    "reopen: template kept");
	registry_template_fini(&t2);
	IS_INT(import1(r, "devA", 1, "widgiot", "us-east-1"),
	    REGISTRY_UNCHANGED, "reopen: re-import after reopen is UNCHANGED");
	registry_close(r);
}

/* ---- renewal with acknowledgement (registry_renew.c) ---- */

/* devA holds 01; its renewal 02 (deadline t0 + 100) is acknowledged with
 * a new key; devB's key is refused as that new key. */
static void
renewal_ack(registry *r, const registry_template *tmpl, int64_t t0)
{
	registry_enrollment e, g;
	registry_device d;
	registry_cert c;
	registry_key kb, kn;
	struct key b, n;
	char *sup = NULL;
	int64_t a, z;

	key_make(&b, 2);
	key_make(&n, 77);
	kb = (registry_key){ b.spki, sizeof b.spki, b.fp };
	kn = (registry_key){ n.spki, sizeof n.spki, n.fp };
	e = enr("enr-1", "devA", "", 1, "01", t0, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, tmpl), 0, "renewal: enroll 01");
	e = enr("e2", "devA", "", 2, "02", t0 + 10, ENROLLMENT_PENDING_ACK,
	    "01");
	e.ack_deadline = t0 + 100;
	IS_INT(registry_enroll_commit(r, &e, tmpl), 0, "renewal: renew to 02");
	registry_enrollment_get(r, "enr-1", &g);
	registry_renew_window(g.not_before, g.not_after, &a, &z);
	IS_INT(g.renew_after, a, "renewal: the enrollment reads its"
	    " certificate's window");
	IS_INT(g.renew_before, z, "renewal: both ends");
	registry_enrollment_fini(&g);
	registry_enrollment_get(r, "e2", &g);
	IS_INT(g.ack_deadline, t0 + 100, "renewal: and its deadline");
	registry_enrollment_fini(&g);
	IS_INT(registry_cert_get(r, "02", &c), 0, "renewal: the certificate");
	IS_INT(c.status, CERT_PENDING_ACK, "renewal: PENDING_ACK");
	IS_STR(c.replaces_serial, "01", "renewal: replaces 01");
	IS_INT(c.ack_deadline, t0 + 100, "renewal: with its deadline");
	IS_INT(c.renew_after, t0 + 10 + 86400 * 365 / 3 * 2,
	    "renewal: its window opens at two thirds");
	registry_cert_fini(&c);
	IS_INT(registry_cert_get(r, "99", &c), SF_ENOTFOUND,
	    "renewal: an unknown serial");

	IS_INT(registry_renew_ack(r, "enr-1", t0, NULL, &sup), SF_ESTATE,
	    "renewal: a first enrollment is no renewal");
	IS_INT(registry_renew_ack(r, "e9", t0, NULL, &sup), SF_ENOTFOUND,
	    "renewal: an unknown enrollment");
	IS_INT(registry_renew_ack(r, "e2", t0 + 50, &kb, &sup), SF_EEXIST,
	    "renewal: another device's key");
	registry_cert_get(r, "02", &c);
	IS_INT(c.status, CERT_PENDING_ACK, "renewal: nothing changed then");
	registry_cert_fini(&c);

	IS_INT(registry_renew_ack(r, "e2", t0 + 50, &kn, &sup), 0,
	    "renewal: acknowledged with a new key");
	IS_STR(sup, "01", "renewal: 01 superseded");
	free(sup);
	sup = NULL;
	registry_cert_get(r, "02", &c);
	IS_INT(c.status, CERT_ACTIVE, "renewal: 02 ACTIVE");
	registry_cert_fini(&c);
	registry_cert_get(r, "01", &c);
	IS_INT(c.status, CERT_SUPERSEDED, "renewal: 01 SUPERSEDED");
	IS_INT(c.revocation_reason, 4, "renewal: reason superseded");
	IS_INT(c.revoked_at, t0 + 50, "renewal: at the acknowledgement");
	registry_cert_fini(&c);
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "02", "renewal: the device holds 02");
	OK(same_bytes(d.key_sha256, n.fp, 32) && d.spki_len == sizeof n.spki,
	    "renewal: and its new key");
	registry_device_fini(&d);
	registry_enrollment_get(r, "e2", &g);
	IS_INT(g.state, ENROLLMENT_ACKNOWLEDGED, "renewal: ACKNOWLEDGED");
	registry_enrollment_fini(&g);
	IS_INT(registry_renew_ack(r, "e2", t0 + 70, NULL, &sup), 0,
	    "renewal: acknowledged again");
	IS_STR(sup, "01", "renewal: the same answer");
	free(sup);
	registry_cert_get(r, "01", &c);
	IS_INT(c.revoked_at, t0 + 50, "renewal: and nothing changed");
	registry_cert_fini(&c);
}

/* devA's renewal 03 of 02 is not acknowledged by t0 + 200. */
static void
renewal_sweep(registry *r, const registry_template *tmpl, int64_t t0)
{
	registry_enrollment e, g;
	registry_device d;
	registry_cert c;
	char **v = NULL, *sup = NULL;
	size_t n = 0;
	int outcome = 0;

	e = enr("e3", "devA", "", 3, "03", t0 + 20, ENROLLMENT_PENDING_ACK,
	    "02");
	e.ack_deadline = t0 + 200;
	IS_INT(registry_enroll_commit(r, &e, tmpl), 0, "sweep: renew to 03");
	IS_INT(registry_renew_sweep(r, t0 + 199, 5, 10, &v, &n), 0,
	    "sweep: before the deadline");
	IS_INT(n, 0, "sweep: nothing");
	registry_strings_free(v, n);
	IS_INT(registry_renew_sweep(r, t0 + 200, 5, 10, &v, &n), 0,
	    "sweep: at the deadline");
	IS_INT(n, 1, "sweep: one renewal");
	IS_STR(STR_AT(v, n, 0), "03", "sweep: 03");
	registry_strings_free(v, n);
	registry_cert_get(r, "03", &c);
	IS_INT(c.status, CERT_REVOKED, "sweep: 03 REVOKED");
	IS_INT(c.revocation_reason, 5, "sweep: for the reason given");
	IS_INT(c.revoked_at, t0 + 200, "sweep: at its deadline");
	registry_cert_fini(&c);
	registry_enrollment_get(r, "e3", &g);
	IS_INT(g.state, ENROLLMENT_FAILED, "sweep: its enrollment FAILED");
	registry_enrollment_fini(&g);
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "02", "sweep: the device keeps 02");
	registry_device_fini(&d);
	IS_INT(registry_renew_sweep(r, t0 + 300, 5, 10, &v, &n), 0,
	    "sweep: again");
	IS_INT(n, 0, "sweep: nothing left");
	registry_strings_free(v, n);
	/* The signer acknowledged it after all: authz follows. */
	IS_INT(registry_renew_ack(r, "e3", t0 + 201, NULL, &sup), 0,
	    "sweep: a FAILED renewal the signer acknowledged");
	free(sup);
	registry_cert_get(r, "03", &c);
	IS_INT(c.status, CERT_ACTIVE, "sweep: is ACTIVE");
	IS_INT(c.revocation_reason, 0, "sweep: its revocation undone");
	registry_cert_fini(&c);
	IS_INT(registry_cert_mirror(r, "02", CERT_SUPERSEDED, 4, t0 + 201,
	    &outcome), 0, "sweep: mirror 02 superseded");
	registry_cert_get(r, "02", &c);
	IS_INT(c.revoked_at, t0 + 201, "sweep: a superseded certificate"
	    " keeps its time");
	IS_INT(c.revocation_reason, 4, "sweep: and its reason");
	registry_cert_fini(&c);
}

static void
renewal_pull(registry *r, int64_t t0)
{
	char *devs[] = { "devA" }, *none[] = { "" };
	registry_renew_sel sel = { devs, 1, "", "" };
	registry_cert c;
	uint32_t n = 9;

	IS_INT(registry_renew_pull(r, &sel, t0 + 1000, t0 + 2000, "incident",
	    &n), 0, "pull: devA");
	IS_INT(n, 1, "pull: its one active certificate");
	registry_cert_get(r, "03", &c);
	IS_INT(c.renew_after, t0 + 1000, "pull: opens earlier");
	IS_INT(c.renew_before, t0 + 2000, "pull: closes earlier");
	IS_STR(c.renew_note, "incident", "pull: with the note");
	registry_cert_fini(&c);
	IS_INT(registry_renew_pull(r, &sel, t0 + 5000, t0 + 6000, "later",
	    &n), 0, "pull: later");
	IS_INT(n, 0, "pull: moves nothing later");
	registry_cert_get(r, "03", &c);
	IS_INT(c.renew_after, t0 + 1000, "pull: the window stays");
	IS_STR(c.renew_note, "incident", "pull: and its note");
	registry_cert_fini(&c);
	sel = (registry_renew_sel){ NULL, 0, "gadget", "" };
	IS_INT(registry_renew_pull(r, &sel, t0, t0 + 10, "", &n), 0,
	    "pull: another product line");
	IS_INT(n, 0, "pull: none of its certificates");
	sel = (registry_renew_sel){ NULL, 0, "widgiot", "us-east-1.widgiot" };
	IS_INT(registry_renew_pull(r, &sel, t0, t0 + 10, "", &n), 0,
	    "pull: product line and CA");
	IS_INT(n, 1, "pull: devA's active certificate");
	sel = (registry_renew_sel){ NULL, 0, "", "" };
	IS_INT(registry_renew_pull(r, &sel, t0, t0 + 10, "", &n), SF_EINVAL,
	    "pull: no selector");
	sel = (registry_renew_sel){ none, 1, "", "" };
	IS_INT(registry_renew_pull(r, &sel, t0, t0 + 10, "", &n), SF_EINVAL,
	    "pull: an empty device id");
	sel = (registry_renew_sel){ devs, 1, "", "" };
	IS_INT(registry_renew_pull(r, &sel, t0 + 10, t0 + 10, "", &n),
	    SF_EINVAL, "pull: an empty window");
}

/* What the signer says settles a renewal authz has pending (the mirror
 * `audit reconcile` sends). */
static void
renewal_settle(registry *r, const registry_template *tmpl, int64_t t0)
{
	registry_enrollment e, g;
	registry_device d;
	int outcome = 0;

	e = enr("eb1", "devB", "", 11, "11", t0, ENROLLMENT_ISSUED, "");
	registry_enroll_commit(r, &e, tmpl);
	e = enr("eb2", "devB", "", 12, "12", t0 + 1, ENROLLMENT_PENDING_ACK,
	    "11");
	registry_enroll_commit(r, &e, tmpl);
	IS_INT(registry_cert_mirror(r, "12", CERT_ACTIVE, 0, 0, &outcome), 0,
	    "settle: the signer has the renewal ACTIVE");
	registry_enrollment_get(r, "eb2", &g);
	IS_INT(g.state, ENROLLMENT_ACKNOWLEDGED, "settle: ACKNOWLEDGED");
	registry_enrollment_fini(&g);
	registry_device_get(r, "devB", &d);
	IS_STR(d.current_serial, "12", "settle: the device holds it");
	registry_device_fini(&d);
	e = enr("eb3", "devB", "", 13, "13", t0 + 2, ENROLLMENT_PENDING_ACK,
	    "12");
	registry_enroll_commit(r, &e, tmpl);
	IS_INT(registry_cert_mirror(r, "13", CERT_REVOKED, 5, t0 + 3,
	    &outcome), 0, "settle: the signer has the next one REVOKED");
	registry_enrollment_get(r, "eb3", &g);
	IS_INT(g.state, ENROLLMENT_FAILED, "settle: FAILED");
	registry_enrollment_fini(&g);
	registry_device_get(r, "devB", &d);
	IS_STR(d.current_serial, "12", "settle: the device keeps 12");
	registry_device_fini(&d);
	IS_INT(registry_cert_mirror(r, "11", CERT_REVOKED, 1, t0 + 3,
	    &outcome), 0, "settle: a first enrollment's certificate revoked");
	registry_enrollment_get(r, "eb1", &g);
	IS_INT(g.state, ENROLLMENT_ISSUED, "settle: its enrollment stays");
	registry_enrollment_fini(&g);
	mirror_batch(r, t0);
}

/* registry_cert_mirror_batch: one transaction; a bad update anywhere
 * writes nothing at all. */
static void
mirror_batch(registry *r, int64_t t0)
{
	registry_cert_update u[3] = {
		{ "12", CERT_REVOKED, 1, t0 + 5 },
		{ "99", CERT_REVOKED, 1, t0 + 5 },
		{ "13", 99, 0, 0 },
	};
	registry_cert c;
	int out[3] = { -1, -1, -1 };
	size_t bad = 0;

	IS_INT(registry_cert_mirror_batch(r, u, 3, out, &bad), SF_EINVAL,
	    "mirror batch: a bad status refuses the call");
	IS_INT((int)bad, 2, "mirror batch: ... naming the update");
	registry_cert_get(r, "12", &c);
	IS_INT(c.status, CERT_ACTIVE, "mirror batch: nothing written, not even"
	    " the good update before it");
	registry_cert_fini(&c);
	u[2] = (registry_cert_update){ "13", CERT_REVOKED, 5, t0 + 3 };
	IS_INT(registry_cert_mirror_batch(r, u, 3, out, &bad), 0,
	    "mirror batch: three updates");
	IS_INT(out[0], REGISTRY_MIRROR_UPDATED, "mirror batch: 12 updated");
	IS_INT(out[1], REGISTRY_MIRROR_UNKNOWN, "mirror batch: 99 unknown");
	IS_INT(out[2], REGISTRY_MIRROR_UNCHANGED, "mirror batch: 13 unchanged");
	registry_cert_get(r, "12", &c);
	IS_INT(c.status, CERT_REVOKED, "mirror batch: 12 revoked");
	registry_cert_fini(&c);
}

static void
test_renewal(void)
{
	registry_template tmpl;
	registry *r;
	int64_t t0 = sf_now(), a, z;

	registry_renew_window(0, 600, &a, &z);
	IS_INT(a, 400, "window: opens at two thirds");
	IS_INT(z, 500, "window: closes at five sixths");
	registry_renew_window(10, 10, &a, &z);
	OK(a == 10 && z == 10, "window: of nothing");
	if ((r = enroll_setup("renewal", &tmpl)) == NULL) {
		OK(0, "renewal: setup");
		return;
	}
	renewal_ack(r, &tmpl, t0);
	renewal_sweep(r, &tmpl, t0);
	renewal_pull(r, t0);
	renewal_settle(r, &tmpl, t0);
	registry_template_fini(&tmpl);
	registry_close(r);
}

static void
rm_tmpdir(void)
{
	struct dirent *de;
	char path[600];
	DIR *dir;

	if ((dir = opendir(tmpdir)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(dir);
	rmdir(tmpdir);
}

int
main(void)
{
	static const char *modes[] = { "memory", "file" };
	const char *base = getenv("TMPDIR");

	log_init("test_registry", getenv("SF_TEST_VERBOSE") ?
	    LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	snprintf(tmpdir, sizeof tmpdir, "%s/sf-registry.XXXXXX",
	    base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp %s\n", tmpdir);
		return 1;
	}
	for (size_t i = 0; i < 2; i++) {
		mode = modes[i];
		tap_diag("registry on %s", mode);
		test_open();
		test_import();
		test_devices();
		test_policies();
		test_templates();
		test_enroll();
		test_rollback();
		test_certs();
		test_adopt();
		test_renewal();
		test_things();
		test_concurrency();
		test_group_commit();
		test_bulk_checkpoint();
		test_reopen();
	}
	rm_tmpdir();
	return tap_done();
}
