/*
 * issue.c - device and server certificates (see issue.h).
 *
 * The signer trusts nothing authz did: it parses and verifies the CSR
 * itself, checks the device id and the key against its own table, and
 * builds every byte of the certificate from the profile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "birth.h"
#include "csr.h"
#include "devrec.h"
#include "devstate.h"
#include "err.h"
#include "issue.h"
#include "log.h"
#include "pbenum.h"
#include "profile.h"
#include "pubkey.h"
#include "renew.h"
#include "secretfree/v1/common.pb-c.h"
#include "util.h"

void
issue_result_fini(issue_result *r)
{
	if (r == NULL)
		return;
	free(r->cert_pem);
	free(r->subject);
	memset(r, 0, sizeof *r);
}

struct replay {
	rate *rl;
	size_t n;
};

static int
replay_one(const char *device_id, int64_t issued_at, void *arg)
{
	struct replay *rp = arg;

	/* An id the rate limit cannot hold was never issued to: skip it. */
	switch (rate_replay_device(rp->rl, device_id, issued_at)) {
	case 0:
		rp->n++;
		return 0;
	case SF_ENOMEM:
		return SF_ENOMEM;
	}
	return 0;
}

int
issue_rate_replay(issuer_ctx *ic, size_t *n)
{
	struct replay rp = { ic->rl, 0 };
	int rc;

	rc = journal_cert_issued_since(ic->jn, sf_now() -
	    issue_conf(ic)->device_window, replay_one, &rp);
	if (n)
		*n = rp.n;
	return rc;
}

/* The end-entity part every leaf shares; eku is clientAuth or serverAuth. */
static X509 *
build_leaf(X509_NAME *subject, const pubkey_info *pk, int days, int eku_nid,
    X509_EXTENSION *san)
{
	X509 *x = X509_new();
	uint8_t ski[20];
	unsigned ku = KU_DIGITAL_SIGNATURE;

	if (pk->alg_nid == NID_rsaEncryption)
		ku |= KU_KEY_ENCIPHERMENT;
	profile_key_id(pk->key_bits, pk->key_bits_len, ski);
	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_subject_name(x, subject) ||
	    profile_set_validity(x, days) != 0 ||
	    profile_set_pubkey_fast(x, pk) != 0 ||
	    profile_add0(x, profile_ext_basic(0, -1)) != 0 ||
	    profile_add0(x, profile_ext_key_usage(ku)) != 0 ||
	    profile_add0(x, profile_ext_eku(&eku_nid, 1)) != 0 ||
	    profile_add0(x, profile_ext_ski(ski)) != 0 ||
	    (san && profile_add(x, san) != 0)) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int
finish(issuer_ctx *ic, ca *issuer, X509 *x, const ca_issue_meta *m,
    issue_result *out, char *why, size_t whylen)
{
	int rc;

	if ((rc = ca_issue(ic->cas, issuer, x, m, out->serial)) != 0) {
		if (rc == SF_EUNAVAIL)
			sf_why(why, whylen, "the token is unavailable");
		else
			sf_why(why, whylen, "issuance failed: %s",
			    sf_strerror(rc));
		if (rc == SF_ECRYPTO || rc == SF_EEXIST)
			rc = SF_EINTERNAL;
		return rc;
	}
	out->cert_pem = profile_cert_pem(x);
	out->subject = profile_subject_fmt(X509_get_subject_name(x));
	out->chain_pem = issuer->chain_pem;
	out->ca_name = issuer->rec.name;
	out->not_before = profile_time_unix(X509_get0_notBefore(x));
	out->not_after = profile_time_unix(X509_get0_notAfter(x));
	if (out->cert_pem == NULL || out->subject == NULL)
		return SF_ENOMEM;
	return 0;
}

/*
 * The journal's view of the device (journal.h), read once for all the
 * checks below, under the device's lock. SF_ENOTFOUND with why.
 */
static int
read_device(issuer_ctx *ic, const issue_req *r, const char *id,
    journal_device_view *dv, char *why, size_t whylen)
{
	int rc;

	rc = journal_device_view_get(ic->jn, id, r->enrollment_id, sf_now(),
	    (uint32_t)issue_conf(ic)->device_live, dv);
	if (rc == SF_ENOTFOUND) {
		log_warnx("issue: device %s is not in the signer's table"
		    " (authz should have refused it)", id);
		sf_why(why, whylen, "device %s is not registered", id);
	} else if (rc)
		sf_why(why, whylen, "device lookup failed");
	return rc;
}

/*
 * The second, independent check of the device key: the CSR's key must be
 * the one the signer's own table registers for the CSR's device id (dv;
 * or a new key a renewal proves the device may move to), and the request
 * must be for that device's product line and region. SF_EPERM, or the
 * renewal's errors.
 */
static int
check_device(issuer_ctx *ic, const issue_req *r, const csr_info *ci,
    const journal_device_view *dv, char *why, size_t whylen)
{
	const char *pl = dv->product_line, *rg = dv->region;
	int rc;

	/* Another key: only a renewal that proves the move (renew.h). */
	if (memcmp(dv->key_sha256, ci->key.sha256, 32) != 0 &&
	    (rc = renew_key_proof(ic, r, ci, dv->key_sha256, why,
	    whylen)) != 0)
		return rc;
	if (strcmp(pl, r->product_line) != 0) {
		log_warnx("issue: device %s is registered for product line %s,"
		    " not %s", ci->cn, pl, r->product_line);
		sf_why(why, whylen, "device %s is registered for product"
		    " line %s, not %s", ci->cn, pl, r->product_line);
		return SF_EPERM;
	}
	if (*rg && strcmp(rg, r->region) != 0) {
		log_warnx("issue: device %s is registered for region %s, not"
		    " %s", ci->cn, rg, r->region);
		sf_why(why, whylen, "device %s may enroll only in region %s",
		    ci->cn, rg);
		return SF_EPERM;
	}
	return 0;
}

/*
 * Just-in-time provisioning: the birth certificate r carries is good (the
 * manufacturer CAs registered for r->product_line, birth.h) and names the
 * CSR's device id and key; its manufacturer into mfr, its serial into
 * serial. SF_EPERM with why.
 */
static int
birth_check(issuer_ctx *ic, const issue_req *r, const csr_info *ci,
    char mfr[64], char serial[64], char *why, size_t whylen)
{
	journal_mfr *v = NULL;
	birth_anchor *a = NULL;
	birth_info bi;
	size_t n = 0;
	int rc;

	if ((rc = journal_mfr_list(ic->jn, r->product_line, &v, &n)) != 0) {
		sf_why(why, whylen, "manufacturer lookup failed");
		return rc;
	}
	if (n && (a = calloc(n, sizeof *a)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		a[i].name = v[i].name;
		a[i].cert = v[i].cert_der;
		a[i].cert_len = v[i].cert_len;
		a[i].crl = v[i].crl_der;
		a[i].crl_len = v[i].crl_len;
	}
	if ((rc = birth_verify((const char *)r->birth_cert, r->birth_cert_len,
	    a, n, sf_now(), &bi, why, whylen)) != 0) {
		rc = SF_EPERM;
		goto out;
	}
	rc = SF_EPERM;
	if (strcmp(bi.device_id, ci->cn) != 0) {
		sf_why(why, whylen, "the birth certificate is device %s's, the"
		    " CSR names device %s", bi.device_id, ci->cn);
		goto out;
	}
	if (memcmp(bi.key_sha256, ci->key.sha256, 32) != 0) {
		sf_why(why, whylen, "the CSR key is not the key of device"
		    " %s's birth certificate", ci->cn);
		goto out;
	}
	sf_strlcpy(mfr, bi.manufacturer, 64);
	sf_strlcpy(serial, bi.serial, 64);
	rc = 0;
out:
	if (rc)
		log_warnx("issue: birth certificate for %s refused: %s",
		    ci->cn, why);
	free(a);
	journal_mfrs_free(v, n);
	return rc;
}

/*
 * Register the device of a good birth certificate if the table does not
 * have it (under the device's lock).
 */
static int
birth_register(issuer_ctx *ic, const issue_req *r, const csr_info *ci,
    const char *mfr, const char *serial, char *why, size_t whylen)
{
	char origin[80];
	int rc;

	snprintf(origin, sizeof origin, "birth:%s", mfr);
	rc = journal_device_register_birth(ic->jn, ci->cn, ci->key.sha256,
	    r->product_line, "", origin, serial);
	if (rc == SF_EEXIST)
		return 0;
	if (rc == SF_ECONFLICT) {
		sf_why(why, whylen, "the key of device %s's birth certificate"
		    " is registered to another device", ci->cn);
		return SF_EPERM;
	}
	if (rc) {
		sf_why(why, whylen, "cannot register device %s", ci->cn);
		return rc;
	}
	log_info("issue: device %s registered by its birth certificate %s"
	    " (manufacturer %s)", ci->cn, serial, mfr);
	return 0;
}

/*
 * A device registered by its birth certificate gets a first certificate
 * again only if the admin allowed it (*allowed says so, to be reset once
 * issued). Renewals prove the current certificate and are not concerned.
 */
static int
birth_reuse_check(const issue_req *r, const char *id,
    const journal_device_view *dv, int *allowed, char *why, size_t whylen)
{
	*allowed = 0;
	if (*r->replaces_serial)
		return 0;
	if (strncmp(dv->origin, "birth:", 6) == 0 && dv->has_cert) {
		if (!dv->birth_reuse) {
			sf_why(why, whylen, "birth certificate already used;"
			    " renew with the issued certificate, or an admin"
			    " runs `secretfree device allow-birth %s`", id);
			return SF_EPERM;
		}
		*allowed = 1;
	}
	return 0;
}

/* What the caller sends for the journal: its free text, the enrollment id
 * and the certificate a renewal replaces, each of a known form. */
static int
request_check(const issue_req *r, char *why, size_t whylen)
{
	const char *s;

	for (s = r->requester; *s && *s >= 0x20 && *s <= 0x7e; s++)
		;
	if (*s || s - r->requester > 64) {
		sf_why(why, whylen, "requester must be at most 64 printable"
		    " ASCII characters");
		return SF_EINVAL;
	}
	if (*r->enrollment_id && !sf_enrollment_id_valid(r->enrollment_id)) {
		sf_why(why, whylen, "enrollment_id must be at most 64 of"
		    " A-Z, a-z, 0-9, '.', '_', ':', '-'");
		return SF_EINVAL;
	}
	if (*r->replaces_serial && !sf_serial_valid(r->replaces_serial)) {
		sf_why(why, whylen, "replaces_serial must be a serial: 1-40"
		    " upper-case hex digits");
		return SF_EINVAL;
	}
	return 0;
}

/* The device's subject from its product line's template, with CN = the
 * device id added when the template has no CN; NULL with why set. */
static X509_NAME *
device_subject(const signer_conf *cf, const product_conf *pc,
    const ca *issuer, const char *region, const char *device_id, char *why,
    size_t whylen)
{
	X509_NAME *subject = NULL;
	char *subj;

	if ((subj = signer_conf_expand(cf, pc->device_subject,
	    issuer->rec.name, pc->id, region, "", device_id, why,
	    whylen)) == NULL)
		return NULL;
	subject = profile_subject_parse(subj, why, whylen);
	free(subj);
	if (subject != NULL &&
	    X509_NAME_get_index_by_NID(subject, NID_commonName, -1) < 0 &&
	    !X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)device_id, -1, -1, 0)) {
		X509_NAME_free(subject);
		subject = NULL;
	}
	return subject;
}

int
issue_device(issuer_ctx *ic, const issue_req *r, issue_result *out,
    char *why, size_t whylen)
{
	const signer_conf *cf = issue_conf(ic);
	const product_conf *pc;
	csr_info ci;
	journal_device_view dv;
	char profile[64], requester[160], mfr[64] = "", bserial[64] = "";
	X509_NAME *subject = NULL;
	X509 *x = NULL;
	ca *issuer;
	ca_issue_meta m;
	int64_t retry_ms = 0;
	int rc, counted = 0, locked = 0, reuse = 0;

	memset(out, 0, sizeof *out);
	memset(&ci, 0, sizeof ci);
	memset(&dv, 0, sizeof dv);
	why[0] = '\0';
	if (r->csr_len == 0) {
		sf_why(why, whylen, "csr is empty");
		return SF_EINVAL;
	}
	if (!sf_name_valid(r->product_line) || !sf_name_valid(r->region)) {
		sf_why(why, whylen, "product_line and region are required"
		    " (1-32 of a-z, 0-9, -)");
		return SF_EINVAL;
	}
	if ((rc = request_check(r, why, whylen)) != 0)
		return rc;
	if ((rc = rate_take_global(ic->rl)) != 0) {
		sf_why(why, whylen, "global issuance rate exceeded");
		return rc;
	}
	if ((rc = csr_parse(r->csr, r->csr_len, cf->csr_max, &ci, why,
	    whylen)) != 0)
		goto out;
	memcpy(out->key_sha256, ci.key.sha256, 32);
	sf_strlcpy(out->device_id, ci.cn, sizeof out->device_id);

	if (r->birth_cert_len && (rc = birth_check(ic, r, &ci, mfr, bserial,
	    why, whylen)) != 0)
		goto out;

	/* From the first look at the device to the journal's commit. */
	devstate_lock(ci.cn);
	locked = 1;
	if (*mfr && (rc = birth_register(ic, r, &ci, mfr, bserial, why,
	    whylen)) != 0)
		goto out;
	if ((rc = read_device(ic, r, ci.cn, &dv, why, whylen)) != 0 ||
	    (rc = check_device(ic, r, &ci, &dv, why, whylen)) != 0 ||
	    (rc = devstate_admit(ic, r, ci.cn, ci.key.sha256, &dv, out, why,
	    whylen)) != DEVSTATE_ISSUE) {
		if (rc == DEVSTATE_REPLAYED)
			rc = 0;
		goto out;
	}
	/* After the replay: a retry of the same enrollment gets its
	 * certificate back even though the birth certificate is used. */
	if ((rc = birth_reuse_check(r, ci.cn, &dv, &reuse, why, whylen)) != 0)
		goto out;
	rc = SF_ESTATE;
	if ((pc = signer_conf_product(cf, r->product_line)) == NULL) {
		sf_why(why, whylen, "product line %s has no profile in the"
		    " signer's configuration", r->product_line);
		goto out;
	}
	if (!(pc->device_key_types & (1u << ci.key.type))) {
		sf_why(why, whylen, "key type %s is not allowed for product"
		    " line %s", pubkey_type_name(ci.key.type), pc->id);
		rc = SF_EKEYTYPE;
		goto out;
	}
	if ((issuer = ca_find_issuing(ic->cas, r->product_line, r->region)) ==
	    NULL) {
		sf_why(why, whylen, "no active issuing CA %s.%s", r->region,
		    r->product_line);
		goto out;
	}
	if ((rc = ca_usable(ic->cas, issuer, why, whylen)) != 0)
		goto out;
	if ((rc = rate_take_device(ic->rl, ci.cn, &retry_ms)) != 0) {
		sf_why(why, whylen, "too many certificates for device %s:"
		    " at most %d per %d s; the next in %lld s", ci.cn,
		    cf->device_max, cf->device_window,
		    (long long)(retry_ms + 999) / 1000);
		goto out;
	}
	counted = 1;

	rc = SF_EINVAL;
	if ((subject = device_subject(cf, pc, issuer, r->region, ci.cn, why,
	    whylen)) == NULL)
		goto out;
	rc = SF_ECRYPTO;
	if ((x = build_leaf(subject, &ci.key, pc->device_validity_days,
	    NID_client_auth, NULL)) == NULL) {
		sf_why(why, whylen, "cannot build the certificate");
		goto out;
	}
	snprintf(profile, sizeof profile, "device:%s", pc->id);
	m.profile = profile;
	m.device_id = ci.cn;
	m.key_sha256 = ci.key.sha256;
	if (r->peer)
		snprintf(requester, sizeof requester, "%s (%s)", *r->requester ?
		    r->requester : "authz", r->peer);
	m.requester = r->peer ? requester : r->requester;
	m.enrollment_id = r->enrollment_id;
	m.replaces_serial = r->replaces_serial;
	/* A renewal waits for the device's acknowledgement (renew.h). */
	m.ack_deadline = *r->replaces_serial ? sf_now() + cf->ack_timeout : 0;
	if ((rc = finish(ic, issuer, x, &m, out, why, whylen)) != 0)
		goto out;
	out->status = m.ack_deadline ? CERT_PENDING_ACK : CERT_ACTIVE;
	out->ack_deadline = m.ack_deadline;
	/* The admin's leave to use the birth certificate is used up. */
	if (reuse && journal_device_allow_birth(ic->jn, ci.cn, 0) != 0)
		log_warnx("issue: device %s: cannot reset birth_reuse", ci.cn);
	log_info("issue: device %s certificate %s from %s%s%s", ci.cn,
	    out->serial, issuer->rec.name, m.ack_deadline ? ", renewing " :
	    "", r->replaces_serial);
out:
	if (locked)
		devstate_unlock(ci.cn);
	if (rc && counted)
		rate_return_device(ic->rl, ci.cn);
	if (rc) {
		char keep[65];

		sf_strlcpy(keep, out->device_id, sizeof keep);
		issue_result_fini(out);
		sf_strlcpy(out->device_id, keep, sizeof out->device_id);
	}
	X509_free(x);
	X509_NAME_free(subject);
	csr_info_fini(&ci);
	journal_device_view_fini(&dv);
	return rc;
}

/* A server's CSR need not have a device-id CN: only its key is used. */
static int
server_key(const uint8_t *data, size_t len, pubkey_info *pk, char *why,
    size_t whylen)
{
	X509_REQ *req = NULL;
	EVP_PKEY *pub;
	BIO *b;
	int rc = SF_EINVAL;

	if (len > 0 && len < 65536 && memmem(data, len, "-----BEGIN", 10)) {
		if ((b = BIO_new_mem_buf(data, (int)len)) != NULL) {
			req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
			BIO_free(b);
		}
	} else if (len > 0 && len < 65536) {
		const unsigned char *p = data;

		req = d2i_X509_REQ(NULL, &p, (long)len);
	}
	if (req == NULL) {
		sf_why(why, whylen, "csr is not a PKCS#10 request");
		goto out;
	}
	/* The key policy before the signature (csr.h). */
	if ((pub = X509_REQ_get0_pubkey(req)) == NULL) {
		sf_why(why, whylen, "the CSR's key cannot be decoded");
		goto out;
	}
	if ((rc = pubkey_from_evp(pub, pk, why, whylen)) == 0 &&
	    (rc = csr_verify(req, pub, why, whylen)) != 0)
		pubkey_info_free(pk);
out:
	ERR_clear_error();
	X509_REQ_free(req);
	return rc;
}

/*
 * The issuing CA named ca_name ("" or NULL: the first active one) for a
 * certificate of kind ("server", "claim"): ACTIVE and an issuing CA.
 */
static int
pick_issuer(issuer_ctx *ic, const char *ca_name, const char *kind,
    ca **out, char *why, size_t whylen)
{
	ca *issuer = NULL;

	*out = NULL;
	if (ca_name && *ca_name) {
		issuer = ca_find(ic->cas, ca_name, NULL);
		if (issuer == NULL) {
			sf_why(why, whylen, "no CA %s", ca_name);
			return SF_ENOTFOUND;
		}
	} else {
		ca **all;
		size_t n = ca_list(ic->cas, &all);

		for (size_t i = 0; i < n && !issuer; i++)
			if (all[i]->rec.role ==
			    SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING &&
			    ca_state(ic->cas, all[i]) ==
			    SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE)
				issuer = all[i];
		free(all);
		if (issuer == NULL) {
			sf_why(why, whylen, "no active issuing CA yet");
			return SF_ESTATE;
		}
	}
	if (ca_state(ic->cas, issuer) !=
	    SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE ||
	    issuer->rec.role != SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING) {
		sf_why(why, whylen, "CA %s does not issue %s"
		    " certificates (not an active issuing CA)",
		    issuer->rec.name, kind);
		return SF_ESTATE;
	}
	*out = issuer;
	return 0;
}

/* A certificate for a key of our own (server, claim): its issuer, usable
 * now, and the CSR's key. */
static int
own_key_prep(issuer_ctx *ic, const char *ca_name, const char *kind,
    const uint8_t *csr, size_t csr_len, ca **issuer, pubkey_info *pk,
    char *why, size_t whylen)
{
	int rc;

	if ((rc = pick_issuer(ic, ca_name, kind, issuer, why, whylen)) != 0 ||
	    (rc = ca_usable(ic->cas, *issuer, why, whylen)) != 0)
		return rc;
	return server_key(csr, csr_len, pk, why, whylen);
}

int
issue_server(issuer_ctx *ic, const issue_server_req *r, issue_result *out,
    char *why, size_t whylen)
{
	pubkey_info pk;
	X509_NAME *subject = NULL;
	X509_EXTENSION *san = NULL;
	X509 *x = NULL;
	ca *issuer = NULL;
	ca_issue_meta m = { "server", "", NULL, "ca-admin", "", "" };
	const signer_conf *cf = issue_conf(ic);
	const char *cn;
	int rc, days;

	memset(out, 0, sizeof *out);
	memset(&pk, 0, sizeof pk);
	why[0] = '\0';
	if (r->ndns == 0 && r->nips == 0) {
		sf_why(why, whylen, "a server certificate needs at least one"
		    " DNS name or IP address");
		return SF_EINVAL;
	}
	days = r->validity_days ? r->validity_days :
	    cf->server_validity_days;
	if (days < 1 || days > cf->server_validity_days) {
		sf_why(why, whylen, "validity must be 1..%d days",
		    cf->server_validity_days);
		return SF_EINVAL;
	}
	if ((rc = own_key_prep(ic, r->ca_name, "server", r->csr, r->csr_len,
	    &issuer, &pk, why, whylen)) != 0)
		return rc;
	rc = SF_EINVAL;
	cn = r->common_name && *r->common_name ? r->common_name :
	    (r->ndns ? r->dns[0] : r->ips[0]);
	if ((subject = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
	    (const unsigned char *)cf->organization, -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0)) {
		sf_why(why, whylen, "bad common name");
		goto out;
	}
	if ((san = profile_ext_san(r->dns, r->ndns, r->ips, r->nips, why,
	    whylen)) == NULL)
		goto out;
	rc = SF_ECRYPTO;
	if ((x = build_leaf(subject, &pk, days, NID_server_auth, san)) == NULL)
		goto out;
	m.key_sha256 = pk.sha256;
	if ((rc = finish(ic, issuer, x, &m, out, why, whylen)) != 0)
		goto out;
	memcpy(out->key_sha256, pk.sha256, 32);
	log_info("issue: server certificate %s for %s from %s", out->serial,
	    cn, issuer->rec.name);
out:
	if (rc)
		issue_result_fini(out);
	ERR_clear_error();
	X509_EXTENSION_free(san);
	X509_free(x);
	X509_NAME_free(subject);
	pubkey_info_free(&pk);
	return rc;
}

int
issue_claim_batch_ok(const char *batch)
{
	size_t n = 0;

	if (batch == NULL)
		return 0;
	for (; batch[n]; n++)
		if (!((batch[n] >= 'a' && batch[n] <= 'z') ||
		    (batch[n] >= 'A' && batch[n] <= 'Z') ||
		    (batch[n] >= '0' && batch[n] <= '9') ||
		    batch[n] == '-' || batch[n] == '_' || batch[n] == '.'))
			return 0;
	return n >= 1 && n <= ISSUE_CLAIM_BATCH_MAX;
}

int
issue_claim(issuer_ctx *ic, const issue_claim_req *r, issue_result *out,
    char *why, size_t whylen)
{
	pubkey_info pk;
	X509_NAME *subject = NULL;
	X509 *x = NULL;
	ca *issuer = NULL;
	char eid[16 + ISSUE_CLAIM_BATCH_MAX], cn[16 + ISSUE_CLAIM_BATCH_MAX];
	ca_issue_meta m = { "claim", "", NULL, "ca-admin", eid, "", 0 };
	const signer_conf *cf = issue_conf(ic);
	int rc, days;

	memset(out, 0, sizeof *out);
	memset(&pk, 0, sizeof pk);
	why[0] = '\0';
	if (!issue_claim_batch_ok(r->batch)) {
		sf_why(why, whylen, "a batch name is 1-%d of [A-Za-z0-9._-]",
		    ISSUE_CLAIM_BATCH_MAX);
		return SF_EINVAL;
	}
	days = r->validity_days ? r->validity_days : ISSUE_CLAIM_DAYS;
	if (days < 1 || days > ISSUE_CLAIM_DAYS_MAX) {
		sf_why(why, whylen, "validity must be 1..%d days",
		    ISSUE_CLAIM_DAYS_MAX);
		return SF_EINVAL;
	}
	if ((rc = own_key_prep(ic, r->ca_name, "claim", r->csr, r->csr_len,
	    &issuer, &pk, why, whylen)) != 0)
		return rc;
	snprintf(eid, sizeof eid, "%s%s", ISSUE_CLAIM_PREFIX, r->batch);
	snprintf(cn, sizeof cn, "claim-%s", r->batch);
	rc = SF_EINVAL;
	if ((subject = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
	    (const unsigned char *)cf->organization, -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(subject, "OU", MBSTRING_UTF8,
	    (const unsigned char *)"claim", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0)) {
		sf_why(why, whylen, "bad batch name");
		goto out;
	}
	rc = SF_ECRYPTO;
	if ((x = build_leaf(subject, &pk, days, NID_client_auth, NULL)) ==
	    NULL)
		goto out;
	m.key_sha256 = pk.sha256;
	if ((rc = finish(ic, issuer, x, &m, out, why, whylen)) != 0)
		goto out;
	memcpy(out->key_sha256, pk.sha256, 32);
	log_info("issue: claim certificate %s for batch %s from %s",
	    out->serial, r->batch, issuer->rec.name);
out:
	if (rc)
		issue_result_fini(out);
	ERR_clear_error();
	X509_free(x);
	X509_NAME_free(subject);
	pubkey_info_free(&pk);
	return rc;
}
