/*
 * birth.c - birth certificates and the manufacturer CAs they chain to
 * (see birth.h). Verification is OpenSSL's (X509_STORE), one registered
 * CA at a time, so that the result names the manufacturer and a CRL
 * applies to its own CA only.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "birth.h"
#include "err.h"
#include "util.h"

static int
is_pem(const uint8_t *b, size_t len)
{
	return len >= 10 && memmem(b, len, "-----BEGIN", 10) != NULL;
}

static X509 *
read_cert(const uint8_t *b, size_t len)
{
	X509 *x = NULL;
	BIO *bio;

	if (b == NULL || len == 0 || len > BIRTH_MAX_LEN)
		return NULL;
	if (is_pem(b, len)) {
		if ((bio = BIO_new_mem_buf(b, (int)len)) != NULL) {
			x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
			BIO_free(bio);
		}
	} else {
		const unsigned char *p = b;

		x = d2i_X509(NULL, &p, (long)len);
		if (x && p != b + len) {
			X509_free(x);
			x = NULL;
		}
	}
	return x;
}

static X509_CRL *
read_crl(const uint8_t *b, size_t len)
{
	X509_CRL *c = NULL;
	BIO *bio;

	if (b == NULL || len == 0 || len > 16 * BIRTH_MAX_LEN)
		return NULL;
	if (is_pem(b, len)) {
		if ((bio = BIO_new_mem_buf(b, (int)len)) != NULL) {
			c = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
			BIO_free(bio);
		}
	} else {
		const unsigned char *p = b;

		c = d2i_X509_CRL(NULL, &p, (long)len);
		if (c && p != b + len) {
			X509_CRL_free(c);
			c = NULL;
		}
	}
	return c;
}

static int64_t
unix_time(const ASN1_TIME *t)
{
	struct tm tm;

	return t && ASN1_TIME_to_tm(t, &tm) ? (int64_t)timegm(&tm) : 0;
}

/* The errors that say only "this anchor is not the leaf's". */
static int
not_this_anchor(int err)
{
	return err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	    err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	    err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	    err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
	    err == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
	    err == X509_V_ERR_CERT_SIGNATURE_FAILURE;
}

/*
 * Verify leaf (with untrusted intermediates) against anchor a alone.
 * 0, or the X509_V_ERR_* code (-1: could not run).
 */
static int
verify_one(X509 *leaf, STACK_OF(X509) *chain, const birth_anchor *a,
    int64_t now, char *why, size_t whylen)
{
	X509_STORE *st = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *ca = NULL;
	X509_CRL *crl = NULL;
	unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN;
	int err = -1;

	if ((ca = read_cert(a->cert, a->cert_len)) == NULL) {
		sf_why(why, whylen, "manufacturer %s: its CA certificate does"
		    " not parse", a->name);
		goto out;
	}
	if ((st = X509_STORE_new()) == NULL || !X509_STORE_add_cert(st, ca))
		goto out;
	if (a->crl && a->crl_len) {
		if ((crl = read_crl(a->crl, a->crl_len)) == NULL) {
			sf_why(why, whylen, "manufacturer %s: its CRL does not"
			    " parse", a->name);
			goto out;
		}
		if (!X509_STORE_add_crl(st, crl))
			goto out;
		flags |= X509_V_FLAG_CRL_CHECK;
	}
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, st, leaf, chain))
		goto out;
	X509_STORE_CTX_set_flags(ctx, flags);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx),
	    (time_t)now);
	if (X509_verify_cert(ctx) == 1)
		err = 0;
	else {
		err = X509_STORE_CTX_get_error(ctx);
		if (err == X509_V_OK)
			err = -1;
	}
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	X509_CRL_free(crl);
	X509_free(ca);
	return err;
}

static const char *
verify_words(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "it has expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "it is not valid yet";
	case X509_V_ERR_CERT_REVOKED:
		return "it is revoked (on the manufacturer's CRL)";
	case X509_V_ERR_CRL_HAS_EXPIRED:
		return "the manufacturer's CRL has expired (register a newer"
		    " one)";
	case X509_V_ERR_CRL_NOT_YET_VALID:
		return "the manufacturer's CRL is not valid yet";
	case X509_V_ERR_UNABLE_TO_GET_CRL:
		return "the manufacturer has a CRL, and the birth certificate"
		    " is not issued by its registered CA directly";
	default:
		return X509_verify_cert_error_string(err);
	}
}

int
birth_verify(const char *pem, size_t len, const birth_anchor *anchors,
    size_t n, int64_t now, birth_info *out, char *why, size_t whylen)
{
	STACK_OF(X509) *chain = NULL;
	X509 *leaf = NULL, *x;
	BIO *bio = NULL;
	pubkey_info pk;
	const ASN1_INTEGER *ai;
	char cn[DEVICE_ID_MAX + 2], sub[160];
	int rc = SF_EINVAL, err, worst = -1, ncn, len_serial;
	size_t worst_i = 0;

	memset(out, 0, sizeof *out);
	memset(&pk, 0, sizeof pk);
	if (pem == NULL || len == 0 || len > BIRTH_MAX_LEN ||
	    !is_pem((const uint8_t *)pem, len) ||
	    (bio = BIO_new_mem_buf(pem, (int)len)) == NULL ||
	    (leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		sf_why(why, whylen, "the birth certificate is not a PEM"
		    " certificate");
		goto out;
	}
	if ((chain = sk_X509_new_null()) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (sk_X509_num(chain) >= 8 || !sk_X509_push(chain, x)) {
			X509_free(x);
			sf_why(why, whylen, "the birth certificate's chain has"
			    " more than 8 certificates");
			goto out;
		}
	rc = SF_EPERM;
	if (X509_check_ca(leaf) != 0) {
		sf_why(why, whylen, "the birth certificate is a CA"
		    " certificate, not a device's");
		goto out;
	}
	ncn = X509_NAME_get_text_by_NID(X509_get_subject_name(leaf),
	    NID_commonName, cn, sizeof cn);
	if (ncn <= 0 || X509_NAME_get_index_by_NID(X509_get_subject_name(leaf),
	    NID_commonName, X509_NAME_get_index_by_NID(
	    X509_get_subject_name(leaf), NID_commonName, -1)) >= 0) {
		sf_why(why, whylen, "the birth certificate must have exactly"
		    " one CN, the device id");
		goto out;
	}
	if ((size_t)ncn != strlen(cn) || !device_id_valid(cn, sub,
	    sizeof sub)) {
		sf_why(why, whylen, "the birth certificate's CN is not a"
		    " device id: %s", (size_t)ncn != strlen(cn) ?
		    "it holds a NUL" : sub);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char w[200] = "";

		err = verify_one(leaf, chain, &anchors[i], now, w, sizeof w);
		if (err == 0) {
			out->anchor = i;
			sf_strlcpy(out->manufacturer, anchors[i].name,
			    sizeof out->manufacturer);
			break;
		}
		if (err != -1 && !not_this_anchor(err) &&
		    (worst == -1 || not_this_anchor(worst))) {
			worst = err;
			worst_i = i;
		}
		if (err == -1 && *w && worst == -1)
			sf_why(why, whylen, "%s", w);
	}
	if (*out->manufacturer == '\0') {
		if (worst > 0)
			sf_why(why, whylen, "birth certificate of %s (issued"
			    " by manufacturer %s): %s", cn,
			    anchors[worst_i].name, verify_words(worst));
		else
			sf_why(why, whylen, "the birth certificate of %s is"
			    " not issued by a registered manufacturer CA%s",
			    cn, n ? "" : " (none is registered for its product"
			    " line)");
		goto out;
	}
	if (pubkey_from_evp(X509_get0_pubkey(leaf), &pk, sub, sizeof sub) !=
	    0) {
		sf_why(why, whylen, "the birth certificate's key: %s", sub);
		goto out;
	}
	ai = X509_get0_serialNumber(leaf);
	len_serial = ASN1_STRING_length(ai);
	if (len_serial < 1 || len_serial > 20) {
		sf_why(why, whylen, "the birth certificate's serial is longer"
		    " than 20 bytes");
		goto out;
	}
	sf_hex_upper(ASN1_STRING_get0_data(ai), (size_t)len_serial,
	    out->serial);
	sf_strlcpy(out->device_id, cn, sizeof out->device_id);
	memcpy(out->key_sha256, pk.sha256, PUBKEY_FP_LEN);
	rc = 0;
out:
	if (rc != 0) {
		memset(out, 0, sizeof *out);
		if (rc == SF_EINVAL && why && *why == '\0')
			sf_why(why, whylen, "the birth certificate does not"
			    " parse");
	}
	pubkey_info_free(&pk);
	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

void
birth_ca_fini(birth_ca *c)
{
	if (c == NULL)
		return;
	free(c->subject);
	free(c->cn);
	free(c->der);
	free(c->pem);
	memset(c, 0, sizeof *c);
}

static char *
name_oneline(X509_NAME *nm)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL, *s = NULL;
	long n;

	if (b && X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(b, &p)) >= 0 && (s = malloc((size_t)n + 1)))
	{
		memcpy(s, p, (size_t)n);
		s[n] = '\0';
	}
	BIO_free(b);
	return s;
}

int
birth_ca_parse(const uint8_t *b, size_t len, int64_t now, birth_ca *out,
    char *why, size_t whylen)
{
	X509 *x = NULL;
	X509_PUBKEY *xpk;
	unsigned char *der = NULL, *spki = NULL;
	char cn[256];
	BIO *mb = NULL;
	char *p;
	long n;
	int rc = SF_EINVAL, dl, sl;

	memset(out, 0, sizeof *out);
	if (b && len && is_pem(b, len) && memmem(b, len, "PRIVATE KEY",
	    11) != NULL) {
		sf_why(why, whylen, "the file holds a private key: register"
		    " the manufacturer's CA certificate only, never its key");
		goto out;
	}
	if ((x = read_cert(b, len)) == NULL) {
		sf_why(why, whylen, "not a certificate (PEM or DER)");
		goto out;
	}
	if (X509_check_ca(x) != 1 || !(X509_get_extension_flags(x) &
	    EXFLAG_BCONS)) {
		sf_why(why, whylen, "not a CA certificate: basicConstraints"
		    " CA:TRUE is missing");
		goto out;
	}
	if ((X509_get_extension_flags(x) & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN)) {
		sf_why(why, whylen, "not a CA certificate: its keyUsage lacks"
		    " keyCertSign");
		goto out;
	}
	out->not_after = unix_time(X509_get0_notAfter(x));
	if (out->not_after <= now) {
		sf_why(why, whylen, "the CA certificate has expired");
		goto out;
	}
	rc = SF_ENOMEM;
	if ((xpk = X509_get_X509_PUBKEY(x)) == NULL ||
	    (sl = i2d_X509_PUBKEY(xpk, &spki)) <= 0 ||
	    !EVP_Digest(spki, (size_t)sl, out->spki_sha256, NULL,
	    EVP_sha256(), NULL))
		goto out;
	if ((dl = i2d_X509(x, &der)) <= 0 ||
	    (out->der = malloc((size_t)dl)) == NULL)
		goto out;
	memcpy(out->der, der, (size_t)dl);
	out->der_len = (size_t)dl;
	if ((mb = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_X509(mb, x) ||
	    (n = BIO_get_mem_data(mb, &p)) <= 0 ||
	    (out->pem = malloc((size_t)n + 1)) == NULL)
		goto out;
	memcpy(out->pem, p, (size_t)n);
	out->pem[n] = '\0';
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, cn, sizeof cn) <= 0)
		cn[0] = '\0';
	if ((out->cn = strdup(cn)) == NULL ||
	    (out->subject = name_oneline(X509_get_subject_name(x))) == NULL)
		goto out;
	rc = 0;
out:
	if (rc)
		birth_ca_fini(out);
	OPENSSL_free(der);
	OPENSSL_free(spki);
	BIO_free(mb);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

int
birth_crl_parse(const uint8_t *crlb, size_t len, const uint8_t *cab,
    size_t ca_len, int64_t *number, int64_t *next_update, uint8_t **der,
    size_t *der_len, char **pem, char *why, size_t whylen)
{
	X509_CRL *crl = NULL;
	X509 *ca = NULL;
	ASN1_INTEGER *num = NULL;
	EVP_PKEY *k;
	unsigned char *d = NULL;
	BIO *mb = NULL;
	char *p;
	long n;
	int rc = SF_EINVAL, dl;

	*number = 0;
	*next_update = 0;
	if (der)
		*der = NULL;
	if (der_len)
		*der_len = 0;
	if (pem)
		*pem = NULL;
	if ((crl = read_crl(crlb, len)) == NULL) {
		sf_why(why, whylen, "not a CRL (PEM or DER)");
		goto out;
	}
	if ((ca = read_cert(cab, ca_len)) == NULL) {
		sf_why(why, whylen, "the manufacturer's CA certificate does"
		    " not parse");
		goto out;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl),
	    X509_get_subject_name(ca)) != 0) {
		sf_why(why, whylen, "the CRL's issuer is not the"
		    " manufacturer's CA");
		goto out;
	}
	if ((k = X509_get0_pubkey(ca)) == NULL || X509_CRL_verify(crl, k) !=
	    1) {
		sf_why(why, whylen, "the CRL's signature does not verify with"
		    " the manufacturer CA's key");
		goto out;
	}
	if ((num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL)) !=
	    NULL) {
		BIGNUM *bn = ASN1_INTEGER_to_BN(num, NULL);

		if (bn == NULL || BN_num_bits(bn) > 62 || BN_is_negative(bn)) {
			BN_free(bn);
			sf_why(why, whylen, "the CRL number is out of range");
			goto out;
		}
		*number = (int64_t)BN_get_word(bn);
		BN_free(bn);
	}
	*next_update = unix_time(X509_CRL_get0_nextUpdate(crl));
	rc = SF_ENOMEM;
	if (der) {
		if ((dl = i2d_X509_CRL(crl, &d)) <= 0 ||
		    (*der = malloc((size_t)dl)) == NULL)
			goto out;
		memcpy(*der, d, (size_t)dl);
		*der_len = (size_t)dl;
	}
	if (pem) {
		if ((mb = BIO_new(BIO_s_mem())) == NULL ||
		    !PEM_write_bio_X509_CRL(mb, crl) ||
		    (n = BIO_get_mem_data(mb, &p)) <= 0 ||
		    (*pem = malloc((size_t)n + 1)) == NULL)
			goto out;
		memcpy(*pem, p, (size_t)n);
		(*pem)[n] = '\0';
	}
	rc = 0;
out:
	if (rc) {
		if (der) {
			free(*der);
			*der = NULL;
		}
		if (pem) {
			free(*pem);
			*pem = NULL;
		}
	}
	ASN1_INTEGER_free(num);
	OPENSSL_free(d);
	BIO_free(mb);
	X509_CRL_free(crl);
	X509_free(ca);
	ERR_clear_error();
	return rc;
}

void
birth_name_from_cn(const char *cn, char out[33])
{
	size_t n = 0;
	int dash = 0;

	for (; *cn && n < 32; cn++) {
		unsigned char c = (unsigned char)tolower((unsigned char)*cn);

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (dash && n > 0 && n < 31)
				out[n++] = '-';
			dash = 0;
			out[n++] = (char)c;
		} else
			dash = 1;
	}
	out[n] = '\0';
}
