/*
 * profile.c - building blocks of the certificates the signer makes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "err.h"
#include "profile.h"
#include "util.h"

static const char *const SUBJECT_ATTRS[] = { "C", "ST", "L", "O", "OU",
    "CN", "DC", "emailAddress", "serialNumber", "UID", NULL };

static int
add_rdn(X509_NAME *n, char *item, char *why, size_t whylen)
{
	char *eq = strchr(item, '='), *k, *v, *end;
	int ok = 0;

	if (eq == NULL) {
		sf_why(why, whylen, "subject: \"%s\" is not KEY=value", item);
		return 0;
	}
	*eq = '\0';
	k = item;
	v = eq + 1;
	while (isspace((unsigned char)*k))
		k++;
	for (end = eq; end > k && isspace((unsigned char)end[-1]); end--)
		end[-1] = '\0';
	while (isspace((unsigned char)*v))
		v++;
	for (end = v + strlen(v); end > v && isspace((unsigned char)end[-1]);
	    end--)
		end[-1] = '\0';
	for (size_t i = 0; SUBJECT_ATTRS[i]; i++)
		ok |= strcmp(k, SUBJECT_ATTRS[i]) == 0;
	if (!ok) {
		sf_why(why, whylen, "subject: unknown attribute \"%s\"", k);
		return 0;
	}
	if (*v == '\0') {
		sf_why(why, whylen, "subject: %s has an empty value", k);
		return 0;
	}
	if (strcmp(k, "C") == 0 && (strlen(v) != 2 ||
	    !isalpha((unsigned char)v[0]) || !isalpha((unsigned char)v[1]))) {
		sf_why(why, whylen, "subject: C must be a two-letter country"
		    " code, not \"%s\"", v);
		return 0;
	}
	if (!X509_NAME_add_entry_by_txt(n, k, MBSTRING_UTF8,
	    (const unsigned char *)v, -1, -1, 0)) {
		sf_why(why, whylen, "subject: bad value for %s", k);
		return 0;
	}
	return 1;
}

X509_NAME *
profile_subject_parse(const char *s, char *why, size_t whylen)
{
	X509_NAME *n = X509_NAME_new();
	char *buf = NULL, *item, *w;
	char sep;
	const char *p;
	int ok = 0;

	if (n == NULL || s == NULL)
		goto out;
	while (isspace((unsigned char)*s))
		s++;
	sep = *s == '/' ? '/' : ',';
	if (sep == '/')
		s++;
	if ((buf = malloc(strlen(s) + 1)) == NULL)
		goto out;
	/* Split on unescaped separators, dropping the escapes. */
	item = w = buf;
	for (p = s;; p++) {
		if (*p == '\\' && p[1] != '\0') {
			*w++ = *++p;
			continue;
		}
		if (*p == sep || *p == '\0') {
			*w = '\0';
			if (!add_rdn(n, item, why, whylen))
				goto out;
			if (*p == '\0')
				break;
			item = w = w + 1;
			continue;
		}
		*w++ = *p;
	}
	if (X509_NAME_entry_count(n) == 0) {
		sf_why(why, whylen, "subject is empty");
		goto out;
	}
	ok = 1;
out:
	free(buf);
	if (!ok) {
		if (why && whylen && why[0] == '\0')
			sf_why(why, whylen, "subject cannot be parsed");
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

/*
 * The inverse of profile_subject_parse: "/KEY=value" per entry with UTF-8
 * values, '/' and backslash escaped with a backslash. (X509_NAME_oneline
 * writes every byte outside ASCII as \xHH, which neither reads back nor
 * shows the name.) Control characters, which no configuration holds, are
 * written as \xHH.
 */
char *
profile_subject_fmt(const X509_NAME *n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	int prev_set = -1, ok = b != NULL;
	long len;

	for (int i = 0; ok && i < X509_NAME_entry_count(n); i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(n, i);
		int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
		unsigned char *u = NULL;
		char key[80];
		int ulen;

		if (nid != NID_undef)
			sf_strlcpy(key, OBJ_nid2sn(nid), sizeof key);
		else if (OBJ_obj2txt(key, sizeof key,
		    X509_NAME_ENTRY_get_object(e), 1) <= 0)
			ok = 0;
		if (!ok || (ulen = ASN1_STRING_to_UTF8(&u,
		    X509_NAME_ENTRY_get_data(e))) < 0) {
			ok = 0;
			break;
		}
		/* Entries of one multi-valued RDN are joined with '+'. */
		ok = BIO_printf(b, "%c%s=", X509_NAME_ENTRY_set(e) == prev_set ?
		    '+' : '/', key) > 0;
		prev_set = X509_NAME_ENTRY_set(e);
		for (int k = 0; ok && k < ulen; k++) {
			if (u[k] == '/' || u[k] == '\\')
				ok = BIO_printf(b, "\\%c", u[k]) > 0;
			else if (u[k] < 0x20 || u[k] == 0x7f)
				ok = BIO_printf(b, "\\x%02X", u[k]) > 0;
			else
				ok = BIO_write(b, &u[k], 1) == 1;
		}
		OPENSSL_free(u);
	}
	if (ok && (len = BIO_get_mem_data(b, &data)) >= 0 &&
	    (out = malloc((size_t)len + 1)) != NULL) {
		memcpy(out, data, (size_t)len);
		out[len] = '\0';
	}
	BIO_free(b);
	return out;
}

int
profile_serial_new(uint8_t serial[SERIAL_LEN], char hex[2 * SERIAL_LEN + 1])
{
	uint32_t t = (uint32_t)sf_now();

	/* 0x01, then the second (big-endian, wraps in 2106), then the
	 * CSPRNG: serials sort by issuance time, so that the journal's
	 * serial indexes grow at their end instead of dirtying a random
	 * page of a multi-gigabyte index per certificate. */
	serial[0] = SERIAL_MARK;
	serial[1] = (uint8_t)(t >> 24);
	serial[2] = (uint8_t)(t >> 16);
	serial[3] = (uint8_t)(t >> 8);
	serial[4] = (uint8_t)t;
	if (RAND_bytes(serial + SERIAL_RANDOM_AT, SERIAL_LEN -
	    SERIAL_RANDOM_AT) != 1)
		return SF_ECRYPTO;
	sf_hex_upper(serial, SERIAL_LEN, hex);
	return 0;
}

int
profile_set_serial(X509 *x, const uint8_t *serial, size_t len)
{
	ASN1_INTEGER *ai = X509_get_serialNumber(x);

	return ASN1_STRING_set(ai, serial, (int)len) ? 0 : SF_ECRYPTO;
}

int
profile_serial_hex(const ASN1_INTEGER *ai, char *out, size_t outlen)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
	char *h;
	int rc = SF_ECRYPTO;

	if (bn == NULL)
		return rc;
	if ((h = BN_bn2hex(bn)) != NULL) {
		/* OpenSSL prints an even number of digits, as here. */
		if (strlen(h) % 2 && strlen(h) + 1 < outlen) {
			out[0] = '0';
			sf_strlcpy(out + 1, h, outlen - 1);
		} else
			sf_strlcpy(out, h, outlen);
		OPENSSL_free(h);
		rc = 0;
	}
	BN_free(bn);
	return rc;
}

/* Backdate notBefore a little: device clocks are not all right. */
#define BACKDATE 60

int
profile_set_validity(X509 *x, int days)
{
	time_t now = time(NULL);

	if (!X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now))
		return SF_ECRYPTO;
	return 0;
}

int64_t
profile_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static int
set_bits(X509 *x, const pubkey_info *pk)
{
	X509_PUBKEY *xpk = X509_get_X509_PUBKEY(x);
	ASN1_OBJECT *alg = OBJ_nid2obj(pk->alg_nid);
	unsigned char *bits;
	void *pval = NULL;
	int ptype;

	if (xpk == NULL || alg == NULL)
		return SF_ECRYPTO;
	switch (pk->alg_nid) {
	case NID_X9_62_id_ecPublicKey:
		ptype = V_ASN1_OBJECT;
		pval = OBJ_nid2obj(pk->curve_nid);
		break;
	case NID_rsaEncryption:
		ptype = V_ASN1_NULL;
		break;
	default:
		ptype = V_ASN1_UNDEF;
		break;
	}
	if ((bits = OPENSSL_malloc(pk->key_bits_len)) == NULL)
		return SF_ENOMEM;
	memcpy(bits, pk->key_bits, pk->key_bits_len);
	if (!X509_PUBKEY_set0_param(xpk, alg, ptype, pval, bits,
	    (int)pk->key_bits_len)) {
		OPENSSL_free(bits);
		return SF_ECRYPTO;
	}
	return 0;
}

int
profile_set_pubkey(X509 *x, const pubkey_info *pk)
{
	const unsigned char *p = pk->spki;
	EVP_PKEY *evp = d2i_PUBKEY(NULL, &p, (long)pk->spki_len);
	int ok = evp != NULL && X509_set_pubkey(x, evp);

	/*
	 * X509_set_pubkey sets the decoded key (X509_get0_pubkey answers it);
	 * the canonical bytes then replace OpenSSL's own encoding, which
	 * keeps a compressed point compressed.
	 */
	EVP_PKEY_free(evp);
	if (!ok)
		return SF_ECRYPTO;
	return set_bits(x, pk);
}

int
profile_set_pubkey_fast(X509 *x, const pubkey_info *pk)
{
	const ASN1_BIT_STRING *old = X509_get0_pubkey_bitstr(x);

	/* A certificate that already holds a key would keep its stale
	 * decoded key: that takes the exact path. */
	if (old && ASN1_STRING_length(old) > 0)
		return profile_set_pubkey(x, pk);
	return set_bits(x, pk);
}

void
profile_key_id(const uint8_t *key_bits, size_t len, uint8_t id[20])
{
	SHA1(key_bits, len, id);
}

X509_EXTENSION *
profile_ext_basic(int ca, int path_len)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	X509_EXTENSION *e = NULL;

	if (bc == NULL)
		return NULL;
	bc->ca = ca ? 0xff : 0;
	if (ca && path_len >= 0) {
		bc->pathlen = ASN1_INTEGER_new();
		if (bc->pathlen == NULL ||
		    !ASN1_INTEGER_set(bc->pathlen, path_len))
			goto out;
	}
	e = X509V3_EXT_i2d(NID_basic_constraints, 1, bc);
out:
	BASIC_CONSTRAINTS_free(bc);
	return e;
}

X509_EXTENSION *
profile_ext_key_usage(unsigned bits)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	X509_EXTENSION *e = NULL;

	if (ku == NULL)
		return NULL;
	/* KU_* values are the bits of the first two octets, MSB first. */
	for (int i = 0; i < 9; i++) {
		static const unsigned map[9] = { KU_DIGITAL_SIGNATURE,
		    KU_NON_REPUDIATION, KU_KEY_ENCIPHERMENT,
		    KU_DATA_ENCIPHERMENT, KU_KEY_AGREEMENT, KU_KEY_CERT_SIGN,
		    KU_CRL_SIGN, KU_ENCIPHER_ONLY, KU_DECIPHER_ONLY };

		if ((bits & map[i]) && !ASN1_BIT_STRING_set_bit(ku, i, 1))
			goto out;
	}
	e = X509V3_EXT_i2d(NID_key_usage, 1, ku);
out:
	ASN1_BIT_STRING_free(ku);
	return e;
}

X509_EXTENSION *
profile_ext_eku(const int *nids, size_t n)
{
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	X509_EXTENSION *e = NULL;

	if (eku == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(nids[i])))
			goto out;
	e = X509V3_EXT_i2d(NID_ext_key_usage, 0, eku);
out:
	/* OBJ_nid2obj objects are static: free only the stack. */
	sk_ASN1_OBJECT_free(eku);
	return e;
}

static X509_EXTENSION *
octets_ext(int nid, const uint8_t *v, size_t len)
{
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e = NULL;

	if (os && ASN1_OCTET_STRING_set(os, v, (int)len))
		e = X509V3_EXT_i2d(nid, 0, os);
	ASN1_OCTET_STRING_free(os);
	return e;
}

X509_EXTENSION *
profile_ext_ski(const uint8_t id[20])
{
	return octets_ext(NID_subject_key_identifier, id, 20);
}

X509_EXTENSION *
profile_ext_aki(const uint8_t id[20])
{
	AUTHORITY_KEYID *aki = AUTHORITY_KEYID_new();
	X509_EXTENSION *e = NULL;

	if (aki == NULL)
		return NULL;
	if ((aki->keyid = ASN1_OCTET_STRING_new()) != NULL &&
	    ASN1_OCTET_STRING_set(aki->keyid, id, 20))
		e = X509V3_EXT_i2d(NID_authority_key_identifier, 0, aki);
	AUTHORITY_KEYID_free(aki);
	return e;
}

static GENERAL_NAME *
uri_name(const char *url)
{
	return a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_URI, url, 0);
}

/* A DistributionPointName: fullName, one URI. */
static DIST_POINT_NAME *
dp_name(const char *url)
{
	DIST_POINT_NAME *n = DIST_POINT_NAME_new();
	GENERAL_NAME *gn = uri_name(url);

	if (n == NULL || gn == NULL ||
	    (n->name.fullname = sk_GENERAL_NAME_new_null()) == NULL ||
	    !sk_GENERAL_NAME_push(n->name.fullname, gn)) {
		GENERAL_NAME_free(gn);
		DIST_POINT_NAME_free(n);
		return NULL;
	}
	n->type = 0;  /* fullName */
	return n;
}

X509_EXTENSION *
profile_ext_crldp(const char *url)
{
	CRL_DIST_POINTS *dps = sk_DIST_POINT_new_null();
	DIST_POINT *dp = NULL;
	X509_EXTENSION *e = NULL;

	if (dps == NULL || (dp = DIST_POINT_new()) == NULL ||
	    (dp->distpoint = dp_name(url)) == NULL)
		goto out;
	if (!sk_DIST_POINT_push(dps, dp))
		goto out;
	dp = NULL;
	e = X509V3_EXT_i2d(NID_crl_distribution_points, 0, dps);
out:
	DIST_POINT_free(dp);
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return e;
}

X509_EXTENSION *
profile_ext_idp(const char *url)
{
	ISSUING_DIST_POINT *idp = ISSUING_DIST_POINT_new();
	X509_EXTENSION *e = NULL;

	/* RFC 5280 5.2.5: critical. */
	if (idp && (idp->distpoint = dp_name(url)) != NULL)
		e = X509V3_EXT_i2d(NID_issuing_distribution_point, 1, idp);
	ISSUING_DIST_POINT_free(idp);
	return e;
}

static int
aia_add(AUTHORITY_INFO_ACCESS *aia, int method, const char *url)
{
	ACCESS_DESCRIPTION *ad = ACCESS_DESCRIPTION_new();

	if (ad == NULL)
		return 0;
	ASN1_OBJECT_free(ad->method);
	ad->method = OBJ_nid2obj(method);
	GENERAL_NAME_free(ad->location);
	if ((ad->location = uri_name(url)) == NULL ||
	    !sk_ACCESS_DESCRIPTION_push(aia, ad)) {
		ACCESS_DESCRIPTION_free(ad);
		return 0;
	}
	return 1;
}

X509_EXTENSION *
profile_ext_aia(const char *ocsp_url, const char *ca_issuers_url)
{
	AUTHORITY_INFO_ACCESS *aia = sk_ACCESS_DESCRIPTION_new_null();
	X509_EXTENSION *e = NULL;

	if (aia == NULL)
		return NULL;
	if (ocsp_url && *ocsp_url && !aia_add(aia, NID_ad_OCSP, ocsp_url))
		goto out;
	if (ca_issuers_url && *ca_issuers_url &&
	    !aia_add(aia, NID_ad_ca_issuers, ca_issuers_url))
		goto out;
	if (sk_ACCESS_DESCRIPTION_num(aia) > 0)
		e = X509V3_EXT_i2d(NID_info_access, 0, aia);
out:
	sk_ACCESS_DESCRIPTION_pop_free(aia, ACCESS_DESCRIPTION_free);
	return e;
}

static int
parse_gn(const char *entry, int is_nc, GENERAL_NAME **out, char *why,
    size_t whylen)
{
	static const struct { const char *tag; int type; } tags[] = {
		{ "DNS", GEN_DNS }, { "IP", GEN_IPADD }, { "email", GEN_EMAIL },
		{ "URI", GEN_URI },
	};
	const char *colon = strchr(entry, ':');

	*out = NULL;
	if (colon == NULL)
		goto out;
	for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
		if (strlen(tags[i].tag) == (size_t)(colon - entry) &&
		    strncmp(entry, tags[i].tag, (size_t)(colon - entry)) == 0) {
			*out = a2i_GENERAL_NAME(NULL, NULL, NULL, tags[i].type,
			    colon + 1, is_nc);
			break;
		}
	}
out:
	if (*out != NULL)
		return 0;
	ERR_clear_error();
	sf_why(why, whylen, "bad name \"%s\" (DNS:, IP:, email:, URI:%s)",
	    entry, is_nc ? "; IP as addr/mask" : "");
	return SF_EINVAL;
}

static int
add_subtrees(STACK_OF(GENERAL_SUBTREE) **sk, const char *lines, char *why,
    size_t whylen)
{
	char *buf, *line, *save = NULL;
	int rc = 0;

	if (lines == NULL || *lines == '\0')
		return 0;
	if ((buf = strdup(lines)) == NULL)
		return SF_ENOMEM;
	for (line = strtok_r(buf, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		GENERAL_SUBTREE *st;
		GENERAL_NAME *gn;

		if ((rc = parse_gn(line, 1, &gn, why, whylen)) != 0)
			break;
		if ((st = GENERAL_SUBTREE_new()) == NULL) {
			GENERAL_NAME_free(gn);
			rc = SF_ENOMEM;
			break;
		}
		GENERAL_NAME_free(st->base);
		st->base = gn;
		if ((*sk == NULL && (*sk = sk_GENERAL_SUBTREE_new_null()) ==
		    NULL) || !sk_GENERAL_SUBTREE_push(*sk, st)) {
			GENERAL_SUBTREE_free(st);
			rc = SF_ENOMEM;
			break;
		}
	}
	free(buf);
	return rc;
}

X509_EXTENSION *
profile_ext_name_constraints(const char *permitted, const char *excluded,
    int *none, char *why, size_t whylen)
{
	NAME_CONSTRAINTS *nc = NAME_CONSTRAINTS_new();
	X509_EXTENSION *e = NULL;

	*none = 0;
	if (nc == NULL)
		return NULL;
	if (add_subtrees(&nc->permittedSubtrees, permitted, why, whylen) != 0 ||
	    add_subtrees(&nc->excludedSubtrees, excluded, why, whylen) != 0)
		goto out;
	if (nc->permittedSubtrees == NULL && nc->excludedSubtrees == NULL) {
		*none = 1;
		goto out;
	}
	e = X509V3_EXT_i2d(NID_name_constraints, 1, nc);
out:
	NAME_CONSTRAINTS_free(nc);
	return e;
}

X509_EXTENSION *
profile_ext_san(char *const *dns, size_t ndns, char *const *ips, size_t nips,
    char *why, size_t whylen)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	X509_EXTENSION *e = NULL;

	if (gens == NULL)
		return NULL;
	for (size_t i = 0; i < ndns + nips; i++) {
		int type = i < ndns ? GEN_DNS : GEN_IPADD;
		const char *v = i < ndns ? dns[i] : ips[i - ndns];
		GENERAL_NAME *gn = a2i_GENERAL_NAME(NULL, NULL, NULL, type, v, 0);

		if (gn == NULL || !sk_GENERAL_NAME_push(gens, gn)) {
			ERR_clear_error();
			GENERAL_NAME_free(gn);
			sf_why(why, whylen, "bad %s \"%s\"",
			    type == GEN_DNS ? "DNS name" : "IP address", v);
			goto out;
		}
	}
	e = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
out:
	GENERAL_NAMES_free(gens);
	return e;
}

int
profile_add(X509 *x, const X509_EXTENSION *ext)
{
	return X509_add_ext(x, (X509_EXTENSION *)ext, -1) ? 0 : SF_ECRYPTO;
}

int
profile_add0(X509 *x, X509_EXTENSION *ext)
{
	int rc = ext ? profile_add(x, ext) : SF_ECRYPTO;

	X509_EXTENSION_free(ext);
	return rc;
}

char *
profile_cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (b == NULL)
		return NULL;
	if (PEM_write_bio_X509(b, x) && (n = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	return out;
}
