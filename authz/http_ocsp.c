/*
 * http_ocsp.c - the OCSP responder's HTTP side (RFC 6960 appendix A,
 * RFC 5019): POST with the DER request as the body, or GET with it
 * base64-encoded (and URL-encoded) as the last part of the path, at any
 * path: the certificates' AIA names one per CA
 * (http://ocsp.${domain}/${name}), and the request itself says which CA
 * it is about. The answer is application/ocsp-response with Cache-Control
 * max-age until the response's nextUpdate.
 *
 * authz holds no key: responses come from the signer (Signer.OcspRespond,
 * pre-signed there) and are kept in ocsp_cache.h until their nextUpdate,
 * so a repeated query never reaches the signer. With the signer away a
 * kept response is still served; without one the answer is tryLater.
 * What does not parse as an OCSP request is answered malformedRequest
 * here, without a call.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "authz.h"
#include "err.h"
#include "log.h"
#include "ocspmsg.h"
#include "util.h"

#define CONTENT_TYPE "application/ocsp-response"

/* The answer: der (taken over) with its caching headers. */
static int
send_der(http_resp *rs, uint8_t *der, size_t len, int64_t next_update,
    int64_t now)
{
	rs->status = 200;
	rs->content_type = CONTENT_TYPE;
	rs->body = der;
	rs->len = len;
	if (next_update > now)
		rs->max_age = next_update - now;
	else
		return http_resp_header(rs, "Cache-Control", "no-store");
	return 0;
}

/* An unsigned OCSPResponse with only an error status. */
static int
send_status(http_resp *rs, int status)
{
	uint8_t *der;
	size_t len;
	int rc;

	if ((rc = ocspmsg_status_fmt(status, &der, &len)) != 0)
		return rc;
	return send_der(rs, der, len, 0, 0);
}

/* The serials req asks about, comma-separated, into out. */
static void
serials_of(OCSP_REQUEST *req, char *out, size_t outlen)
{
	char hex[64];
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < OCSP_request_onereq_count(req); i++) {
		if (ocspmsg_serial_hex(OCSP_onereq_get0_id(
		    OCSP_request_onereq_get0(req, i)), hex, sizeof hex) != 0)
			continue;
		if (used + strlen(hex) + 2 > outlen)
			break;
		used += (size_t)snprintf(out + used, outlen - used, "%s%s",
		    used ? "," : "", hex);
	}
}

/*
 * Answer the DER request: from the cache, else from the signer (keeping
 * a successful answer until its nextUpdate), else tryLater.
 */
static int
answer(authz_ctx *ctx, const uint8_t *der, size_t len, const char *peer,
    http_resp *rs)
{
	OCSP_REQUEST *req = NULL;
	uint8_t *key = NULL, *resp = NULL;
	size_t keylen = 0, resplen = 0;
	int64_t now = sf_now(), next = 0;
	char why[256] = "", serials[OCSPMSG_MAX_IDS * 42 + 1];
	int rc;

	if (ocspmsg_req_parse(der, len, &req, why, sizeof why) != 0) {
		log_debug("ocsp: malformed request from %s: %s", peer, why);
		return send_status(rs, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	}
	if ((rc = ocspmsg_req_key(req, &key, &keylen)) != 0)
		goto out;
	if (ocsp_cache_get(ctx->ocsp, key, keylen, now, &resp, &resplen,
	    &next) == 0) {
		rc = send_der(rs, resp, resplen, next, now);
		goto out;
	}
	if ((rc = sclient_ocsp(ctx->signer, der, len, &resp, &resplen, &next,
	    why, sizeof why)) != 0) {
		log_warnx("ocsp: no answer from the signer for %s (%s):"
		    " tryLater", peer, why);
		rc = send_status(rs, OCSP_RESPONSE_STATUS_TRYLATER);
		goto out;
	}
	if (next > now && ocspmsg_resp_status(resp, resplen) ==
	    OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		serials_of(req, serials, sizeof serials);
		if (ocsp_cache_put(ctx->ocsp, key, keylen, serials, resp,
		    resplen, next, now) != 0)
			log_warnx("ocsp: a response could not be cached");
	}
	rc = send_der(rs, resp, resplen, next, now);
out:
	OCSP_REQUEST_free(req);
	ERR_clear_error();
	free(key);
	return rc;
}

/* Base64 text (padding optional) into a malloc'd buffer; SF_EINVAL. */
static int
unbase64(const char *s, size_t n, uint8_t **out, size_t *len)
{
	char *padded = NULL;
	uint8_t *buf = NULL;
	size_t pn = (n + 3) / 4 * 4, pad = 0;
	int l, rc = SF_EINVAL;

	*out = NULL;
	*len = 0;
	if (n == 0 || n > 2 * OCSPMSG_MAX_REQUEST)
		return SF_EINVAL;
	if ((padded = malloc(pn + 1)) == NULL ||
	    (buf = malloc(pn / 4 * 3 + 1)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	memcpy(padded, s, n);
	memset(padded + n, '=', pn - n);
	padded[pn] = '\0';
	while (pad < 2 && padded[pn - 1 - pad] == '=')
		pad++;
	/* EVP_DecodeBlock counts the padding's zero bytes too. */
	if ((l = EVP_DecodeBlock(buf, (unsigned char *)padded, (int)pn)) < 0 ||
	    (size_t)l < pad || strspn(padded, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/=") != pn)
		goto out;
	*out = buf;
	*len = (size_t)l - pad;
	buf = NULL;  /* transferred */
	rc = 0;
out:
	free(padded);
	free(buf);
	return rc;
}

/*
 * The DER request of a GET (RFC 6960 A.1: {url}/{base64 of the DER}),
 * already percent-decoded. The base64 may hold '/', and the path before
 * it (a CA's name, a prefix) is not known here, so each tail of the path
 * after a '/' is tried, longest first, until one is an OCSP request.
 * SF_EINVAL if none is but one decodes to a DER SEQUENCE (a damaged
 * request: malformedRequest); SF_ENOTFOUND if nothing in the path looks
 * like a request (/favicon.ico, /no/such/thing: a 404).
 */
static int
get_request(const char *path, uint8_t **der, size_t *len)
{
	OCSP_REQUEST *req;
	const char *p;
	int rc = SF_ENOTFOUND;

	*der = NULL;
	*len = 0;
	for (p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
		if (unbase64(p + 1, strlen(p + 1), der, len) == 0) {
			if (ocspmsg_req_parse(*der, *len, &req, NULL, 0) == 0) {
				OCSP_REQUEST_free(req);
				return 0;
			}
			if (*len > 0 && (*der)[0] == 0x30)
				rc = SF_EINVAL;
		}
		free(*der);
		*der = NULL;
		*len = 0;
	}
	return rc;
}

int
http_ocsp(const http_req *rq, http_resp *rs, void *arg)
{
	authz_ctx *ctx = arg;
	const uint8_t *body;
	uint8_t *der = NULL;
	size_t len = 0;
	int rc;

	if (strcmp(http_req_method(rq), "POST") == 0) {
		body = http_req_body(rq, &len);
		return answer(ctx, body, len, http_req_peer(rq), rs);
	}
	rc = get_request(http_req_path(rq), &der, &len);
	if (rc == SF_ENOTFOUND)
		return http_resp_text(rs, 404, "no such resource\n");
	rc = answer(ctx, der, len, http_req_peer(rq), rs);
	free(der);
	return rc;
}
