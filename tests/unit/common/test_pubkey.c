/*
 * Unit tests of common/pubkey.c: canonical SPKI and fingerprint (checked
 * against `openssl pkey`), compressed EC points, the device key policy
 * (accepted and refused types and sizes, RSA exponents, ROCA), malformed
 * DER, the text forms, and the device id syntax.
 *
 * Every key is generated here at run time; none is stored in the tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "err.h"
#include "pubkey.h"
#include "util.h"
#include "../../tap.h"

static char tmpdir[] = "/tmp/test_pubkey.XXXXXX";

static EVP_PKEY *
gen(const char *alg, const char *curve, size_t bits)
{
	EVP_PKEY *pk;

	if (curve != NULL)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, curve);
	else if (bits != 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, bits);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	if (pk == NULL) {
		tap_diag("cannot generate %s %s", alg, curve ? curve : "");
		ERR_print_errors_fp(stdout);
	}
	return pk;
}

/* i2d_PUBKEY into a malloc'd buffer. */
static uint8_t *
spki_of(EVP_PKEY *pk, size_t *len)
{
	unsigned char *der = NULL;
	uint8_t *out;
	int n;

	*len = 0;
	if (pk == NULL || (n = i2d_PUBKEY(pk, &der)) <= 0)
		return NULL;
	if ((out = malloc((size_t)n)) != NULL) {
		memcpy(out, der, (size_t)n);
		*len = (size_t)n;
	}
	OPENSSL_free(der);
	return out;
}

static void
sha256(const uint8_t *d, size_t len, uint8_t md[32])
{
	size_t n = 0;

	EVP_Q_digest(NULL, "SHA256", NULL, d, len, md, &n);
}

/*
 * SHA-256 of what `openssl pkey -pubin -outform DER` writes for this SPKI
 * (with extra options appended). 0 on success.
 */
static int
openssl_fp(const uint8_t *der, size_t len, const char *extra, uint8_t md[32])
{
	char in[300], out[300], cmd[1024];
	uint8_t *buf = NULL;
	size_t n;
	int rc = -1;

	snprintf(in, sizeof in, "%s/in.der", tmpdir);
	snprintf(out, sizeof out, "%s/out.der", tmpdir);
	if (sf_write_file(in, der, len, 0600) != 0)
		return -1;
	snprintf(cmd, sizeof cmd, "openssl pkey -pubin -inform DER -in %s "
	    "-outform DER -out %s %s", in, out, extra ? extra : "");
	if (system(cmd) != 0)
		goto out;
	if (sf_read_file(out, 1 << 20, &buf, &n) != 0)
		goto out;
	sha256(buf, n, md);
	rc = 0;
out:
	free(buf);
	unlink(in);
	unlink(out);
	return rc;
}

/* Parse pk's SPKI; return the code, keep the info in *info on success. */
static int
parse_key(EVP_PKEY *pk, pubkey_info *info, char *why, size_t whylen)
{
	size_t len;
	uint8_t *der = spki_of(pk, &len);
	int rc;

	if (der == NULL)
		return 999;
	rc = pubkey_from_spki(der, len, info, why, whylen);
	free(der);
	return rc;
}

static void
test_accepted(const char *label, const char *alg, const char *curve,
    size_t bits, int want_type, int want_bits, int want_alg, int want_curve)
{
	EVP_PKEY *pk = gen(alg, curve, bits);
	pubkey_info info, info2;
	uint8_t *der, md[32];
	char why[256] = "", hex[65], hex2[65];
	size_t len;
	int rc;

	if (pk == NULL) {
		ok(0, "%s: key generated", label);
		return;
	}
	der = spki_of(pk, &len);
	rc = pubkey_from_spki(der, len, &info, why, sizeof why);
	is_int(rc, 0, "%s: accepted (%s)", label, why);
	if (rc != 0)
		goto out;
	is_int(info.type, want_type, "%s: type", label);
	is_str(pubkey_type_name(info.type), pubkey_type_name(want_type),
	    "%s: type name %s", label, pubkey_type_name(want_type));
	is_int(info.bits, want_bits, "%s: bits", label);
	is_int(info.alg_nid, want_alg, "%s: alg_nid", label);
	is_int(info.curve_nid, want_curve, "%s: curve_nid", label);
	ok(info.spki_len == len && memcmp(info.spki, der, len) == 0,
	    "%s: canonical SPKI is what i2d_PUBKEY writes", label);
	ok(info.key_bits_len > 0 && info.key_bits_len < info.spki_len &&
	    memcmp(info.spki + info.spki_len - info.key_bits_len,
	    info.key_bits, info.key_bits_len) == 0,
	    "%s: key_bits are the BIT STRING contents at the SPKI's end",
	    label);
	sha256(der, len, md);
	ok(memcmp(md, info.sha256, 32) == 0, "%s: fingerprint = SHA-256(SPKI)",
	    label);
	if (openssl_fp(der, len, NULL, md) == 0)
		ok(memcmp(md, info.sha256, 32) == 0, "%s: fingerprint = "
		    "SHA-256(openssl pkey -pubin -outform DER)", label);
	else
		ok(0, "%s: openssl pkey ran", label);
	rc = pubkey_from_evp(pk, &info2, why, sizeof why);
	is_int(rc, 0, "%s: pubkey_from_evp accepts", label);
	pubkey_fp_hex(info.sha256, hex);
	pubkey_fp_hex(info2.sha256, hex2);
	is_str(hex2, hex, "%s: pubkey_from_evp: same fingerprint", label);
	ok(strlen(hex) == 64 && strspn(hex, "0123456789abcdef") == 64,
	    "%s: hex is 64 lowercase digits", label);
	pubkey_info_free(&info2);
out:
	pubkey_info_free(&info);
	free(der);
	EVP_PKEY_free(pk);
}

static void
test_refused(const char *label, EVP_PKEY *pk, int want, const char *wantwhy)
{
	pubkey_info info;
	char why[256] = "";
	int rc;

	if (pk == NULL) {
		ok(0, "%s: key made", label);
		return;
	}
	rc = parse_key(pk, &info, why, sizeof why);
	is_int(rc, want, "%s: refused", label);
	ok(strstr(why, wantwhy) != NULL, "%s: why says \"%s\" (%s)", label,
	    wantwhy, why);
	ok(info.spki == NULL, "%s: *out zeroed: spki", label);
	ok(info.key_bits == NULL, "%s: *out zeroed: key_bits", label);
	is_int(info.type, 0, "%s: *out zeroed: type", label);
	ok(ERR_peek_error() == 0, "%s: OpenSSL error queue clear", label);
	ERR_clear_error();
	pubkey_info_free(&info);
	EVP_PKEY_free(pk);
}

/* An RSA public key from n and e alone (need not be a real key). */
static EVP_PKEY *
rsa_from(const BIGNUM *n, unsigned long e)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *be = BN_new();

	BN_set_word(be, e);
	if (b == NULL || !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_free(be);
	return pk;
}

static EVP_PKEY *
rsa_exp(int bits, unsigned long e)
{
	BIGNUM *n = BN_new();
	EVP_PKEY *pk;

	BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD);
	pk = rsa_from(n, e);
	BN_free(n);
	return pk;
}

static void
test_policy(void)
{
	EVP_PKEY *pk;

	test_accepted("P-256", "EC", "P-256", 0, PUBKEY_EC_P256, 256,
	    NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1);
	test_accepted("P-384", "EC", "P-384", 0, PUBKEY_EC_P384, 384,
	    NID_X9_62_id_ecPublicKey, NID_secp384r1);
	test_accepted("Ed25519", "ED25519", NULL, 0, PUBKEY_ED25519, 255,
	    NID_ED25519, NID_undef);
	test_accepted("RSA-2048", "RSA", NULL, 2048, PUBKEY_RSA_2048, 2048,
	    NID_rsaEncryption, NID_undef);
	test_accepted("RSA-3072", "RSA", NULL, 3072, PUBKEY_RSA_3072, 3072,
	    NID_rsaEncryption, NID_undef);
	test_accepted("RSA-4096", "RSA", NULL, 4096, PUBKEY_RSA_4096, 4096,
	    NID_rsaEncryption, NID_undef);
	test_accepted("RSA-2560", "RSA", NULL, 2560, PUBKEY_RSA_OTHER, 2560,
	    NID_rsaEncryption, NID_undef);

	test_refused("RSA-1024", gen("RSA", NULL, 1024), SF_EKEYTYPE,
	    "RSA key of 1024 bits: below the 2048-bit minimum");
	test_refused("RSA-2047", rsa_exp(2047, 65537), SF_EKEYTYPE,
	    "RSA key of 2047 bits");
	test_refused("RSA-8200", rsa_exp(8200, 65537), SF_EKEYTYPE,
	    "above the 8192-bit maximum");
	test_refused("RSA e=3", rsa_exp(2048, 3), SF_EKEYTYPE,
	    "exponent 3");
	test_refused("RSA e=65536", rsa_exp(2048, 65536), SF_EKEYTYPE,
	    "exponent 65536");
	test_refused("RSA e=65538", rsa_exp(2048, 65538), SF_EKEYTYPE,
	    "must be odd");
	pk = rsa_exp(8192, 65537);
	{
		pubkey_info info;
		char why[200] = "";

		is_int(parse_key(pk, &info, why, sizeof why), 0,
		    "RSA-8192 (from n, e) accepted (%s)", why);
		is_int(info.type, PUBKEY_RSA_OTHER, "RSA-8192 is RSA_OTHER");
		pubkey_info_free(&info);
		EVP_PKEY_free(pk);
	}
	test_refused("P-521", gen("EC", "P-521", 0), SF_EKEYTYPE,
	    "EC key on curve secp521r1");
	test_refused("secp256k1", gen("EC", "secp256k1", 0), SF_EKEYTYPE,
	    "secp256k1");
	test_refused("brainpoolP256r1", gen("EC", "brainpoolP256r1", 0),
	    SF_EKEYTYPE, "brainpoolP256r1");
	test_refused("Ed448", gen("ED448", NULL, 0), SF_EKEYTYPE,
	    "key algorithm ED448 is not accepted");
	test_refused("X25519", gen("X25519", NULL, 0), SF_EKEYTYPE,
	    "X25519");
	{
		/* EVP_PKEY_Q_keygen knows no RSA-PSS. */
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS",
		    NULL);

		pk = NULL;
		if (ctx && EVP_PKEY_keygen_init(ctx) > 0 &&
		    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) > 0)
			EVP_PKEY_keygen(ctx, &pk);
		EVP_PKEY_CTX_free(ctx);
		test_refused("RSA-PSS", pk, SF_EKEYTYPE, "RSASSA-PSS");
	}
	pk = gen("EC", "P-256", 0);
	if (pk != NULL)
		EVP_PKEY_set_utf8_string_param(pk, OSSL_PKEY_PARAM_EC_ENCODING,
		    OSSL_PKEY_EC_ENCODING_EXPLICIT);
	test_refused("P-256 explicit parameters", pk, SF_EKEYTYPE,
	    "explicit curve parameters");
	{
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH",
		    NULL);
		OSSL_PARAM p[] = {
			OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
			    (char *)"ffdhe2048", 0),
			OSSL_PARAM_END,
		};

		pk = NULL;
		if (ctx && EVP_PKEY_keygen_init(ctx) > 0 &&
		    EVP_PKEY_CTX_set_params(ctx, p) > 0)
			EVP_PKEY_keygen(ctx, &pk);
		EVP_PKEY_CTX_free(ctx);
		test_refused("DH", pk, SF_EKEYTYPE, "not accepted");
	}
	{
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "DSA",
		    NULL), *kctx = NULL;
		EVP_PKEY *params = NULL;

		pk = NULL;
		if (ctx && EVP_PKEY_paramgen_init(ctx) > 0 &&
		    EVP_PKEY_CTX_set_dsa_paramgen_bits(ctx, 1024) > 0 &&
		    EVP_PKEY_paramgen(ctx, &params) > 0 &&
		    (kctx = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL)) &&
		    EVP_PKEY_keygen_init(kctx) > 0)
			EVP_PKEY_keygen(kctx, &pk);
		EVP_PKEY_CTX_free(kctx);
		EVP_PKEY_CTX_free(ctx);
		EVP_PKEY_free(params);
		test_refused("DSA", pk, SF_EKEYTYPE, "DSA");
	}
}

static void
test_compressed(const char *curve, size_t flen)
{
	EVP_PKEY *pk = gen("EC", curve, 0);
	pubkey_info u, c;
	uint8_t *ud = NULL, *cd = NULL, md[32];
	size_t ulen, clen;
	char why[200] = "";

	if (pk == NULL) {
		ok(0, "%s: key generated", curve);
		return;
	}
	ud = spki_of(pk, &ulen);
	EVP_PKEY_set_utf8_string_param(pk,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
	    OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED);
	cd = spki_of(pk, &clen);
	ok(cd && ud && clen == ulen - flen, "%s: compressed SPKI is %zu bytes "
	    "shorter", curve, flen);
	is_int(pubkey_from_spki(ud, ulen, &u, why, sizeof why), 0,
	    "%s uncompressed accepted", curve);
	is_int(pubkey_from_spki(cd, clen, &c, why, sizeof why), 0,
	    "%s compressed accepted (%s)", curve, why);
	ok(memcmp(u.sha256, c.sha256, 32) == 0,
	    "%s: compressed and uncompressed: same fingerprint", curve);
	ok(c.spki_len == ulen && memcmp(c.spki, ud, ulen) == 0,
	    "%s: canonical SPKI of the compressed key is the uncompressed one",
	    curve);
	ok(c.key_bits_len == 1 + 2 * flen && c.key_bits[0] == 4,
	    "%s: key_bits are the uncompressed point", curve);
	if (openssl_fp(cd, clen, "-ec_conv_form uncompressed", md) == 0)
		ok(memcmp(md, c.sha256, 32) == 0, "%s: equals openssl's "
		    "uncompressed re-encoding of the compressed key", curve);
	else
		ok(0, "%s: openssl pkey ran", curve);
	/* openssl keeps the point compressed unless told otherwise. */
	if (openssl_fp(cd, clen, NULL, md) == 0)
		ok(memcmp(md, c.sha256, 32) != 0, "%s: (openssl pkey alone "
		    "keeps it compressed: another hash)", curve);
	/* A point off the curve: flip a bit of x in the compressed form. */
	cd[clen - 1] ^= 1;
	pubkey_info_free(&c);
	{
		int rc = pubkey_from_spki(cd, clen, &c, why, sizeof why);

		/* Half of all x have a point; either way never a crash. */
		ok(rc == 0 || rc == SF_EINVAL, "%s: altered compressed x: "
		    "0 or SF_EINVAL (%d)", curve, rc);
	}
	ud[ulen - 1] ^= 1;
	pubkey_info_free(&u);
	is_int(pubkey_from_spki(ud, ulen, &u, why, sizeof why), SF_EINVAL,
	    "%s: uncompressed point off the curve: SF_EINVAL", curve);
	pubkey_info_free(&u);
	pubkey_info_free(&c);
	free(ud);
	free(cd);
	EVP_PKEY_free(pk);
}

static void
test_malformed(void)
{
	EVP_PKEY *pk = gen("EC", "P-256", 0);
	uint8_t *der, *buf;
	pubkey_info info;
	char why[200] = "";
	size_t len;
	int bad = 0, rc;

	der = spki_of(pk, &len);
	if (der == NULL) {
		ok(0, "P-256 SPKI");
		return;
	}
	buf = malloc(len + 1);
	memcpy(buf, der, len);
	buf[len] = 0;
	is_int(pubkey_from_spki(buf, len + 1, &info, why, sizeof why),
	    SF_EINVAL, "one trailing byte: SF_EINVAL");
	ok(strstr(why, "1 trailing byte(s)") != NULL, "why: %s", why);
	for (size_t n = 0; n < len; n++) {
		rc = pubkey_from_spki(der, n, &info, why, sizeof why);
		if (rc != SF_EINVAL || info.spki != NULL)
			bad++;
		pubkey_info_free(&info);
	}
	is_int(bad, 0, "every truncation of the SPKI: SF_EINVAL");
	ok(ERR_peek_error() == 0, "error queue clear after bad input");
	is_int(pubkey_from_spki(NULL, 0, &info, why, sizeof why), SF_EINVAL,
	    "NULL: SF_EINVAL");
	is_int(pubkey_from_spki((const uint8_t *)"garbage", 7, &info, NULL, 0),
	    SF_EINVAL, "garbage, why NULL: SF_EINVAL");
	/* Random bytes, and random bytes behind a SEQUENCE header. */
	bad = 0;
	for (int i = 0; i < 2000; i++) {
		uint8_t r[128];
		size_t n = 1 + (size_t)(rand() % (int)sizeof r);

		for (size_t k = 0; k < n; k++)
			r[k] = (uint8_t)rand();
		if (i % 2 == 0) {
			r[0] = 0x30;
			if (n > 1)
				r[1] = (uint8_t)(n - 2);
		}
		rc = pubkey_from_spki(r, n, &info, why, sizeof why);
		if (rc != SF_EINVAL && rc != SF_EKEYTYPE)
			bad++;
		pubkey_info_free(&info);
	}
	is_int(bad, 0, "2000 random inputs: all refused");
	/* Every single-byte flip of a valid SPKI: accepted or refused. */
	bad = 0;
	for (size_t k = 0; k < len; k++) {
		memcpy(buf, der, len);
		buf[k] ^= 0x55;
		rc = pubkey_from_spki(buf, len, &info, why, sizeof why);
		if (rc != 0 && rc != SF_EINVAL && rc != SF_EKEYTYPE)
			bad++;
		pubkey_info_free(&info);
	}
	is_int(bad, 0, "byte flips: only 0, SF_EINVAL or SF_EKEYTYPE");
	free(buf);
	free(der);
	EVP_PKEY_free(pk);
	ERR_clear_error();
}

/* An RSA SPKI whose RSAPublicKey has junk after it inside the BIT STRING. */
static void
test_rsa_junk(void)
{
	EVP_PKEY *pk = gen("RSA", NULL, 2048);
	X509_PUBKEY *xpk = NULL, *x2 = X509_PUBKEY_new();
	const unsigned char *kb, *p;
	unsigned char *der = NULL, *kb2;
	uint8_t *spki;
	pubkey_info info;
	char why[200] = "";
	size_t len;
	int kblen, n;

	spki = spki_of(pk, &len);
	p = spki;
	xpk = d2i_X509_PUBKEY(NULL, &p, (long)len);
	X509_PUBKEY_get0_param(NULL, &kb, &kblen, NULL, xpk);
	kb2 = OPENSSL_malloc((size_t)kblen + 2);
	memcpy(kb2, kb, (size_t)kblen);
	kb2[kblen] = 0x05;
	kb2[kblen + 1] = 0x00;
	X509_PUBKEY_set0_param(x2, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL,
	    NULL, kb2, kblen + 2);
	n = i2d_X509_PUBKEY(x2, &der);
	is_int(pubkey_from_spki(der, (size_t)n, &info, why, sizeof why),
	    SF_EINVAL, "bytes after the RSAPublicKey: SF_EINVAL (%s)", why);
	pubkey_info_free(&info);
	OPENSSL_free(der);
	X509_PUBKEY_free(x2);
	X509_PUBKEY_free(xpk);
	free(spki);
	EVP_PKEY_free(pk);
	ERR_clear_error();
}

static void
test_text(void)
{
	EVP_PKEY *pk = gen("EC", "P-384", 0);
	pubkey_info a, b;
	char why[200] = "", *pem = NULL, *b64, *s;
	uint8_t *der;
	size_t len, pemlen;
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *bm;

	der = spki_of(pk, &len);
	if (der == NULL || bio == NULL) {
		ok(0, "P-384 key for text tests");
		return;
	}
	PEM_write_bio_PUBKEY(bio, pk);
	BIO_get_mem_ptr(bio, &bm);
	pemlen = bm->length;
	pem = malloc(pemlen + 32);
	memcpy(pem, bm->data, pemlen);
	pem[pemlen] = '\0';
	pubkey_from_spki(der, len, &a, why, sizeof why);

	is_int(pubkey_from_text(pem, pemlen, &b, why, sizeof why), 0,
	    "PEM PUBLIC KEY accepted (%s)", why);
	ok(memcmp(a.sha256, b.sha256, 32) == 0, "PEM: same fingerprint");
	pubkey_info_free(&b);

	/* Surrounding blanks, CRLF is the PEM reader's business. */
	s = sf_aprintf("  \n%s\n\n  ", pem);
	is_int(pubkey_from_text(s, strlen(s), &b, why, sizeof why), 0,
	    "PEM with surrounding blanks accepted");
	pubkey_info_free(&b);
	free(s);
	{
		/* CRLF line ends, as a file from another system has them. */
		char *crlf = malloc(2 * pemlen + 1), *q = crlf;

		for (const char *c = pem; *c; c++) {
			if (*c == '\n')
				*q++ = '\r';
			*q++ = *c;
		}
		*q = '\0';
		is_int(pubkey_from_text(crlf, strlen(crlf), &b, why,
		    sizeof why), 0, "PEM with CRLF accepted (%s)", why);
		ok(memcmp(a.sha256, b.sha256, 32) == 0, "CRLF: same "
		    "fingerprint");
		pubkey_info_free(&b);
		free(crlf);
	}
	s = sf_aprintf("%sextra", pem);
	is_int(pubkey_from_text(s, strlen(s), &b, why, sizeof why), SF_EINVAL,
	    "text after the PEM block: SF_EINVAL");
	free(s);
	s = strdup(pem);
	memcpy(strstr(s, "PUBLIC KEY"), "PUBLIC KEZ", 10);
	is_int(pubkey_from_text(s, strlen(s), &b, why, sizeof why), SF_EINVAL,
	    "mismatched PEM label: SF_EINVAL");
	free(s);
	s = sf_aprintf("-----BEGIN RSA PUBLIC KEY-----\n%.64s\n"
	    "-----END RSA PUBLIC KEY-----\n", strchr(pem, '\n') + 1);
	is_int(pubkey_from_text(s, strlen(s), &b, why, sizeof why), SF_EINVAL,
	    "another PEM label: SF_EINVAL");
	free(s);

	/* base64 DER, wrapped at 64 columns as the PEM body is. */
	b64 = strdup(strchr(pem, '\n') + 1);
	*strstr(b64, "-----END") = '\0';
	is_int(pubkey_from_text(b64, strlen(b64), &b, why, sizeof why), 0,
	    "base64 DER with newlines accepted (%s)", why);
	ok(memcmp(a.sha256, b.sha256, 32) == 0, "base64: same fingerprint");
	pubkey_info_free(&b);
	s = sf_aprintf(" \t%s\r\n", b64);
	is_int(pubkey_from_text(s, strlen(s), &b, why, sizeof why), 0,
	    "base64 with blanks around accepted");
	pubkey_info_free(&b);
	free(s);
	s = sf_aprintf("%s=", b64);
	is_int(pubkey_from_text(s, strlen(s), &b, why, sizeof why), SF_EINVAL,
	    "base64 with a stray '=': SF_EINVAL");
	free(s);
	s = strdup(b64);
	s[5] = '*';
	is_int(pubkey_from_text(s, strlen(s), &b, why, sizeof why), SF_EINVAL,
	    "base64 with a bad character: SF_EINVAL");
	free(s);
	s = strdup(b64);
	s[strlen(s) / 2] = '\0';
	is_int(pubkey_from_text(s, strlen(s), &b, why, sizeof why), SF_EINVAL,
	    "half the base64: SF_EINVAL");
	free(s);
	is_int(pubkey_from_text("hello world", 11, &b, why, sizeof why),
	    SF_EINVAL, "garbage: SF_EINVAL");
	is_int(pubkey_from_text("", 0, &b, why, sizeof why), SF_EINVAL,
	    "empty: SF_EINVAL");
	is_int(pubkey_from_text("  \n ", 4, &b, why, sizeof why), SF_EINVAL,
	    "only blanks: SF_EINVAL");
	is_int(pubkey_from_text("-----BEGIN PUBLIC KEY-----\nAAAA\n", 32, &b,
	    why, sizeof why), SF_EINVAL, "PEM without END: SF_EINVAL");
	ok(ERR_peek_error() == 0, "error queue clear after bad text");

	pubkey_info_free(&a);
	free(b64);
	free(pem);
	free(der);
	BIO_free(bio);
	EVP_PKEY_free(pk);
}

static const unsigned roca_primes[] = {
	11, 13, 17, 19, 37, 53, 61, 71, 73, 79, 97, 103, 107, 109, 127, 151,
	157, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251,
	257, 263, 269, 271, 277, 281, 283, 293, 307, 311, 313, 317, 331, 337,
	347, 349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, 419, 421,
	431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503,
	509, 521, 523, 541, 547, 557, 563, 569, 571, 577, 587, 593, 599, 601,
	607, 613, 617, 619, 631, 641, 643, 647, 653, 659, 661, 673, 677, 683,
	691, 701,
};
#define NPRIMES (sizeof roca_primes / sizeof roca_primes[0])

/*
 * A number whose residue mod every detector prime is a power of 65537 (by
 * the CRT), except mod primes[skip] when skip is not -1, where it is 0.
 * Then plus a multiple of the primes' product to reach bits, and odd.
 */
static BIGNUM *
roca_number(int skip, int bits)
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *m = BN_new(), *x = BN_new(), *mi = BN_new(), *t = BN_new();
	BIGNUM *p = BN_new(), *r = BN_new(), *g = BN_new(), *k = BN_new();

	BN_one(m);
	for (size_t i = 0; i < NPRIMES; i++) {
		BN_set_word(p, roca_primes[i]);
		BN_mul(m, m, p, ctx);
	}
	BN_zero(x);
	BN_set_word(g, 65537);
	for (size_t i = 0; i < NPRIMES; i++) {
		BN_set_word(p, roca_primes[i]);
		/* r = 65537^k mod p for a random k. */
		BN_set_word(k, (BN_ULONG)(rand() % 1000));
		BN_mod_exp(r, g, k, p, ctx);
		if ((int)i == skip)
			BN_zero(r);
		/* x += r * (m/p) * ((m/p)^-1 mod p) */
		BN_div(mi, NULL, m, p, ctx);
		BN_mod_inverse(t, mi, p, ctx);
		BN_mul(t, t, mi, ctx);
		BN_mul(t, t, r, ctx);
		BN_mod_add(x, x, t, m, ctx);
	}
	if (bits > 0) {
		/*
		 * The number congruent to x mod m just below a random target
		 * T in [3 * 2^(bits-2), 2^bits): still of exactly bits bits.
		 */
		BN_rand(t, bits, BN_RAND_TOP_TWO, BN_RAND_BOTTOM_ANY);
		BN_mod(r, t, m, ctx);
		BN_sub(t, t, r);
		BN_add(x, x, t);
		if (BN_num_bits(x) > bits)
			BN_sub(x, x, m);
		if (!BN_is_odd(x))
			BN_sub(x, x, m);  /* m is odd: flips parity only */
	}
	BN_free(m);
	BN_free(mi);
	BN_free(t);
	BN_free(p);
	BN_free(r);
	BN_free(g);
	BN_free(k);
	BN_CTX_free(ctx);
	return x;
}

static int
is_roca_bn(const BIGNUM *n)
{
	uint8_t buf[1100];
	int len = BN_bn2bin(n, buf);

	return pubkey_rsa_is_roca(buf, (size_t)len);
}

static void
test_roca(void)
{
	BIGNUM *n = roca_number(-1, 0), *one = BN_new();
	EVP_PKEY *pk;
	pubkey_info info;
	char why[200] = "";
	int flagged = 0;

	BN_one(one);
	is_int(is_roca_bn(n), 1, "CRT number in every subgroup: flagged");
	BN_add(n, n, one);
	/* mod 11, <65537> = {1, 10}: adding 1 gives 2 or 0. */
	is_int(is_roca_bn(n), 0, "the same plus one: not flagged");
	BN_free(n);
	for (size_t i = 0; i < NPRIMES; i += 16) {
		n = roca_number((int)i, 0);
		flagged += is_roca_bn(n);
		BN_free(n);
	}
	n = roca_number((int)NPRIMES - 1, 0);
	flagged += is_roca_bn(n);
	BN_free(n);
	is_int(flagged, 0, "out of one prime's subgroup (incl. the last, "
	    "701): not flagged");
	ok(!pubkey_rsa_is_roca(NULL, 0), "empty modulus: not flagged");

	/* As a key: 2048 bits, odd, through the whole policy. */
	n = roca_number(-1, 2048);
	is_int(BN_num_bits(n), 2048, "ROCA-like modulus has 2048 bits");
	is_int(is_roca_bn(n), 1, "and is still flagged after adding k*M");
	pk = rsa_from(n, 65537);
	is_int(parse_key(pk, &info, why, sizeof why), SF_EKEYTYPE,
	    "RSA-2048 key with the ROCA fingerprint: SF_EKEYTYPE");
	ok(strstr(why, "ROCA") != NULL, "why names ROCA (%s)", why);
	pubkey_info_free(&info);
	EVP_PKEY_free(pk);
	BN_free(n);

	/* Ordinary keys are not flagged. */
	flagged = 0;
	for (int i = 0; i < 4; i++) {
		EVP_PKEY *k = gen("RSA", NULL, 2048);
		BIGNUM *kn = NULL;

		if (k && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &kn))
			flagged += is_roca_bn(kn);
		else
			flagged += 100;
		BN_free(kn);
		EVP_PKEY_free(k);
	}
	is_int(flagged, 0, "four generated RSA keys: none flagged");
	/* Random odd numbers: a false positive would need all 97 residues. */
	flagged = 0;
	for (int i = 0; i < 2000; i++) {
		n = BN_new();
		BN_rand(n, 2048, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD);
		flagged += is_roca_bn(n);
		BN_free(n);
	}
	is_int(flagged, 0, "2000 random moduli: none flagged");
	BN_free(one);
}

static void
test_device_ids(void)
{
	char id65[66], id64[65], why[200];

	memset(id65, 'a', 65);
	id65[65] = '\0';
	memset(id64, '7', 64);
	id64[64] = '\0';
	ok(device_id_valid("1111", why, sizeof why), "1111");
	ok(device_id_valid("a", NULL, 0), "one letter (why NULL)");
	ok(device_id_valid("9", why, sizeof why), "one digit");
	ok(device_id_valid("Widget-01.eu_west", why, sizeof why),
	    "letters, digits, . _ -");
	ok(device_id_valid("a..b", why, sizeof why), "dots inside");
	ok(device_id_valid("a-", why, sizeof why), "trailing -");
	ok(device_id_valid(id64, why, sizeof why), "64 characters");

	ok(!device_id_valid("", why, sizeof why), "empty refused");
	ok(strstr(why, "empty") != NULL, "why: %s", why);
	ok(!device_id_valid(NULL, why, sizeof why), "NULL refused");
	ok(!device_id_valid(id65, why, sizeof why), "65 characters refused");
	ok(strstr(why, "65") != NULL, "why: %s", why);
	ok(!device_id_valid("-abc", why, sizeof why), "leading - refused");
	ok(strstr(why, "starts with '-'") != NULL, "why: %s", why);
	ok(!device_id_valid(".abc", why, sizeof why), "leading . refused");
	ok(!device_id_valid("_abc", why, sizeof why), "leading _ refused");
	ok(!device_id_valid("a/b", why, sizeof why), "slash refused");
	ok(strstr(why, "'/' at position 2") != NULL, "why: %s", why);
	ok(!device_id_valid("../x", why, sizeof why), "../x refused");
	ok(!device_id_valid("a b", why, sizeof why), "space refused");
	ok(!device_id_valid("a\tb", why, sizeof why), "tab refused");
	ok(!device_id_valid("dev\xc3\xa9", why, sizeof why),
	    "non-ASCII refused");
	ok(strstr(why, "0xc3") != NULL, "why: %s", why);
	ok(!device_id_valid("a\nb", why, sizeof why), "newline refused");
	ok(!device_id_valid("a:b", why, sizeof why), "colon refused");
	ok(!device_id_valid("a*", why, sizeof why), "star refused");
	ok(!device_id_valid("a\\b", why, sizeof why), "backslash refused");
}

static void
test_names(void)
{
	static const struct { int t; const char *n; } tn[] = {
		{ PUBKEY_EC_P256, "ec-p256" }, { PUBKEY_EC_P384, "ec-p384" },
		{ PUBKEY_RSA_2048, "rsa-2048" }, { PUBKEY_RSA_3072, "rsa-3072" },
		{ PUBKEY_RSA_4096, "rsa-4096" }, { PUBKEY_ED25519, "ed25519" },
	};

	for (size_t i = 0; i < sizeof tn / sizeof tn[0]; i++) {
		is_str(pubkey_type_name(tn[i].t), tn[i].n, "name of %d", tn[i].t);
		is_int(pubkey_type_parse(tn[i].n), tn[i].t, "parse %s", tn[i].n);
	}
	is_str(pubkey_type_name(PUBKEY_RSA_OTHER), "rsa", "RSA_OTHER name");
	is_str(pubkey_type_name(PUBKEY_NONE), "none", "NONE name");
	is_str(pubkey_type_name(42), "none", "unknown type name");
	is_int(pubkey_type_parse("rsa"), PUBKEY_NONE, "\"rsa\" does not parse");
	is_int(pubkey_type_parse("ec-p521"), PUBKEY_NONE, "unknown name");
	is_int(pubkey_type_parse(NULL), PUBKEY_NONE, "NULL name");
	pubkey_info_free(NULL);
}

/*
 * pubkey_from_spki parses the SPKI itself (no OpenSSL decoder); OpenSSL's
 * d2i_PUBKEY is the reference. For every one-bit change of a key's SPKI:
 * whatever we accept, the decoder accepts too, as the same key (its
 * i2d_PUBKEY is our canonical SPKI); and whatever the decoder accepts
 * that is canonical already and within the policy (P-256/P-384 with a
 * compressed or uncompressed point; RSA of 2048..8192 bits with an odd
 * exponent of 17..256 bits, not ROCA; Ed25519 with no parameters), we
 * accept.
 */
static int
policy_ok(EVP_PKEY *k)
{
	BIGNUM *n = NULL, *e = NULL;
	char group[32], form[32];
	int ok = 0;

	if (EVP_PKEY_is_a(k, "ED25519"))
		return 1;
	if (EVP_PKEY_is_a(k, "EC"))
		return EVP_PKEY_get_utf8_string_param(k,
		    OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) &&
		    (strcmp(group, "prime256v1") == 0 ||
		    strcmp(group, "secp384r1") == 0) &&
		    EVP_PKEY_get_utf8_string_param(k,
		    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, form,
		    sizeof form, NULL) && strcmp(form, "hybrid") != 0;
	if (EVP_PKEY_is_a(k, "RSA") && !EVP_PKEY_is_a(k, "RSA-PSS") &&
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) &&
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e)) {
		uint8_t buf[1024];
		int len = BN_bn2bin(n, buf);

		ok = BN_num_bits(n) >= 2048 && BN_num_bits(n) <= 8192 &&
		    BN_is_odd(e) && BN_num_bits(e) >= 17 &&
		    BN_num_bits(e) <= 256 && !pubkey_rsa_is_roca(buf,
		    (size_t)len);
	}
	BN_free(n);
	BN_free(e);
	return ok;
}

static void
test_against_decoder(const char *label, EVP_PKEY *pk)
{
	size_t len, n;
	uint8_t *der = spki_of(pk, &len), *ref;
	int ours_only = 0, theirs_only = 0, differ = 0, accepted = 0;

	if (der == NULL) {
		ok(0, "%s: SPKI made", label);
		return;
	}
	for (size_t bit = 0; bit < 8 * len; bit++) {
		const unsigned char *p = der;
		char why[200];
		pubkey_info info;
		EVP_PKEY *k;
		int rc, dec;

		der[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = pubkey_from_spki(der, len, &info, why, sizeof why);
		k = d2i_PUBKEY(NULL, &p, (long)len);
		dec = k != NULL && p == der + len;
		ref = dec ? spki_of(k, &n) : NULL;
		if (rc == 0) {
			accepted++;
			if (!dec)
				ours_only++;
			else if (ref == NULL || n != info.spki_len ||
			    memcmp(ref, info.spki, n) != 0)
				differ++;
		} else if (dec && ref != NULL && n == len &&
		    memcmp(ref, der, len) == 0 && policy_ok(k)) {
			theirs_only++;
			tap_diag("%s: bit %zu: refused (%s), OpenSSL decodes"
			    " it", label, bit, why);
		}
		free(ref);
		EVP_PKEY_free(k);
		pubkey_info_free(&info);
		der[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ERR_clear_error();
	}
	is_int(ours_only, 0, "%s: every bit flip we accept, OpenSSL's decoder"
	    " accepts (%d of %zu accepted)", label, accepted, 8 * len);
	is_int(differ, 0, "%s: ... as the same key", label);
	is_int(theirs_only, 0, "%s: every canonical bit flip the decoder "
	    "accepts within the policy, we accept", label);
	free(der);
}

static void
test_decoder_agrees(void)
{
	static const struct {
		const char *label, *alg, *curve;
		size_t bits;
	} k[] = {
		{ "P-256", "EC", "P-256", 0 },
		{ "P-384", "EC", "P-384", 0 },
		{ "RSA-2048", "RSA", NULL, 2048 },
		{ "Ed25519", "ED25519", NULL, 0 },
		{ "P-521", "EC", "P-521", 0 },
	};

	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		EVP_PKEY *pk = gen(k[i].alg, k[i].curve, k[i].bits);

		test_against_decoder(k[i].label, pk);
		EVP_PKEY_free(pk);
	}
}

int
main(void)
{
	srand(12345);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_policy();
	test_compressed("P-256", 32);
	test_compressed("P-384", 48);
	test_malformed();
	test_rsa_junk();
	test_text();
	test_roca();
	test_device_ids();
	test_names();
	test_decoder_agrees();
	rmdir(tmpdir);
	return tap_done();
}
