/*
 * Unit tests of authz/enroll.c: the real enrollment code against a real
 * registry (a SQLite file) and a real signer. The signer is the signer's
 * own library (ca_fixture.h: a SoftHSM2 token, a journal, a root, the
 * widgiot intermediate and the us-east-1.widgiot issuing CA) serving
 * Signer on a Unix socket in the test's directory; authz reaches it
 * through sclient.c as it does in production.
 *
 * What is checked: a registered device with its registered key gets a
 * certificate journaled by the signer and recorded by authz; retries with
 * the same idempotency key (even with a re-signed CSR) or, without a key,
 * with the same CSR bytes get the same enrollment; every refusal of
 * DESIGN.md's table comes back with its SF_E* code (unknown device,
 * other key, disabled device, other region, malformed input); the
 * signer's second, independent key check refuses a key authz accepted
 * (a registry that disagrees with the signer's table); the signer being
 * away is SF_EUNAVAIL; the bundle's hash is the SHA-256 of leaf + chain.
 * Just-in-time provisioning through the door-neutral entry (enroll_req's
 * birth_cert_pem, as EST and MQTT doors will use it, no TLS here): a
 * device unknown to both is registered by its birth certificate on both
 * sides with its origin, a retry is replayed, a second first enrollment
 * refused; without one an unknown device is SF_ENOTFOUND; a birth
 * certificate of an unregistered CA, or one whose key is not the CSR's,
 * is SF_EPERM and registers nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "enroll.h"
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "rate.h"
#include "registry.h"
#include "rpc.h"
#include "sclient.h"
#include "signer.h"
#include "../signer/ca_fixture.h"
#include "../csr_fixture.h"

static ca_fixture fx;
static signer_ctx sctx;
static rpc_server *srv;
static registry *reg;
static sclient *sc;
static rate *arl;
static authz_conf acf;
static enroll_ctx ectx;

/* ---- keys, CSRs, registration ---- */

static EVP_PKEY *
new_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* Register id with key in authz's registry (registry_key) and in the
 * signer's table (signer_key); NULL skips a side. */
static int
register_device(const char *id, EVP_PKEY *registry_key, EVP_PKEY *signer_key,
    const char *region)
{
	pubkey_info a, s;
	char why[256];
	int outcome = 0, rc = 0;

	memset(&a, 0, sizeof a);
	memset(&s, 0, sizeof s);
	if (registry_key) {
		registry_import_rec r;

		if (pubkey_from_evp(registry_key, &a, why, sizeof why) != 0)
			return -1;
		r.device_id = id;
		r.spki = a.spki;
		r.spki_len = a.spki_len;
		r.key_sha256 = a.sha256;
		r.product_line = "widgiot";
		r.region = region;
		rc = registry_import(reg, &r, 1, &outcome);
		if (rc == 0 && outcome != REGISTRY_IMPORTED)
			rc = -1;
	}
	if (rc == 0 && signer_key) {
		journal_device d;

		if (pubkey_from_evp(signer_key, &s, why, sizeof why) != 0)
			rc = -1;
		d.device_id = id;
		d.key_sha256 = s.sha256;
		d.product_line = "widgiot";
		d.region = region;
		if (rc == 0 && (journal_device_register(fx.jn, &d, 1,
		    &outcome) != 0 || outcome != JOURNAL_DEV_IMPORTED))
			rc = -1;
	}
	pubkey_info_free(&a);
	pubkey_info_free(&s);
	return rc;
}

/* enroll_device for a CSR (der) with an idempotency key and region. */
static int
enroll_csr(const uint8_t *der, size_t len, const char *ikey,
    const char *region, registry_enrollment *out, int *replayed, char *why,
    size_t whylen)
{
	enroll_req r = { der, len, ikey, region };

	return enroll_device(&ectx, &r, out, replayed, why, whylen);
}

/* The same, with a fresh CSR by key for id. */
static int
enroll_key(EVP_PKEY *key, const char *id, const char *ikey,
    const char *region, registry_enrollment *out, int *replayed, char *why,
    size_t whylen)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int rc;

	if (make_csr(key, id, 0, &der, &len) != 0)
		return -100;
	rc = enroll_csr(der, len, ikey, region, out, replayed, why, whylen);
	OPENSSL_free(der);
	return rc;
}

/* enroll_key that must be refused with want; nothing recorded. */
static void
refused(EVP_PKEY *key, const char *id, const char *region, int want,
    const char *what)
{
	registry_enrollment en;
	char why[512] = "";
	int replayed = 0;
	int rc = enroll_key(key, id, "", region, &en, &replayed, why,
	    sizeof why);

	is_int(rc, want, "%s: %s (%s)", what, sf_strerror(want), why);
	ok(*why != '\0', "%s: the refusal says why", what);
	if (rc == 0)
		registry_enrollment_fini(&en);
}

/* ---- set-up ---- */

static int
start_signer(void)
{
	rpc_listener_opts o = { 0 };
	char addr[300];

	sctx.conf = fx.conf;
	sctx.tok = fx.tok;
	sctx.jn = fx.jn;
	sctx.cas = fx.cas;
	sctx.rl = rate_new(100, 3600, 1000, 1000);
	sctx.ic.conf = fx.conf;
	sctx.ic.cas = fx.cas;
	sctx.ic.jn = fx.jn;
	sctx.ic.rl = sctx.rl;
	snprintf(addr, sizeof addr, "unix:%s/iss/signer.sock", hsm_dir);
	o.name = "issuance";
	o.address = addr;
	o.id = SIGNER_ISSUANCE;
	o.workers = 2;
	if (sctx.rl == NULL || (srv = rpc_server_new()) == NULL ||
	    rpc_signer_register(srv, &sctx) != 0 ||
	    rpc_server_listen(srv, &o) != 0 || rpc_server_start(srv) != 0)
		return -1;
	return sclient_open(addr, 5000, &sc);
}

static int
start_authz(void)
{
	char path[300], why[256] = "";

	snprintf(path, sizeof path, "%s/registry.db", hsm_dir);
	if (registry_open(path, &reg, why, sizeof why) != 0) {
		tap_diag("registry: %s", why);
		return -1;
	}
	acf.csr_max = 16384;
	acf.default_region = "us-east-1";
	acf.idempotency_window = 86400;
	if ((arl = rate_new(100, 3600, 1000, 1000)) == NULL)
		return -1;
	return enroll_ctx_init(&ectx, &acf, reg, sc, arl);
}

/* ---- the cases ---- */

static void
test_enroll_issues(EVP_PKEY *k1)
{
	registry_enrollment en;
	journal_cert_row row;
	char why[512] = "";
	int replayed = -1, rc;

	rc = enroll_key(k1, "1111", "", "", &en, &replayed, why, sizeof why);
	is_int(rc, 0, "a registered device with its key enrolls (%s)", why);
	if (rc != 0)
		return;
	is_int(replayed, 0, "the first enrollment is not a replay");
	ok(strncmp(en.enrollment_id, "enr-", 4) == 0, "enrollment id %s",
	    en.enrollment_id);
	is_str(en.device_id, "1111", "the enrollment is device 1111's");
	is_str(en.ca_name, "us-east-1.widgiot", "issued by the default"
	    " region's issuing CA");
	ok(strstr(en.certificate_pem, "BEGIN CERTIFICATE") != NULL,
	    "the enrollment holds the certificate");
	ok(strstr(en.chain_pem, "BEGIN CERTIFICATE") != NULL,
	    "the enrollment holds the chain");
	memset(&row, 0, sizeof row);
	is_int(journal_cert_get(fx.jn, en.serial, 0, &row), 0,
	    "the signer journaled serial %s", en.serial);
	is_str(row.device_id, "1111", "the journal row names the device");
	is_str(row.enrollment_id, en.enrollment_id,
	    "the journal row carries authz's enrollment id");
	journal_cert_row_fini(&row);
	registry_enrollment_fini(&en);
}

static void
test_idempotency_key(EVP_PKEY *k2)
{
	registry_enrollment a, b;
	char why[512] = "";
	int ra = -1, rb = -1, rc;

	rc = enroll_key(k2, "1112", "boot-1", "", &a, &ra, why, sizeof why);
	is_int(rc, 0, "1112 enrolls with idempotency key boot-1 (%s)", why);
	if (rc != 0)
		return;
	/* ECDSA signatures differ each time: a re-signed CSR. */
	rc = enroll_key(k2, "1112", "boot-1", "", &b, &rb, why, sizeof why);
	is_int(rc, 0, "the retry with a re-signed CSR succeeds (%s)", why);
	if (rc == 0) {
		is_int(rb, 1, "the retry is a replay");
		is_str(b.serial, a.serial, "the retry gets the same serial");
		is_str(b.enrollment_id, a.enrollment_id,
		    "the retry gets the same enrollment id");
		registry_enrollment_fini(&b);
	}
	rc = enroll_key(k2, "1112", "boot-2", "", &b, &rb, why, sizeof why);
	is_int(rc, 0, "another idempotency key enrolls again (%s)", why);
	if (rc == 0) {
		is_int(rb, 0, "another key is not a replay");
		ok(strcmp(b.serial, a.serial) != 0, "another key gets another"
		    " serial");
		registry_enrollment_fini(&b);
	}
	registry_enrollment_fini(&a);
}

static void
test_same_csr_without_key(EVP_PKEY *k3)
{
	registry_enrollment a, b;
	uint8_t *der = NULL;
	size_t len = 0;
	char why[512] = "";
	int ra = -1, rb = -1, rc;

	if (make_csr(k3, "1113", 0, &der, &len) != 0) {
		ok(0, "make 1113's CSR");
		return;
	}
	rc = enroll_csr(der, len, "", "", &a, &ra, why, sizeof why);
	is_int(rc, 0, "1113 enrolls without an idempotency key (%s)", why);
	if (rc == 0) {
		rc = enroll_csr(der, len, "", "", &b, &rb, why, sizeof why);
		is_int(rc, 0, "the same CSR bytes again (%s)", why);
		if (rc == 0) {
			is_int(rb, 1, "the same CSR bytes are a replay");
			is_str(b.serial, a.serial, "the same CSR bytes get"
			    " the same serial");
			registry_enrollment_fini(&b);
		}
		registry_enrollment_fini(&a);
	}
	OPENSSL_free(der);
}

static void
test_refusals(EVP_PKEY *k1, EVP_PKEY *other)
{
	registry_enrollment en;
	char why[512] = "";
	int replayed = 0;
	static const uint8_t junk[] = "not a CSR";

	refused(other, "9999", "", SF_ENOTFOUND, "an unknown device");
	refused(other, "1111", "", SF_EPERM, "another key for 1111");
	refused(k1, "1111", "eu-west-1", SF_EPERM,
	    "a device registered in us-east-1 asking for eu-west-1");
	refused(k1, "1111", "Bad Region", SF_EINVAL, "a malformed region");
	is_int(enroll_csr(junk, sizeof junk, "", "", &en, &replayed, why,
	    sizeof why), SF_EINVAL, "bytes that are not a CSR: SF_EINVAL (%s)",
	    why);
	is_int(enroll_csr(junk, 0, "", "", &en, &replayed, why, sizeof why),
	    SF_EINVAL, "an empty CSR: SF_EINVAL (%s)", why);
	is_int(enroll_key(k1, "1111", "key with spaces", "", &en, &replayed,
	    why, sizeof why), SF_EINVAL, "an idempotency key with spaces:"
	    " SF_EINVAL (%s)", why);
	is_int(registry_device_set_state(reg, "1111", DEVICE_DISABLED), 0,
	    "disable 1111 in the registry");
	refused(k1, "1111", "", SF_EPERM, "a disabled device");
	is_int(registry_device_set_state(reg, "1111", DEVICE_ACTIVE), 0,
	    "enable 1111 again");
}

/* authz's registry says key A, the signer's table key B: the signer's
 * own check refuses what authz let through. */
static void
test_signer_second_check(void)
{
	EVP_PKEY *a = new_key(), *b = new_key(), *c = new_key();

	is_int(register_device("2221", a, b, "us-east-1"), 0,
	    "2221: authz has key A, the signer key B");
	refused(a, "2221", "", SF_EPERM, "the signer refuses key A");
	is_int(register_device("2222", c, NULL, "us-east-1"), 0,
	    "2222: known to authz only");
	refused(c, "2222", "", SF_ENOTFOUND, "the signer does not know 2222");
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	EVP_PKEY_free(c);
}

static void
test_bundle(EVP_PKEY *k1)
{
	registry_enrollment en;
	char why[512] = "", *bundle = NULL;
	uint8_t sha[32], want[32];
	unsigned int mdlen = 32;
	size_t len = 0;
	int replayed = 0;

	if (enroll_key(k1, "1111", "bundle", "", &en, &replayed, why,
	    sizeof why) != 0) {
		ok(0, "enroll 1111 for the bundle (%s)", why);
		return;
	}
	is_int(enroll_bundle(&en, &bundle, &len, sha), 0, "build the bundle");
	if (bundle) {
		is_int((int)len, (int)(strlen(en.certificate_pem) +
		    strlen(en.chain_pem)), "the bundle is leaf + chain");
		EVP_Digest(bundle, len, want, &mdlen, EVP_sha256(), NULL);
		ok(memcmp(sha, want, 32) == 0, "its hash is its SHA-256");
		ok(strncmp(bundle, en.certificate_pem,
		    strlen(en.certificate_pem)) == 0, "the leaf comes first");
	}
	free(bundle);
	registry_enrollment_fini(&en);
}

/* ---- just-in-time provisioning ---- */

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* A certificate of k for cn, by issuer (NULL: self-signed) with ik; as
 * PEM (malloc'd) in *pem and as the X509 returned. */
static X509 *
make_cert(const char *cn, EVP_PKEY *k, X509 *issuer, EVP_PKEY *ik, int is_ca,
    long serial, char **pem)
{
	X509 *x = X509_new();
	X509_NAME *nm = X509_NAME_new();
	BIO *m = BIO_new(BIO_s_mem());
	char *p;
	long n;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, nm);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : nm);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	add_ext(x, issuer, NID_basic_constraints, is_ca ? "critical,CA:TRUE" :
	    "critical,CA:FALSE");
	if (is_ca)
		add_ext(x, issuer, NID_key_usage, "critical,keyCertSign");
	X509_sign(x, ik, EVP_sha256());
	X509_NAME_free(nm);
	PEM_write_bio_X509(m, x);
	n = BIO_get_mem_data(m, &p);
	*pem = strndup(p, (size_t)n);
	BIO_free(m);
	return x;
}

/* enroll_device of a fresh CSR by key for id with a birth certificate. */
static int
enroll_birth(EVP_PKEY *key, const char *id, const char *ikey,
    const char *birth, registry_enrollment *out, int *replayed, char *why,
    size_t whylen)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int rc;

	if (make_csr(key, id, 0, &der, &len) != 0)
		return -100;
	{
		enroll_req r = { der, len, ikey, "", birth };

		rc = enroll_device(&ectx, &r, out, replayed, why, whylen);
	}
	OPENSSL_free(der);
	return rc;
}

static void
test_jitp(void)
{
	EVP_PKEY *mk = new_key(), *xk = new_key(), *dk = new_key(),
	    *ok2 = new_key();
	char *mpem = NULL, *xpem = NULL, *bpem = NULL, *b2pem = NULL,
	    *b3pem = NULL, why[512] = "";
	X509 *mca = make_cert("Acme Root CA", mk, NULL, mk, 1, 1, &mpem);
	X509 *xca = make_cert("Rogue CA", xk, NULL, xk, 1, 2, &xpem);
	X509 *b = make_cert("born-1", dk, mca, mk, 0, 100, &bpem);
	X509 *b2 = make_cert("born-2", dk, xca, xk, 0, 101, &b2pem);
	X509 *b3 = make_cert("born-3", ok2, mca, mk, 0, 102, &b3pem);
	unsigned char *der = NULL;
	journal_mfr m;
	journal_device_row jd;
	registry_device rd;
	registry_enrollment en, en2;
	int dl, replayed = 0, rc;

	memset(&m, 0, sizeof m);
	m.name = "acme";
	m.product_line = "widgiot";
	m.subject = "CN=Acme Root CA";
	m.cert_len = (size_t)(dl = i2d_X509(mca, &der));
	m.cert_der = der;
	m.created_at = 1;
	is_int(journal_mfr_insert(fx.jn, &m, NULL), 0,
	    "jitp: manufacturer acme at the signer");
	is_int(registry_mfr_put(reg, "acme", "widgiot", mpem), 0,
	    "jitp: and in authz");
	rc = enroll_birth(dk, "born-1", "bk-1", bpem, &en, &replayed, why,
	    sizeof why);
	is_int(rc, 0, "jitp: enroll_device with birth_cert_pem registers and"
	    " issues (%s)", why);
	is_int(registry_device_get(reg, "born-1", &rd), 0,
	    "jitp: the device is in the registry");
	is_str(rd.origin, "birth:acme", "jitp: origin birth:acme in authz");
	registry_device_fini(&rd);
	is_int(journal_device_info(fx.jn, "born-1", 0, &jd), 0,
	    "jitp: and in the signer's journal");
	is_str(jd.origin, "birth:acme", "jitp: origin birth:acme there");
	is_str(jd.birth_serial, "64", "jitp: with the birth serial");
	journal_device_row_fini(&jd);
	rc = enroll_birth(dk, "born-1", "bk-1", bpem, &en2, &replayed, why,
	    sizeof why);
	ok(rc == 0 && replayed && strcmp(en.serial, en2.serial) == 0,
	    "jitp: the retry is replayed (%s)", why);
	if (rc == 0)
		registry_enrollment_fini(&en2);
	is_int(enroll_birth(dk, "born-1", "bk-2", bpem, &en2, &replayed, why,
	    sizeof why), SF_EPERM, "jitp: a second first enrollment: SF_EPERM");
	ok(strstr(why, "allow-birth") != NULL, "jitp: naming allow-birth (%s)",
	    why);
	if (rc == 0)
		registry_enrollment_fini(&en);
	is_int(enroll_birth(dk, "born-2", "", NULL, &en, &replayed, why,
	    sizeof why), SF_ENOTFOUND,
	    "jitp: unknown device without a birth certificate: SF_ENOTFOUND");
	is_int(enroll_birth(dk, "born-2", "", b2pem, &en, &replayed, why,
	    sizeof why), SF_EPERM,
	    "jitp: a birth certificate of an unregistered CA: SF_EPERM (%s)",
	    why);
	is_int(enroll_birth(dk, "born-3", "", b3pem, &en, &replayed, why,
	    sizeof why), SF_EPERM,
	    "jitp: a CSR key other than the birth certificate's: SF_EPERM"
	    " (%s)", why);
	ok(registry_device_get(reg, "born-3", &rd) == SF_ENOTFOUND &&
	    journal_device_info(fx.jn, "born-3", 0, &jd) == SF_ENOTFOUND,
	    "jitp: neither registered");
	OPENSSL_free(der);
	free(mpem);
	free(xpem);
	free(bpem);
	free(b2pem);
	free(b3pem);
	X509_free(mca);
	X509_free(xca);
	X509_free(b);
	X509_free(b2);
	X509_free(b3);
	EVP_PKEY_free(mk);
	EVP_PKEY_free(xk);
	EVP_PKEY_free(dk);
	EVP_PKEY_free(ok2);
}

static void
test_signer_away(EVP_PKEY *k1)
{
	registry_enrollment en;
	char why[512] = "";
	int replayed = 0;

	rpc_server_shutdown(srv, 0);
	rpc_server_free(srv);
	srv = NULL;
	is_int(enroll_key(k1, "1111", "away", "", &en, &replayed, why,
	    sizeof why), SF_EUNAVAIL, "the signer away: SF_EUNAVAIL (%s)", why);
}

int
main(void)
{
	EVP_PKEY *k1 = new_key(), *k2 = new_key(), *k3 = new_key();
	EVP_PKEY *other = new_key();

	log_init("test_enroll", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "enroll", NULL) != 0)
		return tap_done();
	rpc_init();
	if (!ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL) ||
	    !ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot", NULL) ||
	    !ca_fixture_create(&fx, ROLE_ISSUING, "widgiot", "us-east-1") ||
	    !ca_fixture_create(&fx, ROLE_ISSUING, "widgiot", "eu-west-1"))
		goto out;
	ok(start_signer() == 0, "the signer serves on its issuance socket");
	ok(start_authz() == 0, "authz's registry and enrollment are open");
	is_int(register_device("1111", k1, k1, "us-east-1"), 0,
	    "1111 registered on both sides, in us-east-1");
	is_int(register_device("1112", k2, k2, ""), 0,
	    "1112 registered on both sides");
	is_int(register_device("1113", k3, k3, ""), 0,
	    "1113 registered on both sides");
	test_enroll_issues(k1);
	test_idempotency_key(k2);
	test_same_csr_without_key(k3);
	test_refusals(k1, other);
	test_signer_second_check();
	test_bundle(k1);
	test_jitp();
	test_signer_away(k1);
out:
	enroll_ctx_fini(&ectx);
	sclient_close(sc);
	rpc_server_free(srv);
	registry_close(reg);
	rate_free(arl);
	rate_free(sctx.rl);
	ca_fixture_close(&fx);
	rpc_fini();
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	EVP_PKEY_free(other);
	return tap_done();
}
