/*
 * ocspmsg.c - reading OCSP requests and writing error-only OCSP responses
 * (see ocspmsg.h), for the signer and authz alike.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "err.h"
#include "ocspmsg.h"
#include "util.h"

int
ocspmsg_req_parse(const uint8_t *der, size_t len, OCSP_REQUEST **out,
    char *why, size_t whylen)
{
	const unsigned char *p = der;
	OCSP_REQUEST *req = NULL;
	int n, rc = SF_EINVAL;

	*out = NULL;
	if (der == NULL || len == 0) {
		sf_why(why, whylen, "empty request");
		return SF_EINVAL;
	}
	if (len > OCSPMSG_MAX_REQUEST) {
		sf_why(why, whylen, "request of %zu bytes (at most %d)", len,
		    OCSPMSG_MAX_REQUEST);
		return SF_EINVAL;
	}
	if ((req = d2i_OCSP_REQUEST(NULL, &p, (long)len)) == NULL) {
		sf_why(why, whylen, "not the DER of an OCSPRequest");
		goto out;
	}
	/* Exactly one DER object: nothing after it. */
	if ((size_t)(p - der) != len) {
		sf_why(why, whylen, "%zu bytes after the request",
		    len - (size_t)(p - der));
		goto out;
	}
	n = OCSP_request_onereq_count(req);
	if (n < 1 || n > OCSPMSG_MAX_IDS) {
		sf_why(why, whylen, "%d certificates asked about (1 to %d)", n,
		    OCSPMSG_MAX_IDS);
		goto out;
	}
	*out = req;
	req = NULL;  /* transferred */
	rc = 0;
out:
	ERR_clear_error();
	OCSP_REQUEST_free(req);
	return rc;
}

int
ocspmsg_req_key(OCSP_REQUEST *req, uint8_t **key, size_t *len)
{
	int n = OCSP_request_onereq_count(req), l;
	uint8_t *buf = NULL, *nb;
	unsigned char *der;
	size_t used = 0;

	*key = NULL;
	*len = 0;
	for (int i = 0; i < n; i++) {
		der = NULL;
		l = i2d_OCSP_CERTID(OCSP_onereq_get0_id(
		    OCSP_request_onereq_get0(req, i)), &der);
		if (l <= 0) {
			free(buf);
			return SF_EINVAL;
		}
		if ((nb = realloc(buf, used + (size_t)l)) == NULL) {
			OPENSSL_free(der);
			free(buf);
			return SF_ENOMEM;
		}
		buf = nb;
		memcpy(buf + used, der, (size_t)l);
		used += (size_t)l;
		OPENSSL_free(der);
	}
	*key = buf;
	*len = used;
	return 0;
}

int
ocspmsg_serial_hex(const OCSP_CERTID *id, char *out, size_t outlen)
{
	ASN1_INTEGER *serial = NULL;
	int len;

	out[0] = '\0';
	if (!OCSP_id_get0_info(NULL, NULL, NULL, &serial, (OCSP_CERTID *)id) ||
	    serial == NULL || ASN1_STRING_type(serial) != V_ASN1_INTEGER)
		return SF_EINVAL;
	/* OpenSSL keeps the magnitude without a leading zero octet. */
	len = ASN1_STRING_length(serial);
	if (len < 1 || len > 20 || (size_t)len * 2 + 1 > outlen)
		return SF_EINVAL;
	sf_hex_upper(ASN1_STRING_get0_data(serial), (size_t)len, out);
	return 0;
}

const char *
ocspmsg_hash_name(const OCSP_CERTID *id, const EVP_MD **md)
{
	ASN1_OBJECT *alg = NULL;

	*md = NULL;
	if (!OCSP_id_get0_info(NULL, &alg, NULL, NULL, (OCSP_CERTID *)id) ||
	    alg == NULL)
		return NULL;
	switch (OBJ_obj2nid(alg)) {
	case NID_sha1:
		*md = EVP_sha1();
		return "sha1";
	case NID_sha256:
		*md = EVP_sha256();
		return "sha256";
	case NID_sha384:
		*md = EVP_sha384();
		return "sha384";
	case NID_sha512:
		*md = EVP_sha512();
		return "sha512";
	}
	return NULL;
}

int
ocspmsg_status_fmt(int status, uint8_t **der, size_t *len)
{
	OCSP_RESPONSE *r = OCSP_response_create(status, NULL);
	unsigned char *p = NULL;
	int l;

	*der = NULL;
	*len = 0;
	if (r == NULL)
		return SF_ENOMEM;
	l = i2d_OCSP_RESPONSE(r, &p);
	OCSP_RESPONSE_free(r);
	if (l <= 0)
		return SF_ENOMEM;
	/* Handed out with free(), not OPENSSL_free(). */
	if ((*der = malloc((size_t)l)) != NULL) {
		memcpy(*der, p, (size_t)l);
		*len = (size_t)l;
	}
	OPENSSL_free(p);
	return *der ? 0 : SF_ENOMEM;
}

int
ocspmsg_resp_status(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	int st = r ? OCSP_response_status(r) : -1;

	OCSP_RESPONSE_free(r);
	ERR_clear_error();
	return st;
}
