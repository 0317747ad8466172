/*
 * enroll.c - first enrollment, authz's decision on a device's request:
 * the request and its CSR are checked, the CSR's key must be the one the
 * factory registered for the device id in its CN, a retry gets the
 * earlier result back, and only then is the signer asked (through
 * sclient.c) and the certificate recorded in the registry with the
 * product line's template applied. Every refusal is an SF_E* code with a
 * sentence for the device (see enroll.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "csr.h"
#include "devrec.h"
#include "enroll.h"
#include "err.h"
#include "jitp.h"
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "util.h"

int
enroll_ctx_init(enroll_ctx *e, const authz_conf *conf, registry *reg,
    sclient *signer, rate *rl)
{
	memset(e, 0, sizeof *e);
	e->conf = conf;
	e->reg = reg;
	e->signer = signer;
	e->rl = rl;
	for (int i = 0; i < ENROLL_LOCKS; i++)
		pthread_mutex_init(&e->locks[i], NULL);
	return 0;
}

void
enroll_ctx_fini(enroll_ctx *e)
{
	for (int i = 0; i < ENROLL_LOCKS; i++)
		pthread_mutex_destroy(&e->locks[i]);
}

pthread_mutex_t *
enroll_device_lock(enroll_ctx *e, const char *id)
{
	uint32_t h = 2166136261u;

	while (*id)
		h = (h ^ (unsigned char)*id++) * 16777619u;
	return &e->locks[h % ENROLL_LOCKS];
}

static int
key_valid(const char *k)
{
	size_t n = strlen(k);

	if (n > 128)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];

		if (!(c >= 0x21 && c <= 0x7e))
			return 0;
	}
	return 1;
}

/*
 * The enrollment id of a request. With an idempotency key it is derived
 * from (device, key): "enr-" and 32 hex digits of SHA-256 over a domain
 * string, the device id and the key, so that a retry after an orphan (the
 * signer issued, authz never recorded it) asks the signer for the same
 * enrollment and gets that certificate back (Signer.Issue's replay)
 * instead of a second one. A renewal's has its own domain string and the
 * serial it renews before the key, so that it is never a first
 * enrollment's id, nor another renewal's. Without a key it is random:
 * such orphans are found and adopted by `secretfree audit reconcile`.
 */
static int
enrollment_id(const char *device_id, const char *renews, const char *key,
    char out[64])
{
	static const char domain[] = "secretfree.v1 enrollment id";
	static const char rdomain[] = "secretfree.v1 renewal id";
	uint8_t b[EVP_MAX_MD_SIZE];
	unsigned int blen = 0;
	EVP_MD_CTX *md;
	char hex[33];
	int ok;

	if (*key == '\0') {
		if (RAND_bytes(b, 16) != 1)
			return SF_ECRYPTO;
	} else {
		/* The NULs keep ("ab", "c") and ("a", "bc") apart. */
		if ((md = EVP_MD_CTX_new()) == NULL)
			return SF_ENOMEM;
		ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
		    (*renews ? EVP_DigestUpdate(md, rdomain, sizeof rdomain) :
		    EVP_DigestUpdate(md, domain, sizeof domain)) &&
		    EVP_DigestUpdate(md, device_id, strlen(device_id) + 1) &&
		    (!*renews || EVP_DigestUpdate(md, renews,
		    strlen(renews) + 1)) &&
		    EVP_DigestUpdate(md, key, strlen(key)) &&
		    EVP_DigestFinal_ex(md, b, &blen);
		EVP_MD_CTX_free(md);
		if (!ok)
			return SF_ECRYPTO;
	}
	sf_hex(b, 16, hex);
	snprintf(out, 64, "enr-%s", hex);
	return 0;
}

int
enroll_id_for(const char *device_id, const char *renews, const char *key,
    char out[64])
{
	if (*key == '\0')
		return SF_EINVAL;
	return enrollment_id(device_id, renews, key, out);
}

int
enroll_bundle(const registry_enrollment *en, char **bundle, size_t *len,
    uint8_t sha256[32])
{
	unsigned int mdlen = 32;

	*bundle = sf_aprintf("%s%s", en->certificate_pem, en->chain_pem);
	if (*bundle == NULL)
		return SF_ENOMEM;
	*len = strlen(*bundle);
	if (!EVP_Digest(*bundle, *len, sha256, &mdlen, EVP_sha256(), NULL)) {
		free(*bundle);
		*bundle = NULL;
		return SF_ECRYPTO;
	}
	return 0;
}

int
enroll_request_check(enroll_ctx *e, size_t csr_len,
    const char *idempotency_key, char *why, size_t whylen)
{
	if (rate_take_global(e->rl) != 0) {
		sf_why(why, whylen, "too many enrollment requests; retry"
		    " later");
		return SF_ELIMIT;
	}
	if (csr_len == 0) {
		sf_why(why, whylen, "csr is empty");
		return SF_EINVAL;
	}
	if (!key_valid(idempotency_key)) {
		sf_why(why, whylen, "idempotency_key must be at most 128"
		    " printable ASCII characters");
		return SF_EINVAL;
	}
	return 0;
}

/* What can be refused before the CSR is even parsed. */
static int
request_check(enroll_ctx *e, const enroll_req *r, char *why, size_t whylen)
{
	int rc;

	if ((rc = enroll_request_check(e, r->csr_len, r->idempotency_key, why,
	    whylen)) != 0)
		return rc;
	if (*r->region && !sf_name_valid(r->region)) {
		sf_why(why, whylen, "region \"%s\" is not a valid region id",
		    r->region);
		return SF_EINVAL;
	}
	return 0;
}

/*
 * The device the CSR names may enroll with this key: it is registered,
 * not disabled, its registered key is the CSR's, and the region (the
 * request's, else the device's, else the default: *region) is allowed.
 * On success *dev is the device (the caller finalizes it either way).
 */
static int
device_check(enroll_ctx *e, const enroll_req *r, const csr_info *ci,
    registry_device *dev, const char **region, char *why, size_t whylen)
{
	const authz_conf *cf = enroll_conf(e);
	int rc;

	rc = registry_device_get(e->reg, ci->cn, dev);
	if (rc == SF_ENOTFOUND) {
		sf_why(why, whylen, "device %s is not registered", ci->cn);
		return rc;
	} else if (rc) {
		sf_why(why, whylen, "registry lookup failed");
		log_warnx("enroll %s: registry lookup failed: %s", ci->cn,
		    sf_strerror(rc));
		return rc;
	}
	if (dev->state == DEVICE_DISABLED || dev->state == DEVICE_REVOKED) {
		sf_why(why, whylen, "device %s is %s", ci->cn,
		    dev->state == DEVICE_REVOKED ? "revoked" : "disabled");
		return SF_EPERM;
	}
	if (memcmp(dev->key_sha256, ci->key.sha256, 32) != 0) {
		char hex[65];

		pubkey_fp_hex(ci->key.sha256, hex);
		log_warnx("enroll %s: CSR key %s is not the registered key",
		    ci->cn, hex);
		sf_why(why, whylen, "the CSR key is not the key registered"
		    " for device %s", ci->cn);
		return SF_EPERM;
	}
	*region = *r->region ? r->region : *dev->region ? dev->region :
	    cf->default_region;
	if (*dev->region && strcmp(*region, dev->region) != 0) {
		sf_why(why, whylen, "device %s may enroll only in region %s",
		    ci->cn, dev->region);
		return SF_EPERM;
	}
	if (**region == '\0') {
		sf_why(why, whylen, "no region: the request names none, the"
		    " device has none and authz has no default_region");
		return SF_EINVAL;
	}
	return 0;
}

/*
 * An earlier enrollment this request repeats: by (device, idempotency
 * key), else by (device, CSR fingerprint) within the window. 0 with *out,
 * SF_ENOTFOUND when the request is new.
 */
static int
replay_find(enroll_ctx *e, const enroll_req *r, const csr_info *ci,
    registry_enrollment *out, char *why, size_t whylen)
{
	int rc;

	if (*r->idempotency_key)
		rc = registry_enrollment_by_key(e->reg, ci->cn,
		    r->idempotency_key, out);
	else
		rc = registry_enrollment_by_csr(e->reg, ci->cn, ci->sha256,
		    sf_now() - enroll_conf(e)->idempotency_window, out);
	if (rc != 0 && rc != SF_ENOTFOUND)
		sf_why(why, whylen, "registry lookup failed");
	return rc;
}

/* Signer.Issue for a first enrollment (with birth, the device's birth
 * certificate), or for the renewal rn. */
static int
ask_signer(enroll_ctx *e, const enroll_req *r, const registry_device *dev,
    const char *region, const char *eid, const enroll_renewal *rn,
    const char *birth, sclient_cert *sc, char *why, size_t whylen)
{
	sclient_renewal q;

	if (rn == NULL && birth)
		return sclient_issue_birth(e->signer, r->csr, r->csr_len,
		    dev->product_line, region, eid, birth, sc, why, whylen);
	if (rn == NULL)
		return sclient_issue(e->signer, r->csr, r->csr_len,
		    dev->product_line, region, eid, "", sc, why, whylen);
	q.csr = r->csr;
	q.csr_len = r->csr_len;
	q.product_line = dev->product_line;
	q.region = region;
	q.enrollment_id = eid;
	q.replaces_serial = rn->replaces_serial;
	q.current_key_signature = rn->current_key_signature;
	q.current_key_signature_len = rn->current_key_signature_len;
	return sclient_renew(e->signer, &q, sc, why, whylen);
}

/*
 * A device registered by its birth certificate, in the registry once the
 * signer issued its certificate (the signer registered it first).
 */
static int
birth_import(enroll_ctx *e, const csr_info *ci, const registry_device *dev,
    char *why, size_t whylen)
{
	registry_import_rec rec;
	int rc, outcome = 0;

	memset(&rec, 0, sizeof rec);
	rec.device_id = ci->cn;
	rec.spki = ci->key.spki;
	rec.spki_len = ci->key.spki_len;
	rec.key_sha256 = ci->key.sha256;
	rec.product_line = dev->product_line;
	rec.region = "";
	rc = registry_import_birth(e->reg, &rec, dev->origin, &outcome);
	if (rc == 0 && outcome != REGISTRY_IMPORTED &&
	    outcome != REGISTRY_UNCHANGED) {
		sf_why(why, whylen, "device %s cannot be registered: its id or"
		    " key is registered otherwise", ci->cn);
		return SF_ECONFLICT;
	}
	if (rc)
		sf_why(why, whylen, "device %s cannot be registered", ci->cn);
	return rc;
}

static int
issue_with(enroll_ctx *e, const enroll_req *r, const csr_info *ci,
    const registry_device *dev, const char *region, const enroll_renewal *rn,
    const char *birth, int newdev, registry_enrollment *out, int *replayed,
    char *why, size_t whylen);

int
enroll_issue(enroll_ctx *e, const enroll_req *r, const csr_info *ci,
    const registry_device *dev, const char *region, const enroll_renewal *rn,
    registry_enrollment *out, int *replayed, char *why, size_t whylen)
{
	return issue_with(e, r, ci, dev, region, rn, NULL, 0, out, replayed,
	    why, whylen);
}

static int
issue_with(enroll_ctx *e, const enroll_req *r, const csr_info *ci,
    const registry_device *dev, const char *region, const enroll_renewal *rn,
    const char *birth, int newdev, registry_enrollment *out, int *replayed,
    char *why, size_t whylen)
{
	registry_template tmpl;
	registry_enrollment en;
	sclient_cert sc;
	const char *what = rn ? "renew" : "enroll";
	char eid[64];
	int64_t retry_ms = 0;
	int rc, have_tmpl = 0;

	memset(&tmpl, 0, sizeof tmpl);
	memset(&sc, 0, sizeof sc);
	if (rate_take_device(e->rl, ci->cn, &retry_ms) != 0) {
		sf_why(why, whylen, "too many enrollment requests for device"
		    " %s; retry in %lld s", ci->cn,
		    (long long)(retry_ms + 999) / 1000);
		rc = SF_ELIMIT;
		goto out;
	}
	if ((rc = enrollment_id(ci->cn, rn ? rn->replaces_serial : "",
	    r->idempotency_key, eid)) != 0) {
		sf_why(why, whylen, "cannot make an enrollment id");
		goto out;
	}
	if ((rc = ask_signer(e, r, dev, region, eid, rn, birth, &sc, why,
	    whylen)) != 0) {
		log_info("%s %s: signer refused: %s (%s)", what, ci->cn, why,
		    sf_strerror(rc));
		goto out;
	}
	/* Just-in-time provisioning: the signer registered the device and
	 * issued; authz registers it before it records the certificate. */
	if (newdev && (rc = birth_import(e, ci, dev, why, whylen)) != 0) {
		log_warnx("%s %s: certificate %s (enrollment %s) issued but the"
		    " device not registered: %s", what, ci->cn, sc.serial,
		    eid, sf_strerror(rc));
		if (*r->idempotency_key) {
			sf_why(why, whylen, "the certificate was issued but"
			    " could not be recorded; retry with the same"
			    " idempotency key");
			rc = SF_EUNAVAIL;
		}
		goto out;
	}
	memset(&en, 0, sizeof en);
	en.enrollment_id = eid;
	en.device_id = (char *)ci->cn;
	en.idempotency_key = (char *)r->idempotency_key;
	memcpy(en.csr_sha256, ci->sha256, 32);
	en.serial = sc.serial;
	en.ca_name = sc.ca_name;
	en.certificate_pem = sc.certificate_pem;
	en.chain_pem = sc.chain_pem;
	en.region = (char *)region;
	en.not_before = sc.not_before;
	en.not_after = sc.not_after;
	en.created_at = sf_now();
	/* A renewal waits for the device's acknowledgement (renew.h). */
	en.state = rn ? ENROLLMENT_PENDING_ACK : ENROLLMENT_ISSUED;
	en.replaces_serial = (char *)(rn ? rn->replaces_serial : "");
	en.ack_deadline = sc.ack_deadline;
	have_tmpl = registry_template_get(e->reg, dev->product_line,
	    &tmpl) == 0;
	rc = registry_enroll_commit(e->reg, &en, have_tmpl ? &tmpl : NULL);
	/* A racing retry recorded it first; or the signer returned a
	 * certificate `audit reconcile` has adopted meanwhile. */
	if (rc == SF_EEXIST && ((*r->idempotency_key &&
	    registry_enrollment_by_key(e->reg, ci->cn, r->idempotency_key,
	    out) == 0) || (sc.replayed && registry_enrollment_get(e->reg, eid,
	    out) == 0))) {
		*replayed = 1;
		rc = 0;
		goto out;
	}
	if (rc) {
		/*
		 * Issued but not on record: an orphan. With an idempotency
		 * key a retry gets this very certificate from the signer
		 * (the enrollment id is the same), so the device may retry;
		 * without one a retry would get a second certificate, so
		 * INTERNAL (reconcile adopts the orphan).
		 */
		log_warnx("%s %s: certificate %s (enrollment %s) issued but"
		    " not recorded: %s", what, ci->cn, sc.serial, eid,
		    sf_strerror(rc));
		if (*r->idempotency_key) {
			sf_why(why, whylen, "the certificate was issued but"
			    " could not be recorded; retry with the same"
			    " idempotency key");
			rc = SF_EUNAVAIL;
		} else if (rc == SF_EUNAVAIL) {
			/* The registry's disk: full, failing, or its fsync
			 * failed (logged). Reconcile adopts the orphan. */
			sf_why(why, whylen, "the registry cannot record"
			    " certificates now; retry later");
		} else {
			sf_why(why, whylen, "the certificate could not be"
			    " recorded");
			rc = SF_EDB;
		}
		goto out;
	}
	if ((rc = registry_enrollment_get(e->reg, eid, out)) != 0) {
		sf_why(why, whylen, "the enrollment could not be read back");
		rc = SF_EDB;
		goto out;
	}
	/* The signer's earlier certificate is an earlier result too. */
	*replayed = sc.replayed;
	log_info("%s %s: certificate %s from %s (enrollment %s%s%s%s)", what,
	    ci->cn, sc.serial, sc.ca_name, eid, rn ? ", renewing " : "",
	    rn ? rn->replaces_serial : "", sc.replayed ? ", the signer's"
	    " earlier certificate" : "");
out:
	sclient_cert_fini(&sc);
	if (have_tmpl)
		registry_template_fini(&tmpl);
	return rc;
}

/*
 * The birth certificate is good by authz's manufacturer CAs (jitp.h) and
 * names the CSR's device and key; *pl (malloc'd) is the product line of
 * its manufacturer, origin[80] "birth:<manufacturer>". SF_EPERM with why.
 */
static int
birth_check(enroll_ctx *e, const char *birth, const csr_info *ci, char **pl,
    char origin[80], char *why, size_t whylen)
{
	birth_info bi;
	int rc;

	if ((rc = jitp_verify(e, birth, &bi, pl, why, whylen)) != 0) {
		if (rc == SF_EINVAL)
			rc = SF_EPERM;
		return rc;
	}
	rc = SF_EPERM;
	if (strcmp(bi.device_id, ci->cn) != 0)
		sf_why(why, whylen, "the birth certificate is device %s's, the"
		    " CSR names device %s", bi.device_id, ci->cn);
	else if (memcmp(bi.key_sha256, ci->key.sha256, 32) != 0)
		sf_why(why, whylen, "the CSR key is not the key of device"
		    " %s's birth certificate", ci->cn);
	else {
		snprintf(origin, 80, "birth:%s", bi.manufacturer);
		return 0;
	}
	free(*pl);
	*pl = NULL;
	return rc;
}

/*
 * A device authz does not know, with a birth certificate: the device as
 * it will be registered (*dev, the caller finalizes it) and its region.
 */
static int
birth_device(enroll_ctx *e, const enroll_req *r, const csr_info *ci,
    registry_device *dev, const char **region, char *why, size_t whylen)
{
	char origin[80];
	char *pl = NULL;
	int rc;

	if ((rc = birth_check(e, r->birth_cert_pem, ci, &pl, origin, why,
	    whylen)) != 0) {
		log_warnx("enroll %s: birth certificate refused: %s", ci->cn,
		    why);
		return rc;
	}
	memset(dev, 0, sizeof *dev);
	dev->product_line = pl;
	dev->device_id = strdup(ci->cn);
	dev->region = strdup("");
	dev->current_serial = strdup("");
	dev->origin = strdup(origin);
	memcpy(dev->key_sha256, ci->key.sha256, 32);
	dev->state = DEVICE_REGISTERED;
	if (!dev->device_id || !dev->region || !dev->current_serial ||
	    !dev->origin)
		return SF_ENOMEM;
	*region = *r->region ? r->region : enroll_conf(e)->default_region;
	if (*region == NULL || **region == '\0') {
		sf_why(why, whylen, "no region: the request names none and"
		    " authz has no default_region");
		return SF_EINVAL;
	}
	return 0;
}

int
enroll_device(enroll_ctx *e, const enroll_req *r, registry_enrollment *out,
    int *replayed, char *why, size_t whylen)
{
	csr_info ci;
	registry_device dev;
	pthread_mutex_t *lk = NULL;
	const char *region = NULL, *birth = NULL;
	char *pl = NULL, origin[80];
	int rc, newdev = 0;

	memset(out, 0, sizeof *out);
	memset(&ci, 0, sizeof ci);
	memset(&dev, 0, sizeof dev);
	*replayed = 0;
	sf_why(why, whylen, "%s", "");

	if (r->birth_cert_pem && *r->birth_cert_pem)
		birth = r->birth_cert_pem;
	if ((rc = request_check(e, r, why, whylen)) != 0 ||
	    (rc = csr_parse(r->csr, r->csr_len, enroll_conf(e)->csr_max, &ci,
	    why, whylen)) != 0)
		goto out;
	rc = device_check(e, r, &ci, &dev, &region, why, whylen);
	if (rc == SF_ENOTFOUND && birth) {
		/* Just-in-time provisioning: registered on first contact. */
		registry_device_fini(&dev);
		sf_why(why, whylen, "%s", "");
		if ((rc = birth_device(e, r, &ci, &dev, &region, why,
		    whylen)) != 0)
			goto out;
		newdev = 1;
	} else if (rc)
		goto out;
	else if (birth && strncmp(dev.origin, "birth:", 6) != 0 &&
	    r->birth_only) {
		rc = SF_EPERM;
		sf_why(why, whylen, "device %s is registered from a factory"
		    " list, not by a birth certificate: it enrolls with its"
		    " registered key alone (or its current certificate to"
		    " renew)", ci.cn);
		goto out;
	} else if (birth && strncmp(dev.origin, "birth:", 6) != 0)
		birth = NULL;  /* a factory device's client certificate */
	else if (birth && (rc = birth_check(e, birth, &ci, &pl, origin, why,
	    whylen)) != 0) {
		log_warnx("enroll %s: birth certificate refused: %s", ci.cn,
		    why);
		goto out;
	}
	lk = enroll_device_lock(e, ci.cn);
	pthread_mutex_lock(lk);
	/* A retry returns what the first attempt got. */
	rc = replay_find(e, r, &ci, out, why, whylen);
	if (rc == 0) {
		/*
		 * A retry may carry a freshly signed CSR (ECDSA signatures
		 * differ each time); its key is the registered one, checked
		 * above, so it asks for the same certificate.
		 */
		*replayed = 1;
		log_info("enroll %s: returning enrollment %s again (serial %s)",
		    ci.cn, out->enrollment_id, out->serial);
		goto out;
	}
	if (rc == SF_ENOTFOUND)
		rc = issue_with(e, r, &ci, &dev, region, NULL, birth, newdev,
		    out, replayed, why, whylen);
out:
	free(pl);
	if (lk)
		pthread_mutex_unlock(lk);
	if (rc != 0)
		registry_enrollment_fini(out);
	registry_device_fini(&dev);
	csr_info_fini(&ci);
	return rc;
}
