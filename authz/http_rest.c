/*
 * http_rest.c - the reference's REST call and its latent retrieval
 * (authz/README.md, "REST"):
 *
 *   POST /new               the CSR as base64 of its PEM in the header
 *                           device-csr (exactly as the reference's device
 *                           sends it), or as the body; 200 with
 *                           {"Certificate", "CertificateChain"}, 202 with
 *                           the enrollment id when it is not ready within
 *                           enroll_wait_ms, else a JSON error
 *   GET /enrollments/{id}   the PEM bundle (leaf, then chain), whole or
 *                           one Range of it, with its length and SHA-256
 *
 * What is decided is enroll.c's (through latent.c); the statuses are
 * DESIGN.md's errors table (http_status_from_err).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "authz.h"
#include "err.h"
#include "http_parse.h"
#include "latent.h"
#include "log.h"
#include "renewal.h"
#include "util.h"

#define BUNDLE_TYPE "application/pem-certificate-chain"

/* A short name for a status, the "error" of a JSON error body. */
static const char *
status_name(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 409: return "conflict";
	case 413: return "too_large";
	case 416: return "range_not_satisfiable";
	case 429: return "too_many_requests";
	case 503: return "unavailable";
	}
	return "internal_error";
}

/* rs = the JSON object o (taken over). */
static int
json_body(http_resp *rs, int status, json_t *o)
{
	char *s;

	if (o == NULL)
		return SF_ENOMEM;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return SF_ENOMEM;
	free(rs->body);
	rs->status = status;
	rs->content_type = "application/json";
	rs->body = (uint8_t *)s;
	rs->len = strlen(s);
	return 0;
}

int
http_rest_refuse(http_resp *rs, int status, const char *msg)
{
	return json_body(rs, status, json_pack("{s:s, s:s}", "error",
	    status_name(status), "message", msg));
}

/*
 * A refusal as a JSON error, Retry-After on the ones worth retrying; the
 * enrollment's id and idempotency key when it has them (lr), so that a
 * retry can name them.
 */
static int
rest_error(http_resp *rs, authz_ctx *ctx, int rc, const char *why,
    const latent_result *lr)
{
	int status = http_status_from_err(rc);
	char ra[16];
	json_t *o;

	if (status == 500)
		log_warnx("http: internal error: %s (%s)", why,
		    sf_strerror(rc));
	o = json_pack("{s:s, s:s}", "error", status_name(status), "message",
	    *why ? why : sf_strerror(rc));
	if (o && lr && *lr->enrollment_id)
		json_object_set_new(o, "EnrollmentId",
		    json_string(lr->enrollment_id));
	if (o && lr && *lr->idempotency_key)
		json_object_set_new(o, "IdempotencyKey",
		    json_string(lr->idempotency_key));
	if (json_body(rs, status, o) != 0)
		return SF_ENOMEM;
	if (status == 429 || status == 503) {
		snprintf(ra, sizeof ra, "%d", authz_conf_now(ctx)->retry_after_s);
		http_resp_header(rs, "Retry-After", ra);
	}
	return 0;
}

/* 202: not ready yet; where and when to come back. */
static int
accepted(http_resp *rs, authz_ctx *ctx, const latent_result *lr)
{
	char loc[96], ra[16];

	snprintf(loc, sizeof loc, "/enrollments/%s", lr->enrollment_id);
	snprintf(ra, sizeof ra, "%d", authz_conf_now(ctx)->retry_after_s);
	if (json_body(rs, 202, json_pack("{s:s, s:s, s:s, s:i}",
	    "EnrollmentId", lr->enrollment_id, "IdempotencyKey",
	    lr->idempotency_key, "Location", loc, "RetryAfter",
	    authz_conf_now(ctx)->retry_after_s)) != 0)
		return SF_ENOMEM;
	http_resp_header(rs, "Location", loc);
	http_resp_header(rs, "Retry-After", ra);
	return 0;
}

/* A verified client certificate pending acknowledgement is its first
 * use (renewal.h), as on the gRPC listener. */
static void
first_use(const http_req *rq, authz_ctx *ctx)
{
	renewal_first_use_pem(ctx, http_req_peer_cert(rq));
}

int
http_rest_new(const http_req *rq, http_resp *rs, void *arg)
{
	authz_ctx *ctx = arg;
	const char *key = http_req_header(rq, "Idempotency-Key");
	const uint8_t *body;
	uint8_t *csr = NULL;
	size_t len, csrlen;
	latent_req lq;
	latent_result lr;
	char why[512] = "";
	int rc;

	memset(&lr, 0, sizeof lr);
	first_use(rq, ctx);
	body = http_req_body(rq, &len);
	if ((rc = http_parse_new_csr(http_req_header(rq, "device-csr"), body,
	    len, http_req_header(rq, "Content-Type"), authz_conf_now(ctx)->csr_max,
	    &csr, &csrlen, why, sizeof why)) != 0) {
		log_info("http /new refused (%d, from %s): %s",
		    http_status_from_err(rc), http_req_peer(rq), why);
		return rest_error(rs, ctx, rc, why, NULL);
	}
	memset(&lq, 0, sizeof lq);
	lq.csr = csr;
	lq.csr_len = csrlen;
	lq.idempotency_key = key ? key : "";
	lq.region = "";
	if ((rc = latent_run(ctx->latent, &lq, authz_conf_now(ctx)->enroll_wait_ms,
	    &lr)) != 0)
		goto out;
	if (!lr.done) {
		log_info("http /new from %s: enrollment %s not done within"
		    " %d ms: 202", http_req_peer(rq), lr.enrollment_id,
		    authz_conf_now(ctx)->enroll_wait_ms);
		rc = accepted(rs, ctx, &lr);
	} else if (lr.rc != 0) {
		log_info("http /new refused (%d, from %s): %s",
		    http_status_from_err(lr.rc), http_req_peer(rq), lr.why);
		rc = rest_error(rs, ctx, lr.rc, lr.why, &lr);
	} else
		/* The reference's two fields, then ours. */
		rc = json_body(rs, 200, json_pack("{s:s, s:s, s:s, s:s}",
		    "Certificate", lr.en.certificate_pem, "CertificateChain",
		    lr.en.chain_pem, "EnrollmentId", lr.en.enrollment_id,
		    "SerialNumber", lr.en.serial));
out:
	latent_result_fini(&lr);
	free(csr);
	return rc;
}

/* The bundle of en, whole or the Range asked for. */
static int
bundle_reply(const http_req *rq, http_resp *rs, const registry_enrollment *en)
{
	char *bundle = NULL, hex[65], b64[64], val[96];
	uint8_t sha[32];
	size_t total, off, n;
	int rc, r;

	if ((rc = enroll_bundle(en, &bundle, &total, sha)) != 0)
		return rc;
	sf_hex(sha, 32, hex);
	EVP_EncodeBlock((unsigned char *)b64, sha, 32);
	r = http_parse_range(http_req_header(rq, "Range"), total, &off, &n);
	if (r == HTTP_RANGE_UNSATISFIABLE) {
		free(bundle);
		if ((rc = http_rest_refuse(rs, 416, "the range is past the end"
		    " of the bundle")) != 0)
			return rc;
		snprintf(val, sizeof val, "bytes */%zu", total);
		http_resp_header(rs, "Content-Range", val);
		return 0;
	}
	rs->status = r == HTTP_RANGE_PART ? 206 : 200;
	rs->content_type = BUNDLE_TYPE;
	if (off > 0)
		memmove(bundle, bundle + off, n);
	rs->body = (uint8_t *)bundle;
	rs->len = n;
	if (r == HTTP_RANGE_PART) {
		snprintf(val, sizeof val, "bytes %zu-%zu/%zu", off,
		    off + n - 1, total);
		http_resp_header(rs, "Content-Range", val);
	}
	http_resp_header(rs, "Accept-Ranges", "bytes");
	/* The whole bundle's, also in a partial answer (RFC 9530). */
	snprintf(val, sizeof val, "sha-256=:%s:", b64);
	http_resp_header(rs, "Repr-Digest", val);
	http_resp_header(rs, "X-Bundle-SHA256", hex);
	snprintf(val, sizeof val, "%zu", total);
	http_resp_header(rs, "X-Bundle-Length", val);
	http_resp_header(rs, "X-Enrollment-Id", en->enrollment_id);
	http_resp_header(rs, "X-Serial-Number", en->serial);
	return 0;
}

int
http_rest_enrollment(const http_req *rq, http_resp *rs, void *arg)
{
	authz_ctx *ctx = arg;
	registry_enrollment en;
	latent_result lr;
	char id[64];
	int rc;

	first_use(rq, ctx);
	rc = http_parse_enrollment_path(http_req_path(rq), id);
	if (rc == SF_EINVAL)
		return http_rest_refuse(rs, 400, "that is not an enrollment"
		    " id (\"enr-\" and 32 lowercase hex digits)");
	if (rc != 0)
		return http_rest_refuse(rs, 404, "no such resource");
	if (latent_lookup(ctx->latent, id, &lr) == 0 && (!lr.done ||
	    lr.rc != 0)) {
		rc = !lr.done ? accepted(rs, ctx, &lr) :
		    rest_error(rs, ctx, lr.rc, lr.why, &lr);
		latent_result_fini(&lr);
		return rc;
	}
	rc = registry_enrollment_get(ctx->reg, id, &en);
	if (rc == SF_ENOTFOUND)
		return rest_error(rs, ctx, rc, "no such enrollment", NULL);
	if (rc != 0)
		return rest_error(rs, ctx, rc, "registry lookup failed",
		    NULL);
	rc = bundle_reply(rq, rs, &en);
	registry_enrollment_fini(&en);
	return rc;
}

int
http_rest_plain(const http_req *rq, http_resp *rs, void *arg)
{
	(void)rq;
	(void)arg;
	return http_rest_refuse(rs, 403, "device requests are served over"
	    " TLS only ([http] tls_listen); plain HTTP carries them only on a"
	    " loopback address with [http] plain_front_doors");
}
