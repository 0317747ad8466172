/*
 * Unit tests of signer/ocsp*.c against a real SoftHSM2 token and journal
 * (ca_fixture.h), with a root, the widgiot intermediate and the
 * us-east-1.widgiot issuing CA made by ca_create and leaves issued by
 * ca_issue. Requests are built and responses read with OpenSSL's own
 * OCSP code, as a client would: malformed requests and foreign issuers
 * get their statuses (and random bytes never crash); the background task
 * pre-signs a response per certificate and the request path returns
 * those bytes; SHA-256 CertIDs; revocation (by the task and on the spot)
 * with reason and time; unknown serials; several certificates in one
 * request; the on-demand rate; aged responses re-signed and expired ones
 * dropped; the delegated responder (its certificate's extensions, its key
 * in the token under the CA key policy, renewal, a restart finding it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "ocsp.h"
#include "ocspmsg.h"
#include "pbenum.h"
#include "profile.h"
#include "pubkey.h"
#include "ca_fixture.h"

#define NLEAF 4

static ca_fixture fx;
static ocsp *oc;
static ca *root, *inter, *iss;
static X509 *leaf[NLEAF];
static char leaf_serial[NLEAF][64];
static int64_t t0;

/* ---- helpers ---- */

/* A leaf of iss for a fresh software key, valid days, journaled. */
static X509 *
issue_leaf(int days, char serial[64])
{
	ca_issue_meta m = { "device:widgiot", "dev", NULL, "test", "", "" };
	X509 *x = ca_fixture_leaf(m.profile, "leaf", days, NULL, NULL);
	pubkey_info pk;
	char why[128];

	memset(&pk, 0, sizeof pk);
	if (x == NULL || pubkey_from_evp(X509_get0_pubkey(x), &pk, why,
	    sizeof why) != 0) {
		X509_free(x);
		return NULL;
	}
	m.key_sha256 = pk.sha256;
	if (ca_issue(fx.cas, iss, x, &m, serial) != 0) {
		X509_free(x);
		x = NULL;
	}
	pubkey_info_free(&pk);
	return x;
}

/* A DER request about certs[0..n-1] of issuer, CertIDs hashed with md;
 * with a nonce if asked. */
static int
make_req(const EVP_MD *md, X509 *const *certs, X509 *issuer, int n,
    int nonce, uint8_t **der, size_t *len)
{
	OCSP_REQUEST *r = OCSP_REQUEST_new();
	unsigned char *p = NULL;
	int l = -1;

	*der = NULL;
	for (int i = 0; r && i < n; i++)
		if (!OCSP_request_add0_id(r, OCSP_cert_to_id(md, certs[i],
		    issuer)))
			goto out;
	if (nonce && !OCSP_request_add1_nonce(r, NULL, 16))
		goto out;
	if (r && (l = i2d_OCSP_REQUEST(r, &p)) > 0) {
		*der = malloc((size_t)l);
		memcpy(*der, p, (size_t)l);
		*len = (size_t)l;
	}
out:
	OPENSSL_free(p);
	OCSP_REQUEST_free(r);
	return *der ? 0 : -1;
}

/* A request about one serial of issuer (SHA-1). */
static int
make_serial_req(X509 *issuer, ASN1_INTEGER *serial, uint8_t **der,
    size_t *len)
{
	OCSP_REQUEST *r = OCSP_REQUEST_new();
	OCSP_CERTID *id = OCSP_cert_id_new(EVP_sha1(),
	    X509_get_subject_name(issuer), X509_get0_pubkey_bitstr(issuer),
	    serial);
	unsigned char *p = NULL;
	int l;

	*der = NULL;
	if (r && id && OCSP_request_add0_id(r, id)) {
		id = NULL;
		if ((l = i2d_OCSP_REQUEST(r, &p)) > 0 &&
		    (*der = malloc((size_t)l)) != NULL) {
			memcpy(*der, p, (size_t)l);
			*len = (size_t)l;
		}
	}
	OPENSSL_free(p);
	OCSP_CERTID_free(id);
	OCSP_REQUEST_free(r);
	return *der ? 0 : -1;
}

/* What ocsp_respond answered. */
typedef struct {
	int status;              /* OCSPResponseStatus; -1 unreadable, -2 none */
	OCSP_BASICRESP *bs;      /* when successful */
	uint8_t *der;
	size_t len;
	int64_t next;            /* next_update */
} answer;

static void
answer_fini(answer *a)
{
	OCSP_BASICRESP_free(a->bs);
	free(a->der);
	memset(a, 0, sizeof *a);
}

/* Ask req at now; a->status. */
static int
ask(const uint8_t *req, size_t len, int64_t now, answer *a)
{
	const unsigned char *p;
	OCSP_RESPONSE *r;

	memset(a, 0, sizeof *a);
	a->status = -2;
	if (ocsp_respond(oc, req, len, now, &a->der, &a->len, &a->next) != 0)
		return a->status;
	p = a->der;
	a->status = -1;
	if ((r = d2i_OCSP_RESPONSE(NULL, &p, (long)a->len)) != NULL) {
		a->status = OCSP_response_status(r);
		if (a->status == OCSP_RESPONSE_STATUS_SUCCESSFUL)
			a->bs = OCSP_response_get1_basic(r);
	}
	OCSP_RESPONSE_free(r);
	return a->status;
}

/* Only the status of the answer to req. */
static int
ask_status(const uint8_t *req, size_t len, int64_t now)
{
	answer a;
	int st = ask(req, len, now, &a);

	answer_fini(&a);
	return st;
}

/* The status bs gives cert of issuer (CertID by md), with reason,
 * revocation time and thisUpdate/nextUpdate as Unix times. */
static int
status_in(OCSP_BASICRESP *bs, const EVP_MD *md, X509 *cert, X509 *issuer,
    int *reason, int64_t *rev, int64_t *thisupd, int64_t *nextupd)
{
	OCSP_CERTID *id = OCSP_cert_to_id(md, cert, issuer);
	ASN1_GENERALIZEDTIME *r = NULL, *t = NULL, *nx = NULL;
	int st = -1, rs = -1;

	if (id && bs && OCSP_resp_find_status(bs, id, &st, &rs, &r, &t, &nx)) {
		if (reason)
			*reason = rs;
		if (rev)
			*rev = r ? profile_time_unix(r) : 0;
		if (thisupd)
			*thisupd = t ? profile_time_unix(t) : 0;
		if (nextupd)
			*nextupd = nx ? profile_time_unix(nx) : 0;
	}
	OCSP_CERTID_free(id);
	return st;
}

/* 1 if bs verifies: the signer among `other` trusted as is (CA mode), or
 * chained to the root through `other` (delegated). */
static int
verifies(OCSP_BASICRESP *bs, X509 *const *other, int trust_other)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509_STORE *st = X509_STORE_new();
	int ok;

	for (size_t i = 0; other[i]; i++)
		sk_X509_push(sk, other[i]);
	X509_STORE_add_cert(st, root->cert);
	ok = OCSP_basic_verify(bs, sk, st, trust_other ? OCSP_TRUSTOTHER :
	    0) == 1;
	ERR_clear_error();
	sk_X509_free(sk);
	X509_STORE_free(st);
	return ok;
}

/* The stored response of leaf i for hash (its DER, malloc'd, or NULL). */
static uint8_t *
stored_der(int i, const char *hash, size_t *len, int *status)
{
	journal_ocsp_cert jc;
	journal_ocsp_stored s;

	if (journal_ocsp_get(fx.jn, iss->rec.id, leaf_serial[i], hash, &jc,
	    &s) != 0)
		return NULL;
	*len = s.der_len;
	if (status)
		*status = s.status;
	return s.der;
}

static int
same(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return a && b && al == bl && memcmp(a, b, al) == 0;
}

/* ---- tests ---- */

static void
test_malformed(void)
{
	static const uint8_t garbage[] = "this is not DER";
	uint8_t *der = NULL, *bad;
	size_t len = 0;
	answer a;
	int crashes = 0;

	is_int(ask(garbage, sizeof garbage, t0, &a),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "garbage: malformedRequest");
	is_int(a.next, 0, "garbage: nothing to cache");
	answer_fini(&a);
	is_int(ask_status(garbage, 0, t0),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "empty: malformedRequest");
	is_int(ask_status(NULL, 0, t0),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "NULL: malformedRequest");
	if (make_req(EVP_sha1(), &leaf[0], iss->cert, 1, 0, &der, &len) != 0)
		return;
	bad = malloc(len + 1);
	memcpy(bad, der, len);
	bad[len] = 0;
	is_int(ask_status(bad, len + 1, t0),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
	    "a request with a byte after it: malformedRequest");
	is_int(ask_status(bad, len - 1, t0),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
	    "a truncated request: malformedRequest");
	/* Flip bytes and feed random lengths: an answer every time. */
	for (int i = 0; i < 400; i++) {
		memcpy(bad, der, len);
		bad[(size_t)i % len] ^= (uint8_t)(1 + i % 255);
		if (i % 3 == 0)
			RAND_bytes(bad, (int)len);
		crashes += ask_status(bad, len - (size_t)(i % 7), t0) < 0;
	}
	is_int(crashes, 0, "400 damaged requests: each gets an OCSPResponse");
	free(bad);
	free(der);
	if (make_req(EVP_md5(), &leaf[0], iss->cert, 1, 0, &der, &len) == 0)
		is_int(ask_status(der, len, t0),
		    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
		    "a CertID hashed with MD5: malformedRequest");
	free(der);
}

static void
test_unauthorized(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *other = X509_new();
	uint8_t *der = NULL;
	size_t len;

	/* Another CA with the issuing CA's name but its own key. */
	X509_set_subject_name(other, X509_get_subject_name(iss->cert));
	X509_set_pubkey(other, k);
	if (make_req(EVP_sha1(), &leaf[0], other, 1, 0, &der, &len) == 0)
		is_int(ask_status(der, len, t0),
		    OCSP_RESPONSE_STATUS_UNAUTHORIZED,
		    "a CA of the same name with another key: unauthorized");
	free(der);
	X509_free(other);
	EVP_PKEY_free(k);
}

/* cert (of iss) asked about with CertID by md at now: the answer in *a,
 * checked to be successful and to give status. */
static void
ask_cert(X509 *cert, const char *what, const EVP_MD *md, int nonce,
    int64_t now, int status, answer *a)
{
	uint8_t *der = NULL;
	size_t len = 0;

	memset(a, 0, sizeof *a);
	if (make_req(md, &cert, iss->cert, 1, nonce, &der, &len) != 0) {
		ok(0, "a request about %s", what);
		return;
	}
	is_int(ask(der, len, now, a), OCSP_RESPONSE_STATUS_SUCCESSFUL,
	    "%s (%s%s): successful", what, EVP_MD_get0_name(md),
	    nonce ? ", a nonce" : "");
	is_int(status_in(a->bs, md, cert, iss->cert, NULL, NULL, NULL, NULL),
	    status, "  %s", OCSP_cert_status_str(status));
	free(der);
}

/* The same for leaf i, and the answer verifies with the issuing CA. */
static void
ask_leaf(int i, const EVP_MD *md, int nonce, int64_t now, int status,
    answer *a)
{
	X509 *other[] = { iss->cert, NULL };
	char what[16];

	snprintf(what, sizeof what, "leaf %d", i);
	ask_cert(leaf[i], what, md, nonce, now, status, a);
	ok(verifies(a->bs, other, 1), "  it verifies with the issuing CA");
}

static void
test_presigned(void)
{
	answer a, b;
	uint8_t *st = NULL;
	size_t sl = 0;
	int64_t tu = 0, nu = 0;
	const ASN1_OCTET_STRING *rid;
	const X509_NAME *rname = NULL;

	is_int(ocsp_refresh(oc, t0), 0, "the background task runs");
	st = stored_der(0, "sha1", &sl, NULL);
	ok(st != NULL, "a response is stored for each certificate");
	ask_leaf(0, EVP_sha1(), 0, t0 + 5, V_OCSP_CERTSTATUS_GOOD, &a);
	ok(same(a.der, a.len, st, sl), "its bytes are the stored response's");
	status_in(a.bs, EVP_sha1(), leaf[0], iss->cert, NULL, NULL, &tu, &nu);
	is_int(tu, t0, "thisUpdate: when the task signed it");
	is_int(nu - tu, fx.conf->ocsp_validity, "nextUpdate: validity later");
	is_int(a.next, nu, "next_update is the response's nextUpdate");
	if (a.bs)
		OCSP_resp_get0_id(a.bs, &rid, &rname);
	is_int(rname ? X509_NAME_cmp(rname, X509_get_subject_name(iss->cert)) :
	    -1, 0, "the responder id is the CA's name");
	is_int(a.bs && OCSP_resp_get0_certs(a.bs) ?
	    sk_X509_num(OCSP_resp_get0_certs(a.bs)) : 0, 0,
	    "no certificate included (the CA signs)");
	ask_leaf(0, EVP_sha1(), 1, t0 + 6, V_OCSP_CERTSTATUS_GOOD, &b);
	ok(same(a.der, a.len, b.der, b.len), "the same bytes: the nonce is not"
	    " echoed");
	answer_fini(&a);
	answer_fini(&b);
	free(st);
}

/* Leaf i has no response stored for hash (why says why not); asked, it
 * gets one signed on the spot, stored, and answered (*a). */
static void
stored_on_demand(int i, const EVP_MD *md, const char *hash, const char *why,
    answer *a)
{
	uint8_t *st;
	size_t sl = 0;

	st = stored_der(i, hash, &sl, NULL);
	ok(st == NULL, "leaf %d: no %s response stored: %s", i, hash, why);
	free(st);
	ask_leaf(i, md, 0, t0, V_OCSP_CERTSTATUS_GOOD, a);
	st = stored_der(i, hash, &sl, NULL);
	ok(same(a->der, a->len, st, sl), "  signed on the spot, stored, and"
	    " answered");
	free(st);
}

static void
test_on_demand(void)
{
	answer a, b;

	stored_on_demand(1, EVP_sha256(), "sha256", "SHA-256 never asked for",
	    &a);
	ask_leaf(1, EVP_sha256(), 0, t0 + 1, V_OCSP_CERTSTATUS_GOOD, &b);
	ok(same(a.der, a.len, b.der, b.len), "the same bytes when asked again");
	answer_fini(&a);
	answer_fini(&b);
	stored_on_demand(3, EVP_sha1(), "sha1", "issued after the task ran",
	    &a);
	answer_fini(&a);
}

/* Revoked through the journal as revoke_cert does, then answered. */
static void
test_revoked(void)
{
	journal_ocsp_cert *v = NULL;
	answer a;
	size_t n = 0, sl = 0;
	int reason = -1, status = -1;
	int64_t rev = 0;

	is_int(journal_cert_revoke(fx.jn, iss->rec.id, leaf_serial[1], 1,
	    t0 - 100), 0, "revoke leaf 1 (keyCompromise)");
	is_int(journal_ocsp_changed(fx.jn, iss->rec.id, 10, &v, &n), 0,
	    "the task's list of changed certificates");
	is_int(n, 2, "names leaf 1's two stored responses (SHA-1, SHA-256)");
	free(v);
	is_int(ocsp_refresh(oc, t0 + 10), 0, "the task runs");
	free(stored_der(1, "sha1", &sl, &status));
	is_int(status, V_OCSP_CERTSTATUS_REVOKED, "the stored response is"
	    " re-signed as revoked");
	is_int(journal_ocsp_changed(fx.jn, iss->rec.id, 10, &v, &n), 0,
	    "the list again");
	is_int(n, 0, "nothing is left to re-sign");
	free(v);
	ask_leaf(1, EVP_sha1(), 0, t0 + 11, V_OCSP_CERTSTATUS_REVOKED, &a);
	status_in(a.bs, EVP_sha1(), leaf[1], iss->cert, &reason, &rev, NULL,
	    NULL);
	is_int(reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE,
	    "reason keyCompromise");
	is_int(rev, t0 - 100, "revocation time from the journal");
	answer_fini(&a);
	/* Revoked, then asked before the task runs: signed on the spot. */
	is_int(journal_cert_revoke(fx.jn, iss->rec.id, leaf_serial[2], 0,
	    t0 - 50), 0, "revoke leaf 2 (unspecified)");
	ask_leaf(2, EVP_sha1(), 0, t0 + 12, V_OCSP_CERTSTATUS_REVOKED, &a);
	status_in(a.bs, EVP_sha1(), leaf[2], iss->cert, &reason, &rev, NULL,
	    NULL);
	is_int(reason, OCSP_REVOKED_STATUS_NOSTATUS,
	    "no reason given for unspecified (RFC 5280 5.3.1)");
	answer_fini(&a);
}

static void
test_unknown(void)
{
	X509 *other[] = { iss->cert, NULL };
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	OCSP_SINGLERESP *one;
	uint8_t *der = NULL, sbytes[16];
	size_t len;
	answer a;

	RAND_bytes(sbytes, sizeof sbytes);
	sbytes[0] &= 0x7f;
	ASN1_STRING_set(serial, sbytes, sizeof sbytes);
	if (make_serial_req(iss->cert, serial, &der, &len) == 0) {
		is_int(ask(der, len, t0, &a), OCSP_RESPONSE_STATUS_SUCCESSFUL,
		    "a serial never issued: successful");
		one = a.bs ? OCSP_resp_get0(a.bs, 0) : NULL;
		is_int(one ? OCSP_single_get0_status(one, NULL, NULL, NULL,
		    NULL) : -1, V_OCSP_CERTSTATUS_UNKNOWN, "unknown");
		ok(verifies(a.bs, other, 1), "it verifies");
		is_int(a.next, t0 + fx.conf->ocsp_validity, "cacheable until"
		    " its nextUpdate");
		answer_fini(&a);
	}
	ASN1_INTEGER_free(serial);
	free(der);
}

static void
test_many(void)
{
	X509 *two[] = { leaf[0], leaf[1] }, *mixed[] = { leaf[0], iss->cert };
	X509 *issuers[] = { iss->cert, inter->cert };
	OCSP_REQUEST *r = OCSP_REQUEST_new();
	uint8_t *der = NULL;
	unsigned char *p = NULL;
	size_t len;
	answer a;
	int l;

	if (make_req(EVP_sha1(), two, iss->cert, 2, 0, &der, &len) == 0) {
		is_int(ask(der, len, t0, &a), OCSP_RESPONSE_STATUS_SUCCESSFUL,
		    "two certificates of one CA: successful");
		is_int(a.bs ? OCSP_resp_count(a.bs) : -1, 2,
		    "two single responses");
		is_int(status_in(a.bs, EVP_sha1(), leaf[0], iss->cert, NULL,
		    NULL, NULL, NULL), V_OCSP_CERTSTATUS_GOOD, "leaf 0 good");
		is_int(status_in(a.bs, EVP_sha1(), leaf[1], iss->cert, NULL,
		    NULL, NULL, NULL), V_OCSP_CERTSTATUS_REVOKED,
		    "leaf 1 revoked");
		answer_fini(&a);
	}
	free(der);
	/* The issuing CA's own certificate is the intermediate's to answer. */
	for (int i = 0; r && i < 2; i++)
		OCSP_request_add0_id(r, OCSP_cert_to_id(EVP_sha1(), mixed[i],
		    issuers[i]));
	if (r && (l = i2d_OCSP_REQUEST(r, &p)) > 0)
		is_int(ask_status(p, (size_t)l, t0),
		    OCSP_RESPONSE_STATUS_UNAUTHORIZED, "certificates of two"
		    " CAs in one request: unauthorized");
	OPENSSL_free(p);
	OCSP_REQUEST_free(r);
}

static void
test_rate(void)
{
	signer_conf slow = *fx.conf;
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	uint8_t *der = NULL, *known = NULL;
	size_t len, klen;
	int later = 0, good = 0;

	slow.ocsp_on_demand = 2;
	ocsp_set_conf(oc, &slow);
	ASN1_INTEGER_set(serial, 12345);
	if (make_serial_req(iss->cert, serial, &der, &len) == 0 &&
	    make_req(EVP_sha1(), &leaf[0], iss->cert, 1, 0, &known,
	    &klen) == 0) {
		for (int i = 0; i < 6; i++)
			later += ask_status(der, len, t0) ==
			    OCSP_RESPONSE_STATUS_TRYLATER;
		for (int i = 0; i < 6; i++)
			good += ask_status(known, klen, t0) ==
			    OCSP_RESPONSE_STATUS_SUCCESSFUL;
	}
	ok(later >= 3, "past the on-demand rate: tryLater (%d of 6)", later);
	is_int(good, 6, "stored responses are served all the same");
	ocsp_set_conf(oc, fx.conf);
	ASN1_INTEGER_free(serial);
	free(der);
	free(known);
}

static void
test_aged_and_expired(void)
{
	char serial[64];
	X509 *shortlived = issue_leaf(1, serial);
	journal_ocsp_cert jc;
	journal_ocsp_stored s;
	int64_t later = t0 + fx.conf->ocsp_refresh + 2 * 86400;

	if (shortlived == NULL)
		return;
	is_int(ocsp_refresh(oc, t0 + 20), 0, "the task signs the new one");
	journal_ocsp_get(fx.jn, iss->rec.id, serial, "sha1", &jc, &s);
	ok(s.der != NULL, "a one-day certificate has its response");
	free(s.der);
	is_int(ocsp_refresh(oc, later), 0, "the task, refresh_seconds later");
	journal_ocsp_get(fx.jn, iss->rec.id, leaf_serial[0], "sha1", &jc, &s);
	is_int(s.this_update, later, "an aged response is re-signed");
	free(s.der);
	journal_ocsp_get(fx.jn, iss->rec.id, serial, "sha1", &jc, &s);
	ok(s.der == NULL, "an expired certificate's response is dropped");
	free(s.der);
	X509_free(shortlived);
}

/* The responder certificate a response includes (borrowed), or NULL. */
static X509 *
responder_of(const answer *a)
{
	const STACK_OF(X509) *c = a->bs ? OCSP_resp_get0_certs(a->bs) : NULL;

	return c && sk_X509_num(c) == 1 ? sk_X509_value(c, 0) : NULL;
}

/* The checks of a delegated responder's certificate r. */
static void
check_responder(X509 *r)
{
	EXTENDED_KEY_USAGE *eku;
	char *serial = NULL, *label = NULL, hex[64], why[128] = "";
	token_key *k = NULL;
	int64_t na;

	ok(r != NULL, "delegated: the responder's certificate is included");
	if (r == NULL)
		return;
	eku = X509_get_ext_d2i(r, NID_ext_key_usage, NULL, NULL);
	ok(eku && sk_ASN1_OBJECT_num(eku) == 1 &&
	    OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)) == NID_OCSP_sign,
	    "its EKU is id-kp-OCSPSigning alone");
	EXTENDED_KEY_USAGE_free(eku);
	ok(X509_get_ext_by_NID(r, NID_id_pkix_OCSP_noCheck, -1) >= 0,
	    "it carries id-pkix-ocsp-nocheck");
	is_int(X509_verify(r, iss->pub), 1, "the issuing CA signed it");
	is_int(X509_check_ca(r), 0, "it is not a CA");
	profile_serial_hex(X509_get_serialNumber(r), hex, sizeof hex);
	is_int(journal_ocsp_responder_get(fx.jn, iss->rec.id, &serial, &label,
	    &na), 0, "the journal names the CA's responder");
	is_str(serial, hex, "by this certificate's serial");
	is_int(token_find_key(fx.tok, label ? label : "", &k), 0,
	    "its key is in the token");
	is_int(k ? token_key_check(fx.tok, k, why, sizeof why) : -1, 0,
	    "under the CA key policy (%s)", why);
	token_key_free(k);
	free(serial);
	free(label);
}

/* The serial of CA ca_id's newest responder in the journal (malloc'd). */
static char *
responder_serial(int64_t ca_id)
{
	char *serial = NULL, *label = NULL;
	int64_t na;

	journal_ocsp_responder_get(fx.jn, ca_id, &serial, &label, &na);
	free(label);
	return serial;
}

static void
test_delegated(void)
{
	signer_conf del = *fx.conf;
	X509 *chain[] = { iss->cert, inter->cert, NULL }, *fresh;
	char serial[64], hex[64] = "", *s1, *s2 = NULL, *s3;
	int64_t renew_at;
	answer a;

	del.ocsp_delegated = 1;
	ocsp_set_conf(oc, &del);
	if ((fresh = issue_leaf(30, serial)) == NULL)
		goto out;
	ask_cert(fresh, "a new leaf", EVP_sha1(), 0, t0,
	    V_OCSP_CERTSTATUS_GOOD, &a);
	check_responder(responder_of(&a));
	ok(verifies(a.bs, chain, 0), "the response verifies up to the root");
	answer_fini(&a);
	s1 = responder_serial(iss->rec.id);
	is_int(ocsp_refresh(oc, t0), 0, "the task runs in delegated mode");
	s3 = responder_serial(root->rec.id);
	ok(s3 != NULL, "it made the root's responder too");
	free(s3);
	renew_at = t0 + (int64_t)(del.ocsp_responder_days -
	    del.ocsp_responder_renew_days) * 86400 + 3600;
	is_int(ocsp_refresh(oc, renew_at), 0, "the task, inside the renewal"
	    " window");
	s2 = responder_serial(iss->rec.id);
	ok(s1 && s2 && strcmp(s1, s2) != 0, "the responder was renewed");
	free(s1);
	/* A restarted signer finds the newest responder again. */
	ocsp_free(oc);
	oc = ocsp_new(&del, fx.tok, fx.jn, fx.cas);
	X509_free(fresh);
	if ((fresh = issue_leaf(30, serial)) == NULL)
		goto out;
	ask_cert(fresh, "after a restart, another new leaf", EVP_sha1(), 0,
	    t0 + 30, V_OCSP_CERTSTATUS_GOOD, &a);
	if (responder_of(&a))
		profile_serial_hex(X509_get_serialNumber(responder_of(&a)),
		    hex, sizeof hex);
	is_str(hex, s2, "signed by the renewed responder, found in the"
	    " journal, not a new one");
	answer_fini(&a);
out:
	ocsp_set_conf(oc, fx.conf);
	X509_free(fresh);
	free(s2);
}

int
main(void)
{
	int n = 0;

	log_init("test_ocsp", LOG_LEVEL_WARN);
	/* The damaged requests of test_malformed may parse as questions about
	 * unknown serials, each signed on the spot: a high on-demand rate
	 * keeps them from using up what later tests need (test_rate sets its
	 * own, low one). */
	if (ca_fixture_open(&fx, "sf-ocsp",
	    "[ocsp]\non_demand_per_second = 100000\n") != 0)
		return tap_done();
	t0 = sf_now();
	root = ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL);
	inter = root ? ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot",
	    NULL) : NULL;
	iss = inter ? ca_fixture_create(&fx, ROLE_ISSUING, "widgiot",
	    "us-east-1") : NULL;
	oc = ocsp_new(fx.conf, fx.tok, fx.jn, fx.cas);
	for (int i = 0; iss && i < NLEAF - 1; i++)
		n += (leaf[i] = issue_leaf(30, leaf_serial[i])) != NULL;
	if (iss && oc && n == NLEAF - 1) {
		test_malformed();
		test_unauthorized();
		test_presigned();
		if ((leaf[3] = issue_leaf(30, leaf_serial[3])) != NULL)
			test_on_demand();
		test_revoked();
		test_unknown();
		test_many();
		test_rate();
		test_aged_and_expired();
		test_delegated();
	} else
		ok(0, "the CAs and leaves to test with");
	ocsp_free(oc);
	for (int i = 0; i < NLEAF; i++)
		X509_free(leaf[i]);
	ca_fixture_close(&fx);
	return tap_done();
}
