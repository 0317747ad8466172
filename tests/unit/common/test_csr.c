/*
 * Unit tests of common/csr.c: the four wrappings (PEM, DER, base64 of
 * either) give the same result; the checks fail in the documented order
 * with the documented codes (size, form, key policy, CN, signature
 * algorithm, signature); a key with a huge RSA exponent is refused before
 * any verification; MD5 and SHA-1 signatures are refused; extensions are
 * ignored; garbage and truncations never crash.
 *
 * Keys and requests are made here at run time with OpenSSL's X509_REQ API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "csr.h"
#include "err.h"
#include "pubkey.h"
#include "util.h"
#include "../../tap.h"

struct blob {
	uint8_t *p;
	size_t len;
};

static void
blob_free(struct blob *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

static EVP_PKEY *
gen(const char *alg, const char *curve, size_t bits)
{
	if (curve != NULL)
		return EVP_PKEY_Q_keygen(NULL, NULL, alg, curve);
	if (bits != 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, alg, bits);
	return EVP_PKEY_Q_keygen(NULL, NULL, alg);
}

enum { CSR_CA_EXT = 1, CSR_V2 = 2 };

/*
 * A CSR signed by key, whose subject is O=Automatra plus one CN per entry
 * of cns (NULL-terminated; cnlen[i] if given, for embedded NULs).
 */
static X509_REQ *
make_req(EVP_PKEY *key, const char *const *cns, const int *cnlen, int flags)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	int digest = !EVP_PKEY_is_a(key, "ED25519") &&
	    !EVP_PKEY_is_a(key, "ED448");

	X509_REQ_set_version(req, (flags & CSR_V2) ? 1 : X509_REQ_VERSION_1);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"Automatra", -1, -1, 0);
	/* A raw UTF8String: MBSTRING_* would refuse CNs over 64 itself. */
	for (int i = 0; cns && cns[i]; i++)
		X509_NAME_add_entry_by_NID(name, NID_commonName,
		    V_ASN1_UTF8STRING, (const unsigned char *)cns[i],
		    cnlen ? cnlen[i] : -1, -1, 0);
	X509_REQ_set_subject_name(req, name);
	X509_NAME_free(name);
	X509_REQ_set_pubkey(req, key);
	if (flags & CSR_CA_EXT) {
		STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();

		sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL,
		    NID_basic_constraints, "critical,CA:TRUE"));
		sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL,
		    NID_key_usage, "critical,keyCertSign,cRLSign"));
		X509_REQ_add_extensions(req, exts);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	if (X509_REQ_sign(req, key, digest ? EVP_sha256() : NULL) <= 0) {
		ERR_print_errors_fp(stdout);
		X509_REQ_free(req);
		return NULL;
	}
	return req;
}

static struct blob
der_of(X509_REQ *req)
{
	struct blob b = { NULL, 0 };
	unsigned char *der = NULL;
	int n;

	if (req == NULL || (n = i2d_X509_REQ(req, &der)) <= 0)
		return b;
	b.p = malloc((size_t)n);
	memcpy(b.p, der, (size_t)n);
	b.len = (size_t)n;
	OPENSSL_free(der);
	return b;
}

static struct blob
pem_of(X509_REQ *req, int newlabel)
{
	struct blob b = { NULL, 0 };
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *bm;

	if (newlabel)
		PEM_write_bio_X509_REQ_NEW(bio, req);
	else
		PEM_write_bio_X509_REQ(bio, req);
	BIO_get_mem_ptr(bio, &bm);
	b.p = malloc(bm->length + 1);
	memcpy(b.p, bm->data, bm->length);
	b.p[bm->length] = '\0';
	b.len = bm->length;
	BIO_free(bio);
	return b;
}

/* One-line base64, as the reference's device-csr header carries it. */
static struct blob
b64_of(const struct blob *in)
{
	struct blob b;

	b.p = malloc(in->len / 3 * 4 + 8);
	b.len = (size_t)EVP_EncodeBlock(b.p, in->p, (int)in->len);
	return b;
}

/* The key's own fingerprint, for comparison. */
static void
key_fp(EVP_PKEY *key, uint8_t fp[32])
{
	pubkey_info info;

	memset(fp, 0, 32);
	if (pubkey_from_evp(key, &info, NULL, 0) == 0)
		memcpy(fp, info.sha256, 32);
	pubkey_info_free(&info);
}

static int
parse(const struct blob *b, csr_info *ci, char *why, size_t whylen)
{
	return csr_parse(b->p, b->len, CSR_MAX_DEFAULT, ci, why, whylen);
}

static void
test_forms(void)
{
	static const char *const cn[] = { "1111", NULL };
	EVP_PKEY *key = gen("EC", "P-256", 0);
	X509_REQ *req = make_req(key, cn, NULL, 0);
	struct blob der = der_of(req), pem = pem_of(req, 0);
	struct blob newpem = pem_of(req, 1), b64pem = b64_of(&pem);
	struct blob b64der = b64_of(&der), padded, crlf;
	const struct { const char *name; struct blob *b; } forms[] = {
		{ "DER", &der }, { "PEM", &pem }, { "NEW PEM", &newpem },
		{ "base64 of PEM", &b64pem }, { "base64 of DER", &b64der },
		{ "padded PEM", &padded }, { "CRLF PEM", &crlf },
	};
	uint8_t fp[32], md[32];
	char why[256] = "";
	size_t n;

	if (der.p == NULL) {
		ok(0, "P-256 CSR made");
		return;
	}
	padded.p = (uint8_t *)sf_aprintf(" \r\n\t%s\n\n ", (char *)pem.p);
	padded.len = strlen((char *)padded.p);
	crlf.p = malloc(2 * pem.len + 1);
	crlf.len = 0;
	for (size_t i = 0; i < pem.len; i++) {
		if (pem.p[i] == '\n')
			crlf.p[crlf.len++] = '\r';
		crlf.p[crlf.len++] = pem.p[i];
	}
	key_fp(key, fp);
	n = 0;
	EVP_Q_digest(NULL, "SHA256", NULL, der.p, der.len, md, &n);
	ok(strncmp((char *)b64pem.p, "LS0tLS1CRUdJTi", 14) == 0,
	    "base64 of PEM looks like the reference's header");
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		csr_info ci;
		int rc = parse(forms[i].b, &ci, why, sizeof why);

		is_int(rc, 0, "%s: parses (%s)", forms[i].name, why);
		if (rc != 0)
			continue;
		is_str(ci.cn, "1111", "%s: CN", forms[i].name);
		ok(memcmp(ci.key.sha256, fp, 32) == 0,
		    "%s: key fingerprint is the key's", forms[i].name);
		ok(memcmp(ci.sha256, md, 32) == 0,
		    "%s: CSR fingerprint is SHA-256 of the DER", forms[i].name);
		is_int(ci.key.type, PUBKEY_EC_P256, "%s: key type",
		    forms[i].name);
		ok(ci.req != NULL, "%s: request kept", forms[i].name);
		csr_info_fini(&ci);
		ok(ci.req == NULL, "%s: fini zeroes req", forms[i].name);
		ok(ci.key.spki == NULL, "%s: fini zeroes key.spki",
		    forms[i].name);
		csr_info_fini(&ci);
	}
	csr_info_fini(NULL);

	/* Limits: exactly max_len passes, one more does not. */
	{
		csr_info ci;

		is_int(csr_parse(der.p, der.len, der.len, &ci, why, sizeof why),
		    0, "len == max_len accepted");
		csr_info_fini(&ci);
		is_int(csr_parse(der.p, der.len, der.len - 1, &ci, why,
		    sizeof why), SF_ETOOBIG, "len > max_len: SF_ETOOBIG");
		ok(strstr(why, "limit") != NULL, "why: %s", why);
		is_int(csr_parse(pem.p, pem.len, 100, &ci, why, sizeof why),
		    SF_ETOOBIG, "PEM over a small limit: SF_ETOOBIG");
	}

	blob_free(&der);
	blob_free(&pem);
	blob_free(&newpem);
	blob_free(&b64pem);
	blob_free(&b64der);
	blob_free(&padded);
	blob_free(&crlf);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

/* Expect a refusal with want and a why containing wantwhy. */
static void
refused(const char *label, const struct blob *b, int want,
    const char *wantwhy)
{
	char why[256] = "";
	csr_info ci;
	int rc = parse(b, &ci, why, sizeof why);

	is_int(rc, want, "%s: refused with %s", label, sf_strerror(want));
	ok(strstr(why, wantwhy) != NULL, "%s: why says \"%s\" (%s)", label,
	    wantwhy, why);
	ok(ci.req == NULL, "%s: nothing returned: req", label);
	ok(ci.key.spki == NULL, "%s: nothing returned: key.spki", label);
	is_str(ci.cn, "", "%s: nothing returned: cn", label);
	ok(ERR_peek_error() == 0, "%s: OpenSSL error queue clear", label);
	ERR_clear_error();
	csr_info_fini(&ci);
}

static void
test_signature(void)
{
	static const char *const cn[] = { "1111", NULL };
	EVP_PKEY *key = gen("EC", "P-256", 0);
	X509_REQ *req = make_req(key, cn, NULL, 0);
	struct blob der = der_of(req), pem, b64;
	uint8_t *p;

	/* The signature is the BIT STRING at the end of the DER. */
	der.p[der.len - 5] ^= 0x01;
	refused("flipped signature byte (DER)", &der, SF_EINVAL,
	    "self-signature does not verify");
	{
		const unsigned char *q = der.p;
		X509_REQ *bad = d2i_X509_REQ(NULL, &q, (long)der.len);

		pem = pem_of(bad, 0);
		b64 = b64_of(&pem);
		refused("flipped signature byte (PEM)", &pem, SF_EINVAL,
		    "self-signature");
		refused("flipped signature byte (base64 of PEM)", &b64,
		    SF_EINVAL, "self-signature");
		X509_REQ_free(bad);
		blob_free(&pem);
		blob_free(&b64);
	}
	der.p[der.len - 5] ^= 0x01;
	/* The subject changed after signing: "1111" becomes "1112". */
	p = memmem(der.p, der.len, "1111", 4);
	ok(p != NULL, "CN found in the DER");
	if (p != NULL) {
		p[3] = '2';
		refused("subject altered after signing", &der, SF_EINVAL,
		    "self-signature");
		p[3] = '1';
	}
	/* Another key's signature over the same request. */
	{
		EVP_PKEY *other = gen("EC", "P-256", 0);
		struct blob d2;

		X509_REQ_set_pubkey(req, other);
		d2 = der_of(req);
		refused("key swapped after signing", &d2, SF_EINVAL,
		    "self-signature");
		blob_free(&d2);
		EVP_PKEY_free(other);
	}
	blob_free(&der);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

static void
test_subjects(void)
{
	EVP_PKEY *key = gen("EC", "P-256", 0);
	static const char *const none[] = { NULL };
	static const char *const two[] = { "1111", "1112", NULL };
	static const struct { const char *cn; const char *label; } bad[] = {
		{ "a/b", "slash" },
		{ "../x", "dot-dot-slash" },
		{ "-x", "leading dash" },
		{ ".hidden", "leading dot" },
		{ "dev ice", "space" },
		{ "d\xc3\xa9v", "non-ASCII" },
		{ "a\nb", "newline" },
		{ "x;rm -rf", "shell characters" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		  "65 characters" },
	};
	X509_REQ *req;
	struct blob der;

	req = make_req(key, none, NULL, 0);
	der = der_of(req);
	refused("no CN", &der, SF_EINVAL, "no CN");
	blob_free(&der);
	X509_REQ_free(req);

	req = make_req(key, two, NULL, 0);
	der = der_of(req);
	refused("two CNs", &der, SF_EINVAL, "several CNs");
	blob_free(&der);
	X509_REQ_free(req);

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *cn[] = { bad[i].cn, NULL };

		req = make_req(key, cn, NULL, 0);
		der = der_of(req);
		refused(bad[i].label, &der, SF_EINVAL, "not a valid device id");
		blob_free(&der);
		X509_REQ_free(req);
	}
	{
		const char *cn[] = { "ab\0cd", NULL };
		const int len[] = { 5 };

		req = make_req(key, cn, len, 0);
		der = der_of(req);
		refused("CN with a NUL byte", &der, SF_EINVAL, "NUL");
		blob_free(&der);
		X509_REQ_free(req);
	}
	{
		const char *cn[] = { "ok-64.id_", NULL };
		char why[200] = "";
		csr_info ci;

		req = make_req(key, cn, NULL, 0);
		der = der_of(req);
		is_int(parse(&der, &ci, why, sizeof why), 0,
		    "O= plus a valid CN accepted (%s)", why);
		is_str(ci.cn, "ok-64.id_", "CN copied");
		csr_info_fini(&ci);
		blob_free(&der);
		X509_REQ_free(req);

		req = make_req(key, cn, NULL, CSR_V2);
		der = der_of(req);
		if (X509_REQ_get_version(req) == 1)
			refused("version 2 request", &der, SF_EINVAL,
			    "version");
		else
			tap_skip("cannot set CSR version 2");
		blob_free(&der);
		X509_REQ_free(req);
	}
	EVP_PKEY_free(key);
}

static void
test_keys(void)
{
	static const struct {
		const char *label, *alg, *curve;
		size_t bits;
		int want, type;
		const char *why;
	} k[] = {
		{ "Ed25519", "ED25519", NULL, 0, 0, PUBKEY_ED25519, NULL },
		{ "P-256", "EC", "P-256", 0, 0, PUBKEY_EC_P256, NULL },
		{ "P-384", "EC", "P-384", 0, 0, PUBKEY_EC_P384, NULL },
		{ "RSA-2048", "RSA", NULL, 2048, 0, PUBKEY_RSA_2048, NULL },
		{ "RSA-4096", "RSA", NULL, 4096, 0, PUBKEY_RSA_4096, NULL },
		{ "RSA-1024", "RSA", NULL, 1024, SF_EKEYTYPE, 0,
		  "RSA key of 1024 bits: below the 2048-bit minimum" },
		{ "P-521", "EC", "P-521", 0, SF_EKEYTYPE, 0, "secp521r1" },
		{ "Ed448", "ED448", NULL, 0, SF_EKEYTYPE, 0, "ED448" },
	};
	static const char *const cn[] = { "dev-42", NULL };

	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		EVP_PKEY *key = gen(k[i].alg, k[i].curve, k[i].bits);
		X509_REQ *req = key ? make_req(key, cn, NULL, 0) : NULL;
		struct blob der = der_of(req), pem;
		char why[256] = "";
		uint8_t fp[32];
		csr_info ci;
		int rc;

		if (der.p == NULL) {
			ok(0, "%s: CSR made", k[i].label);
			EVP_PKEY_free(key);
			X509_REQ_free(req);
			continue;
		}
		if (k[i].want != 0) {
			refused(k[i].label, &der, k[i].want, k[i].why);
			goto next;
		}
		key_fp(key, fp);
		rc = parse(&der, &ci, why, sizeof why);
		is_int(rc, 0, "%s CSR accepted (%s)", k[i].label, why);
		is_int(ci.key.type, k[i].type, "%s: key type", k[i].label);
		ok(memcmp(ci.key.sha256, fp, 32) == 0,
		    "%s: key fingerprint", k[i].label);
		is_str(ci.cn, "dev-42", "%s: CN", k[i].label);
		csr_info_fini(&ci);
		pem = pem_of(req, 0);
		is_int(parse(&pem, &ci, why, sizeof why), 0, "%s: PEM too",
		    k[i].label);
		csr_info_fini(&ci);
		blob_free(&pem);
next:
		blob_free(&der);
		X509_REQ_free(req);
		EVP_PKEY_free(key);
	}
	/* The key policy is checked before the signature. */
	{
		EVP_PKEY *key = gen("EC", "P-521", 0);
		X509_REQ *req = make_req(key, cn, NULL, 0);
		struct blob der = der_of(req);

		der.p[der.len - 3] ^= 0x10;
		refused("P-521 with a bad signature", &der, SF_EKEYTYPE,
		    "only P-256 and P-384");
		blob_free(&der);
		X509_REQ_free(req);
		EVP_PKEY_free(key);
	}
}

/* A key OpenSSL cannot decode: an EC point moved off the curve. */
static void
test_bad_point(void)
{
	static const char *const cn[] = { "1111", NULL };
	EVP_PKEY *key = gen("EC", "P-256", 0);
	X509_REQ *req = make_req(key, cn, NULL, 0);
	struct blob der = der_of(req);
	pubkey_info info;
	uint8_t *p = NULL;

	pubkey_from_evp(key, &info, NULL, 0);
	if (info.key_bits != NULL)
		p = memmem(der.p, der.len, info.key_bits, info.key_bits_len);
	ok(p != NULL, "EC point found in the CSR");
	if (p != NULL) {
		p[info.key_bits_len - 1] ^= 1;
		refused("point off the curve", &der, SF_EINVAL,
		    "not a point on");
	}
	pubkey_info_free(&info);
	blob_free(&der);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

static void
test_extensions(void)
{
	static const char *const cn[] = { "1111", NULL };
	EVP_PKEY *key = gen("EC", "P-256", 0);
	X509_REQ *req = make_req(key, cn, NULL, CSR_CA_EXT);
	struct blob der = der_of(req);
	STACK_OF(X509_EXTENSION) *exts;
	char why[200] = "";
	csr_info ci;

	exts = X509_REQ_get_extensions(req);
	is_int(sk_X509_EXTENSION_num(exts), 2,
	    "the request does carry basicConstraints and keyUsage");
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	is_int(parse(&der, &ci, why, sizeof why), 0,
	    "CSR asking for CA:TRUE parses (%s)", why);
	is_str(ci.cn, "1111", "its CN");
	csr_info_fini(&ci);
	blob_free(&der);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

/* DER is never trimmed: find a request whose last byte is a blank. */
static void
test_der_blank_end(void)
{
	static const char *const cn[] = { "1111", NULL };
	EVP_PKEY *key = gen("EC", "P-256", 0);
	char why[200] = "";
	int found = 0;

	for (int i = 0; i < 3000 && !found; i++) {
		X509_REQ *req = make_req(key, cn, NULL, 0);
		struct blob der = der_of(req);
		csr_info ci;

		if (der.p[der.len - 1] == ' ' || der.p[der.len - 1] == '\n' ||
		    der.p[der.len - 1] == '\t' || der.p[der.len - 1] == '\r') {
			found = 1;
			is_int(parse(&der, &ci, why, sizeof why), 0,
			    "DER ending in a blank byte parses (%s)", why);
			csr_info_fini(&ci);
		}
		blob_free(&der);
		X509_REQ_free(req);
	}
	if (!found)
		tap_skip("no signature ended in a blank byte");
	EVP_PKEY_free(key);
}

static void
test_garbage(void)
{
	static const char *const cn[] = { "1111", NULL };
	EVP_PKEY *key = gen("EC", "P-256", 0);
	X509_REQ *req = make_req(key, cn, NULL, 0);
	struct blob der = der_of(req), pem = pem_of(req, 0), b64 = b64_of(&pem);
	struct blob t;
	char why[256];
	csr_info ci;
	int bad = 0, rc;

	for (size_t n = 0; n < der.len; n++) {
		rc = csr_parse(der.p, n, CSR_MAX_DEFAULT, &ci, why, sizeof why);
		bad += rc != SF_EINVAL || ci.req != NULL;
		csr_info_fini(&ci);
	}
	is_int(bad, 0, "every truncation of the DER: SF_EINVAL");
	bad = 0;
	/* pem.len - 1 drops only the final newline, which is fine. */
	for (size_t n = 0; n + 1 < pem.len; n++) {
		rc = csr_parse(pem.p, n, CSR_MAX_DEFAULT, &ci, why, sizeof why);
		bad += rc != SF_EINVAL;
		csr_info_fini(&ci);
	}
	is_int(bad, 0, "every truncation of the PEM: SF_EINVAL");
	bad = 0;
	for (size_t n = 0; n < b64.len; n++) {
		rc = csr_parse(b64.p, n, CSR_MAX_DEFAULT, &ci, why, sizeof why);
		/*
		 * Dropping a last group that encodes only the final newline
		 * leaves a whole PEM: that one must parse.
		 */
		if (pem.len % 3 == 1 && n == b64.len - 4)
			bad += rc != 0;
		else
			bad += rc != SF_EINVAL;
		csr_info_fini(&ci);
	}
	is_int(bad, 0, "every truncation of the base64 of PEM: SF_EINVAL");

	t.p = malloc(der.len + 1);
	memcpy(t.p, der.p, der.len);
	t.p[der.len] = 'x';
	t.len = der.len + 1;
	refused("DER plus a byte", &t, SF_EINVAL, "trailing");
	blob_free(&t);
	t.p = (uint8_t *)sf_aprintf("%sjunk\n", (char *)pem.p);
	t.len = strlen((char *)t.p);
	refused("PEM plus text", &t, SF_EINVAL, "follows the PEM");
	blob_free(&t);
	t.p = (uint8_t *)sf_aprintf("%s%s", (char *)pem.p, (char *)pem.p);
	t.len = strlen((char *)t.p);
	refused("two PEM requests", &t, SF_EINVAL, "follows the PEM");
	blob_free(&t);
	t.p = (uint8_t *)sf_aprintf("junk\n%s", (char *)pem.p);
	t.len = strlen((char *)t.p);
	refused("text before the PEM", &t, SF_EINVAL, "not a CSR");
	blob_free(&t);
	t.p = (uint8_t *)strdup((char *)pem.p);
	t.len = pem.len;
	memcpy(strstr((char *)t.p, "REQUEST"), "REQUESX", 7);
	refused("mismatched PEM labels", &t, SF_EINVAL, "PEM");
	blob_free(&t);
	{
		/* The same base64 body under another label. */
		const char *body = strchr((char *)pem.p, '\n') + 1;
		const char *end = strstr(body, "-----END");

		t.p = (uint8_t *)sf_aprintf("-----BEGIN CERTIFICATE-----\n"
		    "%.*s-----END CERTIFICATE-----\n", (int)(end - body), body);
		t.len = strlen((char *)t.p);
	}
	refused("a CERTIFICATE PEM label", &t, SF_EINVAL,
	    "not a \"CERTIFICATE REQUEST\"");
	blob_free(&t);
	t.p = (uint8_t *)strdup("");
	t.len = 0;
	refused("empty input", &t, SF_EINVAL, "empty");
	blob_free(&t);
	t.p = (uint8_t *)strdup("   \n\t ");
	t.len = 6;
	refused("only blanks", &t, SF_EINVAL, "");
	blob_free(&t);
	t.p = (uint8_t *)strdup("aGVsbG8gd29ybGQ=");  /* "hello world" */
	t.len = strlen((char *)t.p);
	refused("base64 of text", &t, SF_EINVAL, "base64 of neither");
	blob_free(&t);
	rc = csr_parse(NULL, 0, CSR_MAX_DEFAULT, &ci, NULL, 0);
	is_int(rc, SF_EINVAL, "NULL input, NULL why: SF_EINVAL");

	/* Random bytes, random bytes behind each wrapper's start. */
	bad = 0;
	for (int i = 0; i < 3000; i++) {
		uint8_t r[600];
		size_t n = 1 + (size_t)(rand() % (int)sizeof r), off = 0;

		for (size_t k = 0; k < n; k++)
			r[k] = (uint8_t)rand();
		switch (i % 4) {
		case 0:
			r[0] = 0x30;
			if (n > 3) {
				r[1] = 0x82;
				r[2] = (uint8_t)((n - 4) >> 8);
				r[3] = (uint8_t)(n - 4);
			}
			break;
		case 1:
			off = (size_t)snprintf((char *)r, sizeof r,
			    "-----BEGIN CERTIFICATE REQUEST-----\n");
			for (size_t k = off; k < n; k++)
				r[k] = (uint8_t)"ABCDEFGHIJKLMNOPQRSTUVWXYZab"
				    "cdefghijklmnopqrstuvwxyz0123456789+/=\n-"
				    [rand() % 67];
			break;
		case 2:
			/* A valid DER request with random bytes changed. */
			n = der.len;
			memcpy(r, der.p, n);
			for (int k = 0; k < 1 + rand() % 4; k++)
				r[rand() % (int)n] ^= (uint8_t)(1 + rand() % 255);
			break;
		}
		rc = csr_parse(r, n, CSR_MAX_DEFAULT, &ci, why, sizeof why);
		/* A changed byte may fall in ignored space; all else fails. */
		bad += !(rc == SF_EINVAL || rc == SF_EKEYTYPE ||
		    (rc == 0 && i % 4 == 2));
		csr_info_fini(&ci);
	}
	is_int(bad, 0, "3000 random and mutated inputs: refused, no crash");
	ok(ERR_peek_error() == 0, "error queue clear after all of it");

	blob_free(&der);
	blob_free(&pem);
	blob_free(&b64);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

/*
 * An RSA key of bits with a public exponent of ebits bits: p and q from
 * an ordinary key, e random and prime to phi, d its inverse. OpenSSL's
 * key generation refuses such an e (SP 800-56B); its verification does
 * not, for moduli up to 3072 bits, and pays for every bit of e.
 */
static EVP_PKEY *
huge_exponent_key(size_t bits, int ebits)
{
	EVP_PKEY *base = gen("RSA", NULL, bits), *out = NULL;
	BIGNUM *n = NULL, *p = NULL, *q = NULL, *e = BN_new(), *d = BN_new();
	BIGNUM *p1 = BN_new(), *q1 = BN_new(), *phi = BN_new();
	BIGNUM *g = BN_new(), *dp = BN_new(), *dq = BN_new(), *qi = BN_new();
	BN_CTX *bc = BN_CTX_new();
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;

	if (!base || !e || !d || !p1 || !q1 || !phi || !g || !dp || !dq ||
	    !qi || !bc ||
	    !EVP_PKEY_get_bn_param(base, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(base, OSSL_PKEY_PARAM_RSA_FACTOR1, &p) ||
	    !EVP_PKEY_get_bn_param(base, OSSL_PKEY_PARAM_RSA_FACTOR2, &q) ||
	    !BN_sub(p1, p, BN_value_one()) || !BN_sub(q1, q, BN_value_one()) ||
	    !BN_mul(phi, p1, q1, bc))
		goto out;
	do {
		if (!BN_rand(e, ebits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) ||
		    !BN_gcd(g, e, phi, bc))
			goto out;
	} while (!BN_is_one(g));
	if (!BN_mod_inverse(d, e, phi, bc) || !BN_mod(dp, d, p1, bc) ||
	    !BN_mod(dq, d, q1, bc) || !BN_mod_inverse(qi, q, p, bc))
		goto out;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	    qi) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &out, EVP_PKEY_KEYPAIR, params) <= 0)
		out = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_CTX_free(bc);
	BN_free(n); BN_free(p); BN_free(q); BN_free(e); BN_free(d);
	BN_free(p1); BN_free(q1); BN_free(phi); BN_free(g);
	BN_free(dp); BN_free(dq); BN_free(qi);
	EVP_PKEY_free(base);
	return out;
}

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Mean microseconds of n calls of what (0: csr_parse of b, 1: its
 * X509_REQ_verify alone). */
static double
time_us(int what, const struct blob *b, X509_REQ *req, EVP_PKEY *key, int n)
{
	int64_t t0 = mono_us();
	csr_info ci;

	for (int i = 0; i < n; i++) {
		if (what == 0) {
			(void)parse(b, &ci, NULL, 0);
			csr_info_fini(&ci);
		} else
			(void)X509_REQ_verify(req, key);
	}
	ERR_clear_error();
	return (double)(mono_us() - t0) / n;
}

/*
 * A 3072-bit RSA key whose public exponent has 3000 bits: verifying its
 * self-signature costs a private-key operation. The policy refuses the
 * key first: with a valid signature, with a broken one (the same refusal
 * shows the signature was never looked at), and at a cost that is a
 * small fraction of the one verification it saves.
 */
static void
test_huge_exponent(void)
{
	static const char *const cn[] = { "dev-huge", NULL };
	EVP_PKEY *key = huge_exponent_key(3072, 3000);
	X509_REQ *req = key ? make_req(key, cn, NULL, 0) : NULL;
	struct blob der = der_of(req);
	double parse_us, verify_us;

	ok(req != NULL, "a CSR for RSA-3072 with a 3000-bit exponent");
	if (req == NULL)
		goto out;
	ok(X509_REQ_verify(req, key) == 1,
	    "  its self-signature is valid (OpenSSL verifies it)");
	refused("RSA-3072, 3000-bit exponent", &der, SF_EKEYTYPE,
	    "RSA public exponent of 3000 bits: at most 256 are accepted");
	der.p[der.len - 7] ^= 0x01;
	refused("the same with a broken signature", &der, SF_EKEYTYPE,
	    "public exponent");
	der.p[der.len - 7] ^= 0x01;
	verify_us = time_us(1, &der, req, key, 5);
	parse_us = time_us(0, &der, req, key, 50);
	tap_diag("huge exponent: one X509_REQ_verify %.0f us; csr_parse's"
	    " refusal %.0f us", verify_us, parse_us);
	/* Under ThreadSanitizer our code is instrumented and OpenSSL's
	 * verification is not: the ratio says nothing there. */
#if defined(__SANITIZE_THREAD__)
	tap_skip("cost ratio: ThreadSanitizer build");
#else
	ok(parse_us * 5 < verify_us, "  refused at under a fifth of one"
	    " verification's cost (%.0f us vs %.0f us)", parse_us, verify_us);
#endif
out:
	blob_free(&der);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

/* A CSR for key signed with md (NULL: the key's default), RSA-PSS when
 * pss (its hash md, or SHA-1 by default when md is NULL). */
static X509_REQ *
make_req_md(EVP_PKEY *key, const EVP_MD *md, int pss)
{
	static const char *const cn[] = { "dev-md", NULL };
	X509_REQ *req = make_req(key, cn, NULL, 0);
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = req && mctx && EVP_DigestSignInit(mctx, &pctx, md, NULL,
	    key) == 1;

	if (ok && pss)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PSS_PADDING) > 0;
	if (!ok || X509_REQ_sign_ctx(req, mctx) <= 0) {
		ERR_print_errors_fp(stdout);
		X509_REQ_free(req);
		req = NULL;
	}
	EVP_MD_CTX_free(mctx);
	return req;
}

static void
test_weak_signatures(void)
{
	EVP_PKEY *rsa = gen("RSA", NULL, 2048), *ec = gen("EC", "P-256", 0);
	static const struct {
		const char *label;
		int rsa, pss;
		const char *md, *want;
	} c[] = {
		{ "md5WithRSAEncryption", 1, 0, "MD5", "MD5" },
		{ "sha1WithRSAEncryption", 1, 0, "SHA1", "SHA1" },
		{ "ecdsa-with-SHA1", 0, 0, "SHA1", "SHA1" },
		{ "RSASSA-PSS with SHA-1", 1, 1, "SHA1", "SHA1" },
		{ "sha256WithRSAEncryption", 1, 0, "SHA256", NULL },
		{ "ecdsa-with-SHA384", 0, 0, "SHA384", NULL },
		{ "RSASSA-PSS with SHA-256", 1, 1, "SHA256", NULL },
	};

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		EVP_MD *md = EVP_MD_fetch(NULL, c[i].md, NULL);
		X509_REQ *req = md ? make_req_md(c[i].rsa ? rsa : ec, md,
		    c[i].pss) : NULL;
		struct blob der = der_of(req);
		char why[256] = "";
		csr_info ci;
		int rc;

		ok(req != NULL, "a CSR signed with %s", c[i].label);
		if (req != NULL && c[i].want != NULL)
			refused(c[i].label, &der, SF_EINVAL, c[i].want);
		else if (req != NULL) {
			rc = parse(&der, &ci, why, sizeof why);
			is_int(rc, 0, "%s: accepted (%s)", c[i].label, why);
			csr_info_fini(&ci);
		}
		if (req != NULL && c[i].want != NULL) {
			rc = parse(&der, &ci, why, sizeof why);
			ok(strstr(why, "are refused") != NULL, "%s: why names"
			    " the rule (%s)", c[i].label, why);
			csr_info_fini(&ci);
		}
		blob_free(&der);
		X509_REQ_free(req);
		EVP_MD_free(md);
	}
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
}

/*
 * csr_parse reads the request with a template of its own and never lets
 * OpenSSL's decoder see the key; the reference is what it did before:
 * d2i_X509_REQ (whose key goes through the decoder), the key policy on
 * that decoded key (pubkey_from_evp) with the key bits as sent, one valid
 * CN, and csr_verify (weak algorithms, X509_REQ_verify). For every
 * one-bit change of a request, both must give the same verdict, and when
 * both accept, the same device id and key.
 */
static int
ref_parse(const uint8_t *der, size_t len, uint8_t fp[32], char cn[65])
{
	const unsigned char *p = der;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
	unsigned char *spki = NULL, *utf8 = NULL;
	const X509_NAME *subj;
	pubkey_info info;
	EVP_PKEY *pk;
	int ok = 0, idx, n;

	memset(&info, 0, sizeof info);
	if (req == NULL || p != der + len ||
	    X509_REQ_get_version(req) != X509_REQ_VERSION_1 ||
	    (pk = X509_REQ_get0_pubkey(req)) == NULL ||
	    pubkey_from_evp(pk, &info, NULL, 0) != 0 ||
	    (n = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &spki)) <= 0 ||
	    (size_t)n != info.spki_len || memcmp(spki, info.spki, info.spki_len))
		goto out;
	subj = X509_REQ_get_subject_name(req);
	if ((idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(subj, NID_commonName, idx) >= 0 ||
	    (n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
	    X509_NAME_get_entry(subj, idx)))) < 0 ||
	    memchr(utf8, '\0', (size_t)n) != NULL ||
	    !device_id_valid((const char *)utf8, NULL, 0) ||
	    csr_verify(req, pk, NULL, 0) != 0)
		goto out;
	memcpy(fp, info.sha256, 32);
	memcpy(cn, utf8, (size_t)n + 1);
	ok = 1;
out:
	OPENSSL_free(utf8);
	OPENSSL_free(spki);
	pubkey_info_free(&info);
	X509_REQ_free(req);
	ERR_clear_error();
	return ok;
}

static void
test_against_x509_req(void)
{
	static const struct {
		const char *label, *alg, *curve;
		size_t bits;
	} k[] = {
		{ "P-256", "EC", "P-256", 0 },
		{ "RSA-2048", "RSA", NULL, 2048 },
		{ "Ed25519", "ED25519", NULL, 0 },
	};
	static const char *const cn[] = { "dev-0042", NULL };

	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		EVP_PKEY *key = gen(k[i].alg, k[i].curve, k[i].bits);
		X509_REQ *req = key ? make_req(key, cn, NULL, CSR_CA_EXT) :
		    NULL;
		struct blob der = der_of(req);
		int differ = 0, accepted = 0;

		for (size_t bit = 0; bit < 8 * der.len; bit++) {
			char why[256], rcn[65];
			uint8_t fp[32];
			csr_info ci;
			int rc, ref;

			der.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			rc = csr_parse(der.p, der.len, CSR_MAX_DEFAULT, &ci,
			    why, sizeof why);
			ref = ref_parse(der.p, der.len, fp, rcn);
			if ((rc == 0) != ref || (ref && (memcmp(fp,
			    ci.key.sha256, 32) != 0 || strcmp(rcn, ci.cn)))) {
				if (differ++ < 5)
					tap_diag("%s: bit %zu: csr_parse %d (%s),"
					    " the X509_REQ path %s", k[i].label,
					    bit, rc, why, ref ? "accepts" :
					    "refuses");
			}
			accepted += rc == 0;
			csr_info_fini(&ci);
			der.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		ok(der.len > 0 && differ == 0, "%s: every one-bit change of "
		    "the CSR gets the X509_REQ path's verdict (%d of %zu "
		    "accepted)", k[i].label, accepted, 8 * der.len);
		blob_free(&der);
		X509_REQ_free(req);
		EVP_PKEY_free(key);
	}
}

int
main(void)
{
	srand(4242);
	test_forms();
	test_signature();
	test_subjects();
	test_keys();
	test_huge_exponent();
	test_weak_signatures();
	test_bad_point();
	test_extensions();
	test_der_blank_end();
	test_garbage();
	test_against_x509_req();
	return tap_done();
}
