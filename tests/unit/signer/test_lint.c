/*
 * Unit tests of signer/lint.c: a certificate of each profile built as the
 * signer builds it passes; then one deliberately broken TBS per rule, each
 * refused with SF_EINTERNAL and that rule's name. The issuer is a software
 * CA: the linter reads certificates and needs no token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "journal.h"
#include "lint.h"
#include "profile.h"
#include "pubkey.h"
#include "../../tap.h"

static EVP_PKEY *ca_key;   /* the issuer's key (P-256) */
static X509 *ca_cert;      /* the issuer: pathLen 1 */
static uint8_t ca_ski[20];

/* The key identifier of k, as profile_key_id makes it. */
static void
key_id_of(EVP_PKEY *k, uint8_t id[20])
{
	pubkey_info pk;
	char why[128];

	memset(&pk, 0, sizeof pk);
	if (pubkey_from_evp(k, &pk, why, sizeof why) == 0)
		profile_key_id(pk.key_bits, pk.key_bits_len, id);
	pubkey_info_free(&pk);
}

static X509_NAME *
name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	    (const unsigned char *)"Automatra", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	return n;
}

/* What ca_issue_sign adds: serial, issuer, AKI, CRL DP, AIA; then both
 * signature algorithms set, as sign_cert_alg does (a software signature
 * stands in for the token's: the linter never looks at it). */
static void
finish(X509 *x, X509 *issuer, EVP_PKEY *issuer_key, const uint8_t *aki)
{
	uint8_t serial[SERIAL_LEN];
	char hex[2 * SERIAL_LEN + 1];

	profile_serial_new(serial, hex);
	profile_set_serial(x, serial, sizeof serial);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	if (aki)
		profile_add0(x, profile_ext_aki(aki));
	profile_add0(x, profile_ext_crldp("http://crl.example.net/ca.crl"));
	profile_add0(x, profile_ext_aia("http://ocsp.example.net/ca",
	    "http://ca.example.net/ca.crt"));
	X509_sign(x, issuer_key, EVP_sha256());
}

/* A leaf of profile (LINT_DEVICE, LINT_SERVER, LINT_OCSP) for key, as
 * issue.c and ocsp_responder.c build it. */
static X509 *
leaf_of(int profile, EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *n = name("dev-1");
	unsigned ku = KU_DIGITAL_SIGNATURE;
	int eku = profile == LINT_DEVICE ? NID_client_auth :
	    profile == LINT_SERVER ? NID_server_auth : NID_OCSP_sign;
	char *dns[] = { "srv.example.net" }, why[128];
	uint8_t ski[20];

	if (EVP_PKEY_is_a(key, "RSA") && profile != LINT_OCSP)
		ku |= KU_KEY_ENCIPHERMENT;
	key_id_of(key, ski);
	X509_set_version(x, X509_VERSION_3);
	X509_set_subject_name(x, n);
	profile_set_validity(x, 30);
	X509_set_pubkey(x, key);
	profile_add0(x, profile_ext_basic(0, -1));
	profile_add0(x, profile_ext_key_usage(ku));
	profile_add0(x, profile_ext_eku(&eku, 1));
	profile_add0(x, profile_ext_ski(ski));
	if (profile == LINT_SERVER)
		profile_add0(x, profile_ext_san(dns, 1, NULL, 0, why,
		    sizeof why));
	if (profile == LINT_OCSP) {
		ASN1_NULL *null = ASN1_NULL_new();

		X509_add1_ext_i2d(x, NID_id_pkix_OCSP_noCheck, null, 0,
		    X509V3_ADD_DEFAULT);
		ASN1_NULL_free(null);
	}
	X509_NAME_free(n);
	finish(x, ca_cert, ca_key, ca_ski);
	return x;
}

/* A CA certificate for key with pathLen path_len, as ca_create.c builds
 * one; issuer NULL: self-signed (no AKI). */
static X509 *
ca_of(EVP_PKEY *key, int path_len, X509 *issuer, EVP_PKEY *issuer_key,
    const uint8_t *issuer_ski)
{
	X509 *x = X509_new();
	X509_NAME *n = name(issuer ? "Widgiot" : "Root");
	uint8_t ski[20];
	int none;
	char why[128];

	key_id_of(key, ski);
	X509_set_version(x, X509_VERSION_3);
	X509_set_subject_name(x, n);
	/* The test CA (under the root) 365 days, a CA under it 180. */
	profile_set_validity(x, issuer == NULL ? 3650 : issuer == ca_cert ?
	    180 : 365);
	X509_set_pubkey(x, key);
	profile_add0(x, profile_ext_basic(1, path_len));
	profile_add0(x, profile_ext_key_usage(KU_KEY_CERT_SIGN | KU_CRL_SIGN |
	    KU_DIGITAL_SIGNATURE));
	profile_add0(x, profile_ext_ski(ski));
	if (issuer)
		profile_add0(x, profile_ext_name_constraints(
		    "DNS:.example.net", "", &none, why, sizeof why));
	X509_NAME_free(n);
	if (issuer)
		finish(x, issuer, issuer_key, issuer_ski);
	else {
		uint8_t serial[SERIAL_LEN];
		char hex[2 * SERIAL_LEN + 1];

		profile_serial_new(serial, hex);
		profile_set_serial(x, serial, sizeof serial);
		X509_set_issuer_name(x, n = name("Root"));
		X509_NAME_free(n);
		X509_sign(x, key, EVP_sha256());
	}
	return x;
}

/* lint_cert of x under ca_cert; *rule gets the rule. */
static int
lint(X509 *x, int profile, const char **rule, char *why, size_t len)
{
	return lint_cert(x, profile, ca_cert, NID_ecdsa_with_SHA256, rule,
	    why, len);
}

/* x refused under profile for rule; x is freed. */
static void
refused(X509 *x, int profile, const char *want, const char *what)
{
	const char *rule = NULL;
	char why[256] = "";
	int rc = lint(x, profile, &rule, why, sizeof why);

	is_int(rc, SF_EINTERNAL, "%s: refused (SF_EINTERNAL)", what);
	is_str(rule ? rule : "(none)", want, "  by rule %s (%s)", want, why);
	X509_free(x);
}

/* Remove x's extension nid; add e in its place (if not NULL). */
static void
replace_ext(X509 *x, int nid, X509_EXTENSION *e)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	if (i >= 0)
		X509_EXTENSION_free(X509_delete_ext(x, i));
	if (e)
		profile_add0(x, e);
}

static void
test_good(void)
{
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *keys[] = { ec, rsa, ed };
	static const char *const kn[] = { "EC P-256", "RSA-2048", "Ed25519" };
	static const char *const pn[] = { "", "device", "server", "CA",
	    "OCSP responder" };
	const char *rule = NULL;
	char why[256];
	X509 *x, *root;

	for (int p = LINT_DEVICE; p <= LINT_OCSP; p++) {
		for (size_t k = 0; k < 3; k++) {
			x = p == LINT_CA ? ca_of(keys[k], 0, ca_cert, ca_key,
			    ca_ski) : leaf_of(p, keys[k]);
			is_int(lint(x, p, &rule, why, sizeof why), 0,
			    "a %s certificate for %s passes (%s %s)", pn[p],
			    kn[k], rule ? rule : "", why);
			X509_free(x);
		}
	}
	root = ca_of(ec, -1, NULL, NULL, NULL);
	is_int(lint_cert(root, LINT_CA, root, NID_ecdsa_with_SHA256, &rule,
	    why, sizeof why), 0, "a self-signed root without AKI passes (%s)",
	    why);
	X509_free(root);
	is_int(lint_profile("device:widgiot"), LINT_DEVICE, "profile"
	    " device:widgiot");
	is_int(lint_profile("server"), LINT_SERVER, "profile server");
	is_int(lint_profile("ca"), LINT_CA, "profile ca");
	is_int(lint_profile(JOURNAL_PROFILE_OCSP), LINT_OCSP, "profile %s",
	    JOURNAL_PROFILE_OCSP);
	is_int(lint_profile("device:"), LINT_NONE, "no profile device:");
	is_int(lint_profile("client"), LINT_NONE, "no profile client");
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
}

/* A good device certificate for a fresh P-256 key, to break. */
static X509 *
dev(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = leaf_of(LINT_DEVICE, k);

	EVP_PKEY_free(k);
	return x;
}

/* The TBS's signature algorithm (inner; -1: left as it is) and the
 * outer one set to these NIDs, both with parameter type ptype. */
static void
set_algs(X509 *x, int inner, int outer, int ptype)
{
	const X509_ALGOR *alg;
	const ASN1_BIT_STRING *sig;

	if (inner >= 0)
		X509_ALGOR_set0((X509_ALGOR *)X509_get0_tbs_sigalg(x),
		    OBJ_nid2obj(inner), ptype, NULL);
	X509_get0_signature(&sig, &alg, x);
	X509_ALGOR_set0((X509_ALGOR *)alg, OBJ_nid2obj(outer), ptype, NULL);
}

static void
test_header_rules(void)
{
	X509 *x;
	ASN1_INTEGER *ai;
	X509_NAME *n;
	uint8_t big[21];

	refused(dev(), LINT_NONE, "profile", "no profile");

	x = dev();
	X509_set_version(x, X509_VERSION_1);
	refused(x, LINT_DEVICE, "version", "a v1 certificate");

	x = dev();
	ai = ASN1_INTEGER_new();
	ASN1_INTEGER_set(ai, -5);
	X509_set_serialNumber(x, ai);
	ASN1_INTEGER_free(ai);
	refused(x, LINT_DEVICE, "serial", "a negative serial");

	x = dev();
	ai = ASN1_INTEGER_new();
	ASN1_INTEGER_set(ai, 0);
	X509_set_serialNumber(x, ai);
	ASN1_INTEGER_free(ai);
	refused(x, LINT_DEVICE, "serial", "a zero serial");

	x = dev();
	memset(big, 0x5a, sizeof big);
	profile_set_serial(x, big, sizeof big);
	refused(x, LINT_DEVICE, "serial", "a serial of 21 octets");

	x = dev();
	memset(big, 0x9a, sizeof big);
	profile_set_serial(x, big, 20);   /* 20 bytes, top bit set: 21 octets */
	refused(x, LINT_DEVICE, "serial", "20 bytes whose DER needs 21");

	x = dev();
	{
		const char *rule = NULL;
		char why[256];

		is_int(lint_cert(x, LINT_DEVICE, ca_cert,
		    NID_ecdsa_with_SHA384, &rule, why, sizeof why),
		    SF_EINTERNAL, "a TBS naming another algorithm than the"
		    " key signs with: refused");
		is_str(rule ? rule : "", "signature-algorithm", "  by rule"
		    " signature-algorithm (%s)", why);
	}
	set_algs(x, -1, NID_ecdsa_with_SHA384, V_ASN1_UNDEF);
	refused(x, LINT_DEVICE, "signature-algorithm", "inner and outer"
	    " algorithms that differ");

	x = dev();
	set_algs(x, NID_ecdsa_with_SHA256, NID_ecdsa_with_SHA256, V_ASN1_NULL);
	refused(x, LINT_DEVICE, "signature-algorithm", "ECDSA with NULL"
	    " parameters");

	x = dev();
	X509_set_issuer_name(x, n = name("Someone Else"));
	X509_NAME_free(n);
	refused(x, LINT_DEVICE, "issuer-name", "another issuer name");

	x = dev();
	X509_set_subject_name(x, n = X509_NAME_new());
	X509_NAME_free(n);
	refused(x, LINT_DEVICE, "subject", "an empty subject");
}

static void
test_validity_rules(void)
{
	X509 *x = dev();

	X509_gmtime_adj(X509_getm_notAfter(x), -3600);
	refused(x, LINT_DEVICE, "validity", "notAfter before notBefore");

	x = dev();
	X509_set1_notAfter(x, X509_get0_notBefore(x));
	refused(x, LINT_DEVICE, "validity", "notAfter equal to notBefore");

	x = dev();
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	refused(x, LINT_DEVICE, "validity-in-issuer", "notBefore before the"
	    " issuer's");

	x = dev();
	X509_gmtime_adj(X509_getm_notAfter(x), 20 * 365 * 86400L);
	refused(x, LINT_DEVICE, "validity-in-issuer", "notAfter after the"
	    " issuer's");
}

static void
test_key_rule(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	X509 *x = leaf_of(LINT_DEVICE, k);

	refused(x, LINT_DEVICE, "public-key", "a P-521 key");
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	refused(leaf_of(LINT_DEVICE, k), LINT_DEVICE, "public-key",
	    "an Ed448 key");
	EVP_PKEY_free(k);
}

static void
test_extension_rules(void)
{
	char *dns[] = { "evil.example.com" }, why[128];
	int eku[] = { NID_client_auth, NID_server_auth }, one = NID_server_auth;
	X509 *x;
	int none;

	x = dev();
	profile_add0(x, profile_ext_ski(ca_ski));
	refused(x, LINT_DEVICE, "duplicate-extension", "two SKIs");

	x = dev();
	profile_add0(x, profile_ext_san(dns, 1, NULL, 0, why, sizeof why));
	refused(x, LINT_DEVICE, "extension-not-in-profile", "a SAN on a"
	    " device certificate");

	x = dev();
	profile_add0(x, profile_ext_name_constraints("DNS:.example.net", "",
	    &none, why, sizeof why));
	refused(x, LINT_DEVICE, "extension-not-in-profile", "name constraints"
	    " on a leaf");

	x = dev();
	profile_add0(x, X509V3_EXT_conf_nid(NULL, NULL, NID_netscape_comment,
	    "hello"));
	refused(x, LINT_DEVICE, "extension-not-in-profile", "a Netscape"
	    " comment");

	x = dev();
	replace_ext(x, NID_ext_key_usage, NULL);
	refused(x, LINT_DEVICE, "extension-missing", "no EKU");

	x = dev();
	replace_ext(x, NID_authority_key_identifier, NULL);
	refused(x, LINT_DEVICE, "extension-missing", "no AKI");

	x = dev();
	replace_ext(x, NID_basic_constraints, X509V3_EXT_conf_nid(NULL, NULL,
	    NID_basic_constraints, "CA:FALSE"));
	refused(x, LINT_DEVICE, "criticality", "basicConstraints not"
	    " critical");

	x = dev();
	replace_ext(x, NID_ext_key_usage, X509V3_EXT_conf_nid(NULL, NULL,
	    NID_ext_key_usage, "critical,clientAuth"));
	refused(x, LINT_DEVICE, "criticality", "a critical EKU");

	x = dev();
	replace_ext(x, NID_basic_constraints, X509V3_EXT_conf_nid(NULL, NULL,
	    NID_basic_constraints, "critical,CA:TRUE"));
	refused(x, LINT_DEVICE, "basic-constraints", "a leaf with cA TRUE");

	x = dev();
	replace_ext(x, NID_key_usage, profile_ext_key_usage(
	    KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
	refused(x, LINT_DEVICE, "key-usage", "keyEncipherment for an EC key");

	x = dev();
	replace_ext(x, NID_key_usage, profile_ext_key_usage(
	    KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN));
	refused(x, LINT_DEVICE, "key-usage", "keyCertSign on a leaf");

	x = dev();
	replace_ext(x, NID_ext_key_usage, profile_ext_eku(&one, 1));
	refused(x, LINT_DEVICE, "extended-key-usage", "serverAuth on a device"
	    " certificate");

	x = dev();
	replace_ext(x, NID_ext_key_usage, profile_ext_eku(eku, 2));
	refused(x, LINT_DEVICE, "extended-key-usage", "clientAuth and"
	    " serverAuth");

	x = dev();
	replace_ext(x, NID_subject_key_identifier, profile_ext_ski(ca_ski));
	refused(x, LINT_DEVICE, "subject-key-id", "the issuer's SKI as the"
	    " subject's");

	x = dev();
	{
		uint8_t other[20];

		memset(other, 0x11, sizeof other);
		replace_ext(x, NID_authority_key_identifier,
		    profile_ext_aki(other));
	}
	refused(x, LINT_DEVICE, "authority-key-id", "an AKI that is not the"
	    " issuer's SKI");

	x = dev();
	{
		X509V3_CTX ctx = { .issuer_cert = ca_cert };

		replace_ext(x, NID_authority_key_identifier,
		    X509V3_EXT_conf_nid(NULL, &ctx,
		    NID_authority_key_identifier,
		    "keyid:always,issuer:always"));
	}
	refused(x, LINT_DEVICE, "authority-key-id", "an AKI with the issuer's"
	    " name and serial too");
}

static void
test_profile_rules(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	X509 *x;

	/* A CA certificate's pathLen must fit under the issuer's (1). */
	x = ca_of(k, 1, ca_cert, ca_key, ca_ski);
	refused(x, LINT_CA, "basic-constraints", "pathLen 1 under pathLen 1");
	x = ca_of(k, -1, ca_cert, ca_key, ca_ski);
	refused(x, LINT_CA, "basic-constraints", "unlimited pathLen under"
	    " pathLen 1");
	x = ca_of(k, 0, ca_cert, ca_key, ca_ski);
	replace_ext(x, NID_key_usage, profile_ext_key_usage(KU_KEY_CERT_SIGN));
	refused(x, LINT_CA, "key-usage", "a CA without cRLSign");
	x = ca_of(k, 0, ca_cert, ca_key, ca_ski);
	refused(x, LINT_DEVICE, "extension-not-in-profile", "a CA certificate"
	    " (with name constraints) under the device profile");

	/* An RSA device key needs keyEncipherment, an OCSP responder not. */
	x = leaf_of(LINT_DEVICE, rsa);
	replace_ext(x, NID_key_usage, profile_ext_key_usage(
	    KU_DIGITAL_SIGNATURE));
	refused(x, LINT_DEVICE, "key-usage", "an RSA device key without"
	    " keyEncipherment");
	x = leaf_of(LINT_OCSP, k);
	replace_ext(x, NID_id_pkix_OCSP_noCheck, NULL);
	refused(x, LINT_OCSP, "extension-missing", "an OCSP responder without"
	    " ocsp-nocheck");
	x = leaf_of(LINT_SERVER, k);
	replace_ext(x, NID_subject_alt_name, NULL);
	refused(x, LINT_SERVER, "extension-missing", "a server certificate"
	    " without SAN");
	x = leaf_of(LINT_OCSP, k);
	refused(x, LINT_DEVICE, "extension-not-in-profile", "an OCSP"
	    " responder under the device profile");
	EVP_PKEY_free(k);
	EVP_PKEY_free(rsa);
}

int
main(void)
{
	EVP_PKEY *root_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *root = ca_of(root_key, 2, NULL, NULL, NULL);
	uint8_t root_ski[20];

	key_id_of(root_key, root_ski);
	ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	key_id_of(ca_key, ca_ski);
	ca_cert = ca_of(ca_key, 1, root, root_key, root_ski);
	ok(ca_cert != NULL, "a software CA (pathLen 1) under a software root");
	{
		const char *rule = NULL;
		char why[256];

		is_int(lint_cert(ca_cert, LINT_CA, root, NID_ecdsa_with_SHA256,
		    &rule, why, sizeof why), 0, "  which passes the linter"
		    " itself (%s)", why);
	}
	test_good();
	test_header_rules();
	test_validity_rules();
	test_key_rule();
	test_extension_rules();
	test_profile_rules();
	X509_free(ca_cert);
	X509_free(root);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(root_key);
	return tap_done();
}
