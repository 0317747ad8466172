/*
 * mqtt_serve.c - what the MQTT door does with one request: parse it
 * (mqtt_msg.c), hold it to the topic it came on (the CSR must name the
 * topic's device, an enrollment must be that device's), and hand it to
 * the enrollment core the other doors use: enroll_device, renewal_renew,
 * renewal_acknowledge. The broker's ACL is what ties a topic to a
 * device; it proves nothing about keys, so every proof a device owes
 * comes in the payload, as on the TLS listener without a client
 * certificate: a CSR signed by the registered key, current_serial and a
 * key-change signature for a renewal, key_signature for an
 * acknowledgement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csr.h"
#include "err.h"
#include "log.h"
#include "mqtt.h"
#include "renewal.h"
#include "rpc.h"

/* The CSR names the topic's device. */
static int
csr_of_topic(authz_ctx *ctx, const char *device_id, const mqtt_msg_req *r,
    char *why, size_t whylen)
{
	csr_info ci;
	int rc;

	memset(&ci, 0, sizeof ci);
	if ((rc = csr_parse(r->csr, r->csr_len, authz_conf_now(ctx)->csr_max,
	    &ci, why, whylen)) != 0)
		return rc;
	if (strcmp(ci.cn, device_id) != 0) {
		sf_why(why, whylen, "the CSR names device %s; this topic is"
		    " device %s's", ci.cn, device_id);
		rc = SF_EPERM;
	}
	csr_info_fini(&ci);
	return rc;
}

/* The enrollment r names, if it is the topic's device's. */
static int
enrollment_of_topic(authz_ctx *ctx, const char *device_id,
    const mqtt_msg_req *r, registry_enrollment *en, char *why, size_t whylen)
{
	int rc;

	rc = registry_enrollment_get(ctx->reg, r->enrollment_id, en);
	if (rc == 0 && strcmp(en->device_id, device_id) != 0) {
		registry_enrollment_fini(en);
		rc = SF_ENOTFOUND;
	}
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "device %s has no enrollment %s", device_id,
		    r->enrollment_id);
	else if (rc != 0)
		sf_why(why, whylen, "registry lookup failed");
	return rc;
}

static int
do_enroll(authz_ctx *ctx, const char *device_id, const mqtt_msg_req *r,
    mqtt_msg_out *out, char *why, size_t whylen)
{
	registry_enrollment en;
	enroll_req er;
	int rc, replayed = 0;

	if ((rc = csr_of_topic(ctx, device_id, r, why, whylen)) != 0)
		return rc;
	memset(&er, 0, sizeof er);
	er.csr = r->csr;
	er.csr_len = r->csr_len;
	er.idempotency_key = r->idempotency_key;
	er.region = r->region;
	/* Just-in-time provisioning: the CSR proves the key, the birth
	 * certificate (checked by authz, then by the signer) that a
	 * registered manufacturer made the device. */
	er.birth_cert_pem = *r->birth_certificate ? r->birth_certificate :
	    NULL;
	er.birth_only = 1;
	if ((rc = enroll_device(&ctx->en, &er, &en, &replayed, why,
	    whylen)) != 0)
		return rc;
	rc = mqtt_msg_certificate(r, &en, replayed, out, why, whylen);
	registry_enrollment_fini(&en);
	return rc;
}

static int
do_renew(authz_ctx *ctx, const char *device_id, const mqtt_msg_req *r,
    mqtt_msg_out *out, char *why, size_t whylen)
{
	registry_enrollment en;
	renewal_req rr;
	int rc, replayed = 0;

	if ((rc = csr_of_topic(ctx, device_id, r, why, whylen)) != 0)
		return rc;
	memset(&rr, 0, sizeof rr);
	rr.csr = r->csr;
	rr.csr_len = r->csr_len;
	rr.idempotency_key = r->idempotency_key;
	rr.current_serial = r->current_serial;
	rr.current_key_signature = r->key_signature;
	rr.current_key_signature_len = r->key_signature_len;
	rr.peer_cert = NULL;   /* the broker's TLS proves nothing to us */
	if ((rc = renewal_renew(ctx, &rr, &en, &replayed, why,
	    whylen)) != 0)
		return rc;
	rc = mqtt_msg_certificate(r, &en, replayed, out, why, whylen);
	registry_enrollment_fini(&en);
	return rc;
}

static int
do_fetch(authz_ctx *ctx, const char *device_id, const mqtt_msg_req *r,
    mqtt_msg_out *out, char *why, size_t whylen)
{
	registry_enrollment en;
	int rc;

	if ((rc = enrollment_of_topic(ctx, device_id, r, &en, why,
	    whylen)) != 0)
		return rc;
	rc = mqtt_msg_certificate(r, &en, 1, out, why, whylen);
	registry_enrollment_fini(&en);
	return rc;
}

static int
do_ack(authz_ctx *ctx, const char *device_id, const mqtt_msg_req *r,
    mqtt_msg_out *out, char *why, size_t whylen)
{
	registry_enrollment en;
	renewal_ack_req ar;
	char *superseded = NULL;
	int rc;

	if ((rc = enrollment_of_topic(ctx, device_id, r, &en, why,
	    whylen)) != 0)
		return rc;
	memset(&ar, 0, sizeof ar);
	ar.enrollment_id = r->enrollment_id;
	ar.serial = r->serial;
	ar.key_signature = r->key_signature;
	ar.key_signature_len = r->key_signature_len;
	ar.peer_cert = NULL;
	ar.local = 0;          /* never the admin socket's trust */
	if ((rc = renewal_acknowledge(ctx, &ar, &superseded, why,
	    whylen)) == 0)
		rc = mqtt_msg_acknowledged(r, en.enrollment_id, en.serial,
		    superseded, out);
	free(superseded);
	registry_enrollment_fini(&en);
	return rc;
}

int
mqtt_serve(authz_ctx *ctx, const char *device_id, int kind,
    const uint8_t *payload, size_t len, mqtt_msg_out *out)
{
	mqtt_msg_req r;
	char why[512] = "";
	const char *what;
	size_t before = out->n;
	int rc;

	if ((rc = mqtt_msg_parse(kind, payload, len, &r, why,
	    sizeof why)) == 0) {
		switch (r.type) {
		case MQTT_REQ_ENROLL:
			rc = do_enroll(ctx, device_id, &r, out, why,
			    sizeof why);
			break;
		case MQTT_REQ_RENEW:
			rc = do_renew(ctx, device_id, &r, out, why,
			    sizeof why);
			break;
		case MQTT_REQ_FETCH:
			rc = do_fetch(ctx, device_id, &r, out, why,
			    sizeof why);
			break;
		default:
			rc = do_ack(ctx, device_id, &r, out, why,
			    sizeof why);
			break;
		}
	}
	if (rc != 0) {
		/* Half a reply is no reply: only the error goes out. */
		while (out->n > before)
			free(out->msg[--out->n]);
		what = mqtt_msg_type_name(r.type);
		if (mqtt_msg_http_code(rc) == 500)
			log_warnx("mqtt: %s from device %s failed: %s (%s)",
			    what ? what : "request", device_id, why,
			    sf_strerror(rc));
		else
			log_info("mqtt: %s from device %s refused (%s): %s",
			    what ? what : "request", device_id,
			    rpc_code_name(rpc_status_from_err(rc)), why);
		if (*why == '\0')
			sf_why(why, sizeof why, "%s", sf_strerror(rc));
		mqtt_msg_error(&r, rc, why, out);
	}
	mqtt_msg_req_fini(&r);
	return rc;
}
