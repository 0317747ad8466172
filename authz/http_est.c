/*
 * http_est.c - EST (RFC 7030) at /.well-known/est/[<label>/]<op>, the
 * label being an issuing CA's name ("us-east-1.widgiot"):
 *
 *   GET  cacerts          the CA's chain, issuing CA to root
 *   POST simpleenroll     a first enrollment: enroll.c's registered-key
 *                         check, nothing else (no password, no secret)
 *   POST simplereenroll   a renewal by the current certificate over mutual
 *                         TLS: renewal.c's (PENDING_ACK until first use);
 *                         or, when the client certificate is not ours, a
 *                         first enrollment by a manufacturer's birth
 *                         certificate (jitp.h: an unknown device is
 *                         registered if it chains to a registered
 *                         manufacturer CA; a known factory device is
 *                         enrolled as by simpleenroll)
 *   GET  csrattrs         what the CSR should carry
 *
 * Certificates go out as base64 of a certs-only PKCS#7 (RFC 7030 4.1.3,
 * 4.2.3; RFC 8951), refusals as text/plain with DESIGN.md's statuses, and
 * an enrollment not done within enroll_wait_ms as 202 with Retry-After:
 * the client repeats the same request (latent.c finds it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "authz.h"
#include "err.h"
#include "http_parse.h"
#include "keysig.h"
#include "latent.h"
#include "log.h"
#include "renewal.h"
#include "util.h"

#define CT_CACERTS "application/pkcs7-mime"
#define CT_CERTS_ONLY "application/pkcs7-mime; smime-type=certs-only"
#define CT_CSRATTRS "application/csrattrs"

/* What csrattrs answers: the CN (the device id goes there), then the
 * signature algorithms the CSR may use. */
static const char *const CSR_ATTRS[] = {
	"2.5.4.3",                  /* commonName */
	"1.2.840.10045.4.3.2",      /* ecdsa-with-SHA256 */
	"1.2.840.10045.4.3.3",      /* ecdsa-with-SHA384 */
	"1.2.840.113549.1.1.11",    /* sha256WithRSAEncryption */
	"1.3.101.112",              /* Ed25519 */
	NULL,
};

/* rs = text/plain msg with status, Retry-After when worth retrying. */
static int
est_text(http_resp *rs, authz_ctx *ctx, int status, const char *msg)
{
	char ra[16];
	int rc;

	if ((rc = http_resp_text(rs, status, "%s\n", msg)) != 0)
		return rc;
	if (status == 202 || status == 429 || status == 503) {
		snprintf(ra, sizeof ra, "%d", authz_conf_now(ctx)->retry_after_s);
		http_resp_header(rs, "Retry-After", ra);
	}
	return 0;
}

static int
est_error(http_resp *rs, authz_ctx *ctx, int rc, const char *why)
{
	int status = http_status_from_err(rc);

	if (status == 500)
		log_warnx("http est: internal error: %s (%s)", why,
		    sf_strerror(rc));
	return est_text(rs, ctx, status, *why ? why : sf_strerror(rc));
}

/* rs = base64 of der as type. */
static int
est_base64(http_resp *rs, const char *type, const uint8_t *der, size_t len)
{
	char *b64;
	size_t n;
	int rc;

	if ((rc = http_parse_b64_lines(der, len, &b64, &n)) != 0)
		return rc;
	free(rs->body);
	rs->status = 200;
	rs->content_type = type;
	rs->body = (uint8_t *)b64;
	rs->len = n;
	return http_resp_header(rs, "Content-Transfer-Encoding", "base64");
}

/* A certs-only PKCS#7 (degenerate SignedData) of every certificate in
 * pem, in order, as DER in *der (OPENSSL_free). */
static int
certs_only(const char *pem, uint8_t **der, size_t *len)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	PKCS7 *p7 = PKCS7_new();
	X509 *x;
	int n = 0, dl, rc = SF_ECRYPTO;

	*der = NULL;
	if (b == NULL || p7 == NULL || !PKCS7_set_type(p7, NID_pkcs7_signed))
		goto out;
	/* As `openssl crl2pkcs7 -nocrl`: no content, no signers. */
	p7->d.sign->contents->type = OBJ_nid2obj(NID_pkcs7_data);
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		int ok = PKCS7_add_certificate(p7, x);

		X509_free(x);
		if (!ok)
			goto out;
		n++;
	}
	ERR_clear_error();
	if (n == 0 || (dl = i2d_PKCS7(p7, der)) <= 0)
		goto out;
	*len = (size_t)dl;
	rc = 0;
out:
	PKCS7_free(p7);
	BIO_free(b);
	return rc;
}

static int
reply_certs(http_resp *rs, const char *type, const char *pem)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int rc;

	if ((rc = certs_only(pem, &der, &len)) == 0)
		rc = est_base64(rs, type, der, len);
	OPENSSL_free(der);
	return rc;
}

/* The CA a label names; without one, est_default_ca, else the default
 * region's CA of the only product line with a template. */
static int
est_ca(authz_ctx *ctx, const char *label, char region[40], char product[40],
    char *why, size_t whylen)
{
	const authz_conf *c = authz_conf_now(ctx);

	if (*label == '\0')
		label = c->est_default_ca;
	if (*label) {
		if (http_parse_ca_label(label, region, product) == 0)
			return 0;
		sf_why(why, whylen, "\"%s\" is not a CA name (<region>.<product"
		    " line>)", label);
		return SF_ENOTFOUND;
	}
	if (c->ntemplates == 1 && *c->default_region) {
		sf_strlcpy(region, c->default_region, 40);
		sf_strlcpy(product, c->templates[0].product_line, 40);
		return 0;
	}
	sf_why(why, whylen, "name the CA: /.well-known/est/<region>.<product"
	    " line>/cacerts");
	return SF_ENOTFOUND;
}

static int
est_cacerts(const http_req *rq, http_resp *rs, authz_ctx *ctx,
    const char *label)
{
	char region[40], product[40], why[512] = "", *name = NULL;
	char *chain = NULL;
	int rc;

	(void)rq;
	if ((rc = est_ca(ctx, label, region, product, why, sizeof why)) != 0 ||
	    (rc = sclient_ca_chain(ctx->signer, product, region, &name, &chain,
	    why, sizeof why)) != 0)
		return est_error(rs, ctx, rc, why);
	rc = reply_certs(rs, CT_CACERTS, chain);
	free(name);
	free(chain);
	return rc;
}

static int
est_csrattrs(http_resp *rs)
{
	ASN1_SEQUENCE_ANY *seq = sk_ASN1_TYPE_new_null();
	unsigned char *der = NULL;
	int len = 0, rc = SF_ECRYPTO;

	if (seq == NULL)
		return SF_ENOMEM;
	for (size_t i = 0; CSR_ATTRS[i]; i++) {
		ASN1_OBJECT *o = OBJ_txt2obj(CSR_ATTRS[i], 1);
		ASN1_TYPE *t = ASN1_TYPE_new();

		if (o == NULL || t == NULL || !sk_ASN1_TYPE_push(seq, t)) {
			ASN1_OBJECT_free(o);
			ASN1_TYPE_free(t);
			goto out;
		}
		ASN1_TYPE_set(t, V_ASN1_OBJECT, o);
	}
	if ((len = i2d_ASN1_SEQUENCE_ANY(seq, &der)) > 0)
		rc = est_base64(rs, CT_CSRATTRS, der, (size_t)len);
out:
	OPENSSL_free(der);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return rc;
}

/* An enrollment's answer: the certificate, 202, or the refusal. */
static int
est_result(http_resp *rs, authz_ctx *ctx, const latent_result *lr,
    const char *op)
{
	char msg[160];

	if (!lr->done) {
		snprintf(msg, sizeof msg, "enrollment %s is in progress: repeat"
		    " this request after Retry-After", lr->enrollment_id);
		return est_text(rs, ctx, 202, msg);
	}
	if (lr->rc != 0) {
		log_info("http est %s refused (%d): %s", op,
		    http_status_from_err(lr->rc), lr->why);
		return est_error(rs, ctx, lr->rc, lr->why);
	}
	return reply_certs(rs, CT_CERTS_ONLY, lr->en.certificate_pem);
}

static int
est_enroll(const http_req *rq, http_resp *rs, authz_ctx *ctx,
    const char *label, int re)
{
	const char *op = re ? "simplereenroll" : "simpleenroll";
	const char *ks = http_req_header(rq, "current-key-signature");
	const char *birth = NULL;
	char region[40] = "", product[40], why[512] = "";
	uint8_t *csr = NULL, *sig = NULL;
	size_t len, csrlen, siglen = 0;
	const uint8_t *body = http_req_body(rq, &len);
	latent_req lq;
	latent_result lr;
	int rc;

	memset(&lr, 0, sizeof lr);
	memset(&lq, 0, sizeof lq);
	if (*label && http_parse_ca_label(label, region, product) != 0)
		return est_text(rs, ctx, 404, "not a CA name (<region>.<product"
		    " line>)");
	/* A client certificate that is not ours may be a manufacturer's
	 * birth certificate: just-in-time provisioning (jitp.h), which
	 * checks it against the registered manufacturer CAs. */
	if (re && http_req_peer_state(rq) == HTTP_PEER_REJECTED)
		birth = http_req_unverified_cert(rq);
	if (re && http_req_peer_state(rq) != HTTP_PEER_VERIFIED &&
	    birth == NULL)
		return est_text(rs, ctx, 403, "simplereenroll needs the"
		    " current certificate (or a manufacturer's birth"
		    " certificate) as the TLS client certificate");
	if ((rc = http_parse_est_csr(body, len, http_req_header(rq,
	    "Content-Type"), authz_conf_now(ctx)->csr_max, &csr, &csrlen, why,
	    sizeof why)) != 0)
		return est_error(rs, ctx, rc, why);
	if (re && ks && (rc = http_parse_b64(ks, strlen(ks), KEYSIG_MAX * 2,
	    &sig, &siglen)) != 0) {
		free(csr);
		return est_text(rs, ctx, 400, "the current-key-signature header"
		    " is not base64 of a signature");
	}
	lq.csr = csr;
	lq.csr_len = csrlen;
	lq.idempotency_key = "";
	lq.region = region;
	if (birth)
		lq.birth_cert = birth;
	else if (re) {
		lq.peer_cert = http_req_peer_cert(rq);
		lq.current_key_signature = sig;
		lq.current_key_signature_len = siglen;
	}
	if ((rc = latent_run(ctx->latent, &lq,
	    authz_conf_now(ctx)->enroll_wait_ms, &lr)) == 0) {
		/* A label names the CA: a device of another product line
		 * gets its own CA's certificate, and is told so. */
		if (lr.done && lr.rc == 0 && *label &&
		    strcmp(lr.en.ca_name, label) != 0)
			log_info("http est %s: device %s got its certificate"
			    " from %s, not %s", op, lr.en.device_id,
			    lr.en.ca_name, label);
		rc = est_result(rs, ctx, &lr, op);
	}
	latent_result_fini(&lr);
	free(csr);
	free(sig);
	return rc;
}

int
http_est(const http_req *rq, http_resp *rs, void *arg)
{
	authz_ctx *ctx = arg;
	const char *m = http_req_method(rq);
	char label[80], op[24];
	int get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;

	renewal_first_use_pem(ctx, http_req_peer_cert(rq));
	if (http_parse_est_path(http_req_path(rq), label, op) != 0)
		return est_text(rs, ctx, 404, "no such EST operation");
	if (strcmp(op, "cacerts") == 0 && get)
		return est_cacerts(rq, rs, ctx, label);
	if (strcmp(op, "csrattrs") == 0 && get)
		return est_csrattrs(rs);
	if (strcmp(op, "simpleenroll") == 0 && post)
		return est_enroll(rq, rs, ctx, label, 0);
	if (strcmp(op, "simplereenroll") == 0 && post)
		return est_enroll(rq, rs, ctx, label, 1);
	if (strcmp(op, "serverkeygen") == 0 || strcmp(op, "fullcmc") == 0)
		return est_text(rs, ctx, 501, strcmp(op, "serverkeygen") == 0 ?
		    "no server-side key generation: a device's key never"
		    " leaves it" : "full CMC is not offered");
	if ((get || post) && http_resp_text(rs, 405, "use %s for %s\n",
	    get ? "POST" : "GET", op) == 0)
		return http_resp_header(rs, "Allow", get ? "POST" : "GET");
	return est_text(rs, ctx, 405, "method not allowed");
}
