/*
 * Unit tests of signer/ca.c, ca_create.c and ca_external.c against a real
 * SoftHSM2 token (ca_fixture.h): a root, a product line's intermediate and
 * a region's issuing CA are made with the configured defaults, and each
 * certificate is read back field by field (self-signed root without AKI,
 * CRL DP or AIA; issuer names, AKIs and URLs from the parent; pathLen;
 * name constraints), with its key's attributes read back from the token
 * and its journal rows. The chain verifies with OpenSSL's
 * X509_verify_cert, which also enforces the intermediate's name
 * constraints on leaves ca_issue signs. Refusals come before a key is
 * generated; a CA with an external parent gives a CSR and accepts only a
 * certificate for its key that verifies against the chain given with it,
 * and its rotation stays pending (the old generation active) until the
 * new certificate is imported. Expiry: a CA with less validity left than
 * [limits] ca_min_remaining_days, or none, issues nothing (ca_usable names
 * it), and ca_issue refuses a certificate that would end before it
 * begins. A reopened store finds everything again. Rotation, retirement
 * and revocation of CAs in the store are in test_ca_rotate.c and
 * test_ca_revoke.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "profile.h"
#include "pubkey.h"
#include "ca_fixture.h"

static ca_fixture fx;
static ca *root, *inter, *iss;

/* Product lines besides the fixture's: one whose configured pathLen is
 * too deep for the root, one that never gets an intermediate. */
static const char *EXTRA =
    "[product.deep]\n"
    "path_len = 5\n"
    "[product.noint]\n";

/* ---- helpers ---- */

/* The PEM certificates in text. */
static int
pem_count(const char *text)
{
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, "-----BEGIN"));
	    p++)
		n++;
	return n;
}

/* basicConstraints' pathLen of x; -1 if none, -2 if x is not a CA. */
static long
path_len_of(X509 *x)
{
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints,
	    NULL, NULL);
	long n = -2;

	if (bc && bc->ca)
		n = bc->pathlen ? ASN1_INTEGER_get(bc->pathlen) : -1;
	BASIC_CONSTRAINTS_free(bc);
	return n;
}

static int
has_ext(X509 *x, int nid)
{
	return X509_get_ext_by_NID(x, nid, -1) >= 0;
}

/* 1 if the 20-byte key id os is id. */
static int
key_id_is(const ASN1_OCTET_STRING *os, const uint8_t id[20])
{
	if (os == NULL || ASN1_STRING_length(os) != 20)
		return 0;
	return memcmp(ASN1_STRING_get0_data(os), id, 20) == 0;
}

/* The URI of the first access description of that method in x's AIA. */
static char *
aia_uri(X509 *x, int method)
{
	AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access,
	    NULL, NULL);
	char *out = NULL;

	for (int i = 0; aia && i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
		ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);

		if (OBJ_obj2nid(ad->method) == method &&
		    ad->location->type == GEN_URI) {
			out = strdup((const char *)ASN1_STRING_get0_data(
			    ad->location->d.uniformResourceIdentifier));
			break;
		}
	}
	AUTHORITY_INFO_ACCESS_free(aia);
	return out;
}

/* The first full-name URI of x's CRL distribution points. */
static char *
crldp_uri(X509 *x)
{
	CRL_DIST_POINTS *dps = X509_get_ext_d2i(x,
	    NID_crl_distribution_points, NULL, NULL);
	DIST_POINT *dp = dps ? sk_DIST_POINT_value(dps, 0) : NULL;
	GENERAL_NAME *gn = NULL;
	char *out = NULL;

	if (dp && dp->distpoint && dp->distpoint->type == 0)
		gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
	if (gn && gn->type == GEN_URI)
		out = strdup((const char *)ASN1_STRING_get0_data(
		    gn->d.uniformResourceIdentifier));
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return out;
}

/* A server leaf for a fresh software key with these SANs, valid days. */
static X509 *
leaf(const char *dns, const char *ip, int days)
{
	return ca_fixture_leaf("server", "leaf", days, dns, ip);
}

/* Issue a leaf under c through ca_issue; NULL if that failed. */
static X509 *
issued_leaf(ca *c, const char *dns, const char *ip, int days)
{
	ca_issue_meta m = { "server", "", (const uint8_t *)
	    "0123456789abcdef0123456789abcdef", "test", "", "" };
	char serial[64];
	X509 *x = leaf(dns, ip, days);

	if (x == NULL || ca_issue(fx.cas, c, x, &m, serial) != 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* The journal row of c's own certificate, under the CA that signed it. */
static void
check_journaled(const ca *c, int64_t signer_id, const char *what)
{
	journal_cert_row row;
	unsigned char *der = NULL;
	int len = i2d_X509(c->cert, &der);

	memset(&row, 0, sizeof row);
	is_int(journal_cert_get(fx.jn, c->rec.serial, signer_id, &row), 0,
	    "%s: its certificate is in the journal under its signer", what);
	is_str(row.profile, "ca", "%s: journaled with profile ca", what);
	is_str(row.requester, "ca-admin", "%s: requester ca-admin", what);
	is_str(row.device_id, "", "%s: no device id", what);
	is_int(row.der_len, len, "%s: the journaled DER's length", what);
	ok((row.der && (int)row.der_len == len) ? memcmp(row.der, der,
	    row.der_len) == 0 : 0, "%s: the journaled DER is the certificate",
	    what);
	journal_cert_row_fini(&row);
	OPENSSL_free(der);
}

/* The key behind c, read back from the token. */
static void
check_key(const ca *c, const char *what)
{
	token_key *found = NULL;
	char why[256] = "";

	ok(c->key != NULL, "%s: has its key", what);
	if (c->key == NULL)
		return;
	is_int(token_key_check(fx.tok, c->key, why, sizeof why), 0,
	    "%s: the key's attributes read back as the template (%s)", what,
	    why);
	is_int(token_key_type(c->key), PUBKEY_EC_P256, "%s: an EC P-256 key",
	    what);
	is_str(token_key_label(c->key), c->rec.key_label,
	    "%s: labelled as its record says", what);
	is_int(token_find_key(fx.tok, c->rec.key_label, &found), 0,
	    "%s: found again by its label", what);
	is_int(found ? EVP_PKEY_eq(token_key_public(found), c->cert ?
	    X509_get0_pubkey(c->cert) : c->pub) : -1, 1,
	    "%s: the %s is for that key", what, c->cert ? "certificate" :
	    "CA");
	token_key_free(found);
}

/* What every CA certificate carries: the key usages, the SKI, its
 * serial and validity in the record. */
static void
check_ca_cert(const ca *c, int days, const char *what)
{
	char hex[64] = "";
	int64_t now = (int64_t)time(NULL);

	is_int(X509_get_key_usage(c->cert), KU_KEY_CERT_SIGN | KU_CRL_SIGN |
	    KU_DIGITAL_SIGNATURE, "%s: keyCertSign, cRLSign and"
	    " digitalSignature", what);
	ok(key_id_is(X509_get0_subject_key_id(c->cert), c->ski),
	    "%s: the SKI is its key id", what);
	profile_serial_hex(X509_get0_serialNumber(c->cert), hex, sizeof hex);
	is_str(c->rec.serial, hex, "%s: the record has the serial", what);
	is_int(strlen(hex), 2 * SERIAL_LEN, "%s: a 16-byte serial", what);
	is_int(c->rec.not_before, profile_time_unix(X509_get0_notBefore(
	    c->cert)), "%s: the record has notBefore", what);
	ok(c->rec.not_before <= now - 55, "%s: notBefore backdated", what);
	ok(c->rec.not_before >= now - 65 - 30, "%s: by a minute", what);
	ok(llabs(c->rec.not_after - c->rec.not_before -
	    ((int64_t)days * 86400 + 60)) <= 1, "%s: valid %d days and the"
	    " minute backdated", what, days);
}

/* ---- the hierarchy ---- */

static void
test_root(void)
{
	char label[64], *subj, why[512] = "", *csr = NULL;
	ca_create_req r;
	ca *again = NULL;
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	snprintf(label, sizeof label, "root-%da", tm.tm_year + 1900);
	root = ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL);
	if (root == NULL)
		return;
	is_int(root->rec.state, STATE_ACTIVE, "root: active");
	is_str(root->rec.name, "root", "root: named root");
	is_str(root->rec.key_label, label, "root: key label root-<year>a");
	ok(root->parent == NULL, "root: no parent");
	subj = ca_subject_text(root);
	is_str(subj, "/C=US/O=Automatra/CN=Automatra Root CA",
	    "root: subject from the template");
	free(subj);
	is_int(X509_NAME_cmp(X509_get_issuer_name(root->cert),
	    X509_get_subject_name(root->cert)), 0, "root: self-issued");
	is_int(X509_verify(root->cert, X509_get0_pubkey(root->cert)), 1,
	    "root: self-signed");
	is_int(path_len_of(root->cert), 2, "root: pathLen 2 as configured");
	check_ca_cert(root, 7300, "root");
	ok(!has_ext(root->cert, NID_authority_key_identifier),
	    "root: no AKI (a self-signed root has none)");
	ok(!has_ext(root->cert, NID_crl_distribution_points),
	    "root: no CRL DP");
	ok(!has_ext(root->cert, NID_info_access), "root: no AIA");
	check_key(root, "root");
	check_journaled(root, root->rec.id, "root");
	is_int(pem_count(root->chain_pem), 1, "root: its chain is itself");

	memset(&r, 0, sizeof r);
	r.role = ROLE_ROOT;
	is_int(ca_create(fx.cas, &r, &again, &csr, why, sizeof why), SF_EEXIST,
	    "a second root: SF_EEXIST");
	ok(strstr(why, "already exists") != NULL, "  saying so (%s)", why);
	ok(again == NULL, "  and no CA");
	free(csr);

}

static void
test_intermediate(void)
{
	char *s;

	inter = root ? ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot",
	    NULL) : NULL;
	if (inter == NULL)
		return;
	is_str(inter->rec.name, "widgiot", "intermediate: named for the"
	    " product line");
	ok(inter->parent == root, "intermediate: the root is its parent");
	is_int(inter->rec.parent_id, root->rec.id, "intermediate: parent id");
	is_int(X509_NAME_cmp(X509_get_issuer_name(inter->cert),
	    X509_get_subject_name(root->cert)), 0,
	    "intermediate: issued by the root");
	is_int(X509_verify(inter->cert, X509_get0_pubkey(root->cert)), 1,
	    "intermediate: signed by the root's key");
	is_int(path_len_of(inter->cert), 1, "intermediate: pathLen 1 as"
	    " configured");
	check_ca_cert(inter, 3650, "intermediate");
	ok(key_id_is(X509_get0_authority_key_id(inter->cert), root->ski),
	    "intermediate: the AKI is the root's key id");
	s = crldp_uri(inter->cert);
	is_str(s, "http://crl.example.net/root.crl",
	    "intermediate: the root's CRL");
	free(s);
	s = aia_uri(inter->cert, NID_ad_OCSP);
	is_str(s, "http://ocsp.example.net/root",
	    "intermediate: the root's OCSP responder");
	free(s);
	s = aia_uri(inter->cert, NID_ad_ca_issuers);
	is_str(s, "http://ca.example.net/root.crt",
	    "intermediate: the root's certificate");
	free(s);
	check_key(inter, "intermediate");
	check_journaled(inter, root->rec.id, "intermediate");
	is_int(pem_count(inter->chain_pem), 2, "intermediate: chain of two");
}

/* The product line's name constraints, in the intermediate. */
static void
test_name_constraints(void)
{
	NAME_CONSTRAINTS *nc;
	GENERAL_SUBTREE *st;
	int crit = -1;

	if (inter == NULL)
		return;
	nc = X509_get_ext_d2i(inter->cert, NID_name_constraints, &crit, NULL);
	ok(nc != NULL, "intermediate: name constraints");
	is_int(crit, 1, "  critical");
	is_int(nc ? sk_GENERAL_SUBTREE_num(nc->permittedSubtrees) : -1, 1,
	    "  one permitted subtree");
	st = nc ? sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, 0) : NULL;
	is_int(st ? st->base->type : -1, GEN_DNS, "  a DNS subtree");
	is_str((st && st->base->type == GEN_DNS) ? (const char *)
	    ASN1_STRING_get0_data(st->base->d.dNSName) : NULL,
	    ".widgiot.example.net", "  .widgiot.example.net");
	is_int(nc ? sk_GENERAL_SUBTREE_num(nc->excludedSubtrees) : -1, 1,
	    "  one excluded subtree");
	st = nc ? sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, 0) : NULL;
	is_int(st ? st->base->type : -1, GEN_IPADD, "  an IP subtree");
	NAME_CONSTRAINTS_free(nc);
	ok(!has_ext(root->cert, NID_name_constraints),
	    "root: no name constraints (none configured)");
}

static void
test_issuing(void)
{
	X509 *between[] = { inter ? inter->cert : NULL, NULL };
	char *subj;

	iss = inter ? ca_fixture_create(&fx, ROLE_ISSUING, "widgiot",
	    "us-east-1") : NULL;
	if (iss == NULL)
		return;
	is_str(iss->rec.name, "us-east-1.widgiot", "issuing: named"
	    " <region>.<product line>");
	ok(iss->parent == inter, "issuing: the intermediate is its parent");
	is_int(path_len_of(iss->cert), 0, "issuing: pathLen 0");
	check_ca_cert(iss, 1825, "issuing");
	ok(key_id_is(X509_get0_authority_key_id(iss->cert), inter->ski),
	    "issuing: the AKI is the intermediate's key id");
	subj = ca_subject_text(iss);
	is_str(subj, "/C=US/O=Automatra/OU=WidgIoT us-east-1/"
	    "CN=us-east-1.widgiot.example.net", "issuing: subject from the"
	    " template");
	free(subj);
	check_key(iss, "issuing");
	check_journaled(iss, inter->rec.id, "issuing");
	is_int(pem_count(iss->chain_pem), 3, "issuing: chain of three");
	is_int(chain_error(iss->cert, root->cert, between), X509_V_OK,
	    "issuing: X509_verify_cert accepts root -> intermediate ->"
	    " issuing");
	ok(ca_find_issuing(fx.cas, "widgiot", "us-east-1") == iss,
	    "ca_find_issuing finds it");
	ok(ca_find_issuing(fx.cas, "widgiot", "eu-west-1") == NULL,
	    "and no CA for another region");
	ok(ca_find(fx.cas, "us-east-1.widgiot", NULL) == iss,
	    "ca_find by name finds it");
}

/* Leaves signed through ca_issue: the chain verifies, the name
 * constraints hold, nothing outlives its issuer. */
static void
test_issue_leaves(void)
{
	X509 *between[] = { iss ? iss->cert : NULL, inter ? inter->cert : NULL,
	    NULL };
	X509 *x;

	if (iss == NULL)
		return;
	x = issued_leaf(iss, "dev.widgiot.example.net", NULL, 30);
	ok(x != NULL, "ca_issue: a leaf for dev.widgiot.example.net");
	is_int(chain_error(x, root->cert, between), X509_V_OK,
	    "  its chain verifies");
	ok(x ? key_id_is(X509_get0_authority_key_id(x), iss->ski) : 0,
	    "  the AKI is the issuing CA's key id");
	X509_free(x);
	x = issued_leaf(iss, "evil.example.com", NULL, 30);
	ok(x != NULL, "ca_issue: a leaf for evil.example.com");
	is_int(chain_error(x, root->cert, between),
	    X509_V_ERR_PERMITTED_VIOLATION, "  outside the permitted subtree:"
	    " X509_verify_cert refuses it");
	X509_free(x);
	x = issued_leaf(iss, NULL, "10.1.2.3", 30);
	ok(x != NULL, "ca_issue: a leaf for IP 10.1.2.3");
	is_int(chain_error(x, root->cert, between),
	    X509_V_ERR_EXCLUDED_VIOLATION, "  in the excluded subtree:"
	    " X509_verify_cert refuses it");
	X509_free(x);
	x = issued_leaf(iss, "long.widgiot.example.net", NULL, 30000);
	ok(x != NULL, "ca_issue: a leaf asking for 30,000 days");
	is_int(x ? ASN1_TIME_compare(X509_get0_notAfter(x),
	    X509_get0_notAfter(iss->cert)) : -2, 0,
	    "  ends when its issuer ends");
	X509_free(x);
}

static int
create(int role, const char *pl, const char *rg, int has_path, int path,
    char *why, size_t whylen)
{
	ca_create_req r;
	ca *c = NULL;
	char *csr = NULL;
	int rc;

	memset(&r, 0, sizeof r);
	r.role = role;
	r.product_line = pl;
	r.region = rg;
	r.has_path_len = has_path;
	r.path_len = path;
	why[0] = '\0';
	rc = ca_create(fx.cas, &r, &c, &csr, why, whylen);
	free(csr);
	return rc;
}

static void
test_path_len(void)
{
	char why[512];
	ca *c;

	if (root == NULL)
		return;
	is_int(create(ROLE_INTERMEDIATE, "gadget", NULL, 1, 5, why,
	    sizeof why), SF_EINVAL, "an intermediate asking for pathLen 5"
	    " under the root's 2: SF_EINVAL");
	ok(strstr(why, "pathLen 5 does not fit under CA root (pathLen 2)") !=
	    NULL, "  saying so (%s)", why);
	is_int(create(ROLE_INTERMEDIATE, "gadget", NULL, 1, -1, why,
	    sizeof why), SF_EINVAL, "an unlimited pathLen under the root:"
	    " SF_EINVAL");
	c = ca_fixture_create(&fx, ROLE_INTERMEDIATE, "deep", NULL);
	is_int(c ? path_len_of(c->cert) : -3, 1, "a configured pathLen of 5"
	    " is cut to fit under the root (1)");
	c = ca_fixture_create(&fx, ROLE_INTERMEDIATE, "gadget", NULL);
	is_int(c ? path_len_of(c->cert) : -3, 0, "gadget: pathLen 0 as"
	    " configured");
	is_int(create(ROLE_ISSUING, "gadget", "us-east-1", 0, 0, why,
	    sizeof why), SF_ESTATE, "an issuing CA under pathLen 0:"
	    " SF_ESTATE");
	ok(strstr(why, "CA gadget has pathLen 0") != NULL, "  saying so (%s)",
	    why);
}

/* Each refusal comes before a key is made: the token has no key under
 * the label the CA would have had. */
static void
test_refusals(void)
{
	char why[512], label[80], *csr = NULL, *const bad_nc[] = { "FOO:bar" };
	ca_create_req r;
	token_key *k = NULL;
	ca *c = NULL;
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	memset(&r, 0, sizeof r);
	r.role = ROLE_ISSUING;
	r.product_line = "widgiot";
	r.region = "bad-nc";
	r.permitted = bad_nc;
	r.npermitted = 1;
	is_int(ca_create(fx.cas, &r, &c, &csr, why, sizeof why), SF_EINVAL,
	    "bad name constraints: SF_EINVAL");
	ok(strstr(why, "FOO:bar") != NULL, "  naming the entry (%s)", why);
	snprintf(label, sizeof label, "issuing-widgiot-bad-nc-%da",
	    tm.tm_year + 1900);
	is_int(token_find_key(fx.tok, label, &k), SF_ENOTFOUND,
	    "  and no key was generated for it");
	token_key_free(k);
	r.permitted = NULL;
	r.npermitted = 0;
	r.key_type = 99;
	is_int(ca_create(fx.cas, &r, &c, &csr, why, sizeof why), SF_EINVAL,
	    "an unknown key type: SF_EINVAL");
	ok(strstr(why, "CA key type must be") != NULL, "  saying so (%s)",
	    why);
	r.key_type = 0;
	r.validity_days = 40000;
	is_int(ca_create(fx.cas, &r, &c, &csr, why, sizeof why), SF_EINVAL,
	    "40,000 days: SF_EINVAL");
	ok(strstr(why, "out of range") != NULL, "  saying so (%s)", why);
	is_int(create(ROLE_INTERMEDIATE, "nosuch", NULL, 0, 0, why,
	    sizeof why), SF_ESTATE, "a product line not configured:"
	    " SF_ESTATE");
	ok(strstr(why, "add a [product.nosuch] section") != NULL,
	    "  saying what to add (%s)", why);
	is_int(create(ROLE_ISSUING, "noint", "us-east-1", 0, 0, why,
	    sizeof why), SF_ESTATE, "an issuing CA without an intermediate:"
	    " SF_ESTATE");
	ok(strstr(why, "no active intermediate CA \"noint\"") != NULL,
	    "  saying so (%s)", why);
	is_int(create(0, NULL, NULL, 0, 0, why, sizeof why), SF_EINVAL,
	    "no role: SF_EINVAL");
	is_int(create(ROLE_ROOT, "widgiot", NULL, 0, 0, why, sizeof why),
	    SF_EINVAL, "a root with a product line: SF_EINVAL");
	is_int(create(ROLE_ISSUING, "widgiot", "Bad Region", 0, 0, why,
	    sizeof why), SF_EINVAL, "a region that is not an id: SF_EINVAL");
	ok(c == NULL, "no CA came of any of them");
	ok(csr == NULL, "  and no CSR");
}

/* ---- expiry ---- */

static void
test_expiry(void)
{
	char why[512] = "", *csr = NULL;
	ca_create_req r;
	ca *c = NULL;
	X509 *x;
	int min = fx.conf->ca_min_remaining_days;

	memset(&r, 0, sizeof r);
	r.role = ROLE_ISSUING;
	r.product_line = "widgiot";
	r.region = "short";
	r.validity_days = 1;
	is_int(ca_create(fx.cas, &r, &c, &csr, why, sizeof why), 0,
	    "an issuing CA valid for one day (%s)", why);
	free(csr);
	if (c == NULL)
		return;
	is_int(min, 1, "[limits] ca_min_remaining_days is 1 by default");
	fx.conf->ca_min_remaining_days = 2;
	is_int(ca_usable(fx.cas, c, why, sizeof why), SF_ESTATE,
	    "ca_usable: a day left, at least 2 wanted: SF_ESTATE");
	ok(strstr(why, "short.widgiot") && strstr(why, "ca_min_remaining_days")
	    && strstr(why, "ca rotate short.widgiot"), "  naming the CA, the"
	    " setting and what to do (%s)", why);
	fx.conf->ca_min_remaining_days = 0;
	is_int(ca_usable(fx.cas, c, why, sizeof why), 0,
	    "ca_usable with a minimum of 0 days: 0 (%s)", why);
	x = issued_leaf(c, "short.widgiot.example.net", NULL, 365);
	ok(x != NULL, "a 365-day leaf from it");
	is_int(x ? ASN1_TIME_compare(X509_get0_notAfter(x),
	    X509_get0_notAfter(c->cert)) : -2, 0, "  is cut to its end");
	X509_free(x);
	fx.conf->ca_min_remaining_days = min;

	c->rec.not_after = sf_now() - 1;
	is_int(ca_usable(fx.cas, c, why, sizeof why), SF_ESTATE,
	    "ca_usable: an expired CA is SF_ESTATE");
	ok(strstr(why, "expired") != NULL, "  saying it expired (%s)", why);
	c->rec.not_after = profile_time_unix(X509_get0_notAfter(c->cert));

	x = leaf("back.widgiot.example.net", NULL, 30);
	if (x && iss) {
		char serial[64];
		ca_issue_meta m = { "server", "", (const uint8_t *)
		    "0123456789abcdef0123456789abcdef", "test", "", "" };

		X509_gmtime_adj(X509_getm_notAfter(x), -86400);
		is_int(ca_issue(fx.cas, iss, x, &m, serial), SF_ESTATE,
		    "ca_issue: a certificate ending before it begins is"
		    " SF_ESTATE");
		is_str(serial, "", "  with no serial");
	}
	X509_free(x);
}

/* ---- an external parent ---- */

static EVP_PKEY *ext_key;    /* the outside root's key */
static X509 *ext_root;       /* and its certificate */

/* A certificate for pub signed by the outside root's key, issued by the
 * outside root (by subject itself while there is no outside root yet); a
 * CA certificate with keyCertSign if is_ca, else an end-entity one. */
static X509 *
ext_sign(const X509_NAME *subject, EVP_PKEY *pub, int is_ca)
{
	X509 *x = X509_new();
	uint8_t serial[SERIAL_LEN];
	char hex[2 * SERIAL_LEN + 1];
	int okk;

	okk = x && X509_set_version(x, X509_VERSION_3) &&
	    profile_serial_new(serial, hex) == 0 &&
	    profile_set_serial(x, serial, sizeof serial) == 0 &&
	    X509_set_subject_name(x, subject) &&
	    X509_set_issuer_name(x, ext_root ?
	    X509_get_subject_name(ext_root) : subject) &&
	    profile_set_validity(x, 365) == 0 && X509_set_pubkey(x, pub) &&
	    profile_add0(x, profile_ext_basic(is_ca, -1)) == 0 &&
	    (!is_ca || profile_add0(x, profile_ext_key_usage(
	    KU_KEY_CERT_SIGN | KU_CRL_SIGN)) == 0) &&
	    X509_sign(x, ext_key, EVP_sha256()) > 0;
	if (!okk) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* The outside root: self-signed by ext_key. */
static X509 *
make_ext_root(void)
{
	X509_NAME *n = X509_NAME_new();
	X509 *x = NULL;

	if ((ext_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) != NULL &&
	    n && X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"Offline Root", -1, -1, 0))
		x = ext_sign(n, ext_key, 1);
	X509_NAME_free(n);
	return x;
}

static X509_REQ *
req_of(const char *pem)
{
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return req;
}

static ca *
create_external(char **csr_pem)
{
	char why[512] = "";
	ca_create_req r;
	ca *c = NULL;
	X509_REQ *req;
	X509_NAME *want;

	memset(&r, 0, sizeof r);
	r.role = ROLE_ISSUING;
	r.product_line = "widgiot";
	r.region = "eu-west-1";
	r.external_parent = 1;
	is_int(ca_create(fx.cas, &r, &c, csr_pem, why, sizeof why), 0,
	    "an issuing CA with an external parent (%s)", why);
	if (c == NULL)
		return NULL;
	is_int(c->rec.state, STATE_PENDING, "  pending");
	ok(c->cert == NULL, "  without a certificate");
	ok(c->parent == NULL, "  and no parent here");
	req = req_of(*csr_pem);
	ok(req != NULL, "  its CSR parses");
	is_int(req ? X509_REQ_verify(req, c->pub) : -1, 1,
	    "  and is signed by its key");
	want = profile_subject_parse(c->rec.subject, why, sizeof why);
	is_int((req && want) ? X509_NAME_cmp(X509_REQ_get_subject_name(req),
	    want) : -2, 0, "  for its configured subject");
	X509_NAME_free(want);
	X509_REQ_free(req);
	check_key(c, "external");
	return c;
}

static char *
cert_pem_of(X509 *x)
{
	return x ? profile_cert_pem(x) : NULL;
}

/* What ca_import_cert refuses, before the right certificate comes. */
static void
test_import_refusals(ca *c, X509 *good, const char *good_pem,
    const char *chain_pem)
{
	char why[512] = "", *pem, *two;
	X509 *x;

	pem = cert_pem_of(ext_root);
	is_int(ca_import_cert(fx.cas, c, pem, chain_pem, why, sizeof why),
	    SF_EPERM, "import a certificate for another key: SF_EPERM");
	free(pem);
	x = ext_sign(X509_get_subject_name(good), c->pub, 0);
	pem = cert_pem_of(x);
	is_int(ca_import_cert(fx.cas, c, pem, chain_pem, why, sizeof why),
	    SF_EINVAL, "import an end-entity certificate: SF_EINVAL");
	ok(strstr(why, "not a CA certificate") != NULL, "  saying so (%s)",
	    why);
	free(pem);
	X509_free(x);
	is_int(ca_import_cert(fx.cas, c, good_pem, root ? root->chain_pem : "",
	    why, sizeof why), SF_EINVAL, "import with a chain it does not"
	    " verify against: SF_EINVAL");
	ok(strstr(why, "does not verify") != NULL, "  saying so (%s)", why);
	is_int(ca_import_cert(fx.cas, c, good_pem, "", why, sizeof why),
	    SF_EINVAL, "import without a chain: SF_EINVAL");
	two = sf_aprintf("%s%s", good_pem, good_pem);
	is_int(ca_import_cert(fx.cas, c, two, chain_pem, why, sizeof why),
	    SF_EINVAL, "two certificates at once: SF_EINVAL");
	free(two);
	is_int(c->rec.state, STATE_PENDING, "still pending after all that");
}

/* The next generation of a CA with an outside parent: pending with a CSR,
 * the old one active (and issuing) until the certificate comes back. */
static void
test_external_rotation(ca *old)
{
	ca_rotate_req rr = { old->rec.name, 0, NULL };
	char why[512] = "", *csr = NULL, *pem = NULL, *chain_pem = NULL;
	X509_REQ *req = NULL;
	X509 *x = NULL;
	ca *c = NULL, *prev = NULL;

	is_int(ca_rotate(fx.cas, &rr, &c, &prev, &csr, why, sizeof why), 0,
	    "rotate the CA with the outside parent (%s)", why);
	if (c == NULL)
		return;
	is_int(c->rec.state, STATE_PENDING, "  the new generation is pending");
	ok(prev == old && old->rec.state == STATE_ACTIVE,
	    "  the old one is still active");
	ok(ca_find_issuing(fx.cas, "widgiot", "eu-west-1") == old,
	    "  and still the one that issues");
	req = req_of(csr);
	is_int(req ? X509_REQ_verify(req, c->pub) : -1, 1,
	    "  its CSR is signed by the new key");
	is_int(ca_rotate(fx.cas, &rr, &c, &prev, &csr, why, sizeof why) ==
	    SF_ESTATE && strstr(why, "pending") != NULL, 1,
	    "rotating again while one is pending: SF_ESTATE (%s)", why);
	c = ca_find_state(fx.cas, old->rec.name, STATE_PENDING);
	x = req ? ext_sign(X509_REQ_get_subject_name(req),
	    X509_REQ_get0_pubkey(req), 1) : NULL;
	pem = cert_pem_of(x);
	chain_pem = cert_pem_of(ext_root);
	is_int(c ? ca_import_cert(fx.cas, c, pem, chain_pem, why,
	    sizeof why) : -1, 0, "import its certificate (%s)", why);
	is_int(c ? c->rec.state : -1, STATE_ACTIVE, "  the new generation is"
	    " active");
	is_int(old->rec.state, SECRETFREE__V1__CA_STATE__CA_STATE_RETIRING,
	    "  the old one retiring");
	ok(c && ca_find_issuing(fx.cas, "widgiot", "eu-west-1") == c,
	    "  and the new one issues");
	X509_REQ_free(req);
	X509_free(x);
	free(pem);
	free(chain_pem);
	free(csr);
}

static void
test_external(void)
{
	char why[512] = "", *csr = NULL, *csr2 = NULL, *good_pem, *chain_pem;
	X509 *good, *x, *between[] = { NULL, NULL };
	X509_REQ *req;
	X509_NAME *want;
	ca *c;

	ext_root = make_ext_root();
	ok(ext_root != NULL, "an outside root");
	if (ext_root == NULL || (c = create_external(&csr)) == NULL)
		goto out;
	is_int(ca_export_csr(fx.cas, c, "/CN=Other Name", &csr2, why,
	    sizeof why), 0, "ca_export_csr with another subject (%s)", why);
	req = req_of(csr2);
	is_int(req ? X509_REQ_verify(req, c->pub) : -1, 1,
	    "  signed by the CA's key");
	want = profile_subject_parse("/CN=Other Name", why, sizeof why);
	is_int((req && want) ? X509_NAME_cmp(X509_REQ_get_subject_name(req),
	    want) : -2, 0, "  for the subject asked for");
	X509_NAME_free(want);
	X509_REQ_free(req);
	req = req_of(csr);
	good = req ? ext_sign(X509_REQ_get_subject_name(req),
	    X509_REQ_get0_pubkey(req), 1) : NULL;
	X509_REQ_free(req);
	good_pem = cert_pem_of(good);
	chain_pem = cert_pem_of(ext_root);
	ok(good_pem != NULL, "the outside root signs the CSR");
	if (good_pem == NULL || chain_pem == NULL)
		goto out2;
	test_import_refusals(c, good, good_pem, chain_pem);
	is_int(ca_import_cert(fx.cas, c, good_pem, chain_pem, why,
	    sizeof why), 0, "import the certificate (%s)", why);
	is_int(c->rec.state, STATE_ACTIVE, "  active now");
	is_int(c->cert ? X509_cmp(c->cert, good) : -2, 0,
	    "  with that certificate");
	is_int(pem_count(c->chain_pem), 2, "  its chain runs to the outside"
	    " root");
	is_int(ca_import_cert(fx.cas, c, good_pem, chain_pem, why,
	    sizeof why), SF_ESTATE, "import again: SF_ESTATE");
	x = issued_leaf(c, "dev.widgiot.example.net", NULL, 30);
	between[0] = c->cert;
	is_int(chain_error(x, ext_root, between), X509_V_OK,
	    "a leaf it issues verifies up to the outside root");
	X509_free(x);
	test_external_rotation(c);
out2:
	X509_free(good);
	free(good_pem);
	free(chain_pem);
out:
	free(csr);
	free(csr2);
}

/* A store opened again on the same journal and token finds the same CAs,
 * their parents, keys and chains. */
static void
test_reopen(void)
{
	char why[512] = "", *chain = iss ? strdup(iss->chain_pem) : NULL;
	ca **all = NULL, *c;
	size_t before, after;

	before = ca_list(fx.cas, &all);
	free(all);
	ca_store_close(fx.cas);
	root = inter = iss = NULL;
	is_int(ca_store_open(fx.conf, fx.tok, fx.jn, &fx.cas, why, sizeof why),
	    0, "reopen the store (%s)", why);
	if (fx.cas == NULL)
		goto out;
	after = ca_list(fx.cas, &all);
	free(all);
	is_int(after, before, "every CA is back");
	c = ca_find(fx.cas, "us-east-1.widgiot", NULL);
	ok(c != NULL, "the issuing CA");
	is_str((c && c->parent) ? c->parent->rec.name : NULL, "widgiot",
	    "  with its parent");

	ok(c ? c->key != NULL : 0, "  and its key");
	is_str(c ? c->chain_pem : NULL, chain, "  and the same chain");
	c = ca_find(fx.cas, "eu-west-1.widgiot", NULL);
	is_int(c ? c->rec.state : -1, STATE_ACTIVE, "the imported CA is"
	    " active");
	is_int(c ? c->rec.external_parent : -1, 1, "  the generation a"
	    " rotation made for the outside parent");
	c = ca_find_state(fx.cas, "eu-west-1.widgiot",
	    SECRETFREE__V1__CA_STATE__CA_STATE_RETIRING);
	ok(c != NULL && c->rec.retired_at > 0, "the one it replaced is"
	    " retiring, since it was");
	is_int(c ? pem_count(c->chain_pem) : -1, 2, "  with the outside"
	    " chain");
out:
	free(chain);
}

int
main(void)
{
	log_init("test_ca", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "sf-ca", EXTRA) != 0)
		return tap_done();
	test_root();
	test_intermediate();
	test_name_constraints();
	test_issuing();
	test_issue_leaves();
	test_path_len();
	test_refusals();
	test_expiry();
	test_external();
	test_reopen();
	X509_free(ext_root);
	EVP_PKEY_free(ext_key);
	ca_fixture_close(&fx);
	return tap_done();
}
