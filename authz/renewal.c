/*
 * renewal.c - renewal with acknowledgement, authz's decisions (see
 * renewal.h): who may renew which certificate and move to which key, who
 * may acknowledge, the first use of a renewed certificate over TLS as its
 * acknowledgement, and the sweep of renewals whose deadline passed. The
 * signer repeats every check that matters on its own.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devrec.h"
#include "err.h"
#include "jitp.h"
#include "keysig.h"
#include "leaf.h"
#include "log.h"
#include "pbenum.h"
#include "renewal.h"
#include "util.h"

#define SWEEP_BATCH 1000

/* What can be refused before the CSR is parsed. */
static int
request_check(authz_ctx *ctx, const renewal_req *r, char *why, size_t whylen)
{
	int rc;

	if ((rc = enroll_request_check(&ctx->en, r->csr_len,
	    r->idempotency_key, why, whylen)) != 0)
		return rc;
	if (*r->current_serial && !sf_serial_valid(r->current_serial)) {
		sf_why(why, whylen, "current_serial must be a serial: 1-40"
		    " upper-case hex digits");
		return SF_EINVAL;
	}
	if (r->current_key_signature_len > KEYSIG_MAX) {
		sf_why(why, whylen, "current_key_signature is too long");
		return SF_EINVAL;
	}
	return 0;
}

/*
 * The certificate the device renews, into serial[64]: the TLS client
 * certificate's (its CN must be the CSR's device id), else the request's
 * current_serial.
 */
static int
current_of(const renewal_req *r, const csr_info *ci, char serial[64],
    char *why, size_t whylen)
{
	leaf_info l;
	int rc;

	if (r->peer_cert == NULL) {
		if (*r->current_serial == '\0') {
			sf_why(why, whylen, "current_serial is required when"
			    " the call does not come over TLS with the current"
			    " certificate");
			return SF_EINVAL;
		}
		sf_strlcpy(serial, r->current_serial, 64);
		return 0;
	}
	if ((rc = leaf_read(r->peer_cert, &l, why, whylen)) != 0)
		return rc;
	if (strcmp(l.cn, ci->cn) != 0) {
		sf_why(why, whylen, "the TLS client certificate is device %s's,"
		    " the CSR names device %s", l.cn, ci->cn);
		rc = SF_EPERM;
	} else if (*r->current_serial && strcmp(r->current_serial,
	    l.serial) != 0) {
		sf_why(why, whylen, "current_serial %s is not the TLS client"
		    " certificate (%s)", r->current_serial, l.serial);
		rc = SF_EINVAL;
	} else
		sf_strlcpy(serial, l.serial, 64);
	leaf_fini(&l);
	return rc;
}

/*
 * The device may renew with the CSR's key: its registered key (the CSR's
 * signature proves the device holds it), or a new key no other device
 * has whose move the registered key signed (current_key_signature over
 * the CSR's DER).
 */
static int
key_check(authz_ctx *ctx, const renewal_req *r, const csr_info *ci,
    const registry_device *dev, char *why, size_t whylen)
{
	uint8_t *der = NULL;
	size_t len = 0;
	char other[65];
	int rc;

	if (memcmp(dev->key_sha256, ci->key.sha256, 32) == 0)
		return 0;
	if (r->current_key_signature_len == 0) {
		sf_why(why, whylen, "the CSR key is not the key registered for"
		    " device %s: a new key needs current_key_signature, the"
		    " current key's signature over the CSR", ci->cn);
		return SF_EPERM;
	}
	if ((rc = keysig_csr_der(ci, &der, &len, why, whylen)) != 0)
		return rc;
	if (keysig_verify_spki(dev->spki, dev->spki_len, der, len,
	    r->current_key_signature, r->current_key_signature_len, NULL,
	    0) != 0) {
		sf_why(why, whylen, "current_key_signature does not verify with"
		    " device %s's registered key", ci->cn);
		rc = SF_EPERM;
	} else if ((rc = registry_device_by_key(ctx->reg, ci->key.sha256,
	    other)) == 0) {
		sf_why(why, whylen, "the new key is registered to device %s",
		    other);
		rc = SF_EPERM;
	} else if (rc == SF_ENOTFOUND)
		rc = 0;
	else
		sf_why(why, whylen, "registry lookup failed");
	free(der);
	return rc;
}

/*
 * An earlier renewal this request repeats: by (device, idempotency key),
 * else by (device, CSR) within the window, and only a renewal of serial
 * (a first enrollment or another renewal with the same CSR bytes is not
 * one). 0 with *out, SF_ENOTFOUND, or SF_EINVAL for a key used for
 * something else.
 */
static int
replay_find(authz_ctx *ctx, const renewal_req *r, const csr_info *ci,
    const char *serial, registry_enrollment *out, char *why, size_t whylen)
{
	int rc;

	if (*r->idempotency_key)
		rc = registry_enrollment_by_key(ctx->reg, ci->cn,
		    r->idempotency_key, out);
	else
		rc = registry_enrollment_by_csr(ctx->reg, ci->cn, ci->sha256,
		    sf_now() - authz_conf_now(ctx)->idempotency_window, out);
	if (rc != 0) {
		if (rc != SF_ENOTFOUND)
			sf_why(why, whylen, "registry lookup failed");
		return rc;
	}
	if (strcmp(out->replaces_serial, serial) == 0)
		return 0;
	if (*r->idempotency_key) {
		sf_why(why, whylen, "idempotency key %s was used for"
		    " enrollment %s, which is not a renewal of %s: use a new"
		    " key for each request", r->idempotency_key,
		    out->enrollment_id, serial);
		rc = SF_EINVAL;
	} else
		rc = SF_ENOTFOUND;
	registry_enrollment_fini(out);
	return rc;
}

/* serial is an ACTIVE, unexpired certificate of device_id in the
 * registry. */
static int
current_check(authz_ctx *ctx, const char *device_id, const char *serial,
    char *why, size_t whylen)
{
	registry_cert c;
	int rc;

	rc = registry_cert_get(ctx->reg, serial, &c);
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "no certificate %s", serial);
	else if (rc != 0)
		sf_why(why, whylen, "registry lookup failed");
	else if (strcmp(c.device_id, device_id) != 0) {
		log_warnx("renew %s: names certificate %s of device %s",
		    device_id, serial, c.device_id);
		sf_why(why, whylen, "certificate %s is not a certificate of"
		    " device %s", serial, device_id);
		rc = SF_EPERM;
	} else if (c.status != CERT_ACTIVE) {
		sf_why(why, whylen, "certificate %s is %s, not active", serial,
		    c.status == CERT_PENDING_ACK ? "pending acknowledgement" :
		    c.status == CERT_SUPERSEDED ? "superseded" : "revoked");
		rc = SF_ESTATE;
	} else if (c.not_after <= sf_now()) {
		sf_why(why, whylen, "certificate %s has expired: enroll again",
		    serial);
		rc = SF_ESTATE;
	}
	registry_cert_fini(&c);
	return rc;
}

/* The region of the renewal: the device's, else its current
 * certificate's, else the default. */
static const char *
region_of(authz_ctx *ctx, const registry_device *dev, const char *serial,
    char buf[64])
{
	registry_cert c;
	registry_enrollment en;

	if (*dev->region)
		return dev->region;
	buf[0] = '\0';
	if (registry_cert_get(ctx->reg, serial, &c) == 0) {
		if (registry_enrollment_get(ctx->reg, c.enrollment_id,
		    &en) == 0)
			sf_strlcpy(buf, en.region, 64);
		registry_enrollment_fini(&en);
	}
	registry_cert_fini(&c);
	return *buf ? buf : authz_conf_now(ctx)->default_region;
}

int
renewal_renew(authz_ctx *ctx, const renewal_req *r, registry_enrollment *out,
    int *replayed, char *why, size_t whylen)
{
	csr_info ci;
	registry_device dev;
	pthread_mutex_t *lk = NULL;
	enroll_req er;
	enroll_renewal rn;
	char serial[64] = "", rbuf[64];
	const char *region;
	int rc;

	memset(out, 0, sizeof *out);
	memset(&ci, 0, sizeof ci);
	memset(&dev, 0, sizeof dev);
	*replayed = 0;
	sf_why(why, whylen, "%s", "");
	if ((rc = request_check(ctx, r, why, whylen)) != 0 ||
	    (rc = csr_parse(r->csr, r->csr_len, authz_conf_now(ctx)->csr_max, &ci, why,
	    whylen)) != 0 ||
	    (rc = current_of(r, &ci, serial, why, whylen)) != 0)
		goto out;
	/* Over TLS the current certificate is one we issued, byte for byte:
	 * never a birth certificate (good for a first enrollment only) nor
	 * another CA's that happens to carry one of our serials. */
	if (r->peer_cert && !jitp_cert_ours(ctx->reg, r->peer_cert)) {
		sf_why(why, whylen, "the TLS client certificate is not a"
		    " certificate we issued: renew with the current one (a"
		    " birth certificate is good for a first enrollment only)");
		rc = SF_EPERM;
		goto out;
	}
	rc = registry_device_get(ctx->reg, ci.cn, &dev);
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "device %s is not registered", ci.cn);
	else if (rc != 0)
		sf_why(why, whylen, "registry lookup failed");
	else if (dev.state == DEVICE_DISABLED || dev.state == DEVICE_REVOKED) {
		sf_why(why, whylen, "device %s is %s", ci.cn,
		    dev.state == DEVICE_REVOKED ? "revoked" : "disabled");
		rc = SF_EPERM;
	}
	if (rc != 0 || (rc = key_check(ctx, r, &ci, &dev, why, whylen)) != 0)
		goto out;
	lk = enroll_device_lock(&ctx->en, ci.cn);
	pthread_mutex_lock(lk);
	if ((rc = replay_find(ctx, r, &ci, serial, out, why, whylen)) == 0) {
		*replayed = 1;
		log_info("renew %s: returning enrollment %s again (serial %s)",
		    ci.cn, out->enrollment_id, out->serial);
		goto out;
	}
	if (rc != SF_ENOTFOUND ||
	    (rc = current_check(ctx, ci.cn, serial, why, whylen)) != 0)
		goto out;
	if (*(region = region_of(ctx, &dev, serial, rbuf)) == '\0') {
		sf_why(why, whylen, "no region: the device has none and authz"
		    " has no default_region");
		rc = SF_EINVAL;
		goto out;
	}
	memset(&er, 0, sizeof er);
	er.csr = r->csr;
	er.csr_len = r->csr_len;
	er.idempotency_key = r->idempotency_key;
	er.region = region;
	rn.replaces_serial = serial;
	rn.current_key_signature = r->current_key_signature;
	rn.current_key_signature_len = r->current_key_signature_len;
	rc = enroll_issue(&ctx->en, &er, &ci, &dev, region, &rn, out,
	    replayed, why, whylen);
out:
	if (lk)
		pthread_mutex_unlock(lk);
	if (rc != 0) {
		registry_enrollment_fini(out);
		log_info("renew %s: refused: %s (%s)", *ci.cn ? ci.cn : "?",
		    why, sf_strerror(rc));
	}
	registry_device_fini(&dev);
	csr_info_fini(&ci);
	return rc;
}

/* ---- acknowledgement ---- */

/* The device holds the key of en's certificate: it presented that
 * certificate over TLS, calls on the admin socket, or signed the
 * enrollment id with its key. */
static int
ack_proof(const renewal_ack_req *r, const registry_enrollment *en, char *why,
    size_t whylen)
{
	leaf_info l;
	int rc;

	if (r->local)
		return 0;
	/* The very certificate, not only its serial: the device listener
	 * also trusts manufacturer CAs, whose serials are theirs to choose. */
	if (r->peer_cert && jitp_same_cert(r->peer_cert, en->certificate_pem))
		return 0;
	if (r->key_signature_len == 0) {
		sf_why(why, whylen, "prove the new certificate: call over TLS"
		    " with it as the client certificate, or send key_signature,"
		    " its key's signature over the enrollment id");
		return SF_EPERM;
	}
	if ((rc = leaf_read(en->certificate_pem, &l, why, whylen)) != 0)
		return rc == SF_EINVAL ? SF_EINTERNAL : rc;
	rc = keysig_verify_spki(l.key.spki, l.key.spki_len,
	    (const uint8_t *)en->enrollment_id, strlen(en->enrollment_id),
	    r->key_signature, r->key_signature_len, NULL, 0);
	leaf_fini(&l);
	if (rc != 0) {
		sf_why(why, whylen, "key_signature does not verify with the key"
		    " of certificate %s", en->serial);
		rc = SF_EPERM;
	}
	return rc;
}

/*
 * The signer, then the registry, for the PENDING_ACK renewal en (its
 * device's lock held): the new key, if it is one, is registered in authz
 * too.
 */
static int
ack_record(authz_ctx *ctx, const registry_enrollment *en, char **superseded,
    char *why, size_t whylen)
{
	registry_device dev;
	registry_key key;
	leaf_info l;
	int64_t acked_at = 0;
	int rc, newkey = 0;

	memset(&dev, 0, sizeof dev);
	memset(&l, 0, sizeof l);
	if ((rc = sclient_acknowledge(ctx->signer, en->device_id, en->serial,
	    &acked_at, why, whylen)) != 0) {
		log_info("acknowledge %s: signer refused: %s (%s)",
		    en->device_id, why, sf_strerror(rc));
		return rc;
	}
	if ((rc = registry_device_get(ctx->reg, en->device_id, &dev)) != 0 ||
	    (rc = leaf_read(en->certificate_pem, &l, why, whylen)) != 0)
		goto out;
	if ((newkey = memcmp(dev.key_sha256, l.key.sha256, 32) != 0)) {
		key.spki = l.key.spki;
		key.spki_len = l.key.spki_len;
		key.key_sha256 = l.key.sha256;
	}
	rc = registry_renew_ack(ctx->reg, en->enrollment_id, acked_at ?
	    acked_at : sf_now(), newkey ? &key : NULL, superseded);
out:
	if (rc != 0) {
		/* The signer's acknowledgement holds; a retry records it
		 * (the signer answers it again). */
		log_warnx("acknowledge %s: certificate %s acknowledged by the"
		    " signer but not recorded: %s", en->device_id, en->serial,
		    sf_strerror(rc));
		sf_why(why, whylen, "the acknowledgement could not be recorded;"
		    " retry");
		rc = SF_EUNAVAIL;
	} else {
		ocsp_cache_forget(ctx->ocsp, *superseded);
		ocsp_cache_forget(ctx->ocsp, en->serial);
		log_info("acknowledge %s: certificate %s is the device's;"
		    " %s superseded%s", en->device_id, en->serial, *superseded,
		    newkey ? "; its new key is registered" : "");
	}
	leaf_fini(&l);
	registry_device_fini(&dev);
	return rc;
}

/* en may be acknowledged now: 0 (*done when it was already), else why. */
static int
ack_state(const registry_enrollment *en, int *done, char *why, size_t whylen)
{
	*done = 0;
	if (*en->replaces_serial == '\0') {
		sf_why(why, whylen, "enrollment %s is no renewal: there is"
		    " nothing to acknowledge", en->enrollment_id);
		return SF_ESTATE;
	}
	if (en->state == ENROLLMENT_FAILED) {
		sf_why(why, whylen, "enrollment %s was not acknowledged before"
		    " its deadline: its certificate %s is revoked, and %s stays"
		    " the device's; renew again", en->enrollment_id,
		    en->serial, en->replaces_serial);
		return SF_ESTATE;
	}
	*done = en->state == ENROLLMENT_ACKNOWLEDGED;
	return 0;
}

int
renewal_acknowledge(authz_ctx *ctx, const renewal_ack_req *r, char **superseded,
    char *why, size_t whylen)
{
	registry_enrollment en;
	pthread_mutex_t *lk = NULL;
	int rc, done = 0;

	*superseded = NULL;
	memset(&en, 0, sizeof en);
	if (!sf_enrollment_id_valid(r->enrollment_id) ||
	    (*r->serial && !sf_serial_valid(r->serial)) ||
	    r->key_signature_len > KEYSIG_MAX) {
		sf_why(why, whylen, "enrollment_id is required; serial, when"
		    " given, is upper-case hex; key_signature at most %d"
		    " bytes", KEYSIG_MAX);
		return SF_EINVAL;
	}
	rc = registry_enrollment_get(ctx->reg, r->enrollment_id, &en);
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "no enrollment %s", r->enrollment_id);
	else if (rc != 0)
		sf_why(why, whylen, "registry lookup failed");
	else if (*r->serial && strcmp(r->serial, en.serial) != 0) {
		sf_why(why, whylen, "certificate %s is not enrollment %s's (%s)",
		    r->serial, en.enrollment_id, en.serial);
		rc = SF_EINVAL;
	}
	if (rc != 0 || (rc = ack_state(&en, &done, why, whylen)) != 0 ||
	    (rc = ack_proof(r, &en, why, whylen)) != 0)
		goto out;
	lk = enroll_device_lock(&ctx->en, en.device_id);
	pthread_mutex_lock(lk);
	/* Read again under the lock: a concurrent acknowledgement. */
	registry_enrollment_fini(&en);
	if ((rc = registry_enrollment_get(ctx->reg, r->enrollment_id,
	    &en)) != 0 || (rc = ack_state(&en, &done, why, whylen)) != 0)
		goto out;
	if (!done)
		rc = ack_record(ctx, &en, superseded, why, whylen);
out:
	if (lk)
		pthread_mutex_unlock(lk);
	if (rc == 0 && done && (*superseded = strdup(en.replaces_serial)) ==
	    NULL)
		rc = SF_ENOMEM;
	registry_enrollment_fini(&en);
	return rc;
}

void
renewal_first_use(authz_ctx *ctx, rpc_call *call)
{
	renewal_first_use_pem(ctx, rpc_call_peer_cert(call));
}

void
renewal_first_use_pem(authz_ctx *ctx, const char *pem)
{
	renewal_ack_req r;
	registry_cert c;
	leaf_info l;
	char why[256] = "", *superseded = NULL;
	int rc;

	if (pem == NULL || leaf_read(pem, &l, NULL, 0) != 0)
		return;
	rc = registry_cert_get(ctx->reg, l.serial, &c);
	leaf_fini(&l);
	if (rc != 0)
		return;
	if (c.status == CERT_PENDING_ACK) {
		memset(&r, 0, sizeof r);
		r.enrollment_id = c.enrollment_id;
		r.serial = c.serial;
		r.peer_cert = pem;
		if (renewal_acknowledge(ctx, &r, &superseded, why,
		    sizeof why) == 0)
			log_info("device %s: certificate %s acknowledged by its"
			    " first use over TLS", c.device_id, c.serial);
		else
			log_warnx("device %s: first use of certificate %s over"
			    " TLS: not acknowledged: %s", c.device_id, c.serial,
			    why);
		free(superseded);
	}
	registry_cert_fini(&c);
}

/* ---- the sweep ---- */

int
renewal_sweep(authz_ctx *ctx, int64_t now)
{
	char **v = NULL;
	size_t n = 0;
	int rc, total = 0;

	do {
		if ((rc = registry_renew_sweep(ctx->reg, now,
		    RENEWAL_EXPIRED_REASON, SWEEP_BATCH, &v, &n)) != 0)
			return rc;
		for (size_t i = 0; i < n; i++) {
			ocsp_cache_forget(ctx->ocsp, v[i]);
			log_info("renewal certificate %s was not acknowledged"
			    " before its deadline: revoked", v[i]);
		}
		registry_strings_free(v, n);
		total += (int)n;
	} while (n == SWEEP_BATCH);
	return total;
}

struct renewal_sweeper {
	authz_ctx *ctx;
	int period_s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;
};

static void *
sweeper_main(void *arg)
{
	renewal_sweeper *s = arg;
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		pthread_mutex_unlock(&s->lock);
		if ((rc = renewal_sweep(s->ctx, sf_now())) < 0)
			log_warnx("renewal sweep: %s", sf_strerror(rc));
		pthread_mutex_lock(&s->lock);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += s->period_s;
		while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock,
		    &ts) == 0)
			;
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int
renewal_sweeper_start(authz_ctx *ctx, int period_s, renewal_sweeper **out)
{
	renewal_sweeper *s;
	pthread_condattr_t ca;

	*out = NULL;
	if ((s = calloc(1, sizeof *s)) == NULL)
		return SF_ENOMEM;
	s->ctx = ctx;
	s->period_s = period_s > 0 ? period_s : 60;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->thread, NULL, sweeper_main, s) != 0) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->wake);
		free(s);
		return SF_EINTERNAL;
	}
	*out = s;
	return 0;
}

void
renewal_sweeper_stop(renewal_sweeper *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	free(s);
}
