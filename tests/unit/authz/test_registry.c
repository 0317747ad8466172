/*
 * Unit tests of authz/registry.c. Every case runs twice: against
 * ":memory:" (one connection) and against a file in a temporary directory
 * (WAL, a writing and a reading connection). A fresh registry per case.
 *
 * Covered: import outcomes, device get / list / paging / filters / state /
 * count, policies, templates, enroll_commit (device, thing, attributes,
 * group, policies; lookups by id, key and CSR; SF_EEXIST; rollback),
 * certificates and their status, things and groups, four threads writing
 * and reading at once, and a file reopened.
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
#include "util.h"
#include "../../tap.h"

static char tmpdir[256];
static const char *mode;      /* "memory" or "file" */
static int caseno;

#define OK(c, fmt, ...) ok(c, "[%s] " fmt, mode, ##__VA_ARGS__)
#define IS_INT(a, b, fmt, ...) is_int(a, b, "[%s] " fmt, mode, ##__VA_ARGS__)
#define IS_STR(a, b, fmt, ...) is_str(a, b, "[%s] " fmt, mode, ##__VA_ARGS__)

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
	OK(rc != 0 && r == NULL && why[0] != '\0',
	    "open: a missing directory fails with a reason (%s)", why);
	/* A file from a newer schema is refused, not reused. */
	snprintf(path, sizeof path, "%s/%02d-newer.db", tmpdir, ++caseno);
	if (sqlite3_open(path, &db) == SQLITE_OK)
		sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(db);
	why[0] = '\0';
	rc = registry_open(path, &r, why, sizeof why);
	OK(rc == SF_EDB && r == NULL && strstr(why, "99") != NULL,
	    "open: a newer schema version is refused (%s)", why);
}

static void
test_import(void)
{
	struct key ka, kb, kc, ke, kf;
	registry_device d;
	registry_import_rec v[4];
	int out[4];
	int64_t n = 0, upd;
	registry *r;
	int rc;

	if ((r = open_case("import")) == NULL) {
		OK(0, "import: open");
		return;
	}
	key_make(&ka, 1);
	key_make(&kb, 2);
	key_make(&kc, 3);
	key_make(&ke, 5);
	key_make(&kf, 6);

	v[0] = rec("1111", &ka, "widgiot", "us-east-1");
	v[1] = rec("1112", &kb, "widgiot", "");
	rc = registry_import(r, v, 2, out);
	IS_INT(rc, 0, "import: batch accepted");
	IS_INT(out[0], REGISTRY_IMPORTED, "import: 1111 imported");
	IS_INT(out[1], REGISTRY_IMPORTED, "import: 1112 imported");
	registry_device_count(r, &n);
	IS_INT(n, 2, "import: two devices");

	rc = registry_device_get(r, "1111", &d);
	IS_INT(rc, 0, "import: 1111 readable");
	IS_STR(d.device_id, "1111", "import: device id");
	OK(d.spki_len == sizeof ka.spki &&
	    memcmp(d.spki, ka.spki, d.spki_len) == 0, "import: SPKI kept");
	OK(memcmp(d.key_sha256, ka.fp, 32) == 0, "import: fingerprint kept");
	IS_STR(d.product_line, "widgiot", "import: product line");
	IS_STR(d.region, "us-east-1", "import: region");
	IS_INT(d.state, DEVICE_REGISTERED,
	    "import: new devices are REGISTERED");
	IS_STR(d.current_serial, "", "import: no current serial");
	OK(d.created_at > 0 && d.updated_at == d.created_at,
	    "import: times set");
	upd = d.updated_at;
	registry_device_fini(&d);
	OK(d.device_id == NULL && d.spki == NULL, "device_fini zeroes");
	registry_device_fini(NULL);

	rc = registry_import(r, v, 2, out);
	OK(rc == 0 && out[0] == REGISTRY_UNCHANGED &&
	    out[1] == REGISTRY_UNCHANGED,
	    "import: re-import is UNCHANGED");
	registry_device_count(r, &n);
	IS_INT(n, 2, "import: re-import adds nothing");
	registry_device_get(r, "1111", &d);
	IS_INT(d.updated_at, upd, "import: re-import touches nothing");
	registry_device_fini(&d);

	v[0] = rec("1111", &kc, "widgiot", "us-east-1");
	v[1] = rec("1113", &ka, "widgiot", "us-east-1");
	v[2] = rec("1111", &ka, "widgiot", "eu-west-1");
	v[3] = rec("1111", &ka, "gadget", "us-east-1");
	rc = registry_import(r, v, 4, out);
	IS_INT(rc, 0, "import: refusals are outcomes, not errors");
	IS_INT(out[0], REGISTRY_ID_OTHER_KEY, "import: known id, other key");
	IS_INT(out[1], REGISTRY_KEY_OTHER_ID, "import: known key, other id");
	IS_INT(out[2], REGISTRY_OTHER_PLACE, "import: other region");
	IS_INT(out[3], REGISTRY_OTHER_PLACE, "import: other product line");
	IS_INT(registry_device_get(r, "1113", &d), SF_ENOTFOUND,
	    "import: refused record wrote no row");
	registry_device_get(r, "1111", &d);
	OK(memcmp(d.key_sha256, ka.fp, 32) == 0 &&
	    strcmp(d.region, "us-east-1") == 0 &&
	    strcmp(d.product_line, "widgiot") == 0,
	    "import: refused records left 1111 as it was");
	registry_device_fini(&d);
	/* Key C was refused with 1111: it is free for a new id. */
	IS_INT(import1(r, "1114", 3, "widgiot", ""), REGISTRY_IMPORTED,
	    "import: a refused record's key stays unregistered");

	/* Later records of a batch see earlier ones. */
	v[0] = rec("1115", &ke, "widgiot", "");
	v[1] = rec("1115", &ke, "widgiot", "");
	v[2] = rec("1116", &ke, "widgiot", "");
	v[3] = rec("1115", &kf, "widgiot", "");
	rc = registry_import(r, v, 4, out);
	IS_INT(rc, 0, "import: batch with duplicates");
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

	/* A malformed record refuses the whole call before any write. */
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
	registry_close(r);
}

static void
test_devices(void)
{
	registry_device *v = NULL, d;
	size_t n = 0, total = 0;
	char id[16], after[16] = "";
	int64_t count = 0;
	registry *r;
	int rc, pages = 0, sorted = 1;

	if ((r = open_case("devices")) == NULL) {
		OK(0, "devices: open");
		return;
	}
	for (unsigned i = 0; i < 25; i++) {
		static const char *regions[] = { "us-east-1", "eu-west-1", "" };

		snprintf(id, sizeof id, "d%02u", i);
		import1(r, id, 100 + i, i % 2 ? "gadget" : "widgiot",
		    regions[i % 3]);
	}
	registry_device_count(r, &count);
	IS_INT(count, 25, "devices: count");

	rc = registry_device_list(r, "", "", 0, "", 0, &v, &n);
	IS_INT(rc, 0, "devices: list all");
	IS_INT(n, 25, "devices: limit 0 is no limit");
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i - 1].device_id, v[i].device_id) >= 0)
			sorted = 0;
	OK(sorted, "devices: in id order");
	OK(n > 0 && v[0].spki_len > 0 && strcmp(v[0].device_id, "d00") == 0,
	    "devices: rows complete");
	registry_devices_free(v, n);

	do {
		rc = registry_device_list(r, NULL, NULL, 0, after, 10, &v, &n);
		if (rc != 0)
			break;
		if (n > 0)
			snprintf(after, sizeof after, "%s",
			    v[n - 1].device_id);
		if (pages == 0)
			IS_STR(n ? v[0].device_id : NULL, "d00",
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
	OK(n == 1 && strcmp(v[0].device_id, "d03") == 0,
	    "devices: state filter");
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
	OK(n == 2 && strcmp(names[0], "admin") == 0 &&
	    strcmp(names[1], "telemetry") == 0 &&
	    strcmp(docs[1], "{\"v\":2}") == 0, "policies: listed by name");
	registry_strings_free(names, n);
	registry_strings_free(docs, n);
	registry_close(r);
}

static void
test_templates(void)
{
	char *pols[] = { "connect", "publish" }, *bad_pols[] = { "nope" };
	char *an[] = { "serial", "where", "line", "price" };
	char *av[] = { "${serial}", "${region}/${device_id}",
	    "${product_line}", "$5 a $" };
	char *bad_v[] = { "${serial" }, *bad_n[] = { "x" };
	registry_template t = { "widgiot", "fleet", pols, 2, an, av, 4 }, g, *v;
	size_t n = 0;
	uint32_t cnt = 9;
	registry *r;

	if ((r = open_case("templates")) == NULL) {
		OK(0, "templates: open");
		return;
	}
	IS_INT(registry_template_put(r, &t), SF_ENOTFOUND,
	    "templates: policies must exist");
	IS_INT(registry_template_get(r, "widgiot", &g), SF_ENOTFOUND,
	    "templates: refused template not stored");
	registry_policy_put(r, "connect", "{}");
	registry_policy_put(r, "publish", "{}");
	IS_INT(registry_template_put(r, &t), 0, "templates: put");
	IS_INT(registry_template_get(r, "widgiot", &g), 0, "templates: get");
	IS_STR(g.product_line, "widgiot", "templates: product line");
	IS_STR(g.thing_group, "fleet", "templates: group");
	OK(g.npolicies == 2 && strcmp(g.policies[0], "connect") == 0 &&
	    strcmp(g.policies[1], "publish") == 0,
	    "templates: policies in order");
	OK(g.nattrs == 4 && strcmp(g.attr_names[1], "where") == 0 &&
	    strcmp(g.attr_values[1], "${region}/${device_id}") == 0 &&
	    strcmp(g.attr_values[3], "$5 a $") == 0,
	    "templates: attributes kept unexpanded, in order");
	registry_template_fini(&g);
	OK(has_group(r, "fleet", &cnt) == 1 && cnt == 0,
	    "templates: the group exists, empty");

	t.attr_values = bad_v;
	t.attr_names = bad_n;
	t.nattrs = 1;
	IS_INT(registry_template_put(r, &t), SF_EINVAL,
	    "templates: unterminated ${ refused");
	bad_v[0] = "${device_id}-${colour}";
	IS_INT(registry_template_put(r, &t), SF_EINVAL,
	    "templates: unknown variable refused");
	t.policies = bad_pols;
	t.npolicies = 1;
	bad_v[0] = "${device_id}";
	IS_INT(registry_template_put(r, &t), SF_ENOTFOUND,
	    "templates: an unknown policy refused on replace");
	registry_template_get(r, "widgiot", &g);
	OK(g.nattrs == 4 && g.npolicies == 2,
	    "templates: refused replacement changed nothing");
	registry_template_fini(&g);

	/* Replace: fewer attributes, no group. */
	t.policies = pols;
	t.npolicies = 1;
	t.thing_group = "";
	IS_INT(registry_template_put(r, &t), 0, "templates: replace");
	registry_template_get(r, "widgiot", &g);
	OK(g.nattrs == 1 && strcmp(g.attr_names[0], "x") == 0 &&
	    g.npolicies == 1 && strcmp(g.thing_group, "") == 0,
	    "templates: replaced children");
	registry_template_fini(&g);

	t.product_line = "gadget";
	t.nattrs = 0;
	t.attr_names = t.attr_values = NULL;
	IS_INT(registry_template_put(r, &t), 0, "templates: second template");
	t.product_line = "";
	IS_INT(registry_template_put(r, &t), SF_EINVAL,
	    "templates: a product line is required");
	IS_INT(registry_template_list(r, &v, &n), 0, "templates: list");
	OK(n == 2 && strcmp(v[0].product_line, "gadget") == 0 &&
	    strcmp(v[1].product_line, "widgiot") == 0 &&
	    v[1].nattrs == 1 && v[0].npolicies == 1,
	    "templates: listed by product line, complete");
	registry_templates_free(v, n);
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

static void
test_enroll(void)
{
	registry_template tmpl = { 0 };
	registry_enrollment e, g;
	registry_device d;
	registry_thing th;
	registry_cert *c = NULL;
	size_t n = 0;
	uint8_t fp[32];
	int64_t now = sf_now();
	uint32_t cnt = 0;
	registry *r;

	if ((r = enroll_setup("enroll", &tmpl)) == NULL) {
		OK(0, "enroll: setup");
		return;
	}
	e = enr("enr-1", "devA", "k1", 1, "0A1B2C", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, &tmpl), 0, "enroll: commit");

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
	OK(th.ngroups == 1 && strcmp(th.groups[0], "fleet") == 0,
	    "enroll: thing in the template's group");
	OK(th.created_at > 0, "enroll: thing created_at");
	registry_thing_fini(&th);
	OK(has_group(r, "fleet", &cnt) == 1 && cnt == 1,
	    "enroll: group counts the thing");

	IS_INT(registry_cert_list(r, "devA", 0, &c, &n), 0,
	    "enroll: certificates of the device");
	OK(n == 1 && strcmp(c[0].serial, "0A1B2C") == 0 &&
	    c[0].status == CERT_ACTIVE &&
	    strcmp(c[0].enrollment_id, "enr-1") == 0 &&
	    strcmp(c[0].ca_name, "us-east-1.widgiot") == 0 &&
	    c[0].not_after == now + 86400 * 365 && c[0].issued_at == now,
	    "enroll: certificate row ACTIVE");
	OK(n == 1 && c[0].npolicies == 2 &&
	    strcmp(c[0].policies[0], "p1") == 0 &&
	    strcmp(c[0].policies[1], "p2") == 0,
	    "enroll: policies attached to the certificate");
	registry_certs_free(c, n);

	IS_INT(registry_enrollment_get(r, "enr-1", &g), 0,
	    "enroll: enrollment by id");
	OK(strcmp(g.device_id, "devA") == 0 &&
	    strcmp(g.idempotency_key, "k1") == 0 &&
	    memcmp(g.csr_sha256, e.csr_sha256, 32) == 0 &&
	    strcmp(g.serial, "0A1B2C") == 0 &&
	    strcmp(g.ca_name, e.ca_name) == 0 &&
	    strcmp(g.certificate_pem, e.certificate_pem) == 0 &&
	    strcmp(g.chain_pem, e.chain_pem) == 0 &&
	    strcmp(g.region, "us-east-1") == 0 &&
	    g.not_before == e.not_before && g.not_after == e.not_after &&
	    g.created_at == now && g.state == ENROLLMENT_ISSUED &&
	    strcmp(g.replaces_serial, "") == 0,
	    "enroll: every field read back");
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
	IS_INT(registry_enrollment_by_csr(r, "devA", e.csr_sha256, 0, &g),
	    SF_ENOTFOUND, "enroll: one with a key is not found by CSR");

	/* The same (device, key) again: a racing retry. */
	e = enr("enr-3", "devA", "k1", 9, "0D", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, &tmpl), SF_EEXIST,
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
	e = enr("enr-4", "devB", "k1", 1, "0A1B2C", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), SF_EEXIST,
	    "enroll: a taken serial is SF_EEXIST");

	/* Without a key: found by CSR fingerprint within the window. */
	e = enr("enr-2", "devB", "", 7, "0B", now - 100, ENROLLMENT_ISSUED, "");
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
	OK(d.state == DEVICE_ACTIVE && strcmp(d.current_serial, "0F") == 0,
	    "enroll: a new first enrollment moves current_serial");
	registry_device_fini(&d);

	e = enr("enr-6", "nobody", "", 1, "10", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), SF_ENOTFOUND,
	    "enroll: unknown device");
	e = enr("enr-7", "devG", "", 1, "11", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, &tmpl), SF_EINVAL,
	    "enroll: another product line's template refused");
	e = enr("", "devA", "", 1, "12", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), SF_EINVAL,
	    "enroll: an enrollment id is required");

	/* A device disabled while it was being signed stays disabled. */
	registry_device_set_state(r, "devG", DEVICE_DISABLED);
	e = enr("enr-8", "devG", "", 1, "13", now, ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, NULL), 0,
	    "enroll: an issued certificate is recorded for a disabled device");
	registry_device_get(r, "devG", &d);
	OK(d.state == DEVICE_DISABLED && strcmp(d.current_serial, "13") == 0,
	    "enroll: ...and the device stays DISABLED");
	registry_device_fini(&d);

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
	OK(d.state == DEVICE_REGISTERED && strcmp(d.current_serial, "") == 0,
	    "rollback: device still REGISTERED, no serial");
	registry_device_fini(&d);
	IS_INT(registry_thing_get(r, "devA", &th), SF_ENOTFOUND,
	    "rollback: no thing");
	IS_INT(has_group(r, "rollback-group", NULL), 0, "rollback: no group");

	IS_INT(registry_enroll_commit(r, &e, &tmpl), 0,
	    "rollback: the same enrollment commits with a good template");
	registry_cert_list(r, "devA", 0, &c, &n);
	OK(n == 1 && c[0].npolicies == 2, "rollback: now recorded");
	registry_certs_free(c, n);
	registry_template_fini(&tmpl);
	registry_close(r);
}

static void
test_certs(void)
{
	registry_template tmpl = { 0 };
	registry_enrollment e, g;
	registry_device d;
	registry_thing th;
	registry_cert *c = NULL;
	size_t n = 0;
	int64_t t0 = sf_now() - 1000;
	registry *r;

	if ((r = enroll_setup("certs", &tmpl)) == NULL) {
		OK(0, "certs: setup");
		return;
	}
	e = enr("e1", "devA", "", 1, "01", t0, ENROLLMENT_ISSUED, "");
	registry_enroll_commit(r, &e, &tmpl);
	/* A rotation: pending until the device acknowledges. */
	e = enr("e2", "devA", "rot", 2, "02", t0 + 10, ENROLLMENT_PENDING_ACK,
	    "01");
	IS_INT(registry_enroll_commit(r, &e, &tmpl), 0, "certs: rotation");
	registry_device_get(r, "devA", &d);
	IS_STR(d.current_serial, "01", "certs: device keeps its certificate");
	registry_device_fini(&d);
	registry_thing_get(r, "devA", &th);
	IS_STR(th.certificate_serial, "01", "certs: so does its thing");
	IS_STR(attr(&th, "serial"), "02", "certs: attributes re-expanded");
	OK(th.ngroups == 1, "certs: still one group");
	registry_thing_fini(&th);

	IS_INT(registry_cert_list(r, "devA", 0, &c, &n), 0, "certs: list");
	OK(n == 2 && strcmp(c[0].serial, "02") == 0 &&
	    strcmp(c[1].serial, "01") == 0, "certs: newest first");
	OK(n == 2 && c[0].status == CERT_PENDING_ACK &&
	    c[1].status == CERT_ACTIVE, "certs: PENDING_ACK for a rotation");
	OK(n == 2 && c[0].npolicies == 2, "certs: rotation has policies");
	registry_certs_free(c, n);
	registry_cert_list(r, "devA", 1, &c, &n);
	OK(n == 1 && strcmp(c[0].serial, "02") == 0, "certs: limit");
	registry_certs_free(c, n);
	registry_cert_list(r, "devB", 0, &c, &n);
	IS_INT(n, 0, "certs: another device has none");
	registry_certs_free(c, n);

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
	OK(n == 2 && c[0].status == CERT_ACTIVE &&
	    c[1].status == CERT_SUPERSEDED,
	    "certs: statuses stored");
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
	OK(g.state == ENROLLMENT_ACKNOWLEDGED &&
	    strcmp(g.replaces_serial, "01") == 0,
	    "certs: enrollment state stored");
	registry_enrollment_fini(&g);
	IS_INT(registry_enrollment_set_state(r, "nope",
	    ENROLLMENT_ACKNOWLEDGED), SF_ENOTFOUND,
	    "certs: unknown enrollment");
	IS_INT(registry_enrollment_set_state(r, "e2", 0), SF_EINVAL,
	    "certs: unknown enrollment state");
	registry_template_fini(&tmpl);
	registry_close(r);
}

static void
test_things(void)
{
	static char *pw[] = { "p1" };
	static char *an[] = { "serial" }, *av[] = { "${serial}" };
	registry_template tw = { "widgiot", "fleet-w", pw, 1, an, av, 1 };
	registry_template tg = { "gadget", "fleet-g", NULL, 0, NULL, NULL, 0 };
	registry_enrollment e;
	registry_thing *v = NULL, th;
	char **names = NULL, id[16], eid[16], serial[16], after[16] = "";
	uint32_t *counts = NULL;
	size_t n = 0, total = 0;
	registry *r;
	int pages = 0;

	if ((r = open_case("things")) == NULL) {
		OK(0, "things: open");
		return;
	}
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
	/* A repeated first enrollment must not duplicate anything. */
	e = enr("e0b", "t0", "", 77, "F0", sf_now(), ENROLLMENT_ISSUED, "");
	IS_INT(registry_enroll_commit(r, &e, &tw), 0, "things: re-enroll t0");
	registry_thing_get(r, "t0", &th);
	OK(th.nattrs == 1 && strcmp(th.attr_values[0], "F0") == 0 &&
	    th.ngroups == 1 && strcmp(th.certificate_serial, "F0") == 0,
	    "things: re-enrollment updates the thing in place");
	registry_thing_fini(&th);
	IS_INT(registry_thing_get(r, "t9", &th), SF_ENOTFOUND,
	    "things: unknown thing");

	IS_INT(registry_thing_list(r, "", "", 0, &v, &n), 0, "things: list");
	OK(n == 8 && strcmp(v[0].name, "t0") == 0 &&
	    strcmp(v[7].name, "t7") == 0, "things: all, by name");
	OK(n == 8 && v[7].ngroups == 1 &&
	    strcmp(v[7].groups[0], "fleet-g") == 0 && v[7].nattrs == 0 &&
	    v[0].nattrs == 1, "things: rows complete");
	registry_things_free(v, n);
	registry_thing_list(r, "fleet-g", NULL, 0, &v, &n);
	OK(n == 3 && strcmp(v[0].name, "t5") == 0, "things: by group");
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
	OK(total == 5 && pages == 4, "things: paging a group (2+2+1+0)");

	IS_INT(registry_group_list(r, &names, &counts, &n), 0,
	    "groups: list");
	OK(n == 2 && strcmp(names[0], "fleet-g") == 0 && counts[0] == 3 &&
	    strcmp(names[1], "fleet-w") == 0 && counts[1] == 5,
	    "groups: by name, with member counts");
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
	OK(d.state == DEVICE_ACTIVE && strcmp(d.current_serial, "ABCD") == 0,
	    "reopen: device state kept");
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
		test_things();
		test_concurrency();
		test_reopen();
	}
	rm_tmpdir();
	return tap_done();
}
