/*
 * csr_fixture.h - PKCS#10 requests for tests and fuzz seeds: a DER CSR for
 * a key with CN = a device id, optionally carrying what a hostile device
 * would ask for (a SAN, CA:TRUE, keyCertSign, serverAuth) so that a test
 * can check that none of it reaches a certificate.
 */
#ifndef SF_CSR_FIXTURE_H
#define SF_CSR_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Add what a hostile CSR asks for: a SAN, CA:TRUE, keyCertSign and
 * serverAuth. */
static int __attribute__((unused))
add_requests(X509_REQ *req)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509V3_CTX v3;
	static const char *const want[][2] = {
		{ "subjectAltName", "DNS:evil.example.com" },
		{ "basicConstraints", "critical,CA:TRUE" },
		{ "keyUsage", "critical,keyCertSign,cRLSign" },
		{ "extendedKeyUsage", "serverAuth" },
	};
	int okk = exts != NULL;

	X509V3_set_ctx(&v3, NULL, NULL, req, NULL, 0);
	for (size_t i = 0; okk && i < sizeof want / sizeof want[0]; i++) {
		X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3,
		    (char *)want[i][0], (char *)want[i][1]);

		okk = e && sk_X509_EXTENSION_push(exts, e);
		if (!okk)
			X509_EXTENSION_free(e);
	}
	okk = okk && X509_REQ_add_extensions(req, exts);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return okk;
}

/* A DER CSR for key with CN = id (and the hostile requests if asked),
 * OPENSSL_malloc'd into *der; 0 or -1. */
static int __attribute__((unused))
make_csr(EVP_PKEY *key, const char *id, int hostile, uint8_t **der,
    size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	unsigned char *d = NULL;
	int l = -1;

	if (req && n && key && X509_REQ_set_version(req, X509_REQ_VERSION_1) &&
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)id, -1, -1, 0) &&
	    X509_REQ_set_subject_name(req, n) && X509_REQ_set_pubkey(req, key) &&
	    (!hostile || add_requests(req)) &&
	    X509_REQ_sign(req, key, EVP_sha256()) > 0)
		l = i2d_X509_REQ(req, &d);
	X509_NAME_free(n);
	X509_REQ_free(req);
	*der = l > 0 ? d : NULL;
	*len = l > 0 ? (size_t)l : 0;
	return l > 0 ? 0 : -1;
}

#endif
