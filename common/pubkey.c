/*
 * pubkey.c - canonical SubjectPublicKeyInfo, fingerprint, the device key
 * policy and the device id syntax (see pubkey.h).
 *
 * Every key goes one way: its SubjectPublicKeyInfo is parsed with an ASN.1
 * template of our own (algorithm and BIT STRING, as X509_PUBKEY's internal
 * one), taken apart into algorithm, curve and key bits, checked, and the
 * canonical SPKI is built from those parts again with
 * X509_PUBKEY_set0_param. No EVP_PKEY is made: OpenSSL 3.0's d2i_PUBKEY,
 * d2i_X509_PUBKEY and d2i_X509_REQ all decode the key through the provider
 * decoder framework (OSSL_DECODER_CTX_new_for_pkey, about 110 us a key),
 * and the checks that decode made are made here directly: an EC point is
 * decoded onto its curve with EC_POINT_oct2point, which refuses a point
 * that is not on it; an RSAPublicKey is parsed with the same BIGNUM
 * template OpenSSL's RSA decoder uses, then checked and written again in
 * DER. Building from parts instead of calling i2d_PUBKEY keeps the
 * provider encoders off the path too, and it fixes the encoding whatever
 * the input's was: compressed points, BER lengths, bytes after the
 * RSAPublicKey inside its BIT STRING. pubkey_evp() makes an EVP_PKEY from
 * the checked parts (EVP_PKEY_fromdata) for whoever must verify with it.
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

#include <openssl/param_build.h>

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
 * The same read as OpenSSL's RSA decoder reads it (RSAPublicKey with
 * BIGNUM members, crypto/rsa/rsa_asn1.c): it accepts what that decoder
 * accepted, and take_rsa refuses all but DER by writing it again.
 */
typedef struct {
	BIGNUM *n;
	BIGNUM *e;
} sf_rsa_pub_bn;

ASN1_SEQUENCE(sf_rsa_pub_bn) = {
	ASN1_SIMPLE(sf_rsa_pub_bn, n, BIGNUM),
	ASN1_SIMPLE(sf_rsa_pub_bn, e, BIGNUM),
} static_ASN1_SEQUENCE_END(sf_rsa_pub_bn)

/* SubjectPublicKeyInfo as X509_PUBKEY's own template reads it, without
 * the callback that decodes the key (pubkey_int.h). */
ASN1_SEQUENCE(SF_SPKI) = {
	ASN1_SIMPLE(SF_SPKI, alg, X509_ALGOR),
	ASN1_SIMPLE(SF_SPKI, key, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(SF_SPKI)

IMPLEMENT_ASN1_FUNCTIONS(SF_SPKI)

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
/* Shared read-only: EC_POINT_oct2point takes the group const. */
static EC_GROUP *group_p256, *group_p384;
/*
 * A key on each curve (its generator as the point), duplicated for each
 * EVP_PKEY pubkey_evp makes: EVP_PKEY_fromdata builds the curve's group
 * from its name every time, which costs more than the duplicate and the
 * point together.
 */
static EVP_PKEY *tmpl_p256, *tmpl_p384;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void ec_prefix_init(int i, const EC_GROUP *group, int nid);

static EVP_PKEY *
ec_fromdata(const char *group, const uint8_t *point, size_t len)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pk = NULL;

	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_PUB_KEY, (void *)point, len);
	params[2] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

static EVP_PKEY *
ec_template(const EC_GROUP *group, int nid)
{
	uint8_t g[1 + 2 * 48];
	size_t len;

	if (group == NULL || (len = EC_POINT_point2oct(group,
	    EC_GROUP_get0_generator(group), POINT_CONVERSION_UNCOMPRESSED, g,
	    sizeof g, NULL)) == 0)
		return NULL;
	return ec_fromdata(OBJ_nid2sn(nid), g, len);
}

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
	group_p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	group_p384 = EC_GROUP_new_by_curve_name(NID_secp384r1);
	tmpl_p256 = ec_template(group_p256, NID_X9_62_prime256v1);
	tmpl_p384 = ec_template(group_p384, NID_secp384r1);
	ec_prefix_init(0, group_p256, NID_X9_62_prime256v1);
	ec_prefix_init(1, group_p384, NID_secp384r1);
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
take_ec(const X509_ALGOR *alg, const uint8_t *kb, size_t kblen,
    pubkey_info *out, char *why, size_t whylen)
{
	const ASN1_OBJECT *aobj;
	const void *pval;
	const EC_GROUP *group;
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
		group = group_p256;
		break;
	case NID_secp384r1:
		out->type = PUBKEY_EC_P384;
		out->bits = 384;
		flen = 48;
		group = group_p384;
		break;
	default:
		sf_why(why, whylen, "EC key on curve %s: only P-256 and "
		    "P-384 are accepted", obj_name(pval, buf, sizeof buf));
		return SF_EKEYTYPE;
	}
	rc = SF_ECRYPTO;
	if (group == NULL || (pt = EC_POINT_new(group)) == NULL)
		goto out;
	/*
	 * What OpenSSL's EC decoder does with the bits (o2i_ECPublicKey): it
	 * takes every form oct2point takes, and refuses a point that is not
	 * on the curve.
	 */
	if (!EC_POINT_oct2point(group, pt, kb, kblen, NULL)) {
		sf_why(why, whylen, "EC public key is not a point on %s",
		    OBJ_nid2sn(out->curve_nid));
		rc = SF_EINVAL;
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
		rc = SF_EINVAL;
		goto out;
	}
	/* Compressed: the fingerprint is over the uncompressed form. */
	if (EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED,
	    point, 1 + 2 * flen, NULL) != 1 + 2 * flen)
		goto out;
	rc = set_key_bits(out, point, 1 + 2 * flen);
out:
	EC_POINT_free(pt);
	return rc;
}

static int
take_rsa(const uint8_t *kb, size_t kblen, pubkey_info *out, char *why,
    size_t whylen)
{
	uint8_t nbuf[PUBKEY_RSA_MAX_BITS / 8];
	sf_rsa_pub parts = { NULL, NULL };
	sf_rsa_pub_bn *ne = NULL;
	const unsigned char *p = kb;
	unsigned char *der = NULL;
	const BIGNUM *n, *e;
	int len, rc = SF_EINVAL;

	if (kblen > LONG_MAX || (ne = (sf_rsa_pub_bn *)ASN1_item_d2i(NULL, &p,
	    (long)kblen, ASN1_ITEM_rptr(sf_rsa_pub_bn))) == NULL) {
		sf_why(why, whylen, "not a valid RSA public key");
		goto out;
	}
	n = ne->n;
	e = ne->e;
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
	 * Re-encoded from n and e, as i2d_PUBKEY writes it. The BIGNUM read
	 * takes BER and whatever follows the RSAPublicKey; such a key is
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
	ASN1_item_free((ASN1_VALUE *)ne, ASN1_ITEM_rptr(sf_rsa_pub_bn));
	return rc;
}

static int
take_ed25519(const X509_ALGOR *alg, const uint8_t *kb, size_t kblen,
    pubkey_info *out, char *why, size_t whylen)
{
	int ptype;

	X509_ALGOR_get0(NULL, &ptype, NULL, alg);
	/*
	 * RFC 8410: the parameters are absent; the key is 32 raw bytes (what
	 * OpenSSL's decoder checks; any 32 bytes decode).
	 */
	if (ptype != V_ASN1_UNDEF || kblen != 32) {
		sf_why(why, whylen, "not a valid Ed25519 public key");
		return SF_EINVAL;
	}
	out->type = PUBKEY_ED25519;
	out->bits = 255;
	return set_key_bits(out, kb, kblen);
}

/*
 * The DER SubjectPublicKeyInfo of the parts, as i2d_X509_PUBKEY writes
 * it (X509_PUBKEY_set0_param, no key decoded): *der malloc'd.
 */
static int
encode_spki(int alg_nid, int curve_nid, const uint8_t *key_bits,
    size_t key_bits_len, uint8_t **der, size_t *derlen)
{
	X509_PUBKEY *xpk = NULL;
	unsigned char *kb = NULL, *d = NULL;
	void *pval = NULL;
	int ptype, len, rc = SF_ECRYPTO;

	*der = NULL;
	*derlen = 0;
	switch (alg_nid) {
	case NID_X9_62_id_ecPublicKey:
		ptype = V_ASN1_OBJECT;
		pval = OBJ_nid2obj(curve_nid);
		break;
	case NID_rsaEncryption:
		ptype = V_ASN1_NULL;
		break;
	default:
		ptype = V_ASN1_UNDEF;
		break;
	}
	if ((xpk = X509_PUBKEY_new()) == NULL ||
	    (kb = OPENSSL_memdup(key_bits, key_bits_len)) == NULL)
		goto out;
	if (!X509_PUBKEY_set0_param(xpk, OBJ_nid2obj(alg_nid), ptype,
	    pval, kb, (int)key_bits_len))
		goto out;
	kb = NULL;  /* owned by xpk */
	if ((len = i2d_X509_PUBKEY(xpk, &d)) <= 0)
		goto out;
	if ((*der = malloc((size_t)len)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	memcpy(*der, d, (size_t)len);
	*derlen = (size_t)len;
	rc = 0;
out:
	OPENSSL_free(d);
	OPENSSL_free(kb);
	X509_PUBKEY_free(xpk);
	return rc;
}

/*
 * What comes before the point in the canonical SPKI of an uncompressed
 * P-256 or P-384 key: the same bytes for every key of the curve, taken
 * from OpenSSL's own encoding of the curve's generator at start.
 */
static struct {
	uint8_t b[32];
	size_t len;
} ec_prefix[2];

static void
ec_prefix_init(int i, const EC_GROUP *group, int nid)
{
	uint8_t g[1 + 2 * 48], *der = NULL;
	size_t glen, len;

	if (group == NULL || (glen = EC_POINT_point2oct(group,
	    EC_GROUP_get0_generator(group), POINT_CONVERSION_UNCOMPRESSED, g,
	    sizeof g, NULL)) == 0 ||
	    encode_spki(NID_X9_62_id_ecPublicKey, nid, g, glen, &der,
	    &len) != 0)
		return;
	if (len > glen && len - glen <= sizeof ec_prefix[i].b &&
	    memcmp(der + len - glen, g, glen) == 0) {
		memcpy(ec_prefix[i].b, der, len - glen);
		ec_prefix[i].len = len - glen;
	}
	free(der);
}

/* The canonical SPKI from the parts, and its fingerprint. */
static int
build_spki(pubkey_info *out)
{
	int i = out->type == PUBKEY_EC_P256 ? 0 : 1, rc;

	if ((out->type == PUBKEY_EC_P256 || out->type == PUBKEY_EC_P384) &&
	    ec_prefix[i].len > 0) {
		/* The key bits are the uncompressed point by now. */
		out->spki_len = ec_prefix[i].len + out->key_bits_len;
		if ((out->spki = malloc(out->spki_len)) == NULL)
			return SF_ENOMEM;
		memcpy(out->spki, ec_prefix[i].b, ec_prefix[i].len);
		memcpy(out->spki + ec_prefix[i].len, out->key_bits,
		    out->key_bits_len);
	} else if ((rc = encode_spki(out->alg_nid, out->curve_nid,
	    out->key_bits, out->key_bits_len, &out->spki,
	    &out->spki_len)) != 0)
		return rc;
	return pubkey_sha256(out->spki, out->spki_len, out->sha256);
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
from_parts(const SF_SPKI *spki, pubkey_info *out, char *why, size_t whylen)
{
	const ASN1_OBJECT *aobj = NULL;
	const unsigned char *kb;
	char buf[80];
	int kblen, rc;

	memset(out, 0, sizeof *out);
	pthread_once(&init_once, init);
	if (spki == NULL || spki->alg == NULL || spki->key == NULL ||
	    (kb = ASN1_STRING_get0_data(spki->key)) == NULL ||
	    (kblen = ASN1_STRING_length(spki->key)) <= 0) {
		sf_why(why, whylen, "no public key");
		return SF_EINVAL;
	}
	X509_ALGOR_get0(&aobj, NULL, NULL, spki->alg);
	out->alg_nid = OBJ_obj2nid(aobj);
	out->curve_nid = NID_undef;
	switch (out->alg_nid) {
	case NID_X9_62_id_ecPublicKey:
		rc = take_ec(spki->alg, kb, (size_t)kblen, out, why, whylen);
		break;
	case NID_rsaEncryption:
		rc = take_rsa(kb, (size_t)kblen, out, why, whylen);
		break;
	case NID_ED25519:
		rc = take_ed25519(spki->alg, kb, (size_t)kblen, out, why,
		    whylen);
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
	SF_SPKI *spki = NULL;
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
	if ((spki = d2i_SF_SPKI(NULL, &p, (long)len)) == NULL) {
		sf_why(why, whylen, "not a DER SubjectPublicKeyInfo");
		goto out;
	}
	/* Exact parsing: whatever follows is not ours to ignore. */
	if (p != der + len) {
		sf_why(why, whylen, "%zu trailing byte(s) after the "
		    "SubjectPublicKeyInfo", (size_t)(der + len - p));
		goto out;
	}
	rc = from_parts(spki, out, why, whylen);
out:
	SF_SPKI_free(spki);
	return rc;
}

int
pubkey_from_sf_spki(const SF_SPKI *spki, pubkey_info *out, char *why,
    size_t whylen)
{
	return finish(from_parts(spki, out, why, whylen), out);
}

int
pubkey_from_spki(const uint8_t *der, size_t len, pubkey_info *out,
    char *why, size_t whylen)
{
	return finish(from_der(der, len, out, why, whylen), out);
}

/* The parts of a checked key as an EVP_PKEY, with no decoder. */
int
pubkey_evp(const pubkey_info *pk, EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	sf_rsa_pub_bn *ne = NULL;
	const unsigned char *p;
	EVP_PKEY *tmpl;
	int rc = SF_ECRYPTO;

	*out = NULL;
	if (pk == NULL || pk->key_bits == NULL)
		return SF_EINVAL;
	pthread_once(&init_once, init);
	switch (pk->type) {
	case PUBKEY_ED25519:
		*out = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL,
		    pk->key_bits, pk->key_bits_len);
		return *out ? 0 : SF_ECRYPTO;
	case PUBKEY_EC_P256:
	case PUBKEY_EC_P384:
		/* The point goes in as EC_KEY_oct2key: checked on the curve. */
		tmpl = pk->type == PUBKEY_EC_P256 ? tmpl_p256 : tmpl_p384;
		if (tmpl == NULL || (*out = EVP_PKEY_dup(tmpl)) == NULL ||
		    EVP_PKEY_set_octet_string_param(*out,
		    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pk->key_bits,
		    pk->key_bits_len) != 1)
			goto out;
		rc = 0;
		goto out;
	}
	if (pk->alg_nid != NID_rsaEncryption) {
		rc = SF_EINVAL;
		goto out;
	}
	p = pk->key_bits;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    (ne = (sf_rsa_pub_bn *)ASN1_item_d2i(NULL, &p,
	    (long)pk->key_bits_len, ASN1_ITEM_rptr(sf_rsa_pub_bn))) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, ne->n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ne->e) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	rc = 0;
out:
	ASN1_item_free((ASN1_VALUE *)ne, ASN1_ITEM_rptr(sf_rsa_pub_bn));
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	if (rc != 0) {
		EVP_PKEY_free(*out);
		*out = NULL;
	}
	return rc;
}

int
pubkey_from_evp(EVP_PKEY *pk, pubkey_info *out, char *why, size_t whylen)
{
	unsigned char *der = NULL;
	int len, rc = SF_EINVAL;

	memset(out, 0, sizeof *out);
	/*
	 * One encode and one parse: simple, and the policy stays in one
	 * place. Keys OpenSSL decoded already (a certificate's, a token's)
	 * come here; CSRs and factory files do not.
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
