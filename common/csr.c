/*
 * csr.c - PKCS#10 requests as authz and the signer check them (see csr.h).
 *
 * Every form is brought down to DER and parsed with an ASN.1 template of
 * our own that reads exactly what X509_REQ's does (the same fields, types
 * and OPTIONAL attributes, the CertificationRequestInfo's encoding kept for
 * the signature), except that the SubjectPublicKeyInfo is SF_SPKI
 * (pubkey_int.h): d2i_X509_REQ would decode the key through OpenSSL 3.0's
 * provider decoders, which cost more than the rest of the request's checks
 * together (README, "Benchmarks"). The key is checked from its parts
 * (pubkey.c), made into an EVP_PKEY with EVP_PKEY_fromdata, and the
 * signature verified over the request info's DER with ASN1_item_verify_ex,
 * the call X509_REQ_verify makes. The PEM and base64 wrappers are undone
 * here (PEM_read_bio, strict base64), which keeps the decoders out of
 * that too.
 *
 * Nothing here logs: every refusal is the client's input, and the caller
 * logs it with the device id and the reason in why.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "csr.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "pubkey_int.h"

#define DER_SEQUENCE 0x30

/*
 * CertificationRequest (RFC 2986) as crypto/x509/x_req.c reads it: the
 * attributes OPTIONAL, because some requests leave the empty set out; the
 * info's encoding is kept (ASN1_SEQUENCE_enc), so the signature is
 * checked over the bytes received.
 */
typedef struct {
	ASN1_ENCODING enc;
	ASN1_INTEGER *version;
	X509_NAME *subject;
	SF_SPKI *spki;
	STACK_OF(X509_ATTRIBUTE) *attributes;
} SF_REQ_INFO;

ASN1_SEQUENCE_enc(SF_REQ_INFO, enc, NULL) = {
	ASN1_SIMPLE(SF_REQ_INFO, version, ASN1_INTEGER),
	ASN1_SIMPLE(SF_REQ_INFO, subject, X509_NAME),
	ASN1_SIMPLE(SF_REQ_INFO, spki, SF_SPKI),
	ASN1_IMP_SET_OF_OPT(SF_REQ_INFO, attributes, X509_ATTRIBUTE, 0)
} static_ASN1_SEQUENCE_END_ref(SF_REQ_INFO, SF_REQ_INFO)

struct csr_req {
	SF_REQ_INFO *info;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
};
typedef struct csr_req SF_REQ;

ASN1_SEQUENCE(SF_REQ) = {
	ASN1_SIMPLE(SF_REQ, info, SF_REQ_INFO),
	ASN1_SIMPLE(SF_REQ, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(SF_REQ, signature, ASN1_BIT_STRING)
} static_ASN1_SEQUENCE_END(SF_REQ)

static int
is_space(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\f' || ch == '\v';
}

static void
trim(const uint8_t **p, size_t *len)
{
	while (*len > 0 && is_space((*p)[0])) {
		(*p)++;
		(*len)--;
	}
	while (*len > 0 && is_space((*p)[*len - 1]))
		(*len)--;
}

static int
is_pem(const uint8_t *p, size_t len)
{
	return len >= 10 && memcmp(p, "-----BEGIN", 10) == 0;
}

/* The DER inside one PEM request block; *der is malloc'd. */
static int
unpem(const uint8_t *text, size_t len, uint8_t **der, size_t *derlen,
    char *why, size_t whylen)
{
	char *name = NULL, *header = NULL, *rest = NULL;
	unsigned char *data = NULL;
	long dlen = 0, restlen;
	BIO *bio = NULL;
	int rc = SF_EINVAL;

	*der = NULL;
	*derlen = 0;
	if (len > INT_MAX)
		goto out;
	if ((bio = BIO_new_mem_buf(text, (int)len)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	if (!PEM_read_bio(bio, &name, &header, &data, &dlen) || dlen <= 0) {
		sf_why(why, whylen, "malformed PEM block");
		goto out;
	}
	if (strcmp(name, PEM_STRING_X509_REQ) != 0 &&
	    strcmp(name, PEM_STRING_X509_REQ_OLD) != 0) {
		sf_why(why, whylen, "the PEM block is not a \"CERTIFICATE "
		    "REQUEST\"");
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
	/* Copied so that every buffer here is released with free(). */
	if ((*der = malloc((size_t)dlen)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	memcpy(*der, data, (size_t)dlen);
	*derlen = (size_t)dlen;
	rc = 0;
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return rc;
}

/*
 * Find the DER whatever the wrapping. *owned is what must be freed (NULL
 * when *der points into the caller's bytes).
 */
static int
unwrap(const uint8_t *data, size_t len, uint8_t **owned, const uint8_t **der,
    size_t *derlen, char *why, size_t whylen)
{
	uint8_t *b64 = NULL;
	size_t b64len;
	const uint8_t *p;
	int rc;

	*owned = NULL;
	/*
	 * DER before any trimming: its last bytes may well be blanks. No
	 * base64 of a CSR starts with '0' (0x30): that would encode 0xd0-0xd3.
	 */
	if (len > 0 && data[0] == DER_SEQUENCE) {
		*der = data;
		*derlen = len;
		return 0;
	}
	trim(&data, &len);
	if (is_pem(data, len)) {
		rc = unpem(data, len, owned, derlen, why, whylen);
		*der = *owned;
		return rc;
	}
	if ((rc = pubkey_b64_decode((const char *)data, len, &b64,
	    &b64len)) != 0) {
		if (rc == SF_EINVAL)
			sf_why(why, whylen, "not a CSR: neither PEM, DER "
			    "nor base64 of either");
		return rc;
	}
	if (b64[0] == DER_SEQUENCE) {
		*owned = b64;
		*der = b64;
		*derlen = b64len;
		return 0;
	}
	p = b64;
	trim(&p, &b64len);
	if (!is_pem(p, b64len)) {
		sf_why(why, whylen, "base64 of neither a PEM nor a DER "
		    "CSR");
		rc = SF_EINVAL;
	} else {
		rc = unpem(p, b64len, owned, derlen, why, whylen);
		*der = *owned;
	}
	free(b64);
	return rc;
}

/* The subject's one CN, which must be a device id, into cn. */
static int
take_cn(const X509_NAME *subj, char cn[DEVICE_ID_MAX + 1], char *why,
    size_t whylen)
{
	unsigned char *utf8 = NULL;
	char reason[160];
	int idx, n, rc = SF_EINVAL;

	if ((idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1)) < 0) {
		sf_why(why, whylen, "the CSR's subject has no CN");
		goto out;
	}
	if (X509_NAME_get_index_by_NID(subj, NID_commonName, idx) >= 0) {
		sf_why(why, whylen, "the CSR's subject has several CNs; "
		    "exactly one is accepted");
		goto out;
	}
	n = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
	if (n < 0) {
		sf_why(why, whylen, "the CSR's CN is not a string");
		goto out;
	}
	/* A NUL inside would cut the id short where we compare it. */
	if (memchr(utf8, '\0', (size_t)n) != NULL) {
		sf_why(why, whylen, "the CSR's CN contains a NUL byte");
		goto out;
	}
	if (!device_id_valid((const char *)utf8, reason, sizeof reason)) {
		sf_why(why, whylen, "the CSR's CN is not a valid device "
		    "id: %s", reason);
		goto out;
	}
	memcpy(cn, utf8, (size_t)n + 1);
	rc = 0;
out:
	OPENSSL_free(utf8);
	return rc;
}

/*
 * The signature algorithm of a request, refused when it hashes with MD5
 * or SHA-1 (or older): a collision lets one self-signature stand for
 * another request. RSASSA-PSS names its hash in its parameters, SHA-1
 * when they leave it out.
 */
static int
weak_sigalg(const X509_ALGOR *alg, char *why, size_t whylen)
{
	const ASN1_OBJECT *obj;
	const void *pval;
	RSA_PSS_PARAMS *pss = NULL;
	int ptype, nid, md = NID_undef, rc = 0;

	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	nid = OBJ_obj2nid(obj);
	if (nid == NID_rsassaPss) {
		md = NID_sha1;
		if (ptype == V_ASN1_SEQUENCE && (pss = ASN1_item_unpack(pval,
		    ASN1_ITEM_rptr(RSA_PSS_PARAMS))) != NULL &&
		    pss->hashAlgorithm)
			md = OBJ_obj2nid(pss->hashAlgorithm->algorithm);
		RSA_PSS_PARAMS_free(pss);
	} else if (!OBJ_find_sigid_algs(nid, &md, NULL))
		md = NID_undef;
	if (md == NID_md5 || md == NID_sha1 || md == NID_md4 ||
	    md == NID_md2 || md == NID_mdc2 || md == NID_ripemd160) {
		sf_why(why, whylen, "the CSR is signed with %s (%s): MD5 and"
		    " SHA-1 signatures are refused", OBJ_nid2sn(md),
		    OBJ_nid2ln(nid));
		rc = SF_EINVAL;
	}
	return rc;
}

int
csr_verify(X509_REQ *req, EVP_PKEY *pk, char *why, size_t whylen)
{
	const X509_ALGOR *alg;
	int rc;

	X509_REQ_get0_signature(req, NULL, &alg);
	if ((rc = weak_sigalg(alg, why, whylen)) != 0)
		return rc;
	if (pk == NULL || X509_REQ_verify(req, pk) != 1) {
		ERR_clear_error();
		sf_why(why, whylen, "the CSR's self-signature does not "
		    "verify");
		return SF_EINVAL;
	}
	return 0;
}

/* csr_verify for our own parse: what X509_REQ_verify does, on our info. */
static int
verify_req(const SF_REQ *req, EVP_PKEY *pk, char *why, size_t whylen)
{
	int rc;

	if ((rc = weak_sigalg(req->sig_alg, why, whylen)) != 0)
		return rc;
	if (ASN1_item_verify_ex(ASN1_ITEM_rptr(SF_REQ_INFO), req->sig_alg,
	    req->signature, req->info, NULL, pk, NULL, NULL) != 1) {
		ERR_clear_error();
		sf_why(why, whylen, "the CSR's self-signature does not "
		    "verify");
		return SF_EINVAL;
	}
	return 0;
}

/*
 * The cheap checks first, the signature last: a request whose key the
 * policy refuses (a huge RSA public exponent makes the verification cost
 * as much as a private-key operation) never gets as far as a verify.
 */
static int
parse_der(const uint8_t *der, size_t len, csr_info *out, char *why,
    size_t whylen)
{
	const unsigned char *p = der;
	EVP_PKEY *pk = NULL;
	SF_REQ *req = NULL;
	int rc = SF_EINVAL;

	if (len > LONG_MAX || (req = (SF_REQ *)ASN1_item_d2i(NULL, &p,
	    (long)len, ASN1_ITEM_rptr(SF_REQ))) == NULL) {
		sf_why(why, whylen, "not a PKCS#10 certificate request");
		goto out;
	}
	if (p != der + len) {
		sf_why(why, whylen, "%zu trailing byte(s) after the "
		    "certificate request", (size_t)(der + len - p));
		goto out;
	}
	if (ASN1_INTEGER_get(req->info->version) != X509_REQ_VERSION_1) {
		sf_why(why, whylen, "CSR version field %ld: only 0 "
		    "(version 1) is defined",
		    ASN1_INTEGER_get(req->info->version));
		goto out;
	}
	if ((rc = pubkey_from_sf_spki(req->info->spki, &out->key, why,
	    whylen)) != 0 ||
	    (rc = take_cn(req->info->subject, out->cn, why, whylen)) != 0)
		goto out;
	if ((rc = pubkey_evp(&out->key, &pk)) != 0) {
		sf_why(why, whylen, "the CSR's key cannot verify its "
		    "signature");
		goto out;
	}
	if ((rc = verify_req(req, pk, why, whylen)) != 0)
		goto out;
	if ((rc = pubkey_sha256(der, len, out->sha256)) != 0)
		goto out;
	out->req = req;
	req = NULL;  /* transferred */
out:
	EVP_PKEY_free(pk);
	ASN1_item_free((ASN1_VALUE *)req, ASN1_ITEM_rptr(SF_REQ));
	return rc;
}

int
csr_encode(const csr_info *ci, unsigned char **der)
{
	*der = NULL;
	if (ci == NULL || ci->req == NULL)
		return -1;
	return ASN1_item_i2d((const ASN1_VALUE *)ci->req, der,
	    ASN1_ITEM_rptr(SF_REQ));
}

int
csr_parse(const uint8_t *data, size_t len, size_t max_len, csr_info *out,
    char *why, size_t whylen)
{
	const uint8_t *der = NULL;
	uint8_t *owned = NULL;
	size_t derlen = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if (data == NULL)
		len = 0;
	if (len > max_len) {
		sf_why(why, whylen, "CSR of %zu bytes: over the %zu-byte "
		    "limit", len, max_len);
		rc = SF_ETOOBIG;
		goto out;
	}
	if (len == 0) {
		sf_why(why, whylen, "empty CSR");
		rc = SF_EINVAL;
		goto out;
	}
	if ((rc = unwrap(data, len, &owned, &der, &derlen, why, whylen)) != 0)
		goto out;
	rc = parse_der(der, derlen, out, why, whylen);
out:
	free(owned);
	if (rc != 0) {
		csr_info_fini(out);
		/* Bad input is the client's: leave OpenSSL's queue clean. */
		if (rc == SF_EINVAL || rc == SF_EKEYTYPE || rc == SF_ETOOBIG)
			ERR_clear_error();
		else
			log_openssl("csr_parse");
	}
	return rc;
}

void
csr_info_fini(csr_info *ci)
{
	if (ci == NULL)
		return;
	ASN1_item_free((ASN1_VALUE *)ci->req, ASN1_ITEM_rptr(SF_REQ));
	pubkey_info_free(&ci->key);
	memset(ci, 0, sizeof *ci);
}
