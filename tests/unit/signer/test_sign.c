/*
 * Unit tests of signer/sign.c against a real SoftHSM2 token made for the
 * run by tokens/softhsm-init in a temporary directory, with a key of each
 * CA type generated in it: certificates built with profile.c's helpers,
 * CRLs and requests signed by the token verify with OpenSSL and survive a
 * DER round trip; a changed to-be-signed part does not verify; both
 * algorithm fields name the token key's algorithm, and a CRL carries the
 * token's signature, not the throwaway key's.
 *
 * Environment: SF_SOFTHSM_INIT (path of tokens/softhsm-init),
 * SF_SOFTHSM_MODULE (optional, default /usr/lib/softhsm/libsofthsm2.so).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "log.h"
#include "profile.h"
#include "pubkey.h"
#include "sign.h"
#include "token.h"
#include "../../tap.h"
#include "hsm_fixture.h"


static const char *module = "/usr/lib/softhsm/libsofthsm2.so";

static int
make_token(void)
{
	return hsm_make("sf-sign");
}

static void
rm_tmpdir(void)
{
	if (hsm_cleanup() != 0)
		tap_diag("could not remove %s", hsm_dir);
}

static const struct {
	int type;
	const char *label;
	int nid;
} types[] = {
	{ PUBKEY_EC_P256, "sign-p256", NID_ecdsa_with_SHA256 },
	{ PUBKEY_EC_P384, "sign-p384", NID_ecdsa_with_SHA384 },
	{ PUBKEY_RSA_2048, "sign-rsa2048", NID_sha256WithRSAEncryption },
	{ PUBKEY_ED25519, "sign-ed25519", NID_ED25519 },
};
#define NTYPES (sizeof types / sizeof types[0])

/* ---- DER helpers ---- */

static int
der_of_cert(X509 *x, unsigned char **der)
{
	*der = NULL;
	return i2d_X509(x, der);
}

static X509 *
cert_of_der(const unsigned char *der, int len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, len);

	if (x && p != der + len) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/*
 * The AlgorithmIdentifier inside a to-be-signed DER: SEQUENCE { [0]
 * version (certificates) | INTEGER version (CRLs, optional), serial
 * (certificates), signature AlgorithmIdentifier, ... }.
 */
static X509_ALGOR *
tbs_alg(const unsigned char *tbs, long len, int is_cert)
{
	const unsigned char *p = tbs, *q;
	long l;
	int tag, cls, r;

	r = ASN1_get_object(&p, &l, &tag, &cls, len);
	if ((r & 0x80) || tag != V_ASN1_SEQUENCE)
		return NULL;
	for (int i = 0; i < (is_cert ? 2 : 1); i++) {
		q = p;
		r = ASN1_get_object(&q, &l, &tag, &cls, len - (p - tbs));
		if (r & 0x80)
			return NULL;
		/* A CRL's version is optional: stop at the SEQUENCE. */
		if (!is_cert && tag == V_ASN1_SEQUENCE)
			break;
		p = q + l;
	}
	return d2i_X509_ALGOR(NULL, &p, len - (p - tbs));
}

/* The parameters of an AlgorithmIdentifier: absent, NULL, or other. */
static int
alg_ptype(const X509_ALGOR *a)
{
	int ptype;
	const void *pval;

	X509_ALGOR_get0(NULL, &ptype, &pval, a);
	return ptype;
}

/* ---- a small certificate from profile.c's parts ---- */

static X509 *
build_cert(token_key *k, const char *cn)
{
	char why[256] = "", subj[128], hex[2 * SERIAL_LEN + 1];
	uint8_t serial[SERIAL_LEN], ski[20];
	X509_NAME *n;
	X509 *x = X509_new();
	pubkey_info pk;
	X509_EXTENSION *e;
	int okk = 1;

	memset(&pk, 0, sizeof pk);
	snprintf(subj, sizeof subj, "/C=US/O=Automatra/CN=%s", cn);
	if (x == NULL || (n = profile_subject_parse(subj, why,
	    sizeof why)) == NULL) {
		X509_free(x);
		return NULL;
	}
	okk = X509_set_version(x, X509_VERSION_3) &&
	    X509_set_subject_name(x, n) && X509_set_issuer_name(x, n) &&
	    profile_serial_new(serial, hex) == 0 &&
	    profile_set_serial(x, serial, sizeof serial) == 0 &&
	    X509_gmtime_adj(X509_getm_notBefore(x), -60) &&
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
	    pubkey_from_evp(token_key_public(k), &pk, why, sizeof why) == 0 &&
	    profile_set_pubkey(x, &pk) == 0;
	X509_NAME_free(n);
	if (okk) {
		profile_key_id(pk.key_bits, pk.key_bits_len, ski);
		e = profile_ext_basic(1, 0);
		okk &= e && profile_add(x, e) == 0;
		X509_EXTENSION_free(e);
		e = profile_ext_key_usage(KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		okk &= e && profile_add(x, e) == 0;
		X509_EXTENSION_free(e);
		e = profile_ext_ski(ski);
		okk &= e && profile_add(x, e) == 0;
		X509_EXTENSION_free(e);
		e = profile_ext_aki(ski);
		okk &= e && profile_add(x, e) == 0;
		X509_EXTENSION_free(e);
	}
	pubkey_info_free(&pk);
	if (!okk) {
		tap_diag("build_cert: %s", why);
		X509_free(x);
		return NULL;
	}
	return x;
}

static void
test_cert(token *t, token_key *k, const char *name, int nid)
{
	EVP_PKEY *pub = token_key_public(k);
	unsigned char *der = NULL, *der2 = NULL, *tbs = NULL, *sn;
	const ASN1_INTEGER *ai;
	const X509_ALGOR *outer;
	X509_ALGOR *inner;
	X509 *x, *y = NULL, *z = NULL;
	int len, len2, tbslen;

	x = build_cert(k, name);
	ok(x != NULL, "%s: certificate built from profile.c parts", name);
	if (x == NULL)
		return;
	is_int(sign_cert(t, k, x), 0, "%s: sign_cert", name);
	is_int(X509_verify(x, pub), 1, "%s: X509_verify with the token key's"
	    " public half", name);
	is_int(sign_verify_cert(x, pub), 1, "%s: sign_verify_cert", name);
	is_int(X509_get_signature_nid(x), nid, "%s: signature algorithm %s",
	    name, OBJ_nid2sn(nid));
	X509_get0_signature(NULL, &outer, x);
	is_int(X509_ALGOR_cmp(outer, X509_get0_tbs_sigalg(x)), 0,
	    "%s: both algorithm fields are equal", name);
	is_int(alg_ptype(outer), nid == NID_sha256WithRSAEncryption ?
	    V_ASN1_NULL : V_ASN1_UNDEF, "%s: parameters %s", name,
	    nid == NID_sha256WithRSAEncryption ? "NULL (RFC 4055)" : "absent");

	len = der_of_cert(x, &der);
	y = len > 0 ? cert_of_der(der, len) : NULL;
	ok(y != NULL, "%s: the DER parses back, nothing left over", name);
	len2 = y ? der_of_cert(y, &der2) : -1;
	is_int(len2, len, "%s: i2d_X509 round-trips to the same length",
	    name);
	ok(len2 == len ? memcmp(der, der2, (size_t)len) == 0 : 0,
	    "%s: and byte for byte", name);
	is_int(y ? X509_verify(y, pub) : -1, 1, "%s: the parsed copy verifies",
	    name);
	if (y) {
		tbslen = i2d_re_X509_tbs(y, &tbs);
		inner = tbslen > 0 ? tbs_alg(tbs, tbslen, 1) : NULL;
		is_int(inner ? OBJ_obj2nid(inner->algorithm) : NID_undef, nid,
		    "%s: the TBS algorithm in the DER is %s", name,
		    OBJ_nid2sn(nid));
		X509_ALGOR_free(inner);
		OPENSSL_free(tbs);
	}
	OPENSSL_free(der2);

	/* One bit of the TBS flipped: here, in the serial number. */
	ai = X509_get0_serialNumber(x);
	sn = len > 0 ? memmem(der, (size_t)len, ASN1_STRING_get0_data(ai),
	    (size_t)ASN1_STRING_length(ai)) : NULL;
	ok(sn != NULL, "%s: the serial is in the DER", name);
	if (sn) {
		sn[ASN1_STRING_length(ai) - 1] ^= 0x01;
		z = cert_of_der(der, len);
		ok(z != NULL, "%s: still parses with a bit flipped", name);
		ok(z ? X509_verify(z, pub) != 1 : 0, "%s: a flipped TBS bit: "
		    "X509_verify fails", name);
		is_int(z ? sign_verify_cert(z, pub) : -1, 0,
		    "%s: sign_verify_cert returns 0", name);
	}
	/* And changed in memory after signing. */
	X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400);
	is_int(sign_verify_cert(x, pub), 0, "%s: notAfter changed after "
	    "signing: sign_verify_cert returns 0", name);
	ERR_clear_error();
	OPENSSL_free(der);
	X509_free(x);
	X509_free(y);
	X509_free(z);
}

/* Another key's signature never verifies with this one. */
static void
test_cert_other_key(token *t, token_key *k, token_key *other,
    const char *name)
{
	X509 *x = build_cert(k, "other");

	is_int(x ? sign_cert(t, k, x) : -1, 0, "%s: signed", name);
	is_int(x ? sign_verify_cert(x, token_key_public(other)) : -1, 0,
	    "%s: does not verify with another key", name);
	X509_free(x);
}

/* The start-up probe: k signs for its own public key, for no other. */
static void
test_probe(token *t, token_key *k, token_key *other, const char *name)
{
	is_int(sign_probe(t, k, token_key_public(k)), 0, "%s: the probe"
	    " verifies with its own public key", name);
	is_int(sign_probe(t, k, token_key_public(other)), SF_EPERM,
	    "%s: the probe does not verify with another key: SF_EPERM",
	    name);
}

#define CRL_SERIAL 0x1234567890abcdefULL
#define CRL_SERIAL_DER "\x12\x34\x56\x78\x90\xab\xcd\xef"

/* A CRL (unsigned) with one entry: CRL_SERIAL revoked for keyCompromise. */
static X509_CRL *
build_crl(void)
{
	X509_CRL *crl = X509_CRL_new();
	X509_REVOKED *rv = X509_REVOKED_new();
	ASN1_INTEGER *sn = ASN1_INTEGER_new();
	ASN1_TIME *now = ASN1_TIME_new(), *next = ASN1_TIME_new();
	ASN1_ENUMERATED *reason = ASN1_ENUMERATED_new();
	X509_NAME *n;
	char why[256] = "";
	int built;

	n = profile_subject_parse("/C=US/O=Automatra/CN=CRL issuer", why,
	    sizeof why);
	ASN1_INTEGER_set_uint64(sn, CRL_SERIAL);
	X509_gmtime_adj(now, 0);
	X509_gmtime_adj(next, 7 * 86400);
	ASN1_ENUMERATED_set(reason, 1);   /* keyCompromise */
	built = crl && rv && n && X509_CRL_set_version(crl, X509_CRL_VERSION_2)
	    && X509_CRL_set_issuer_name(crl, n) &&
	    X509_CRL_set1_lastUpdate(crl, now) &&
	    X509_CRL_set1_nextUpdate(crl, next) &&
	    X509_REVOKED_set_serialNumber(rv, sn) &&
	    X509_REVOKED_set_revocationDate(rv, now) &&
	    X509_REVOKED_add1_ext_i2d(rv, NID_crl_reason, reason, 0, 0) == 1 &&
	    X509_CRL_add0_revoked(crl, rv);
	if (built)
		rv = NULL;  /* transferred */
	built = built && X509_CRL_sort(crl);
	if (!built) {
		X509_CRL_free(crl);
		crl = NULL;
	}
	X509_REVOKED_free(rv);
	X509_NAME_free(n);
	ASN1_INTEGER_free(sn);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	ASN1_ENUMERATED_free(reason);
	return crl;
}

/* 1 if ai is the integer v. */
static int
int_is(const ASN1_INTEGER *ai, uint64_t v)
{
	uint64_t got;

	if (ASN1_INTEGER_get_uint64(&got, ai) != 1)
		return 0;
	return got == v;
}

/* A signed CRL parsed back from its DER: both algorithm fields name the
 * token key's algorithm, and the entry survived. */
static void
check_crl_copy(X509_CRL *back, const char *name, int nid)
{
	const ASN1_BIT_STRING *sig;
	const X509_ALGOR *outer;
	X509_ALGOR *inner;
	STACK_OF(X509_REVOKED) *revs;
	X509_REVOKED *rv;
	ASN1_ENUMERATED *r;
	unsigned char *tbs = NULL;
	int tbslen;

	X509_CRL_get0_signature(back, &sig, &outer);
	is_int(OBJ_obj2nid(outer->algorithm), nid, "%s: outer algorithm %s",
	    name, OBJ_nid2sn(nid));
	is_int(alg_ptype(outer), nid == NID_sha256WithRSAEncryption ?
	    V_ASN1_NULL : V_ASN1_UNDEF, "%s: outer parameters", name);
	tbslen = i2d_re_X509_CRL_tbs(back, &tbs);
	inner = tbslen > 0 ? tbs_alg(tbs, tbslen, 0) : NULL;
	is_int(inner ? X509_ALGOR_cmp(inner, outer) : -1, 0,
	    "%s: the TBS names the same algorithm", name);
	X509_ALGOR_free(inner);
	OPENSSL_free(tbs);
	revs = X509_CRL_get_REVOKED(back);
	is_int(sk_X509_REVOKED_num(revs), 1, "%s: one revoked entry", name);
	rv = sk_X509_REVOKED_value(revs, 0);
	ok(rv ? int_is(X509_REVOKED_get0_serialNumber(rv), CRL_SERIAL) : 0,
	    "%s: its serial kept", name);
	r = rv ? X509_REVOKED_get_ext_d2i(rv, NID_crl_reason, NULL, NULL) :
	    NULL;
	is_int(r ? ASN1_ENUMERATED_get(r) : -1, 1,
	    "%s: reason keyCompromise kept", name);
	ASN1_ENUMERATED_free(r);
}

static void
test_crl(token *t, token_key *k, const char *name, int nid)
{
	EVP_PKEY *pub = token_key_public(k);
	X509_CRL *crl = build_crl(), *back = NULL, *bad = NULL;
	unsigned char *der = NULL, *der2 = NULL, *hit;
	const unsigned char *p;
	int len, len2;

	ok(crl != NULL, "%s: a CRL with one revoked entry", name);
	if (crl == NULL)
		return;
	is_int(sign_crl(t, k, crl), 0, "%s: sign_crl", name);
	is_int(X509_CRL_verify(crl, pub), 1, "%s: X509_CRL_verify with the "
	    "token key's public half", name);
	is_int(X509_CRL_get_signature_nid(crl), nid, "%s: signature algorithm"
	    " NID is token_key_sig_nid (%s)", name, OBJ_nid2sn(nid));
	is_int(token_key_sig_nid(k), nid, "%s: token_key_sig_nid", name);

	len = i2d_X509_CRL(crl, &der);
	p = der;
	back = len > 0 ? d2i_X509_CRL(NULL, &p, len) : NULL;
	ok(back != NULL, "%s: the CRL's DER parses back", name);
	ok(p == der + len, "%s: with nothing left over", name);
	len2 = back ? i2d_X509_CRL(back, &der2) : -1;
	is_int(len2, len, "%s: and round-trips to the same length", name);
	ok(len2 == len ? memcmp(der, der2, (size_t)len) == 0 : 0,
	    "%s: and byte for byte", name);
	is_int(back ? X509_CRL_verify(back, pub) : -1, 1,
	    "%s: the parsed copy verifies (the token's signature, not the"
	    " throwaway key's)", name);
	if (back)
		check_crl_copy(back, name, nid);

	/* A flipped bit in the revoked serial: no longer verifies. */
	hit = len > 0 ? memmem(der, (size_t)len, CRL_SERIAL_DER, 8) : NULL;
	if (hit) {
		hit[7] ^= 0x01;
		p = der;
		bad = d2i_X509_CRL(NULL, &p, len);
	}
	ok(bad != NULL, "%s: the CRL still parses with a bit flipped", name);
	ok(bad ? X509_CRL_verify(bad, pub) != 1 : 0, "%s: a flipped bit in"
	    " the revoked list: does not verify", name);

	ERR_clear_error();

	/* Signing twice replaces the signature, it does not pile up. */
	is_int(sign_crl(t, k, crl), 0, "%s: sign_crl again", name);
	is_int(X509_CRL_verify(crl, pub), 1, "%s: still verifies", name);
	ERR_clear_error();
	OPENSSL_free(der);
	OPENSSL_free(der2);
	X509_CRL_free(bad);
	X509_CRL_free(back);
	X509_CRL_free(crl);
}

static void
test_req(token *t, token_key *k, const char *name, int nid)
{
	EVP_PKEY *pub = token_key_public(k);
	X509_REQ *req = X509_REQ_new(), *back = NULL;
	X509_NAME *n;
	unsigned char *der = NULL, *der2 = NULL;
	const unsigned char *p;
	char why[256] = "";
	int len, len2;

	n = profile_subject_parse("/C=US/O=Automatra/CN=us-east-1.widgiot",
	    why, sizeof why);
	ok(req != NULL, "%s: X509_REQ_new", name);
	ok(n != NULL, "%s: the request's subject", name);
	if (req == NULL || n == NULL)
		goto out;
	ok(X509_REQ_set_version(req, X509_REQ_VERSION_1),
	    "%s: the request's version", name);
	ok(X509_REQ_set_subject_name(req, n), "%s: its subject", name);
	ok(X509_REQ_set_pubkey(req, pub), "%s: the token key", name);
	is_int(sign_req(t, k, req), 0, "%s: sign_req", name);
	is_int(X509_REQ_verify(req, pub), 1, "%s: X509_REQ_verify", name);
	is_int(X509_REQ_get_signature_nid(req), nid, "%s: algorithm %s", name,
	    OBJ_nid2sn(nid));
	len = i2d_X509_REQ(req, &der);
	p = der;
	back = len > 0 ? d2i_X509_REQ(NULL, &p, len) : NULL;
	ok(back != NULL, "%s: the request's DER parses back", name);
	ok(p == der + len, "%s: with nothing left over", name);
	len2 = back ? i2d_X509_REQ(back, &der2) : -1;
	is_int(len2, len, "%s: and round-trips to the same length", name);
	ok(len2 == len ? memcmp(der, der2, (size_t)len) == 0 : 0,
	    "%s: and byte for byte", name);
	is_int(back ? X509_REQ_verify(back, X509_REQ_get0_pubkey(back)) : -1,
	    1, "%s: verifies with its own key, as a CA would check it", name);
	/* Signed twice: the second signature replaces the first. */
	is_int(sign_req(t, k, req), 0, "%s: sign_req again", name);
	is_int(X509_REQ_verify(req, pub), 1, "%s: still verifies", name);
out:
	ERR_clear_error();
	OPENSSL_free(der);
	OPENSSL_free(der2);
	X509_REQ_free(back);
	X509_REQ_free(req);
	X509_NAME_free(n);
}

/* An OCSP basic response signed by the CA's token key, responder by name:
 * it verifies against the CA certificate, and no throwaway signature is
 * left in it. */
static void
test_ocsp(token *t, token_key *k, const char *name, int nid)
{
	X509 *ca = build_cert(k, "OCSP CA");
	OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
	OCSP_CERTID *id = NULL;
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509_STORE *store = X509_STORE_new();
	const ASN1_OCTET_STRING *rid;
	const X509_NAME *rname;
	ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
	unsigned char *der = NULL;
	OCSP_BASICRESP *back = NULL;
	const unsigned char *p;
	int len;

	is_int(ca ? sign_cert(t, k, ca) : -1, 0, "%s: OCSP: the CA certificate",
	    name);
	if (!ca || !bs || !certs || !store || !now)
		goto out;
	id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(ca),
	    X509_get0_pubkey_bitstr(ca), X509_get_serialNumber(ca));
	ok(id != NULL, "%s: OCSP: a certificate id", name);
	ok(id ? OCSP_basic_add1_status(bs, id, V_OCSP_CERTSTATUS_GOOD, 0,
	    NULL, now, NULL) != NULL : 0, "%s: OCSP: a single response", name);
	is_int(sign_ocsp(t, k, ca, bs), 0, "%s: sign_ocsp", name);
	is_int(OBJ_obj2nid(OCSP_resp_get0_tbs_sigalg(bs)->algorithm), nid,
	    "%s: OCSP signature algorithm", name);
	OCSP_resp_get0_id(bs, &rid, &rname);
	is_int(rname ? X509_NAME_cmp(rname, X509_get_subject_name(ca)) : -1, 0,
	    "%s: responder id is the CA's name", name);
	sk_X509_push(certs, ca);
	X509_STORE_add_cert(store, ca);
	is_int(OCSP_basic_verify(bs, certs, store, OCSP_TRUSTOTHER), 1,
	    "%s: OCSP_basic_verify against the CA certificate", name);
	ERR_clear_error();
	if ((len = i2d_OCSP_BASICRESP(bs, &der)) > 0) {
		p = der;
		back = d2i_OCSP_BASICRESP(NULL, &p, len);
	}
	is_int(back ? OCSP_basic_verify(back, certs, store, OCSP_TRUSTOTHER) :
	    -1, 1, "%s: and after a DER round trip", name);

	ERR_clear_error();
out:
	OCSP_BASICRESP_free(back);
	OPENSSL_free(der);
	sk_X509_free(certs);
	X509_STORE_free(store);
	X509_free(ca);
	OCSP_CERTID_free(id);
	ASN1_TIME_free(now);
	OCSP_BASICRESP_free(bs);
}

int
main(void)
{
	token_key *keys[NTYPES] = { 0 };
	char why[256] = "";
	token *t = NULL;
	token_opts o = { 0 };
	int rc;

	log_init("test_sign", LOG_LEVEL_WARN);
	if (getenv("SF_SOFTHSM_MODULE"))
		module = getenv("SF_SOFTHSM_MODULE");
	if (access(module, R_OK) != 0 || make_token() != 0) {
		tap_skip("no SoftHSM2 token could be made");
		rm_tmpdir();
		return tap_done();
	}
	o.module = module;
	o.uri = "pkcs11:token=secretfree";
	o.pin_file = hsm_pin_path;
	o.sessions = 2;
	rc = token_open(&o, &t, why, sizeof why);
	is_int(rc, 0, "open the token (%s)", why);
	if (rc != 0) {
		rm_tmpdir();
		return tap_done();
	}
	for (size_t i = 0; i < NTYPES; i++) {
		rc = token_generate_key(t, types[i].label, types[i].type,
		    &keys[i]);
		if (types[i].type == PUBKEY_ED25519 && rc == SF_EKEYTYPE) {
			tap_skip("this token cannot make Ed25519 keys");
			continue;
		}
		is_int(rc, 0, "generate %s", types[i].label);
	}
	for (size_t i = 0; i < NTYPES; i++) {
		if (keys[i] == NULL)
			continue;
		test_cert(t, keys[i], types[i].label, types[i].nid);
		for (size_t d = 1; d < NTYPES; d++)
			if (keys[(i + d) % NTYPES] != NULL) {
				test_cert_other_key(t, keys[i],
				    keys[(i + d) % NTYPES], types[i].label);
				test_probe(t, keys[i], keys[(i + d) % NTYPES],
				    types[i].label);
				break;
			}
		test_crl(t, keys[i], types[i].label, types[i].nid);
		test_req(t, keys[i], types[i].label, types[i].nid);
		test_ocsp(t, keys[i], types[i].label, types[i].nid);
	}
	for (size_t i = 0; i < NTYPES; i++)
		token_key_free(keys[i]);
	token_close(t);
	rm_tmpdir();
	return tap_done();
}
