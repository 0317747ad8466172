/*
 * Unit tests of signer/ca_keys.c and of what depends on it: every CA's
 * key in the token is checked against its certificate (public key, the
 * private key's attributes, a signed challenge); a CA whose key fails
 * signs nothing (ca_issue, ca_usable, OCSP) and says why; a check that
 * passes again makes it available; verify-after-sign uses the
 * certificate's key, so a key swapped after the check signs nothing that
 * is kept; a key replaced in the token under the CA's label (pkcs11-tool)
 * is found at the next start-up, and with [token] bad_key = refuse the
 * store does not open. Also: the linter on the real issuance path refuses
 * a broken certificate with SF_EINTERNAL, a log line naming the rule and
 * nothing journaled.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca_fixture.h"
#include "log.h"
#include "ocsp_int.h"

static ca_fixture fx;
static ca *root, *inter, *iss;

/* stderr into path from here on; the file's descriptor, or -1. */
static int
open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd >= 0)
		dup2(fd, 2);
	return fd;
}

/* The number of unavailable CAs after a check. */
static int
checked(void)
{
	return (int)ca_store_check_keys(fx.cas, NULL, 0);
}

/* How many certificates the journal has under c. */
static size_t
journaled(const ca *c)
{
	journal_cert_row *v = NULL;
	size_t n = 0;

	if (journal_cert_list(fx.jn, c->rec.id, "", "", 10000, &v, &n) != 0)
		return (size_t)-1;
	journal_cert_rows_free(v, n);
	return n;
}

/* ca_issue of a fresh device leaf under c: the result. */
static int
issue_one(ca *c)
{
	ca_issue_meta m = { "device:widgiot", "dev-1", (const uint8_t *)
	    "0123456789abcdef0123456789abcdef", "test", "", "" };
	X509 *x = ca_fixture_leaf(m.profile, "dev-1", 30, NULL, NULL);
	char serial[64] = "x";
	int rc = x ? ca_issue(fx.cas, c, x, &m, serial) : SF_ENOMEM;

	X509_free(x);
	return rc;
}

static const char *
problem(const ca *c)
{
	static char buf[256];

	ca_key_problem(c, buf, sizeof buf);
	return buf;
}

/* The PIN, for pkcs11-tool's argv (a test token's PIN). */
static int
pin(char *buf, size_t len)
{
	FILE *f = fopen(hsm_pin_path, "r");
	int ok = f && fgets(buf, (int)len, f) != NULL;

	if (f)
		fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return ok ? 0 : -1;
}

static int
pkcs11_tool(const char *args)
{
	const char *module = getenv("SF_SOFTHSM_MODULE") ?
	    getenv("SF_SOFTHSM_MODULE") : "/usr/lib/softhsm/libsofthsm2.so";
	char cmd[1024], p[260];

	if (pin(p, sizeof p) != 0)
		return -1;
	snprintf(cmd, sizeof cmd, "pkcs11-tool --module '%s' --token-label "
	    "secretfree --login --pin '%s' %s >/dev/null 2>&1", module, p,
	    args);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_bound(void)
{
	is_int(checked(), 0, "every CA's key is bound"
	    " to its certificate");
	ok(ca_key_usable(iss), "  the issuing CA's key is usable");
	is_str(problem(iss), "", "  and it has no problem");
	is_int(issue_one(iss), 0, "  and it issues");
}

/* The CA's key in memory exchanged for another key of the token, as a
 * key pair made again under the CA's label would be found. */
static void
test_other_key(void)
{
	token_key *other = NULL, *mine = iss->key;
	char why[512] = "";
	size_t before;
	int rc;

	rc = token_generate_key(fx.tok, "impostor-1", PUBKEY_EC_P256, &other);
	is_int(rc, 0, "another key in the token");
	if (rc != 0)
		return;
	iss->key = other;
	is_int(checked(), 1, "a CA holding a key that"
	    " is not its certificate's: one unavailable CA");
	ok(!ca_key_usable(iss), "  the issuing CA's key is not usable");
	ok(strstr(problem(iss), "is not the one its certificate") != NULL,
	    "  and it says why (%s)", problem(iss));
	is_int(ca_usable(fx.cas, iss, why, sizeof why), SF_EUNAVAIL,
	    "ca_usable: SF_EUNAVAIL");
	ok(strstr(why, "unavailable") != NULL && strstr(why,
	    "us-east-1.widgiot") != NULL, "  naming the CA (%s)", why);
	before = journaled(iss);
	is_int(issue_one(iss), SF_EUNAVAIL, "ca_issue: SF_EUNAVAIL");
	is_int((int)journaled(iss), (int)before, "  nothing journaled");
	{
		ocsp *o = ocsp_new(fx.conf, fx.tok, fx.jn, fx.cas);

		ok(o && !ocsp_ca_usable(o, iss, sf_now()), "OCSP: the CA signs"
		    " no response");
		ocsp_free(o);
	}
	ok(ca_key_usable(inter) && ca_key_usable(root), "the other CAs stay"
	    " available");

	/* Swapped after the check: verify-after-sign is with the
	 * certificate's key, so what the other key signed is discarded. */
	__atomic_store_n(&iss->key_bad, 0, __ATOMIC_RELEASE);
	is_int(issue_one(iss), SF_EUNAVAIL, "a key swapped after the check:"
	    " ca_issue signs, the certificate's key refuses the signature:"
	    " SF_EUNAVAIL (the token misbehaves)");
	is_int((int)journaled(iss), (int)before, "  nothing journaled");

	iss->key = mine;
	is_int(checked(), 0, "its own key back: the"
	    " next check passes");
	ok(ca_key_usable(iss), "  the CA is available again");
	is_int(issue_one(iss), 0, "  and issues");
	token_key_free(other);
}

/* A pending CA (no certificate yet) holding a key made with pkcs11-tool's
 * defaults: its attributes are what the check refuses. */
static void
test_attributes(void)
{
	ca_create_req r;
	token_key *loose = NULL, *mine;
	char why[512] = "", *csr = NULL;
	ca *pend = NULL;
	int rc;

	memset(&r, 0, sizeof r);
	r.role = ROLE_ISSUING;
	r.product_line = "widgiot";
	r.region = "ap-south-1";
	r.external_parent = 1;
	rc = ca_create(fx.cas, &r, &pend, &csr, why, sizeof why);
	free(csr);
	csr = NULL;
	is_int(rc, 0, "a pending CA (%s)", why);
	if (rc != 0)
		return;
	if (system("command -v pkcs11-tool >/dev/null 2>&1") != 0 ||
	    pkcs11_tool("--keypairgen --key-type EC:prime256v1 --label loose"
	    " --id 0a0b") != 0 || token_find_key(fx.tok, "loose", &loose) !=
	    0) {
		tap_skip("pkcs11-tool cannot make a key");
		return;
	}
	mine = pend->key;
	pend->key = loose;
	is_int(checked(), 1, "a CA whose key may"
	    " decrypt: one unavailable CA");
	ok(strstr(problem(pend), "CKA_DECRYPT") != NULL ||
	    strstr(problem(pend), "CKA_MODIFIABLE") != NULL ||
	    strstr(problem(pend), "CKA_UNWRAP") != NULL, "  naming the"
	    " attribute (%s)", problem(pend));
	is_int(ca_export_csr(fx.cas, pend, NULL, &csr, why, sizeof why),
	    SF_EUNAVAIL, "  it signs no CSR either (%s)", why);
	free(csr);
	pend->key = mine;
	is_int(checked(), 0, "its own key back: all"
	    " available");
	token_key_free(loose);
}

/* The issuing CA's key pair replaced in the token under its label (as a
 * re-initialised token or a careless admin would), then a restart. */
static void
test_replaced_at_start(void)
{
	char args[512], why[512] = "";
	ca **all = NULL;
	ca *c;
	size_t n;

	if (system("command -v pkcs11-tool >/dev/null 2>&1") != 0) {
		tap_skip("no pkcs11-tool");
		return;
	}
	snprintf(args, sizeof args, "--delete-object --type privkey --label"
	    " %s", iss->rec.key_label);
	ok(pkcs11_tool(args) == 0, "pkcs11-tool deletes the private key %s",
	    iss->rec.key_label);
	snprintf(args, sizeof args, "--delete-object --type pubkey --label"
	    " %s", iss->rec.key_label);
	ok(pkcs11_tool(args) == 0, "  and its public key");
	snprintf(args, sizeof args, "--keypairgen --key-type EC:prime256v1"
	    " --usage-sign --label %s --id 0c0d", iss->rec.key_label);
	ok(pkcs11_tool(args) == 0, "  and makes a new pair under the label");

	ca_store_close(fx.cas);
	fx.cas = NULL;
	root = inter = iss = NULL;
	fx.conf->bad_key_refuse = 1;
	is_int(ca_store_open(fx.conf, fx.tok, fx.jn, &fx.cas, why,
	    sizeof why), SF_ESTATE, "[token] bad_key = refuse: the store does"
	    " not open");
	ok(strstr(why, "bad_key = refuse") != NULL && strstr(why,
	    "us-east-1.widgiot") != NULL, "  naming the CA and why (%s)", why);
	ok(fx.cas == NULL, "  and nothing is left open");
	fx.conf->bad_key_refuse = 0;
	why[0] = '\0';
	is_int(ca_store_open(fx.conf, fx.tok, fx.jn, &fx.cas, why,
	    sizeof why), 0, "bad_key = unavailable (default): the store opens"
	    " (%s)", why);
	if (fx.cas == NULL)
		return;
	c = ca_find(fx.cas, "us-east-1.widgiot", NULL);
	ok(c && !ca_key_usable(c), "  the issuing CA is unavailable");
	ok(c && strstr(problem(c), "is not the one its certificate") != NULL,
	    "  because the key under its label is not its certificate's"
	    " (%s)", c ? problem(c) : "");
	is_int(c ? issue_one(c) : -1, SF_EUNAVAIL, "  it issues nothing");
	n = ca_list(fx.cas, &all);
	for (size_t i = 0; i < n; i++)
		if (all[i] != c && strcmp(all[i]->rec.name, "ap-south-1."
		    "widgiot") != 0)
			ok(ca_key_usable(all[i]), "  CA %s stays available",
			    all[i]->rec.name);
	free(all);
}

/* The linter on the one path every certificate takes. */
static void
test_lint_on_issue(void)
{
	ca_issue_meta m = { "device:widgiot", "dev-2", (const uint8_t *)
	    "0123456789abcdef0123456789abcdef", "test", "", "" };
	X509 *x = ca_fixture_leaf(m.profile, "dev-2", 30, NULL, NULL);
	char serial[64] = "x", path[400], line[1024];
	size_t before = journaled(iss);
	int saved = dup(2), fd, rc, seen = 0;
	FILE *f;

	if (x == NULL)
		return;
	/* A device certificate without its EKU. */
	X509_EXTENSION_free(X509_delete_ext(x, X509_get_ext_by_NID(x,
	    NID_ext_key_usage, -1)));
	snprintf(path, sizeof path, "%s/stderr.log", hsm_dir);
	fflush(stderr);
	fd = open_log(path);
	rc = ca_issue(fx.cas, iss, x, &m, serial);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	if (fd >= 0)
		close(fd);
	is_int(rc, SF_EINTERNAL, "ca_issue of a device certificate without"
	    " EKU: SF_EINTERNAL");
	is_str(serial, "", "  no serial");
	is_int((int)journaled(iss), (int)before, "  nothing journaled");
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof line, f))
			if (strstr(line, "refused before signing: lint rule"
			    " extension-missing") != NULL) {
				seen = 1;
				tap_diag("%s", line);
			}
		fclose(f);
	}
	ok(seen, "  the log names the rule (extension-missing)");
	X509_free(x);
}

int
main(void)
{
	log_init("test_ca_keys", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "sf-cakeys", NULL) != 0)
		return tap_done();
	root = ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL);
	inter = ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot", NULL);
	iss = ca_fixture_create(&fx, ROLE_ISSUING, "widgiot", "us-east-1");
	if (root && inter && iss) {
		test_bound();
		test_lint_on_issue();
		test_other_key();
		test_attributes();
		test_replaced_at_start();
	}
	ca_fixture_close(&fx);
	return tap_done();
}
