/*
 * lint.c - every certificate checked against our own profile before the
 * token signs it (lint.h lists the rules). The linter reads the
 * certificate as it will be encoded: extensions are decoded from the list
 * x carries (X509_get_ext_d2i), never from OpenSSL's cache of them, which
 * a certificate still being built may not have refreshed. It knows the
 * profiles independently of the code that builds certificates
 * (profile.c, issue.c, ca_create.c, ocsp_responder.c), so a change there
 * that breaks a profile is refused here rather than signed.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "journal.h"
#include "lint.h"
#include "profile.h"

#define P_DEV (1u << LINT_DEVICE)
#define P_SRV (1u << LINT_SERVER)
#define P_CA (1u << LINT_CA)
#define P_OCSP (1u << LINT_OCSP)
#define P_LEAF (P_DEV | P_SRV | P_OCSP)
#define P_ALL (P_LEAF | P_CA)

/* Which extensions each profile has, must have, and their criticality. */
static const struct {
	int nid;
	int critical;
	unsigned allowed, required;
} ext_rules[] = {
	{ NID_basic_constraints, 1, P_ALL, P_ALL },
	{ NID_key_usage, 1, P_ALL, P_ALL },
	{ NID_ext_key_usage, 0, P_LEAF, P_LEAF },
	{ NID_subject_key_identifier, 0, P_ALL, P_ALL },
	/* Required but in a self-signed root (checked below). */
	{ NID_authority_key_identifier, 0, P_ALL, P_ALL },
	{ NID_crl_distribution_points, 0, P_ALL, 0 },
	{ NID_info_access, 0, P_ALL, 0 },
	{ NID_subject_alt_name, 0, P_SRV, P_SRV },
	{ NID_name_constraints, 1, P_CA, 0 },
	{ NID_id_pkix_OCSP_noCheck, 0, P_OCSP, P_OCSP },
};
#define NRULES (sizeof ext_rules / sizeof ext_rules[0])

/* What a check hands back: the rule's name and a sentence. */
typedef struct {
	const char *rule;
	char *why;
	size_t whylen;
} verdict;

/* Record the broken rule and its sentence; SF_EINTERNAL. */
#define refuse(v, r, ...) \
	(sf_why((v)->why, (v)->whylen, __VA_ARGS__), (v)->rule = (r), \
	SF_EINTERNAL)

int
lint_profile(const char *p)
{
	if (p == NULL)
		return LINT_NONE;
	/* A claim certificate (issue.h) has a device certificate's shape. */
	if ((strncmp(p, "device:", 7) == 0 && p[7] != '\0') ||
	    strcmp(p, "claim") == 0)
		return LINT_DEVICE;
	if (strcmp(p, "server") == 0)
		return LINT_SERVER;
	if (strcmp(p, "ca") == 0)
		return LINT_CA;
	if (strcmp(p, JOURNAL_PROFILE_OCSP) == 0)
		return LINT_OCSP;
	return LINT_NONE;
}

static int
check_serial(const X509 *x, verdict *v)
{
	const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
	const unsigned char *d = ASN1_STRING_get0_data(sn);
	int len = ASN1_STRING_length(sn), der, zero = 1;

	for (int i = 0; i < len; i++)
		zero &= d[i] == 0;
	if (ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER || zero)
		return refuse(v, "serial", "the serial is %s",
		    zero ? "zero" : "negative");
	/* The INTEGER's contents: tag and one length octet come off. */
	if ((der = i2d_ASN1_INTEGER(sn, NULL)) - 2 > 20)
		return refuse(v, "serial", "the serial takes %d octets; RFC"
		    " 5280 allows at most 20", der - 2);
	return 0;
}

static int
check_sigalg(const X509 *x, const X509 *issuer, int sig_nid, verdict *v)
{
	const X509_ALGOR *tbs = X509_get0_tbs_sigalg(x), *outer;
	const ASN1_BIT_STRING *sig;
	const ASN1_OBJECT *obj;
	const void *pval;
	int ptype, pk_nid = NID_undef, want;

	X509_get0_signature(&sig, &outer, x);
	X509_ALGOR_get0(&obj, &ptype, &pval, tbs);
	if (OBJ_obj2nid(obj) != sig_nid)
		return refuse(v, "signature-algorithm", "the TBS names %s; the"
		    " issuer's key signs with %s", OBJ_nid2sn(OBJ_obj2nid(obj)),
		    OBJ_nid2sn(sig_nid));
	if (X509_ALGOR_cmp(tbs, outer) != 0)
		return refuse(v, "signature-algorithm", "the algorithm inside"
		    " the TBS differs from the one outside it");
	want = sig_nid == NID_sha256WithRSAEncryption ? V_ASN1_NULL :
	    V_ASN1_UNDEF;
	if (ptype != want)
		return refuse(v, "signature-algorithm", "%s with %s"
		    " parameters", OBJ_nid2sn(sig_nid), ptype == V_ASN1_UNDEF ?
		    "absent" : "unexpected");
	X509_PUBKEY_get0_param((ASN1_OBJECT **)&obj, NULL, NULL, NULL,
	    X509_get_X509_PUBKEY(issuer));
	if (!OBJ_find_sigid_algs(sig_nid, NULL, &pk_nid) ||
	    OBJ_obj2nid(obj) != pk_nid)
		return refuse(v, "signature-algorithm", "%s does not fit the"
		    " issuer's %s key", OBJ_nid2sn(sig_nid),
		    OBJ_nid2sn(OBJ_obj2nid(obj)));
	return 0;
}

static int
check_validity(const X509 *x, const X509 *issuer, verdict *v)
{
	const ASN1_TIME *nb = X509_get0_notBefore(x);
	const ASN1_TIME *na = X509_get0_notAfter(x);

	if (ASN1_TIME_compare(nb, na) >= 0)
		return refuse(v, "validity", "notBefore is not before"
		    " notAfter");
	if (issuer == x)
		return 0;
	if (ASN1_TIME_compare(nb, X509_get0_notBefore(issuer)) < 0)
		return refuse(v, "validity-in-issuer", "notBefore is before"
		    " the issuer's");
	if (ASN1_TIME_compare(na, X509_get0_notAfter(issuer)) > 0)
		return refuse(v, "validity-in-issuer", "notAfter is after the"
		    " issuer's");
	return 0;
}

/* The certificate's key algorithm (NID_rsaEncryption, ...), or refused. */
static int
check_key(const X509 *x, int *alg, verdict *v)
{
	const ASN1_OBJECT *obj;
	const void *pval;
	int ptype, curve;

	X509_PUBKEY_get0_param((ASN1_OBJECT **)&obj, NULL, NULL,
	    (X509_ALGOR **)NULL, X509_get_X509_PUBKEY(x));
	*alg = OBJ_obj2nid(obj);
	if (*alg == NID_rsaEncryption || *alg == NID_ED25519)
		return 0;
	if (*alg == NID_X9_62_id_ecPublicKey) {
		X509_ALGOR *a = NULL;

		X509_PUBKEY_get0_param(NULL, NULL, NULL, &a,
		    X509_get_X509_PUBKEY(x));
		X509_ALGOR_get0(&obj, &ptype, &pval, a);
		curve = ptype == V_ASN1_OBJECT ? OBJ_obj2nid(pval) : NID_undef;
		if (curve == NID_X9_62_prime256v1 || curve == NID_secp384r1)
			return 0;
		return refuse(v, "public-key", "an EC key on a curve other"
		    " than P-256 or P-384");
	}
	return refuse(v, "public-key", "key type %s: the profiles take EC"
	    " P-256/P-384, RSA and Ed25519", OBJ_nid2sn(*alg));
}

/* Duplicates, extensions outside the profile, criticality, and what is
 * missing. */
static int
check_ext_set(const X509 *x, int profile, int self, verdict *v)
{
	int n = X509_get_ext_count(x), nid, seen[NRULES] = { 0 };
	unsigned bit = 1u << profile;
	size_t r;

	for (int i = 0; i < n; i++) {
		X509_EXTENSION *e = X509_get_ext(x, i);

		nid = OBJ_obj2nid(X509_EXTENSION_get_object(e));
		for (int j = 0; j < i; j++)
			if (OBJ_cmp(X509_EXTENSION_get_object(e),
			    X509_EXTENSION_get_object(X509_get_ext(x, j))) == 0)
				return refuse(v, "duplicate-extension", "%s"
				    " appears twice", OBJ_nid2sn(nid));
		for (r = 0; r < NRULES && ext_rules[r].nid != nid; r++)
			;
		if (r == NRULES || (ext_rules[r].allowed & bit) == 0)
			return refuse(v, "extension-not-in-profile", "%s is"
			    " not in the profile", nid == NID_undef ?
			    "an unknown extension" : OBJ_nid2sn(nid));
		if (!X509_EXTENSION_get_critical(e) != !ext_rules[r].critical)
			return refuse(v, "criticality", "%s is %scritical",
			    OBJ_nid2sn(nid), ext_rules[r].critical ? "not " :
			    "");
		seen[r] = 1;
	}
	for (r = 0; r < NRULES; r++) {
		if ((ext_rules[r].required & bit) == 0 || seen[r])
			continue;
		if (self && ext_rules[r].nid == NID_authority_key_identifier)
			continue;
		return refuse(v, "extension-missing", "%s is missing",
		    OBJ_nid2sn(ext_rules[r].nid));
	}
	return 0;
}

static int
check_basic(const X509 *x, int profile, const X509 *issuer, verdict *v)
{
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints,
	    NULL, NULL), *ibc = NULL;
	long plen, ilen;
	int rc = 0;

	if (bc == NULL)
		return refuse(v, "basic-constraints", "does not decode");
	plen = bc->pathlen ? ASN1_INTEGER_get(bc->pathlen) : -1;
	if (profile != LINT_CA) {
		if (bc->ca || bc->pathlen)
			rc = refuse(v, "basic-constraints", "a leaf must have"
			    " cA FALSE and no pathLen");
		goto out;
	}
	if (!bc->ca) {
		rc = refuse(v, "basic-constraints", "a CA certificate without"
		    " cA TRUE");
		goto out;
	}
	if (bc->pathlen && plen < 0) {
		rc = refuse(v, "basic-constraints", "a negative pathLen");
		goto out;
	}
	if (issuer == x || (ibc = X509_get_ext_d2i(issuer,
	    NID_basic_constraints, NULL, NULL)) == NULL || !ibc->pathlen)
		goto out;
	ilen = ASN1_INTEGER_get(ibc->pathlen);
	if (plen < 0 || plen >= ilen)
		rc = refuse(v, "basic-constraints", "pathLen %s does not fit"
		    " under the issuer's %ld", plen < 0 ? "unlimited" :
		    "too large", ilen);
out:
	BASIC_CONSTRAINTS_free(bc);
	BASIC_CONSTRAINTS_free(ibc);
	return rc;
}

/* KU_* bits as RFC 5280 names them, into buf. */
static const char *
ku_text(unsigned bits, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ KU_DIGITAL_SIGNATURE, "digitalSignature" },
		{ KU_NON_REPUDIATION, "nonRepudiation" },
		{ KU_KEY_ENCIPHERMENT, "keyEncipherment" },
		{ KU_DATA_ENCIPHERMENT, "dataEncipherment" },
		{ KU_KEY_AGREEMENT, "keyAgreement" },
		{ KU_KEY_CERT_SIGN, "keyCertSign" },
		{ KU_CRL_SIGN, "cRLSign" },
		{ KU_ENCIPHER_ONLY, "encipherOnly" },
		{ KU_DECIPHER_ONLY, "decipherOnly" },
	};
	size_t k = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if ((bits & names[i].bit) && k < len)
			k += (size_t)snprintf(buf + k, len - k, "%s%s",
			    k ? "," : "", names[i].name);
	if (k == 0)
		snprintf(buf, len, "none");
	return buf;
}

/* The KU bits as OpenSSL's KU_* constants name them. */
static int
check_key_usage(const X509 *x, int profile, int key_alg, verdict *v)
{
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, NULL, NULL);
	char got[128], wanted[128];
	unsigned bits = 0, want;
	int len;

	if (ku == NULL)
		return refuse(v, "key-usage", "does not decode");
	len = ASN1_STRING_length(ku);
	if (len > 0)
		bits = ASN1_STRING_get0_data(ku)[0];
	if (len > 1)
		bits |= (unsigned)ASN1_STRING_get0_data(ku)[1] << 8;
	ASN1_BIT_STRING_free(ku);
	switch (profile) {
	case LINT_CA:
		want = KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE;
		break;
	case LINT_OCSP:
		want = KU_DIGITAL_SIGNATURE;
		break;
	default:
		/* Only an RSA key can encipher a key. */
		want = KU_DIGITAL_SIGNATURE | (key_alg == NID_rsaEncryption ?
		    KU_KEY_ENCIPHERMENT : 0);
		break;
	}
	if (len > 2 || bits != want)
		return refuse(v, "key-usage", "%s for a %s key; the profile"
		    " says %s", ku_text(bits, got, sizeof got),
		    OBJ_nid2sn(key_alg), ku_text(want, wanted, sizeof wanted));
	return 0;
}

static int
check_eku(const X509 *x, int profile, verdict *v)
{
	EXTENDED_KEY_USAGE *eku;
	int want, n, nid;

	if (profile == LINT_CA)
		return 0;   /* check_ext_set refuses one */
	want = profile == LINT_DEVICE ? NID_client_auth :
	    profile == LINT_SERVER ? NID_server_auth : NID_OCSP_sign;
	if ((eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL)) ==
	    NULL)
		return refuse(v, "extended-key-usage", "does not decode");
	n = sk_ASN1_OBJECT_num(eku);
	nid = n == 1 ? OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)) : NID_undef;
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	if (n != 1 || nid != want)
		return refuse(v, "extended-key-usage", "the profile says %s"
		    " alone", OBJ_nid2sn(want));
	return 0;
}

/* The key identifier of a certificate's key: its SKI, or computed. */
static int
key_id(const X509 *x, int use_ext, uint8_t id[20])
{
	ASN1_OCTET_STRING *ski = use_ext ? X509_get_ext_d2i(x,
	    NID_subject_key_identifier, NULL, NULL) : NULL;
	const unsigned char *bits;
	int len;

	if (ski) {
		len = ASN1_STRING_length(ski);
		if (len == 20)
			memcpy(id, ASN1_STRING_get0_data(ski), 20);
		ASN1_OCTET_STRING_free(ski);
		return len == 20 ? 0 : -1;
	}
	if (!X509_PUBKEY_get0_param(NULL, &bits, &len, NULL,
	    X509_get_X509_PUBKEY(x)))
		return -1;
	profile_key_id(bits, (size_t)len, id);
	return 0;
}

static int
check_key_ids(const X509 *x, const X509 *issuer, verdict *v)
{
	ASN1_OCTET_STRING *ski = X509_get_ext_d2i(x,
	    NID_subject_key_identifier, NULL, NULL);
	AUTHORITY_KEYID *aki = X509_get_ext_d2i(x,
	    NID_authority_key_identifier, NULL, NULL);
	uint8_t mine[20], theirs[20];
	int rc = 0;

	if (key_id(x, 0, mine) != 0 || ski == NULL ||
	    ASN1_STRING_length(ski) != 20 ||
	    memcmp(ASN1_STRING_get0_data(ski), mine, 20) != 0) {
		rc = refuse(v, "subject-key-id", "the SKI is not the SHA-1 of"
		    " the certificate's key");
		goto out;
	}
	if (aki == NULL && issuer == x)
		goto out;   /* a self-signed root may leave it out */
	if (key_id(issuer, issuer != x, theirs) != 0 || aki == NULL ||
	    aki->keyid == NULL || aki->issuer || aki->serial ||
	    ASN1_STRING_length(aki->keyid) != 20 ||
	    memcmp(ASN1_STRING_get0_data(aki->keyid), theirs, 20) != 0)
		rc = refuse(v, "authority-key-id", "the AKI is not a"
		    " keyIdentifier equal to the issuer's SKI");
out:
	ASN1_OCTET_STRING_free(ski);
	AUTHORITY_KEYID_free(aki);
	return rc;
}

int
lint_cert(const X509 *x, int profile, const X509 *issuer, int sig_nid,
    const char **rule, char *why, size_t whylen)
{
	verdict v = { NULL, why, whylen };
	int self = issuer == x, key_alg = NID_undef, rc;

	if (why && whylen)
		why[0] = '\0';
	if (profile <= LINT_NONE || profile > LINT_OCSP)
		rc = refuse(&v, "profile", "no profile %d", profile);
	else if (X509_get_version(x) != X509_VERSION_3)
		rc = refuse(&v, "version", "version %ld, not v3",
		    X509_get_version(x) + 1);
	else if ((rc = check_serial(x, &v)) == 0 &&
	    (rc = check_sigalg(x, issuer, sig_nid, &v)) == 0) {
		if (X509_NAME_cmp(X509_get_issuer_name(x),
		    X509_get_subject_name(issuer)) != 0)
			rc = refuse(&v, "issuer-name", "the issuer name is not"
			    " the issuer's subject");
		else if (X509_NAME_entry_count(X509_get_subject_name(x)) == 0)
			rc = refuse(&v, "subject", "the subject is empty");
		else if ((rc = check_validity(x, issuer, &v)) == 0 &&
		    (rc = check_key(x, &key_alg, &v)) == 0 &&
		    (rc = check_ext_set(x, profile, self, &v)) == 0 &&
		    (rc = check_basic(x, profile, issuer, &v)) == 0 &&
		    (rc = check_key_usage(x, profile, key_alg, &v)) == 0 &&
		    (rc = check_eku(x, profile, &v)) == 0)
			rc = check_key_ids(x, issuer, &v);
	}
	ERR_clear_error();
	*rule = v.rule;
	return rc;
}
