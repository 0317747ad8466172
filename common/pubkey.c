/*
 * pubkey.c - canonical SubjectPublicKeyInfo, fingerprint, the device key
 * policy and the device id syntax (see pubkey.h).
 *
 * Every key goes one way: an X509_PUBKEY that OpenSSL parsed, and whose key
 * it decoded (that decode is what checks that an EC point lies on its curve
 * and that an RSA key is well formed), is taken apart into algorithm, curve
 * and key bits; the policy is applied to those parts; and the canonical SPKI
 * is built from them again with X509_PUBKEY_set0_param. Building from parts
 * instead of calling i2d_PUBKEY keeps OpenSSL 3.0's provider encoders (slow,
 * see notes/baselines.md) off the CSR path, and it fixes the encoding
 * whatever the input's was: compressed points, BER lengths, bytes after the
 * RSAPublicKey inside its BIT STRING.
 */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "pubkey_int.h"
#include "util.h"

/* An RSA-8192 SPKI is about 1.1 KB; this keeps junk away from decoders. */
#define SPKI_MAX (16 * 1024)
#define TEXT_MAX (64 * 1024)

/*
 * RSAPublicKey (RFC 8017 A.1.1). OpenSSL 3.0 deprecates i2d_RSAPublicKey
 * with the rest of the RSA type, so the structure is declared here and
 * OpenSSL's template encoder writes it.
 */
typedef struct {
	ASN1_INTEGER *n;
	ASN1_INTEGER *e;
} sf_rsa_pub;

ASN1_SEQUENCE(sf_rsa_pub) = {
	ASN1_SIMPLE(sf_rsa_pub, n, ASN1_INTEGER),
	ASN1_SIMPLE(sf_rsa_pub, e, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(sf_rsa_pub)

/*
 * The small primes of the ROCA detector (Nemec et al., CCS 2017). A modulus
 * made by the flawed library is, modulo each of them, a power of 65537; a
 * random modulus is in all of those subgroups with negligible probability.
 */
static const uint16_t roca_primes[] = {
	11, 13, 17, 19, 37, 53, 61, 71, 73, 79, 97, 103, 107, 109, 127, 151,
	157, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251,
	257, 263, 269, 271, 277, 281, 283, 293, 307, 311, 313, 317, 331, 337,
	347, 349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, 419, 421,
	431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503,
	509, 521, 523, 541, 547, 557, 563, 569, 571, 577, 587, 593, 599, 601,
	607, 613, 617, 619, 631, 641, 643, 647, 653, 659, 661, 673, 677, 683,
	691, 701,
};
#define ROCA_NPRIMES (sizeof roca_primes / sizeof roca_primes[0])
#define ROCA_WORDS ((701 + 64) / 64)

/* Bit r of roca_sub[i] is set when r is a power of 65537 mod prime i. */
static uint64_t roca_sub[ROCA_NPRIMES][ROCA_WORDS];
static EVP_MD *sha256_md;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
init(void)
{
	for (size_t i = 0; i < ROCA_NPRIMES; i++) {
		unsigned p = roca_primes[i], g = 65537 % p, x = 1;

		do {
			roca_sub[i][x / 64] |= (uint64_t)1 << (x % 64);
			x = x * g % p;
		} while (x != 1);
	}
	/* Fetched once: an implicit fetch per digest costs a store lookup. */
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int
pubkey_sha256(const uint8_t *data, size_t len, uint8_t md[32])
{
	unsigned int mdlen = 0;

	pthread_once(&init_once, init);
	if (sha256_md == NULL ||
	    !EVP_Digest(data, len, md, &mdlen, sha256_md, NULL) ||
	    mdlen != 32) {
		log_openssl("SHA-256");
		return SF_ECRYPTO;
	}
	return 0;
}

static int
is_b64(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

static int
is_space(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\f' || ch == '\v';
}

int
pubkey_b64_decode(const char *in, size_t len, uint8_t **out, size_t *outlen)
{
	char *s = NULL;
	uint8_t *buf = NULL;
	size_t n = 0, pad = 0;
	int r, rc = SF_EINVAL;

	*out = NULL;
	*outlen = 0;
	if (len > INT_MAX / 2)
		return SF_EINVAL;
	if ((s = malloc(len + 1)) == NULL)
		return SF_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int ch = (unsigned char)in[i];

		if (is_space(ch))
			continue;
		/* '=' only as the last one or two characters. */
		if (pad > 0 && ch != '=')
			goto out;
		if (ch == '=')
			pad++;
		else if (!is_b64(ch))
			goto out;
		s[n++] = (char)ch;
	}
	if (n == 0 || n % 4 != 0 || pad > 2)
		goto out;
	if ((buf = malloc(n / 4 * 3)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes of output. */
	if ((r = EVP_DecodeBlock(buf, (unsigned char *)s, (int)n)) < 0 ||
	    (size_t)r != n / 4 * 3 || (size_t)r - pad == 0)
		goto out;
	*out = buf;
	*outlen = (size_t)r - pad;
	buf = NULL;  /* transferred */
	rc = 0;
out:
	free(s);
	free(buf);
	return rc;
}

/* N mod p from big-endian bytes, 32 bits at a time; p < 2^10. */
static unsigned
mod_small(const uint8_t *n, size_t len, unsigned p)
{
	uint64_t r = 0;
	size_t i = 0;

	for (; i < len % 4; i++)
		r = (r << 8 | n[i]) % p;
	for (; i < len; i += 4)
		r = (r << 32 | (uint64_t)n[i] << 24 | (uint64_t)n[i + 1] << 16 |
		    (uint64_t)n[i + 2] << 8 | n[i + 3]) % p;
	return (unsigned)r;
}

int
pubkey_rsa_is_roca(const uint8_t *n, size_t len)
{
	pthread_once(&init_once, init);
	if (n == NULL || len == 0)
		return 0;
	/* A random modulus fails within the first few primes. */
	for (size_t i = 0; i < ROCA_NPRIMES; i++) {
		unsigned r = mod_small(n, len, roca_primes[i]);

		if (!(roca_sub[i][r / 64] >> (r % 64) & 1))
			return 0;
	}
	return 1;
}

void
pubkey_info_free(pubkey_info *pk)
{
	if (pk == NULL)
		return;
	free(pk->spki);
	free(pk->key_bits);
	memset(pk, 0, sizeof *pk);
}

static int
set_key_bits(pubkey_info *out, const uint8_t *kb, size_t len)
{
	if ((out->key_bits = malloc(len)) == NULL)
		return SF_ENOMEM;
	memcpy(out->key_bits, kb, len);
	out->key_bits_len = len;
	return 0;
}

/* A name for an algorithm or curve OID, for messages. */
static const char *
obj_name(const ASN1_OBJECT *obj, char *buf, size_t len)
{
	int nid = OBJ_obj2nid(obj);

	if (nid != NID_undef)
		return OBJ_nid2sn(nid);
	if (obj == NULL || OBJ_obj2txt(buf, (int)len, obj, 1) <= 0)
		return "(unknown)";
	return buf;
}

static int
take_ec(const X509_ALGOR *alg, const EVP_PKEY *pk, const uint8_t *kb,
    size_t kblen, pubkey_info *out, char *why, size_t whylen)
{
	const ASN1_OBJECT *aobj;
	const void *pval;
	EC_GROUP *group = NULL;
	EC_POINT *pt = NULL;
	uint8_t point[1 + 2 * 48];
	size_t flen;
	char buf[80];
	int ptype, rc = SF_EKEYTYPE;

	X509_ALGOR_get0(&aobj, &ptype, &pval, alg);
	if (ptype != V_ASN1_OBJECT) {
		sf_why(why, whylen, "EC key with %s: only the named curves "
		    "P-256 and P-384 are accepted", ptype == V_ASN1_SEQUENCE ?
		    "explicit curve parameters" : "no named curve");
		return SF_EKEYTYPE;
	}
	out->curve_nid = OBJ_obj2nid(pval);
	switch (out->curve_nid) {
	case NID_X9_62_prime256v1:
		out->type = PUBKEY_EC_P256;
		out->bits = 256;
		flen = 32;
		break;
	case NID_secp384r1:
		out->type = PUBKEY_EC_P384;
		out->bits = 384;
		flen = 48;
		break;
	default:
		sf_why(why, whylen, "EC key on curve %s: only P-256 and "
		    "P-384 are accepted", obj_name(pval, buf, sizeof buf));
		return SF_EKEYTYPE;
	}
	rc = SF_EINVAL;
	if (pk == NULL) {
		sf_why(why, whylen, "EC public key is not a point on %s",
		    OBJ_nid2sn(out->curve_nid));
		goto out;
	}
	if (kblen == 1 + 2 * flen && kb[0] == POINT_CONVERSION_UNCOMPRESSED) {
		rc = set_key_bits(out, kb, kblen);
		goto out;
	}
	if (kblen != 1 + flen || (kb[0] != POINT_CONVERSION_COMPRESSED &&
	    kb[0] != (POINT_CONVERSION_COMPRESSED | 1))) {
		sf_why(why, whylen, "EC point is neither compressed nor "
		    "uncompressed");
		goto out;
	}
	/* Compressed: the fingerprint is over the uncompressed form. */
	rc = SF_ECRYPTO;
	if ((group = EC_GROUP_new_by_curve_name(out->curve_nid)) == NULL ||
	    (pt = EC_POINT_new(group)) == NULL)
		goto out;
	if (!EC_POINT_oct2point(group, pt, kb, kblen, NULL)) {
		sf_why(why, whylen, "EC public key is not a point on %s",
		    OBJ_nid2sn(out->curve_nid));
		rc = SF_EINVAL;
		goto out;
	}
	if (EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED,
	    point, 1 + 2 * flen, NULL) != 1 + 2 * flen)
		goto out;
	rc = set_key_bits(out, point, 1 + 2 * flen);
out:
	EC_POINT_free(pt);
	EC_GROUP_free(group);
	return rc;
}

static int
take_rsa(const EVP_PKEY *pk, const uint8_t *kb, size_t kblen,
    pubkey_info *out, char *why, size_t whylen)
{
	uint8_t nbuf[PUBKEY_RSA_MAX_BITS / 8];
	sf_rsa_pub parts = { NULL, NULL };
	unsigned char *der = NULL;
	BIGNUM *n = NULL, *e = NULL;
	int len, rc = SF_EINVAL;

	if (pk == NULL) {
		sf_why(why, whylen, "not a valid RSA public key");
		goto out;
	}
	if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e)) {
		sf_why(why, whylen, "RSA key without modulus or exponent");
		goto out;
	}
	if (BN_is_negative(n) || BN_is_negative(e)) {
		sf_why(why, whylen, "RSA key with a negative modulus or "
		    "exponent");
		goto out;
	}
	out->type = PUBKEY_RSA_OTHER;
	out->bits = BN_num_bits(n);
	rc = SF_EKEYTYPE;
	if (out->bits < PUBKEY_RSA_MIN_BITS) {
		sf_why(why, whylen, "RSA key of %d bits: below the %d-bit "
		    "minimum", out->bits, PUBKEY_RSA_MIN_BITS);
		goto out;
	}
	if (out->bits > PUBKEY_RSA_MAX_BITS) {
		sf_why(why, whylen, "RSA key of %d bits: above the %d-bit "
		    "maximum", out->bits, PUBKEY_RSA_MAX_BITS);
		goto out;
	}
	/* 65537 is the smallest odd number of 17 bits. */
	if (!BN_is_odd(e) || BN_num_bits(e) < 17) {
		if (BN_num_bits(e) <= 64)
			sf_why(why, whylen, "RSA public exponent %llu: it "
			    "must be odd and at least 65537",
			    (unsigned long long)BN_get_word(e));
		else
			sf_why(why, whylen, "RSA public exponent is even");
		goto out;
	}
	/*
	 * FIPS 186-4 B.3.1: e < 2^256. A larger one costs a verifier as much
	 * as a private-key operation (OpenSSL bounds it only for moduli over
	 * 3072 bits), for every request anyone sends.
	 */
	if (BN_num_bits(e) > PUBKEY_RSA_MAX_EXP_BITS) {
		sf_why(why, whylen, "RSA public exponent of %d bits: at most"
		    " %d are accepted", BN_num_bits(e),
		    PUBKEY_RSA_MAX_EXP_BITS);
		goto out;
	}
	len = BN_bn2bin(n, nbuf);
	if (pubkey_rsa_is_roca(nbuf, (size_t)len)) {
		sf_why(why, whylen, "RSA modulus carries the ROCA "
		    "fingerprint (CVE-2017-15361): the key can be factored");
		goto out;
	}
	switch (out->bits) {
	case 2048: out->type = PUBKEY_RSA_2048; break;
	case 3072: out->type = PUBKEY_RSA_3072; break;
	case 4096: out->type = PUBKEY_RSA_4096; break;
	}
	/*
	 * Re-encoded from n and e, as i2d_PUBKEY writes it. OpenSSL's decoder
	 * takes BER and ignores bytes after the RSAPublicKey; such a key is
	 * refused rather than quietly given the fingerprint of another text.
	 */
	rc = SF_ECRYPTO;
	if ((parts.n = BN_to_ASN1_INTEGER(n, NULL)) == NULL ||
	    (parts.e = BN_to_ASN1_INTEGER(e, NULL)) == NULL ||
	    (len = ASN1_item_i2d((const ASN1_VALUE *)&parts, &der,
	    ASN1_ITEM_rptr(sf_rsa_pub))) <= 0)
		goto out;
	if ((size_t)len != kblen || memcmp(der, kb, kblen) != 0) {
		sf_why(why, whylen, "the RSAPublicKey is not in DER or "
		    "has bytes after it");
		rc = SF_EINVAL;
		goto out;
	}
	rc = set_key_bits(out, der, (size_t)len);
out:
	OPENSSL_free(der);
	ASN1_INTEGER_free(parts.n);
	ASN1_INTEGER_free(parts.e);
	BN_free(n);
	BN_free(e);
	return rc;
}

static int
take_ed25519(const X509_ALGOR *alg, const EVP_PKEY *pk, const uint8_t *kb,
    size_t kblen, pubkey_info *out, char *why, size_t whylen)
{
	int ptype;

	X509_ALGOR_get0(NULL, &ptype, NULL, alg);
	/* RFC 8410: the parameters are absent; the key is 32 raw bytes. */
	if (pk == NULL || ptype != V_ASN1_UNDEF || kblen != 32) {
		sf_why(why, whylen, "not a valid Ed25519 public key");
		return SF_EINVAL;
	}
	out->type = PUBKEY_ED25519;
	out->bits = 255;
	return set_key_bits(out, kb, kblen);
}

/* The canonical SPKI from the parts, and its fingerprint. */
static int
build_spki(pubkey_info *out)
{
	X509_PUBKEY *xpk = NULL;
	unsigned char *kb = NULL, *p;
	void *pval = NULL;
	int ptype, len, rc = SF_ECRYPTO;

	switch (out->alg_nid) {
	case NID_X9_62_id_ecPublicKey:
		ptype = V_ASN1_OBJECT;
		pval = OBJ_nid2obj(out->curve_nid);
		break;
	case NID_rsaEncryption:
		ptype = V_ASN1_NULL;
		break;
	default:
		ptype = V_ASN1_UNDEF;
		break;
	}
	if ((xpk = X509_PUBKEY_new()) == NULL ||
	    (kb = OPENSSL_memdup(out->key_bits, out->key_bits_len)) == NULL)
		goto out;
	if (!X509_PUBKEY_set0_param(xpk, OBJ_nid2obj(out->alg_nid), ptype,
	    pval, kb, (int)out->key_bits_len))
		goto out;
	kb = NULL;  /* owned by xpk */
	if ((len = i2d_X509_PUBKEY(xpk, NULL)) <= 0)
		goto out;
	if ((out->spki = malloc((size_t)len)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	p = out->spki;
	if (i2d_X509_PUBKEY(xpk, &p) != len)
		goto out;
	out->spki_len = (size_t)len;
	rc = pubkey_sha256(out->spki, out->spki_len, out->sha256);
out:
	OPENSSL_free(kb);
	X509_PUBKEY_free(xpk);
	return rc;
}

/* Bad input leaves nothing on OpenSSL's queue; a failure of ours is logged. */
static int
finish(int rc, pubkey_info *out)
{
	if (rc == 0)
		return 0;
	pubkey_info_free(out);
	if (rc == SF_EINVAL || rc == SF_EKEYTYPE)
		ERR_clear_error();
	else
		log_openssl("public key");
	return rc;
}

static int
from_xpk(const X509_PUBKEY *xpk, pubkey_info *out, char *why, size_t whylen)
{
	ASN1_OBJECT *aobj = NULL;
	const unsigned char *kb = NULL;
	X509_ALGOR *alg = NULL;
	EVP_PKEY *pk;
	char buf[80];
	int kblen = 0, rc;

	memset(out, 0, sizeof *out);
	pthread_once(&init_once, init);
	if (xpk == NULL || !X509_PUBKEY_get0_param(&aobj, &kb, &kblen, &alg,
	    xpk) || kb == NULL || kblen <= 0) {
		sf_why(why, whylen, "no public key");
		return SF_EINVAL;
	}
	/* NULL when OpenSSL could not decode the key; each case says why. */
	pk = X509_PUBKEY_get0(xpk);
	out->alg_nid = OBJ_obj2nid(aobj);
	out->curve_nid = NID_undef;
	switch (out->alg_nid) {
	case NID_X9_62_id_ecPublicKey:
		rc = take_ec(alg, pk, kb, (size_t)kblen, out, why, whylen);
		break;
	case NID_rsaEncryption:
		rc = take_rsa(pk, kb, (size_t)kblen, out, why, whylen);
		break;
	case NID_ED25519:
		rc = take_ed25519(alg, pk, kb, (size_t)kblen, out, why, whylen);
		break;
	default:
		sf_why(why, whylen, "key algorithm %s is not accepted: "
		    "only ECDSA P-256/P-384, RSA %d-%d bits and Ed25519 are",
		    obj_name(aobj, buf, sizeof buf), PUBKEY_RSA_MIN_BITS,
		    PUBKEY_RSA_MAX_BITS);
		rc = SF_EKEYTYPE;
		break;
	}
	if (rc == 0)
		rc = build_spki(out);
	return rc;
}

static int
from_der(const uint8_t *der, size_t len, pubkey_info *out, char *why,
    size_t whylen)
{
	const unsigned char *p = der;
	X509_PUBKEY *xpk = NULL;
	int rc = SF_EINVAL;

	memset(out, 0, sizeof *out);
	if (der == NULL || len == 0) {
		sf_why(why, whylen, "empty public key");
		goto out;
	}
	if (len > SPKI_MAX) {
		sf_why(why, whylen, "public key of %zu bytes: too long",
		    len);
		goto out;
	}
	if ((xpk = d2i_X509_PUBKEY(NULL, &p, (long)len)) == NULL) {
		sf_why(why, whylen, "not a DER SubjectPublicKeyInfo");
		goto out;
	}
	/* Exact parsing: whatever follows is not ours to ignore. */
	if (p != der + len) {
		sf_why(why, whylen, "%zu trailing byte(s) after the "
		    "SubjectPublicKeyInfo", (size_t)(der + len - p));
		goto out;
	}
	rc = from_xpk(xpk, out, why, whylen);
out:
	X509_PUBKEY_free(xpk);
	return rc;
}

int
pubkey_from_x509_pubkey(const X509_PUBKEY *xpk, pubkey_info *out,
    char *why, size_t whylen)
{
	return finish(from_xpk(xpk, out, why, whylen), out);
}

int
pubkey_from_spki(const uint8_t *der, size_t len, pubkey_info *out,
    char *why, size_t whylen)
{
	return finish(from_der(der, len, out, why, whylen), out);
}

int
pubkey_from_evp(EVP_PKEY *pk, pubkey_info *out, char *why, size_t whylen)
{
	unsigned char *der = NULL;
	int len, rc = SF_EINVAL;

	memset(out, 0, sizeof *out);
	/*
	 * One encode and one decode: simple, and the policy stays in one
	 * place. The CSR path does not come here (pubkey_from_x509_pubkey).
	 */
	if (pk == NULL || (len = i2d_PUBKEY(pk, &der)) <= 0) {
		sf_why(why, whylen, "the key cannot be written as a "
		    "SubjectPublicKeyInfo");
		goto out;
	}
	rc = from_der(der, (size_t)len, out, why, whylen);
out:
	OPENSSL_free(der);
	return finish(rc, out);
}

/* A PEM label worth repeating in a message. */
static int
printable(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || i >= 40)
			return 0;
	return 1;
}

static int
from_pem(const char *text, size_t len, pubkey_info *out, char *why,
    size_t whylen)
{
	char *name = NULL, *header = NULL, *rest = NULL;
	unsigned char *data = NULL;
	long dlen = 0, restlen;
	BIO *bio = NULL;
	int rc = SF_EINVAL;

	if ((bio = BIO_new_mem_buf(text, (int)len)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
		sf_why(why, whylen, "malformed PEM block");
		goto out;
	}
	if (strcmp(name, PEM_STRING_PUBLIC) != 0) {
		sf_why(why, whylen, "PEM block \"%s\" is not a \"PUBLIC "
		    "KEY\"", printable(name) ? name : "?");
		goto out;
	}
	if (header[0] != '\0') {
		sf_why(why, whylen, "PEM headers are not accepted");
		goto out;
	}
	restlen = BIO_get_mem_data(bio, &rest);
	for (long i = 0; i < restlen; i++) {
		if (!is_space((unsigned char)rest[i])) {
			sf_why(why, whylen, "text follows the PEM block");
			goto out;
		}
	}
	rc = from_der(data, (size_t)dlen, out, why, whylen);
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return rc;
}

int
pubkey_from_text(const char *text, size_t len, pubkey_info *out,
    char *why, size_t whylen)
{
	uint8_t *der = NULL;
	size_t derlen;
	int rc = SF_EINVAL;

	memset(out, 0, sizeof *out);
	if (text == NULL)
		len = 0;
	while (len > 0 && is_space((unsigned char)*text)) {
		text++;
		len--;
	}
	if (len == 0) {
		sf_why(why, whylen, "empty public key");
		goto out;
	}
	if (len > TEXT_MAX) {
		sf_why(why, whylen, "public key text of %zu bytes: too "
		    "long", len);
		goto out;
	}
	if (len >= 10 && memcmp(text, "-----BEGIN", 10) == 0) {
		rc = from_pem(text, len, out, why, whylen);
		goto out;
	}
	if ((rc = pubkey_b64_decode(text, len, &der, &derlen)) != 0) {
		sf_why(why, whylen, "neither a PEM \"PUBLIC KEY\" block "
		    "nor base64 of a DER SubjectPublicKeyInfo");
		goto out;
	}
	rc = from_der(der, derlen, out, why, whylen);
out:
	free(der);
	return finish(rc, out);
}

void
pubkey_fp_hex(const uint8_t fp[PUBKEY_FP_LEN], char out[65])
{
	sf_hex(fp, PUBKEY_FP_LEN, out);
}

static const struct {
	int type;
	const char *name;
} type_names[] = {
	{ PUBKEY_EC_P256, "ec-p256" },
	{ PUBKEY_EC_P384, "ec-p384" },
	{ PUBKEY_RSA_2048, "rsa-2048" },
	{ PUBKEY_RSA_3072, "rsa-3072" },
	{ PUBKEY_RSA_4096, "rsa-4096" },
	{ PUBKEY_ED25519, "ed25519" },
	{ PUBKEY_RSA_OTHER, "rsa" },
};

const char *
pubkey_type_name(int type)
{
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (type_names[i].type == type)
			return type_names[i].name;
	return "none";
}

int
pubkey_type_parse(const char *name)
{
	if (name == NULL)
		return PUBKEY_NONE;
	/* "rsa" names no size, so it is not a type one can ask for. */
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (type_names[i].type != PUBKEY_RSA_OTHER &&
		    strcmp(type_names[i].name, name) == 0)
			return type_names[i].type;
	return PUBKEY_NONE;
}

static int
is_alnum(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= '0' && ch <= '9');
}

int
device_id_valid(const char *id, char *why, size_t whylen)
{
	size_t len;

	if (id == NULL || id[0] == '\0') {
		sf_why(why, whylen, "device id is empty");
		return 0;
	}
	if ((len = strlen(id)) > DEVICE_ID_MAX) {
		sf_why(why, whylen, "device id of %zu characters: at most "
		    "%d are allowed", len, DEVICE_ID_MAX);
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		int ch = (unsigned char)id[i];

		if (is_alnum(ch))
			continue;
		if (ch == '.' || ch == '_' || ch == '-') {
			if (i > 0)
				continue;
			sf_why(why, whylen, "device id starts with '%c': "
			    "the first character must be a letter or digit",
			    ch);
		} else if (ch > 0x20 && ch < 0x7f)
			sf_why(why, whylen, "device id has '%c' at "
			    "position %zu: only A-Z a-z 0-9 . _ - are allowed",
			    ch, i + 1);
		else
			sf_why(why, whylen, "device id has byte 0x%02x at "
			    "position %zu: only A-Z a-z 0-9 . _ - are allowed",
			    ch, i + 1);
		return 0;
	}
	return 1;
}
