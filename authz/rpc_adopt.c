/*
 * rpc_adopt.c - Registry.AdoptCertificate (admin socket): record an
 * orphan, a certificate the signer issued that authz never recorded (its
 * registry commit failed, or authz's deadline passed while the signer
 * was still committing). `secretfree audit reconcile` finds them in the
 * signer's journal and sends each here with its chain. authz believes
 * the certificate, not the request: the serial, validity, CN and key come
 * from the certificate itself, and its key must be the device's
 * registered key.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "authz.h"
#include "devrec.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "secretfree/v1/registry.pb-c.h"
#include "util.h"

/* What authz reads from the certificate itself. */
struct leaf {
	char serial[64];
	char cn[80];
	uint8_t key_sha256[32];
	int64_t not_before, not_after;
};

static int64_t
unix_time(const ASN1_TIME *t)
{
	struct tm tm;

	return ASN1_TIME_to_tm(t, &tm) ? (int64_t)timegm(&tm) : 0;
}

/* The first certificate of pem, read into *l. SF_EINVAL with why. */
static int
leaf_read(const char *pem, struct leaf *l, char *why, size_t whylen)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	const ASN1_INTEGER *ai;
	X509_NAME *subj;
	pubkey_info pk;
	int rc = SF_EINVAL, len;

	memset(l, 0, sizeof *l);
	memset(&pk, 0, sizeof pk);
	if (x == NULL) {
		sf_why(why, whylen, "certificate_pem is not a PEM"
		    " certificate");
		goto out;
	}
	/* Positive, as the signer makes serials, and printed as it prints
	 * them: the integer's bytes in upper-case hex. */
	ai = X509_get0_serialNumber(x);
	len = ASN1_STRING_length(ai);
	if (ASN1_STRING_type(ai) != V_ASN1_INTEGER || len < 1 || len > 20) {
		sf_why(why, whylen, "the certificate's serial is not one the"
		    " signer makes");
		goto out;
	}
	sf_hex_upper(ASN1_STRING_get0_data(ai), (size_t)len, l->serial);
	subj = X509_get_subject_name(x);
	if (X509_NAME_get_text_by_NID(subj, NID_commonName, l->cn,
	    sizeof l->cn) <= 0) {
		sf_why(why, whylen, "the certificate has no CN");
		goto out;
	}
	if (pubkey_from_evp(X509_get0_pubkey(x), &pk, why, whylen) != 0)
		goto out;
	memcpy(l->key_sha256, pk.sha256, 32);
	l->not_before = unix_time(X509_get0_notBefore(x));
	l->not_after = unix_time(X509_get0_notAfter(x));
	rc = 0;
out:
	ERR_clear_error();
	pubkey_info_free(&pk);
	X509_free(x);
	BIO_free(b);
	return rc;
}

/* The request's own fields, before the certificate is read. */
static int
request_check(rpc_call *call, const Secretfree__V1__AdoptCertificateRequest *q)
{
	if (!device_id_valid(q->device_id, NULL, 0))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "\"%s\" is not a"
		    " valid device id", q->device_id);
	if (!sf_enrollment_id_valid(q->enrollment_id))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "enrollment_id must"
		    " be 1-64 of A-Z, a-z, 0-9, '.', '_', ':', '-'");
	if (*q->ca_name == '\0' || strlen(q->ca_name) > 64 ||
	    *q->chain_pem == '\0')
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "ca_name and"
		    " chain_pem are required");
	if (*q->region && !sf_name_valid(q->region))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "region \"%s\" is"
		    " not a valid region id", q->region);
	if (*q->replaces_serial && !sf_serial_valid(q->replaces_serial))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "replaces_serial"
		    " must be 1-40 upper-case hex digits");
	if (q->status < CERT_ACTIVE || q->status > CERT_EXPIRED)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "status %d is not"
		    " a certificate status", q->status);
	return RPC_OK;
}

static void
fill_info(rpc_call *call, const registry_enrollment *e,
    const registry_adopt_status *st, Secretfree__V1__CertificateInfo *o)
{
	o->serial = rpc_call_strdup(call, e->serial);
	o->ca_name = rpc_call_strdup(call, e->ca_name);
	o->device_id = rpc_call_strdup(call, e->device_id);
	o->enrollment_id = rpc_call_strdup(call, e->enrollment_id);
	o->certificate_pem = rpc_call_strdup(call, e->certificate_pem);
	o->replaces_serial = rpc_call_strdup(call, e->replaces_serial);
	o->not_before = e->not_before;
	o->not_after = e->not_after;
	o->issued_at = e->created_at;
	o->status = st->status;
	o->revocation_reason = st->revocation_reason;
	o->revoked_at = st->revoked_at;
}

int
rpc_registry_adopt(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__AdoptCertificateRequest *q = (const void *)reqm;
	authz_ctx *ctx = arg;
	registry_adopt_status st = { q->status, q->revocation_reason,
	    q->revoked_at };
	registry_enrollment e;
	registry_template tmpl;
	registry_device dev;
	struct leaf l;
	char why[256] = "";
	int rc, have_tmpl = 0;

	memset(&dev, 0, sizeof dev);
	memset(&tmpl, 0, sizeof tmpl);
	if ((rc = request_check(call, q)) != RPC_OK)
		return rc;
	if (leaf_read(q->certificate_pem, &l, why, sizeof why) != 0)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "%s", why);
	rc = registry_device_get(ctx->reg, q->device_id, &dev);
	if (rc == SF_ENOTFOUND) {
		rc = rpc_fail_err(call, rc, "device %s is not registered",
		    q->device_id);
		goto out;
	} else if (rc != 0) {
		rc = rpc_fail_err(call, rc, "device lookup failed");
		goto out;
	}
	if (strcmp(l.cn, q->device_id) != 0 ||
	    memcmp(l.key_sha256, dev.key_sha256, 32) != 0) {
		rc = rpc_fail(call, RPC_PERMISSION_DENIED, "certificate %s is"
		    " not for device %s's registered key", l.serial,
		    q->device_id);
		goto out;
	}
	memset(&e, 0, sizeof e);
	e.enrollment_id = q->enrollment_id;
	e.device_id = q->device_id;
	e.idempotency_key = "";
	e.serial = l.serial;
	e.ca_name = q->ca_name;
	e.certificate_pem = q->certificate_pem;
	e.chain_pem = q->chain_pem;
	e.region = q->region;
	e.not_before = l.not_before;
	e.not_after = l.not_after;
	e.created_at = sf_now();
	e.state = st.status == CERT_PENDING_ACK ? ENROLLMENT_PENDING_ACK :
	    ENROLLMENT_ISSUED;
	e.replaces_serial = q->replaces_serial;
	have_tmpl = registry_template_get(ctx->reg, dev.product_line,
	    &tmpl) == 0;
	rc = registry_enroll_adopt(ctx->reg, &e, have_tmpl ? &tmpl : NULL,
	    &st);
	if (rc == SF_EEXIST) {
		rc = rpc_fail_err(call, rc, "certificate %s or enrollment %s"
		    " is recorded already", l.serial, q->enrollment_id);
		goto out;
	}
	if (rc != 0) {
		rc = rpc_fail_err(call, rc, "certificate %s: the registry could"
		    " not record it", l.serial);
		goto out;
	}
	log_info("device %s: certificate %s (enrollment %s) adopted from the"
	    " signer's journal", q->device_id, l.serial, q->enrollment_id);
	fill_info(call, &e, &st, (Secretfree__V1__CertificateInfo *)respm);
	rc = RPC_OK;
out:
	if (have_tmpl)
		registry_template_fini(&tmpl);
	registry_device_fini(&dev);
	return rc;
}
