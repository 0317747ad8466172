/*
 * Unit tests of signer/issue.c against a real SoftHSM2 token and journal
 * (ca_fixture.h), with a root, the widgiot intermediate and the
 * us-east-1.widgiot issuing CA made by ca_create. Device certificates:
 * every field built from the profile and none copied from the CSR's
 * extensions; the journal row there when issue_device returns; the
 * signer's own, second check of the device (a key other than the
 * registered one is refused as SF_EPERM, which is PERMISSION_DENIED; an
 * unknown device is SF_ENOTFOUND, NOT_FOUND; another product line or
 * region is refused; a re-registration with another key changes nothing);
 * the product line's key types, the per-device rate cap, malformed
 * requests; serials distinct and positive. Device state at the signer
 * (devstate.c): a disabled or revoked device is refused, the cap on live
 * certificates holds even against concurrent requests and gives way only
 * to a renewal of an active certificate of the device, a request that
 * repeats an enrollment id gets the journal's certificate again (and an
 * enrollment id of another device is refused), the fields journaled as
 * sent are checked. Server certificates: SANs and serverAuth, and their
 * refusals.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "issue.h"
#include "log.h"
#include "pbenum.h"
#include "revoke.h"
#include "profile.h"
#include "pubkey.h"
#include "rate.h"
#include "rpc.h"
#include "ca_fixture.h"
#include "../csr_fixture.h"

static ca_fixture fx;
static issuer_ctx ic;
static ca *root, *inter, *iss;

/* ---- helpers ---- */

static EVP_PKEY *
new_key(const char *curve)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

/* The fingerprint the signer's table keeps for key. */
static void
key_fp(EVP_PKEY *key, uint8_t fp[32])
{
	pubkey_info pk;
	char why[256];

	memset(&pk, 0, sizeof pk);
	memset(fp, 0, 32);
	if (pubkey_from_evp(key, &pk, why, sizeof why) == 0)
		memcpy(fp, pk.sha256, 32);
	pubkey_info_free(&pk);
}

/* Register id with key for a product line and region; the outcome. */
static int
enroll_device(const char *id, EVP_PKEY *key, const char *pl, const char *rg)
{
	uint8_t fp[32];
	journal_device d = { id, fp, pl, rg };
	int outcome = 0;

	key_fp(key, fp);
	if (journal_device_register(fx.jn, &d, 1, &outcome) != 0)
		return -1;
	return outcome;
}

/* issue_device for r with a fresh CSR of id by key. */
static int
issue_req_for(EVP_PKEY *key, const char *id, int hostile, issue_req *r,
    issue_result *out, char *why, size_t whylen)
{
	uint8_t *der = NULL;
	int rc;

	if (make_csr(key, id, hostile, &der, &r->csr_len) != 0)
		return -100;
	r->csr = der;
	rc = issue_device(&ic, r, out, why, whylen);
	r->csr = NULL;
	OPENSSL_free(der);
	return rc;
}

/* issue_device for id's CSR by key, under a new enrollment id ("enr-1",
 * "enr-2", ...); why gets the refusal. */
static int
issue(EVP_PKEY *key, const char *id, const char *pl, const char *rg,
    int hostile, issue_result *out, char *why, size_t whylen)
{
	static int seq;
	char eid[32];
	issue_req r = { NULL, 0, pl, rg, "authz", eid, "", NULL };

	snprintf(eid, sizeof eid, "enr-%d", ++seq);
	return issue_req_for(key, id, hostile, &r, out, why, whylen);
}

/* issue_device for id's CSR by key returns rc (0: issues), saying want. */
static void
expect_issue(EVP_PKEY *key, const char *id, const char *pl, const char *rg,
    int rc, const char *want, const char *what)
{
	issue_result out;
	char why[512] = "";

	is_int(issue(key, id, pl, rg, 0, &out, why, sizeof why), rc, "%s: %s",
	    what, sf_strerror(rc));
	if (want)
		is_str(why, want, "  saying so");
	issue_result_fini(&out);
}

static int64_t
certs_of(const ca *c)
{
	int64_t n = -1;

	journal_cert_count(fx.jn, c->rec.id, &n);
	return n;
}

/* The text of x's subject in the one-line form. */
static char *
subject_of(X509 *x)
{
	return profile_subject_fmt(X509_get_subject_name(x));
}

/* ---- device certificates ---- */

/* What issue_device returns for a good request, and its journal row. */
static void
test_device_result(const issue_result *out, EVP_PKEY *key)
{
	journal_cert_row row;
	uint8_t fp[32];
	unsigned char *der = NULL;
	X509 *x = pem_cert(out->cert_pem);
	int len;

	key_fp(key, fp);
	is_str(out->device_id, "dev-0001", "the result names the device");
	ok(memcmp(out->key_sha256, fp, 32) == 0, "  and its key");
	is_str(out->ca_name, "us-east-1.widgiot", "  and the issuing CA");
	ok(out->chain_pem == iss->chain_pem, "  with the issuing CA's chain");
	is_int(strlen(out->serial), 2 * SERIAL_LEN, "  a 16-byte serial");
	ok(x != NULL, "  the certificate PEM parses");
	if (x == NULL)
		return;
	is_int(out->not_before, profile_time_unix(X509_get0_notBefore(x)),
	    "  not_before is the certificate's");
	is_int(out->not_after, profile_time_unix(X509_get0_notAfter(x)),
	    "  not_after is the certificate's");
	/* The row is there when issue_device returns, not later. */
	memset(&row, 0, sizeof row);
	is_int(journal_cert_get(fx.jn, out->serial, iss->rec.id, &row), 0,
	    "the journal row exists on return");
	is_str(row.device_id, "dev-0001", "  for the device");
	is_str(row.profile, "device:widgiot", "  profile device:widgiot");
	is_str(row.requester, "authz", "  requester");
	is_str(row.enrollment_id, "enr-1", "  enrollment id");
	ok(memcmp(row.key_sha256, fp, 32) == 0, "  key fingerprint");
	len = i2d_X509(x, &der);
	is_int(row.der_len, len, "  DER length");
	ok((row.der && (int)row.der_len == len) ? memcmp(row.der, der,
	    row.der_len) == 0 : 0, "  the certificate returned, byte for byte");
	journal_cert_row_fini(&row);
	OPENSSL_free(der);
	X509_free(x);
}

/* What the device profile puts in every client certificate: not a CA,
 * digitalSignature (EC), clientAuth, and the profile's seven extensions:
 * basicConstraints, keyUsage, extendedKeyUsage, SKI, AKI, CRL DP, AIA. */
static void
check_client_profile(X509 *x, const char *what)
{
	is_int(X509_check_ca(x), 0, "%s: not a CA", what);
	is_int(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE,
	    "%s: keyUsage digitalSignature only", what);
	is_int(X509_get_extended_key_usage(x), XKU_SSL_CLIENT,
	    "%s: extendedKeyUsage clientAuth only", what);
	is_int(X509_get_ext_count(x), 7, "%s: the profile's seven extensions"
	    " and no other", what);
}

/* The device certificate, field by field. */
static void
test_device_cert(const issue_result *out)
{
	X509 *x = pem_cert(out->cert_pem);
	X509 *between[] = { iss->cert, inter->cert, NULL };
	char *s;

	if (x == NULL)
		return;
	s = subject_of(x);
	is_str(s, "/O=Automatra/OU=WidgIoT/CN=dev-0001", "subject from the"
	    " product line's template");
	free(s);
	is_str(out->subject, "/O=Automatra/OU=WidgIoT/CN=dev-0001",
	    "  and the result says so");
	is_int(X509_NAME_cmp(X509_get_issuer_name(x),
	    X509_get_subject_name(iss->cert)), 0, "issued by us-east-1.widgiot");
	is_int(X509_verify(x, iss->pub), 1, "signed by its key");
	is_int(chain_error(x, root->cert, between), X509_V_OK,
	    "X509_verify_cert: the chain verifies to the root");
	check_client_profile(x, "dev-0001");
	is_int(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1,
	    "good for a TLS client");
	ok(llabs(profile_time_unix(X509_get0_notAfter(x)) -
	    profile_time_unix(X509_get0_notBefore(x)) - (365 * 86400 + 60)) <=
	    1, "valid 365 days (and the minute backdated)");

	X509_free(x);
}

/* A fresh device, registered in us-east-1.widgiot with a new P-256 key,
 * and its certificate in *out (for a hostile CSR if asked); the key. */
static EVP_PKEY *
new_device(const char *id, int hostile, issue_result *out)
{
	EVP_PKEY *key = new_key("P-256");
	char why[512] = "";

	is_int(enroll_device(id, key, "widgiot", "us-east-1"),
	    JOURNAL_DEV_IMPORTED, "register %s in the signer's table", id);
	is_int(issue(key, id, "widgiot", "us-east-1", hostile, out, why,
	    sizeof why), 0, "issue_device for %s's own key%s (%s)", id,
	    hostile ? ", its CSR asking for a SAN, CA:TRUE, keyCertSign and"
	    " serverAuth" : "", why);
	return key;
}

static void
test_device(void)
{
	int64_t before = certs_of(iss);
	issue_result out;
	EVP_PKEY *key = new_device("dev-0001", 0, &out);

	is_int(certs_of(iss), before + 1, "one certificate more in the"
	    " journal");
	test_device_result(&out, key);
	test_device_cert(&out);
	issue_result_fini(&out);
	issue_result_fini(NULL);
	EVP_PKEY_free(key);
}

/* CSR extensions are requests, not orders: none is copied. */
static void
test_csr_extensions(void)
{
	issue_result out;
	EVP_PKEY *key = new_device("dev-0002", 1, &out);
	X509 *x = pem_cert(out.cert_pem);

	ok(x != NULL, "  its certificate");
	if (x) {
		is_int(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1,
		    "no subjectAltName copied");
		check_client_profile(x, "dev-0002, whatever its CSR asked");
	}
	X509_free(x);
	issue_result_fini(&out);
	EVP_PKEY_free(key);
}

/* The signer checks the device on its own, whatever authz said. */
static void
test_second_check(void)
{
	EVP_PKEY *k1 = new_key("P-256"), *k2 = new_key("P-256");
	issue_result out;
	char why[512] = "";
	int64_t before = certs_of(iss);
	int rc;

	enroll_device("dev-k", k1, "widgiot", "us-east-1");
	rc = issue(k2, "dev-k", "widgiot", "us-east-1", 0, &out, why,
	    sizeof why);
	is_int(rc, SF_EPERM, "a CSR whose key is not the registered one:"
	    " SF_EPERM");
	is_int(rpc_status_from_err(rc), RPC_PERMISSION_DENIED,
	    "  which is PERMISSION_DENIED");
	is_str(why, "the CSR key is not the key registered for device dev-k",
	    "  saying so");
	is_str(out.device_id, "dev-k", "  the result still names the device");
	is_str(out.serial, "", "  and has no serial");
	ok(out.cert_pem == NULL, "  and no certificate");
	rc = issue(k1, "dev-unknown", "widgiot", "us-east-1", 0, &out, why,
	    sizeof why);
	is_int(rc, SF_ENOTFOUND, "a device not in the table: SF_ENOTFOUND");
	is_int(rpc_status_from_err(rc), RPC_NOT_FOUND, "  which is NOT_FOUND");
	is_str(why, "device dev-unknown is not registered", "  saying so");
	expect_issue(k1, "dev-k", "gadget", "us-east-1", SF_EPERM, "device dev-k"
	    " is registered for product line widgiot, not gadget",
	    "its own key, another product line");
	/* A second registration with another key is refused and changes
	 * nothing; the same key under another id is refused too. */
	is_int(enroll_device("dev-k", k2, "widgiot", "us-east-1"),
	    JOURNAL_DEV_ID_OTHER_KEY, "re-registering dev-k with another key:"
	    " refused");
	expect_issue(k2, "dev-k", "widgiot", "us-east-1", SF_EPERM, NULL,
	    "  and that key is still refused");
	is_int(enroll_device("dev-k2", k1, "widgiot", "us-east-1"),
	    JOURNAL_DEV_KEY_OTHER_ID, "dev-k's key under another id: refused");
	expect_issue(k1, "dev-k2", "widgiot", "us-east-1", SF_ENOTFOUND, NULL,
	    "  and that id stays unknown");
	is_int(certs_of(iss), before, "no certificate came of any refusal");
	issue_result_fini(&out);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

/* Where a registered device may enroll: in its region only (anywhere if
 * it has none), where an issuing CA exists, with a key type and a
 * product line the configuration allows. */
static void
test_placement(void)
{
	static const struct {
		const char *id, *curve, *reg_pl, *reg_rg, *pl, *rg;
		int rc;
		const char *why, *what;
	} cases[] = {
		{ "dev-eu", "P-256", "widgiot", "eu-west-1", "widgiot",
		    "us-east-1", SF_EPERM, "device dev-eu may enroll only in"
		    " region eu-west-1", "a device of eu-west-1 in us-east-1" },
		{ "dev-any", "P-256", "widgiot", "", "widgiot", "us-east-1", 0,
		    NULL, "a device of no region in us-east-1" },
		{ "dev-any2", "P-256", "widgiot", "", "widgiot", "ap-south-1",
		    SF_ESTATE, "no active issuing CA ap-south-1.widgiot",
		    "a device of no region where no issuing CA is" },
		{ "dev-p384", "P-384", "widgiot", "us-east-1", "widgiot",
		    "us-east-1", SF_EKEYTYPE, "key type ec-p384 is not allowed"
		    " for product line widgiot", "a P-384 key where widgiot"
		    " allows P-256 only" },
		{ "dev-nosuch", "P-256", "nosuch", "", "nosuch", "us-east-1",
		    SF_ESTATE, "product line nosuch has no profile in the"
		    " signer's configuration", "a product line without a"
		    " profile" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		EVP_PKEY *k = new_key(cases[i].curve);

		enroll_device(cases[i].id, k, cases[i].reg_pl,
		    cases[i].reg_rg);
		expect_issue(k, cases[i].id, cases[i].pl, cases[i].rg,
		    cases[i].rc, cases[i].why, cases[i].what);
		EVP_PKEY_free(k);
	}
}

/* Malformed requests never reach the table. */
static void
test_malformed(void)
{
	static const uint8_t junk[] = "not a certificate request";
	issue_req r = { junk, sizeof junk, "widgiot", "us-east-1", "authz", "",
	    "" };
	issue_result out;
	char why[512] = "";

	r.csr_len = 0;
	is_int(issue_device(&ic, &r, &out, why, sizeof why), SF_EINVAL,
	    "an empty CSR: SF_EINVAL");
	is_str(why, "csr is empty", "  saying so");
	r.csr_len = sizeof junk;
	is_int(issue_device(&ic, &r, &out, why, sizeof why), SF_EINVAL,
	    "bytes that are no CSR: SF_EINVAL");
	r.product_line = "";
	is_int(issue_device(&ic, &r, &out, why, sizeof why), SF_EINVAL,
	    "no product line: SF_EINVAL");
	r.product_line = "widgiot";
	r.region = "US EAST";
	is_int(issue_device(&ic, &r, &out, why, sizeof why), SF_EINVAL,
	    "a region that is not an id: SF_EINVAL");
}

/* At most five certificates per device per window; refusals for another
 * reason do not count. */
static void
test_device_cap(void)
{
	EVP_PKEY *k = new_key("P-256"), *other = new_key("P-256");
	issue_result out;
	char why[512] = "";
	int got = 0;

	enroll_device("dev-cap", k, "widgiot", "us-east-1");
	for (int i = 0; i < 3; i++)
		issue(other, "dev-cap", "widgiot", "us-east-1", 0, &out, why,
		    sizeof why);
	/* Each one revoked at once: the cap on live certificates is not
	 * what is tested here. */
	for (int i = 0; i < 5; i++) {
		if (issue(k, "dev-cap", "widgiot", "us-east-1", 0, &out,
		    why, sizeof why) == 0 && journal_cert_revoke(fx.jn,
		    iss->rec.id, out.serial, 0, sf_now()) == 0)
			got++;
		issue_result_fini(&out);
	}
	is_int(got, 5, "five certificates, after three refused CSRs");
	expect_issue(k, "dev-cap", "widgiot", "us-east-1", SF_ELIMIT, "too many"
	    " certificates for device dev-cap: at most 5 per 3600 s; the next"
	    " in 720 s", "the sixth");

	/* A restart: a new limit that replays the journal refuses it too. */
	{
		rate *was = ic.rl;
		size_t n = 0;

		ic.rl = rate_new(fx.conf->device_max, fx.conf->device_window,
		    1e6, 1000000);
		is_int(issue_rate_replay(&ic, &n), 0, "issue_rate_replay");
		ok(n >= 5, "  counts the journal's last hour (%zu, dev-cap's 5"
		    " among them)", n);
		expect_issue(k, "dev-cap", "widgiot", "us-east-1", SF_ELIMIT,
		    NULL, "after the replay the sixth is still refused");
		rate_free(ic.rl);
		ic.rl = was;
	}
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

/* Serials: each one fresh, positive, 16 bytes, and the certificate's. */
static void
test_serials(void)
{
	enum { N = 40 };
	static char serials[N][64];
	EVP_PKEY *k;
	issue_result out;
	char id[32], why[512] = "", hex[64];
	int issued = 0, positive = 0, same = 0, dups = 0;
	X509 *x;

	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "dev-s%02d", i);
		k = new_key("P-256");
		enroll_device(id, k, "widgiot", "us-east-1");
		if (issue(k, id, "widgiot", "us-east-1", 0, &out, why,
		    sizeof why) == 0) {
			issued++;
			snprintf(serials[i], sizeof serials[i], "%s",
			    out.serial);
			/* 16 bytes, the first one 0x01-0x7f. */
			positive += strlen(out.serial) == 2 * SERIAL_LEN &&
			    strchr("01234567", out.serial[0]) != NULL &&
			    strncmp(out.serial, "00", 2) != 0;
			x = pem_cert(out.cert_pem);
			hex[0] = '\0';
			if (x)
				profile_serial_hex(X509_get0_serialNumber(x),
				    hex, sizeof hex);
			same += strcmp(hex, out.serial) == 0;
			X509_free(x);
		}
		issue_result_fini(&out);
		EVP_PKEY_free(k);
	}
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			dups += serials[i][0] && strcmp(serials[i],
			    serials[j]) == 0;
	is_int(issued, N, "%d devices, one certificate each", N);
	is_int(dups, 0, "no serial twice");
	is_int(positive, N, "every serial 16 bytes, high bit clear");
	is_int(same, N, "every result's serial is its certificate's");
}

/* ---- device state at the signer (devstate.c) ---- */

static signer_ctx sctx;

/* A request for id's certificate in us-east-1.widgiot under eid, renewing
 * replaces ("" = none). */
static int
issue_as(EVP_PKEY *key, const char *id, const char *eid,
    const char *replaces, issue_result *out, char *why, size_t whylen)
{
	issue_req r = { NULL, 0, "widgiot", "us-east-1", "authz", eid,
	    replaces, NULL };

	return issue_req_for(key, id, 0, &r, out, why, whylen);
}

/* The live certificates the signer's record of id counts. */
static int
live_of(const char *id)
{
	journal_device_row d;
	int n = -1;

	if (journal_device_info(fx.jn, id, sf_now(), &d) == 0)
		n = (int)d.live;
	journal_device_row_fini(&d);
	return n;
}

/* What is journaled as authz sends it has a known form. */
static void
test_request_fields(void)
{
	static const struct {
		const char *requester, *eid, *replaces, *why, *what;
	} cases[] = {
		{ "authz\n", "", "", "requester must be at most 64 printable"
		    " ASCII characters", "a requester with a newline" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		    "", "", NULL, "a requester of 65 characters" },
		{ "authz", "enr 1", "", "enrollment_id must be at most 64 of"
		    " A-Z, a-z, 0-9, '.', '_', ':', '-'", "an enrollment id"
		    " with a blank" },
		{ "authz", "enr-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		    "", NULL, "an enrollment id of 65 characters" },
		{ "authz", "", "5f3a", "replaces_serial must be a serial: 1-40"
		    " upper-case hex digits", "a lower-case replaces_serial" },
		{ "authz", "", "XYZ", NULL, "a replaces_serial that is no"
		    " hex" },
	};
	EVP_PKEY *k = new_key("P-256");
	int64_t before = certs_of(iss);

	enroll_device("dev-fields", k, "widgiot", "us-east-1");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		issue_req r = { NULL, 0, "widgiot", "us-east-1",
		    cases[i].requester, cases[i].eid, cases[i].replaces,
		    NULL };
		issue_result out;
		char why[512] = "";

		is_int(issue_req_for(k, "dev-fields", 0, &r, &out, why,
		    sizeof why), SF_EINVAL, "%s: SF_EINVAL", cases[i].what);
		if (cases[i].why)
			is_str(why, cases[i].why, "  saying so");
		issue_result_fini(&out);
	}
	is_int(certs_of(iss), before, "nothing journaled for any of them");
	EVP_PKEY_free(k);
}

/* A disabled or revoked device gets nothing, whatever authz asks. */
static void
test_state(void)
{
	EVP_PKEY *k = new_key("P-256");
	journal_cert_row *v = NULL;
	char why[512] = "";
	size_t n = 0;
	int changed = 0;
	int64_t when;

	enroll_device("dev-st", k, "widgiot", "us-east-1");
	expect_issue(k, "dev-st", "widgiot", "us-east-1", 0, NULL,
	    "an active device");
	is_int(journal_device_set_state(fx.jn, "dev-st", DEVICE_DISABLED,
	    "returned for repair", sf_now(), &changed), 0, "disable dev-st");
	is_int(changed, 1, "  a change");
	expect_issue(k, "dev-st", "widgiot", "us-east-1", SF_EPERM,
	    "device dev-st is disabled", "a disabled device: SF_EPERM");
	is_int(rpc_status_from_err(SF_EPERM), RPC_PERMISSION_DENIED,
	    "  which is PERMISSION_DENIED");
	is_int(journal_device_set_state(fx.jn, "dev-st", DEVICE_DISABLED, "",
	    sf_now(), &changed), 0, "disabling it again");
	is_int(changed, 0, "  changes nothing");
	is_int(journal_device_set_state(fx.jn, "dev-st", DEVICE_ACTIVE, "",
	    sf_now(), &changed), 0, "enable dev-st");
	expect_issue(k, "dev-st", "widgiot", "us-east-1", 0, NULL,
	    "enabled again: issued to");
	is_int(live_of("dev-st"), 2, "dev-st holds two live certificates");
	is_int(revoke_device(&sctx, "dev-st", 1, 0, &v, &n, &when, why,
	    sizeof why), 0, "revoke the device (%s)", why);
	is_int(n, 2, "  its two certificates revoked in one transaction");
	is_int(n ? v[0].status : 0, CERT_REVOKED, "  each revoked");
	is_int(n ? v[0].revocation_reason : -1, 1, "  for keyCompromise");
	journal_cert_rows_free(v, n);
	is_int(live_of("dev-st"), 0, "  no live certificate left");
	expect_issue(k, "dev-st", "widgiot", "us-east-1", SF_EPERM,
	    "device dev-st is revoked", "a revoked device: SF_EPERM");
	is_int(journal_device_set_state(fx.jn, "dev-st", DEVICE_ACTIVE, "",
	    sf_now(), &changed), SF_ESTATE, "a revoked device cannot be"
	    " enabled: SF_ESTATE");
	is_int(journal_device_set_state(fx.jn, "dev-none", DEVICE_DISABLED,
	    "", sf_now(), &changed), SF_ENOTFOUND, "an unknown device:"
	    " SF_ENOTFOUND");
	is_int(revoke_device(&sctx, "dev-st", 1, 0, &v, &n, &when, why,
	    sizeof why), 0, "revoking it again succeeds");
	is_int(n, 0, "  and revokes nothing more");
	journal_cert_rows_free(v, n);
	EVP_PKEY_free(k);
}

/* At most device_live_certificates (2) live certificates per device,
 * unless a renewal of an active one. */
static void
test_live_cap(void)
{
	EVP_PKEY *k = new_key("P-256"), *k2 = new_key("P-256");
	issue_result a, b, c, other;
	char why[512] = "", want[256];

	enroll_device("dev-live", k, "widgiot", "us-east-1");
	enroll_device("dev-live2", k2, "widgiot", "us-east-1");
	is_int(issue_as(k, "dev-live", "live-1", "", &a, why, sizeof why), 0,
	    "the first certificate");
	is_int(issue_as(k, "dev-live", "live-2", "", &b, why, sizeof why), 0,
	    "the second");
	is_int(issue_as(k, "dev-live", "live-3", "", &c, why, sizeof why),
	    SF_ESTATE, "the third: SF_ESTATE");
	is_int(rpc_status_from_err(SF_ESTATE), RPC_FAILED_PRECONDITION,
	    "  which is FAILED_PRECONDITION");
	is_str(why, "device dev-live holds 2 live certificates, the most it"
	    " may hold (2): revoke one, or renew the current one naming it in"
	    " replaces_serial", "  saying so");
	is_int(issue_as(k2, "dev-live2", "live2-1", "", &other, why,
	    sizeof why), 0, "another device is not held back");
	is_int(issue_as(k, "dev-live", "live-4", "00AB", &c, why, sizeof why),
	    SF_ENOTFOUND, "a renewal naming an unknown serial: SF_ENOTFOUND");
	is_str(why, "replaces_serial 00AB: no certificate with that serial",
	    "  saying so");
	is_int(issue_as(k, "dev-live", "live-4", other.serial, &c, why,
	    sizeof why), SF_EPERM, "a renewal naming another device's"
	    " certificate: SF_EPERM");
	is_int(issue_as(k, "dev-live", "live-4", b.serial, &c, why,
	    sizeof why), 0, "a renewal naming its active certificate passes"
	    " the cap (%s)", why);
	is_int(live_of("dev-live"), 3, "  three live certificates now");
	issue_result_fini(&c);
	is_int(issue_as(k, "dev-live", "live-5", b.serial, &c, why,
	    sizeof why), SF_ESTATE, "a second renewal of the same certificate"
	    " does not");
	journal_cert_revoke(fx.jn, iss->rec.id, a.serial, 4, sf_now());
	is_int(issue_as(k, "dev-live", "live-6", a.serial, &c, why,
	    sizeof why), SF_ESTATE, "a renewal naming a revoked certificate:"
	    " SF_ESTATE");
	snprintf(want, sizeof want, "replaces_serial %s is revoked, not"
	    " active", a.serial);
	is_str(why, want, "  saying so");
	issue_result_fini(&a);
	issue_result_fini(&b);
	issue_result_fini(&c);
	issue_result_fini(&other);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

/* A request repeating an enrollment id gets the journal's certificate
 * again: an orphan's retry costs no certificate, no rate and no cap. */
static void
test_replay(void)
{
	EVP_PKEY *k = new_key("P-256"), *k2 = new_key("P-256");
	issue_result first, again;
	char why[512] = "";
	int64_t before;
	int same = 0;

	enroll_device("dev-rp", k, "widgiot", "us-east-1");
	enroll_device("dev-rp2", k2, "widgiot", "us-east-1");
	is_int(issue_as(k, "dev-rp", "enr-orphan", "", &first, why,
	    sizeof why), 0, "dev-rp's certificate under enr-orphan");
	ok(!first.replayed, "  issued, not replayed");
	before = certs_of(iss);
	/* More repeats than the cap and the rate (5) would allow. */
	for (int i = 0; i < 6; i++) {
		if (issue_as(k, "dev-rp", "enr-orphan", "", &again, why,
		    sizeof why) == 0 && again.replayed &&
		    strcmp(again.serial, first.serial) == 0 &&
		    strcmp(again.cert_pem, first.cert_pem) == 0 &&
		    again.chain_pem == iss->chain_pem &&
		    strcmp(again.ca_name, "us-east-1.widgiot") == 0)
			same++;
		issue_result_fini(&again);
	}
	is_int(same, 6, "six repeats, a new CSR each time: the same"
	    " certificate, its chain and CA, replayed");
	is_int(certs_of(iss), before, "  nothing new journaled");
	is_int(live_of("dev-rp"), 1, "  one live certificate");
	is_int(issue_as(k, "dev-rp", "enr-new", "", &again, why, sizeof why),
	    0, "a new enrollment of dev-rp still issues: the repeats took"
	    " nothing from its rate or cap");
	issue_result_fini(&again);
	is_int(issue_as(k2, "dev-rp2", "enr-orphan", "", &again, why,
	    sizeof why), SF_EPERM, "dev-rp's enrollment id for another"
	    " device: SF_EPERM");
	is_str(why, "enrollment id enr-orphan belongs to another device or"
	    " key", "  saying so");
	journal_cert_revoke(fx.jn, iss->rec.id, first.serial, 1, sf_now());
	is_int(issue_as(k, "dev-rp", "enr-orphan", "", &again, why,
	    sizeof why), SF_ESTATE, "its certificate revoked, the enrollment"
	    " id is spent: SF_ESTATE");
	issue_result_fini(&first);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

/* Concurrent requests for one device, as a hostile authz would send them,
 * are serialised: no more than the cap get through. */
enum { RACERS = 8 };

struct racer {
	EVP_PKEY *key;
	char eid[32];
	int rc;
};

static void *
race(void *arg)
{
	struct racer *r = arg;
	issue_result out;
	char why[512];

	r->rc = issue_as(r->key, "dev-race", r->eid, "", &out, why,
	    sizeof why);
	issue_result_fini(&out);
	return NULL;
}

static void
test_concurrent(void)
{
	struct racer rs[RACERS];
	pthread_t th[RACERS];
	EVP_PKEY *k = new_key("P-256");
	int issued = 0, refused = 0;

	enroll_device("dev-race", k, "widgiot", "us-east-1");
	for (int i = 0; i < RACERS; i++) {
		rs[i].key = k;
		snprintf(rs[i].eid, sizeof rs[i].eid, "race-%d", i);
		pthread_create(&th[i], NULL, race, &rs[i]);
	}
	for (int i = 0; i < RACERS; i++) {
		pthread_join(th[i], NULL);
		issued += rs[i].rc == 0;
		refused += rs[i].rc == SF_ESTATE;
	}
	is_int(issued, 2, "%d concurrent requests for one device: two issued",
	    RACERS);
	is_int(refused, RACERS - 2, "  the others refused by the cap");
	is_int(live_of("dev-race"), 2, "  two live certificates");
	EVP_PKEY_free(k);
}

/* ---- server certificates ---- */

static int
serve(const char *ca_name, const char *dns, int days, issue_result *out,
    char *why, size_t whylen)
{
	EVP_PKEY *k = new_key("P-256");
	char *const dv[] = { (char *)dns };
	issue_server_req r = { NULL, 0, ca_name, dv, dns != NULL, NULL, 0, "",
	    days };
	uint8_t *der = NULL;
	int rc = -100;

	if (make_csr(k, "server", 0, &der, &r.csr_len) == 0) {
		r.csr = der;
		rc = issue_server(&ic, &r, out, why, whylen);
	}
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	return rc;
}

static void
test_server(void)
{
	issue_result out;
	journal_cert_row row;
	char why[512] = "";
	X509 *x;

	is_int(serve("", "signer.widgiot.example.net", 0, &out, why,
	    sizeof why), 0, "a server certificate (%s)", why);
	x = pem_cert(out.cert_pem);
	is_int(x ? X509_check_host(x, "signer.widgiot.example.net", 0, 0,
	    NULL) : -1, 1, "  for its DNS name");
	is_int(x ? X509_get_extended_key_usage(x) : 0, XKU_SSL_SERVER,
	    "  serverAuth only");
	is_int(x ? X509_check_ca(x) : -1, 0, "  not a CA");
	memset(&row, 0, sizeof row);
	is_int(journal_cert_get(fx.jn, out.serial, iss->rec.id, &row), 0,
	    "  journaled");
	is_str(row.profile, "server", "  with profile server");
	journal_cert_row_fini(&row);
	X509_free(x);
	issue_result_fini(&out);
	is_int(serve("", NULL, 0, &out, why, sizeof why), SF_EINVAL,
	    "no name: SF_EINVAL");
	is_int(serve("", "a.widgiot.example.net", 398, &out, why, sizeof why),
	    SF_EINVAL, "398 days: SF_EINVAL");
	is_str(why, "validity must be 1..397 days", "  saying so");
	is_int(serve("nope", "a.widgiot.example.net", 0, &out, why,
	    sizeof why), SF_ENOTFOUND, "an unknown CA: SF_ENOTFOUND");
	is_int(serve("widgiot", "a.widgiot.example.net", 0, &out, why,
	    sizeof why), SF_ESTATE, "an intermediate: SF_ESTATE");
}

int
main(void)
{
	log_init("test_issue", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "sf-issue", NULL) != 0)
		return tap_done();
	root = ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL);
	inter = root ? ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot",
	    NULL) : NULL;
	iss = inter ? ca_fixture_create(&fx, ROLE_ISSUING, "widgiot",
	    "us-east-1") : NULL;
	ic.conf = fx.conf;
	ic.cas = fx.cas;
	ic.jn = fx.jn;
	ic.rl = rate_new(fx.conf->device_max, fx.conf->device_window,
	    fx.conf->global_rate, fx.conf->global_burst);
	sctx.conf = fx.conf;
	sctx.jn = fx.jn;
	sctx.cas = fx.cas;
	if (iss && ic.rl) {
		test_device();
		test_csr_extensions();
		test_second_check();
		test_placement();
		test_malformed();
		test_device_cap();
		test_serials();
		test_request_fields();
		test_state();
		test_live_cap();
		test_replay();
		test_concurrent();
		test_server();
	}
	rate_free(ic.rl);
	ca_fixture_close(&fx);
	return tap_done();
}
