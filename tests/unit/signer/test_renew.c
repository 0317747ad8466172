/*
 * Unit tests of signer/renew.c and the renewal paths of issue.c and the
 * journal, against a real SoftHSM2 token and journal (ca_fixture.h):
 * a renewal is journaled PENDING_ACK with its deadline (and replayed with
 * it); one pending renewal per certificate; a new key is refused without
 * the current key's signature over the CSR, with a wrong one, for another
 * device's key or certificate, and allowed with the right one, the
 * registered key changing only at the acknowledgement; the
 * acknowledgement supersedes the old certificate (reason superseded, at
 * that time) in one transaction, is idempotent, and is refused for
 * another device, an unknown or malformed serial, a superseded
 * certificate, a disabled device and a passed deadline; the background
 * task revokes a renewal past its deadline (cessationOfOperation, at the
 * deadline) and leaves the old certificate active. common/keysig.c:
 * signatures by each key type, and their refusals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "issue.h"
#include "keysig.h"
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "rate.h"
#include "renew.h"
#include "ca_fixture.h"
#include "../csr_fixture.h"

static ca_fixture fx;
static issuer_ctx ic;
static signer_ctx sctx;
static ca *iss;

static EVP_PKEY *
new_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static void
key_fp(EVP_PKEY *key, uint8_t fp[32])
{
	pubkey_info pk;
	char why[256];

	memset(fp, 0, 32);
	if (pubkey_from_evp(key, &pk, why, sizeof why) == 0)
		memcpy(fp, pk.sha256, 32);
	pubkey_info_free(&pk);
}

static void
register_key(const char *id, EVP_PKEY *key)
{
	uint8_t fp[32];
	journal_device d = { id, fp, "widgiot", "us-east-1" };
	int outcome = 0;

	key_fp(key, fp);
	journal_device_register(fx.jn, &d, 1, &outcome);
	is_int(outcome, JOURNAL_DEV_IMPORTED, "register %s", id);
}

/*
 * issue_device for id's CSR by key under eid, renewing replaces ("" =
 * none), with the CSR signed by signer (NULL: no current_key_signature).
 */
static int
issue_as(EVP_PKEY *key, const char *id, const char *eid,
    const char *replaces, EVP_PKEY *signer, issue_result *out, char *why,
    size_t whylen)
{
	issue_req r = { NULL, 0, "widgiot", "us-east-1", "authz", eid,
	    replaces, NULL, NULL, 0 };
	uint8_t *der = NULL, *sig = NULL;
	size_t siglen = 0;
	int rc = -100;

	memset(out, 0, sizeof *out);
	if (make_csr(key, id, 0, &der, &r.csr_len) != 0)
		return rc;
	r.csr = der;
	if (signer && keysig_sign(signer, der, r.csr_len, &sig, &siglen, why,
	    whylen) != 0)
		goto out;
	r.current_key_signature = sig;
	r.current_key_signature_len = siglen;
	rc = issue_device(&ic, &r, out, why, whylen);
out:
	OPENSSL_free(der);
	free(sig);
	return rc;
}

static int
status_of(const char *serial, journal_cert_row *row)
{
	int st = -1;

	memset(row, 0, sizeof *row);
	if (journal_cert_get(fx.jn, serial, 0, row) == 0)
		st = row->status;
	return st;
}

static int
registered_is(const char *id, EVP_PKEY *key)
{
	uint8_t fp[32], want[32];
	char *pl = NULL, *rg = NULL;
	int same = 0;

	key_fp(key, want);
	if (journal_device_get(fx.jn, id, fp, &pl, &rg) == 0)
		same = memcmp(fp, want, 32) == 0;
	free(pl);
	free(rg);
	return same;
}

/* Same key: PENDING_ACK with its deadline; replayed with it; one at a
 * time; acknowledged, idempotent, superseding. */
static void
test_same_key(void)
{
	EVP_PKEY *k = new_key();
	issue_result a, b, c;
	journal_cert_row row, old;
	char why[512] = "";
	int64_t t = sf_now();

	register_key("rn-1", k);
	is_int(issue_as(k, "rn-1", "rn-1-a", "", NULL, &a, why, sizeof why), 0,
	    "a first certificate (%s)", why);
	is_int(a.status, CERT_ACTIVE, "  ACTIVE, no deadline");
	is_int(issue_as(k, "rn-1", "rn-1-b", a.serial, NULL, &b, why,
	    sizeof why), 0, "a renewal (%s)", why);
	is_int(b.status, CERT_PENDING_ACK, "  PENDING_ACK");
	ok(b.ack_deadline >= t + 72 * 3600 &&
	    b.ack_deadline <= sf_now() + 72 * 3600,
	    "  deadline [limits] ack_timeout_seconds (72 h) away");
	is_int(status_of(b.serial, &row), CERT_PENDING_ACK, "  journaled so");
	is_int(row.ack_deadline, b.ack_deadline, "  with its deadline");
	is_str(row.replaces_serial, a.serial, "  replacing the first");
	journal_cert_row_fini(&row);
	is_int(issue_as(k, "rn-1", "rn-1-b", a.serial, NULL, &c, why,
	    sizeof why), 0, "the same enrollment id again");
	ok(c.replayed && strcmp(c.serial, b.serial) == 0 &&
	    c.status == CERT_PENDING_ACK && c.ack_deadline == b.ack_deadline,
	    "  the pending renewal replayed, with its deadline");
	issue_result_fini(&c);
	is_int(issue_as(k, "rn-1", "rn-1-c", a.serial, NULL, &c, why,
	    sizeof why), SF_ESTATE, "another renewal of it: SF_ESTATE");
	ok(strstr(why, "pending acknowledgement already") != NULL,
	    "  saying one is pending (%s)", why);

	is_int(renew_acknowledge(&sctx, "rn-2", b.serial, &row, why,
	    sizeof why), SF_EPERM, "acknowledged for another device: SF_EPERM");
	is_int(renew_acknowledge(&sctx, "rn-1", "00AB", &row, why, sizeof why),
	    SF_ENOTFOUND, "an unknown serial: SF_ENOTFOUND");
	is_int(renew_acknowledge(&sctx, "rn-1", "ab", &row, why, sizeof why),
	    SF_EINVAL, "a lower-case serial: SF_EINVAL");
	is_int(renew_acknowledge(&sctx, "rn-1", b.serial, &row, why,
	    sizeof why), 0, "acknowledged (%s)", why);
	is_int(row.status, CERT_ACTIVE, "  ACTIVE");
	ok(row.acked_at >= t, "  at a time");
	is_int(status_of(a.serial, &old), CERT_SUPERSEDED,
	    "  the first SUPERSEDED");
	is_int(old.revocation_reason, 4, "  reason superseded");
	is_int(old.revoked_at, row.acked_at, "  at the acknowledgement");
	journal_cert_row_fini(&old);
	journal_cert_row_fini(&row);
	is_int(renew_acknowledge(&sctx, "rn-1", b.serial, &row, why,
	    sizeof why), 0, "acknowledged again: 0");
	journal_cert_row_fini(&row);
	is_int(renew_acknowledge(&sctx, "rn-1", a.serial, &row, why,
	    sizeof why), SF_ESTATE, "the superseded one: SF_ESTATE");
	is_int(issue_as(k, "rn-1", "rn-1-d", a.serial, NULL, &c, why,
	    sizeof why), SF_ESTATE, "renewing the superseded one: SF_ESTATE");
	issue_result_fini(&a);
	issue_result_fini(&b);
	EVP_PKEY_free(k);
}

/* A new key: only with the registered key's signature over the CSR. */
static void
test_new_key(void)
{
	EVP_PKEY *k = new_key(), *n = new_key(), *o = new_key();
	issue_result a, oa, b;
	journal_cert_row row;
	char why[512] = "";
	int64_t before;

	register_key("rn-k", k);
	register_key("rn-o", o);
	issue_as(k, "rn-k", "rn-k-a", "", NULL, &a, why, sizeof why);
	issue_as(o, "rn-o", "rn-o-a", "", NULL, &oa, why, sizeof why);
	journal_cert_count(fx.jn, 0, &before);
	is_int(issue_as(n, "rn-k", "rn-k-b", "", k, &b, why, sizeof why),
	    SF_EPERM, "a new key in a first enrollment: SF_EPERM");
	is_str(why, "the CSR key is not the key registered for device rn-k",
	    "  saying so");
	is_int(issue_as(n, "rn-k", "rn-k-b", a.serial, NULL, &b, why,
	    sizeof why), SF_EPERM, "a new key without a signature: SF_EPERM");
	ok(strstr(why, "no current_key_signature") != NULL, "  saying so");
	is_int(issue_as(n, "rn-k", "rn-k-b", a.serial, n, &b, why, sizeof why),
	    SF_EPERM, "signed by the new key itself: SF_EPERM");
	ok(strstr(why, "does not verify") != NULL, "  saying so (%s)", why);
	is_int(issue_as(n, "rn-k", "rn-k-b", oa.serial, o, &b, why,
	    sizeof why), SF_EPERM, "another device's certificate and key:"
	    " SF_EPERM");
	is_int(issue_as(o, "rn-k", "rn-k-b", a.serial, k, &b, why, sizeof why),
	    SF_EPERM, "another device's registered key: SF_EPERM");
	ok(strstr(why, "registered to device rn-o") != NULL, "  saying so");
	is_int(issue_as(n, "rn-k", "rn-k-b", "0ABC", k, &b, why, sizeof why),
	    SF_ENOTFOUND, "an unknown replaces_serial: SF_ENOTFOUND");
	{
		int64_t now;

		journal_cert_count(fx.jn, 0, &now);
		is_int(now, before, "nothing journaled for any of them");
	}
	is_int(issue_as(n, "rn-k", "rn-k-b", a.serial, k, &b, why, sizeof why),
	    0, "with the current key's signature (%s)", why);
	is_int(b.status, CERT_PENDING_ACK, "  PENDING_ACK");
	ok(registered_is("rn-k", k), "  the registered key is still the old");
	is_int(renew_acknowledge(&sctx, "rn-k", b.serial, &row, why,
	    sizeof why), 0, "acknowledged (%s)", why);
	journal_cert_row_fini(&row);
	ok(registered_is("rn-k", n), "  the new key is registered now");
	issue_result_fini(&b);
	is_int(issue_as(k, "rn-k", "rn-k-c", "", NULL, &b, why, sizeof why),
	    SF_EPERM, "the old key no longer gets anything");
	issue_result_fini(&a);
	issue_result_fini(&oa);
	EVP_PKEY_free(k);
	EVP_PKEY_free(n);
	EVP_PKEY_free(o);
}

/* Past the deadline: the acknowledgement refused, the task revokes. */
static void
test_deadline(void)
{
	EVP_PKEY *k = new_key(), *d = new_key();
	issue_result a, b, da, db;
	journal_cert_row row;
	char why[512] = "";
	int changed = 0, saved = fx.conf->ack_timeout;

	register_key("rn-t", k);
	register_key("rn-d", d);
	fx.conf->ack_timeout = 1;
	issue_as(k, "rn-t", "rn-t-a", "", NULL, &a, why, sizeof why);
	is_int(issue_as(k, "rn-t", "rn-t-b", a.serial, NULL, &b, why,
	    sizeof why), 0, "a renewal with a deadline a second away");
	issue_as(d, "rn-d", "rn-d-a", "", NULL, &da, why, sizeof why);
	issue_as(d, "rn-d", "rn-d-b", da.serial, NULL, &db, why, sizeof why);
	fx.conf->ack_timeout = saved;
	journal_device_set_state(fx.jn, "rn-d", DEVICE_DISABLED, "", sf_now(),
	    &changed);
	is_int(renew_acknowledge(&sctx, "rn-d", db.serial, &row, why,
	    sizeof why), SF_EPERM, "a disabled device's: SF_EPERM");
	is_int(renew_task(&sctx, sf_now()), 0, "the task before the deadline");
	is_int(status_of(b.serial, &row), CERT_PENDING_ACK, "  leaves it");
	journal_cert_row_fini(&row);
	sleep(2);
	is_int(renew_acknowledge(&sctx, "rn-t", b.serial, &row, why,
	    sizeof why), SF_ESTATE, "acknowledged too late: SF_ESTATE");
	ok(strstr(why, "deadline") != NULL, "  saying so (%s)", why);
	is_int(issue_as(k, "rn-t", "rn-t-c", a.serial, NULL, &da, why,
	    sizeof why), 0, "a new renewal is not held back by it");
	issue_result_fini(&da);
	is_int(renew_task(&sctx, sf_now()), 0, "the task after the deadline");
	is_int(status_of(b.serial, &row), CERT_REVOKED, "  revoked it");
	is_int(row.revocation_reason, RENEW_EXPIRED_REASON,
	    "  for cessationOfOperation");
	is_int(row.revoked_at, b.ack_deadline, "  at its deadline");
	journal_cert_row_fini(&row);
	is_int(status_of(db.serial, &row), CERT_REVOKED,
	    "  the disabled device's too");
	journal_cert_row_fini(&row);
	is_int(status_of(a.serial, &row), CERT_ACTIVE,
	    "  the certificate it would have replaced stays ACTIVE");
	journal_cert_row_fini(&row);
	is_int(renew_task_period(fx.conf), 60, "the task's period: at most 60"
	    " s");
	fx.conf->ack_timeout = 16;
	is_int(renew_task_period(fx.conf), 2, "  an eighth of the timeout");
	fx.conf->ack_timeout = 1;
	is_int(renew_task_period(fx.conf), 1, "  at least 1 s");
	fx.conf->ack_timeout = saved;
	issue_result_fini(&a);
	issue_result_fini(&b);
	issue_result_fini(&db);
	EVP_PKEY_free(k);
	EVP_PKEY_free(d);
}

/* keysig.c with each key type. */
static void
test_keysig(void)
{
	static const struct { const char *alg, *param; } types[] = {
		{ "EC", "P-256" }, { "EC", "P-384" }, { "RSA", NULL },
		{ "ED25519", NULL },
	};
	const uint8_t msg[] = "enr-0123";
	uint8_t *sig = NULL, *der = NULL;
	size_t siglen = 0;
	char why[256] = "";

	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		EVP_PKEY *k = types[i].param ? EVP_PKEY_Q_keygen(NULL, NULL,
		    types[i].alg, types[i].param) : strcmp(types[i].alg,
		    "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
		    (size_t)2048) : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		EVP_PKEY *other = new_key();
		int l;

		is_int(keysig_sign(k, msg, sizeof msg, &sig, &siglen, why,
		    sizeof why), 0, "%s %s: signs", types[i].alg,
		    types[i].param ? types[i].param : "");
		is_int(keysig_verify(k, msg, sizeof msg, sig, siglen, why,
		    sizeof why), 0, "  verifies");
		is_int(keysig_verify(k, msg, sizeof msg - 1, sig, siglen, why,
		    sizeof why), SF_EPERM, "  not over other bytes");
		is_int(keysig_verify(other, msg, sizeof msg, sig, siglen, why,
		    sizeof why), SF_EPERM, "  not with another key");
		der = NULL;
		if ((l = i2d_PUBKEY(k, &der)) > 0) {
			is_int(keysig_verify_spki(der, (size_t)l, msg,
			    sizeof msg, sig, siglen, why, sizeof why), 0,
			    "  verifies with its SPKI");
		}
		OPENSSL_free(der);
		free(sig);
		sig = NULL;
		EVP_PKEY_free(other);
		EVP_PKEY_free(k);
	}
	is_int(keysig_verify_spki((const uint8_t *)"junk", 4, msg, sizeof msg,
	    msg, 4, why, sizeof why), SF_EINVAL, "junk as a key: SF_EINVAL");
	is_int(keysig_verify_cert((const uint8_t *)"junk", 4, msg, sizeof msg,
	    msg, 4, why, sizeof why), SF_EINVAL, "junk as a certificate:"
	    " SF_EINVAL");
	{
		EVP_PKEY *k = new_key();
		uint8_t big[KEYSIG_MAX + 1];

		memset(big, 1, sizeof big);
		is_int(keysig_verify(k, msg, sizeof msg, msg, 0, why,
		    sizeof why), SF_EINVAL, "an empty signature: SF_EINVAL");
		is_int(keysig_verify(k, msg, sizeof msg, big, sizeof big, why,
		    sizeof why), SF_EINVAL, "an oversized one: SF_EINVAL");
		EVP_PKEY_free(k);
	}
}

/* keysig_csr_der gives the bytes received, and refuses another encoding
 * of the same request. */
static void
test_csr_der(void)
{
	EVP_PKEY *k = new_key();
	uint8_t *der = NULL, *back = NULL, *ber = NULL;
	size_t len = 0, blen = 0;
	csr_info ci;
	char why[256] = "";

	memset(&ci, 0, sizeof ci);
	if (make_csr(k, "rn-der", 0, &der, &len) != 0 || len < 200 ||
	    len > 255) {
		tap_skip("no CSR of the expected size");
		goto out;
	}
	if (csr_parse(der, len, 16384, &ci, why, sizeof why) == 0 &&
	    keysig_csr_der(&ci, &back, &blen, why, sizeof why) == 0)
		ok(blen == len && memcmp(back, der, len) == 0,
		    "the CSR's DER is the bytes sent");
	else
		ok(0, "the CSR's DER (%s)", why);
	csr_info_fini(&ci);
	/* The outer length in long form, two bytes where one would do. */
	ber = malloc(len + 1);
	if (ber && der[1] == 0x81) {
		ber[0] = 0x30;
		ber[1] = 0x82;
		ber[2] = 0;
		memcpy(ber + 3, der + 2, len - 2);
		if (csr_parse(ber, len + 1, 16384, &ci, why, sizeof why) == 0) {
			free(back);
			back = NULL;
			is_int(keysig_csr_der(&ci, &back, &blen, why,
			    sizeof why), SF_EINVAL, "a BER length: not the"
			    " bytes received, SF_EINVAL");
		} else
			ok(1, "a BER length is refused by csr_parse already");
		csr_info_fini(&ci);
	} else
		tap_skip("CSR length not in one byte of long form");
out:
	free(ber);
	free(back);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

int
main(void)
{
	log_init("test_renew", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "sf-renew", NULL) != 0)
		return tap_done();
	iss = ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL) &&
	    ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot", NULL) ?
	    ca_fixture_create(&fx, ROLE_ISSUING, "widgiot", "us-east-1") :
	    NULL;
	ic.conf = fx.conf;
	ic.cas = fx.cas;
	ic.jn = fx.jn;
	ic.rl = rate_new(1000, 3600, 1000, 1000);
	sctx.conf = fx.conf;
	sctx.jn = fx.jn;
	sctx.cas = fx.cas;
	sctx.ic = ic;
	if (iss && ic.rl) {
		test_same_key();
		test_new_key();
		test_deadline();
		test_keysig();
		test_csr_der();
	}
	rate_free(ic.rl);
	ca_fixture_close(&fx);
	return tap_done();
}
