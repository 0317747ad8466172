/*
 * enroll.c - first enrollment (see enroll.h).
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
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "rpc.h"
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

static pthread_mutex_t *
device_lock(enroll_ctx *e, const char *id)
{
	uint32_t h = 2166136261u;

	while (*id)
		h = (h ^ (unsigned char)*id++) * 16777619u;
	return &e->locks[h % ENROLL_LOCKS];
}

static int
idempotency_key_valid(const char *k)
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

static int
new_enrollment_id(char out[64])
{
	uint8_t b[16];
	char hex[33];

	if (RAND_bytes(b, sizeof b) != 1)
		return SF_ECRYPTO;
	sf_hex(b, sizeof b, hex);
	snprintf(out, 64, "enr-%s", hex);
	return 0;
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
enroll_device(enroll_ctx *e, const enroll_req *r, registry_enrollment *out,
    int *replayed, char *why, size_t whylen)
{
	const authz_conf *cf = e->conf;
	csr_info ci;
	registry_device dev;
	registry_template tmpl;
	registry_enrollment en;
	sclient_cert sc;
	pthread_mutex_t *lk = NULL;
	const char *region;
	char eid[64], msg[512];
	int code, rc, have_tmpl = 0;

	memset(out, 0, sizeof *out);
	memset(&ci, 0, sizeof ci);
	memset(&dev, 0, sizeof dev);
	memset(&tmpl, 0, sizeof tmpl);
	memset(&sc, 0, sizeof sc);
	*replayed = 0;
	why[0] = '\0';

	if (rate_take_global(e->rl) != 0) {
		snprintf(why, whylen, "too many enrollment requests; retry"
		    " later");
		return RPC_RESOURCE_EXHAUSTED;
	}
	if (r->csr_len == 0) {
		snprintf(why, whylen, "csr is empty");
		return RPC_INVALID_ARGUMENT;
	}
	if (!idempotency_key_valid(r->idempotency_key)) {
		snprintf(why, whylen, "idempotency_key must be at most 128"
		    " printable ASCII characters");
		return RPC_INVALID_ARGUMENT;
	}
	if (*r->region && !sf_name_valid(r->region)) {
		snprintf(why, whylen, "region \"%s\" is not a valid region id",
		    r->region);
		return RPC_INVALID_ARGUMENT;
	}
	if ((rc = csr_parse(r->csr, r->csr_len, cf->csr_max, &ci, why,
	    whylen)) != 0) {
		code = RPC_INVALID_ARGUMENT;
		goto out;
	}
	rc = registry_device_get(e->reg, ci.cn, &dev);
	if (rc == SF_ENOTFOUND) {
		snprintf(why, whylen, "device %s is not registered", ci.cn);
		code = RPC_NOT_FOUND;
		goto out;
	} else if (rc) {
		snprintf(why, whylen, "registry lookup failed");
		log_warnx("enroll %s: registry lookup failed: %s", ci.cn,
		    sf_strerror(rc));
		code = RPC_INTERNAL;
		goto out;
	}
	code = RPC_PERMISSION_DENIED;
	if (dev.state == DEVICE_DISABLED) {
		snprintf(why, whylen, "device %s is disabled", ci.cn);
		goto out;
	}
	if (memcmp(dev.key_sha256, ci.key.sha256, 32) != 0) {
		char hex[65];

		pubkey_fp_hex(ci.key.sha256, hex);
		log_warnx("enroll %s: CSR key %s is not the registered key",
		    ci.cn, hex);
		snprintf(why, whylen, "the CSR key is not the key registered"
		    " for device %s", ci.cn);
		goto out;
	}
	region = *r->region ? r->region : *dev.region ? dev.region :
	    cf->default_region;
	if (*dev.region && strcmp(region, dev.region) != 0) {
		snprintf(why, whylen, "device %s may enroll only in region %s",
		    ci.cn, dev.region);
		goto out;
	}
	if (*region == '\0') {
		snprintf(why, whylen, "no region: the request names none, the"
		    " device has none and authz has no default_region");
		code = RPC_INVALID_ARGUMENT;
		goto out;
	}

	lk = device_lock(e, ci.cn);
	pthread_mutex_lock(lk);
	/* A retry returns what the first attempt got. */
	if (*r->idempotency_key)
		rc = registry_enrollment_by_key(e->reg, ci.cn,
		    r->idempotency_key, out);
	else
		rc = registry_enrollment_by_csr(e->reg, ci.cn, ci.sha256,
		    sf_now() - cf->idempotency_window, out);
	if (rc == 0) {
		/*
		 * A retry may carry a freshly signed CSR (ECDSA signatures
		 * differ each time); its key is the registered one, checked
		 * above, so it asks for the same certificate.
		 */
		*replayed = 1;
		log_info("enroll %s: returning enrollment %s again (serial %s)",
		    ci.cn, out->enrollment_id, out->serial);
		code = RPC_OK;
		goto out;
	} else if (rc != SF_ENOTFOUND) {
		snprintf(why, whylen, "registry lookup failed");
		code = RPC_INTERNAL;
		goto out;
	}
	if (rate_take_device(e->rl, ci.cn) != 0) {
		snprintf(why, whylen, "too many enrollment requests for device"
		    " %s; retry later", ci.cn);
		code = RPC_RESOURCE_EXHAUSTED;
		goto out;
	}
	if (new_enrollment_id(eid) != 0) {
		code = RPC_INTERNAL;
		goto out;
	}
	code = sclient_issue(e->signer, r->csr, r->csr_len, dev.product_line,
	    region, eid, "", &sc, msg, sizeof msg);
	if (code != RPC_OK) {
		snprintf(why, whylen, "%s", msg);
		log_info("enroll %s: signer refused: %s (%s)", ci.cn, msg,
		    rpc_code_name(code));
		goto out;
	}
	memset(&en, 0, sizeof en);
	en.enrollment_id = eid;
	en.device_id = ci.cn;
	en.idempotency_key = (char *)r->idempotency_key;
	memcpy(en.csr_sha256, ci.sha256, 32);
	en.serial = sc.serial;
	en.ca_name = sc.ca_name;
	en.certificate_pem = sc.certificate_pem;
	en.chain_pem = sc.chain_pem;
	en.region = (char *)region;
	en.not_before = sc.not_before;
	en.not_after = sc.not_after;
	en.created_at = sf_now();
	en.state = ENROLLMENT_ISSUED;
	en.replaces_serial = "";
	have_tmpl = registry_template_get(e->reg, dev.product_line,
	    &tmpl) == 0;
	rc = registry_enroll_commit(e->reg, &en, have_tmpl ? &tmpl : NULL);
	if (rc == SF_EEXIST && *r->idempotency_key &&
	    registry_enrollment_by_key(e->reg, ci.cn, r->idempotency_key,
	    out) == 0) {
		*replayed = 1;
		code = RPC_OK;
		goto out;
	}
	if (rc) {
		log_warnx("enroll %s: certificate %s issued but not recorded:"
		    " %s", ci.cn, sc.serial, sf_strerror(rc));
		snprintf(why, whylen, "the certificate could not be recorded");
		code = RPC_INTERNAL;
		goto out;
	}
	if ((rc = registry_enrollment_get(e->reg, eid, out)) != 0) {
		snprintf(why, whylen, "the enrollment could not be read back");
		code = RPC_INTERNAL;
		goto out;
	}
	log_info("enroll %s: certificate %s from %s (enrollment %s)", ci.cn,
	    sc.serial, sc.ca_name, eid);
	code = RPC_OK;
out:
	if (lk)
		pthread_mutex_unlock(lk);
	if (code != RPC_OK)
		registry_enrollment_fini(out);
	sclient_cert_fini(&sc);
	if (have_tmpl)
		registry_template_fini(&tmpl);
	registry_device_fini(&dev);
	csr_info_fini(&ci);
	return code;
}
