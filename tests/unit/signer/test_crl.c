/*
 * Unit tests of signer/crl.c against a real SoftHSM2 token and journal
 * (ca_fixture.h): root -> widgiot -> us-east-1.widgiot (one CRL) and
 * eu-west-1.widgiot (4 partitions). Shard and URL rules; a CRL for every
 * CA at the first run and none again until something changes; after
 * revocations, a CRL whose every field is checked from its DER (issuer,
 * times, number, AKI, reasons, IDP equal to the certificates' CRL DP,
 * the token's signature) and that OpenSSL's own CRL check applies;
 * regeneration before nextUpdate, a revoked CA that stops renewing,
 * expired entries dropping off; partitions whose every serial is in
 * exactly its shard, a complete CRL without IDP, and OpenSSL refusing a
 * certificate against its shard's CRL; CRLs made on demand; refusals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "crl.h"
#include "issue.h"
#include "log.h"
#include "profile.h"
#include "rate.h"
#include "rpc.h"
#include "ca_fixture.h"
#include "../csr_fixture.h"

#define VALIDITY 3600
#define REFRESH 600
#define SHARDS 4
#define NSHARDED 40

static ca_fixture fx;
static issuer_ctx ic;
static signer_ctx sc;
static ca *root, *inter, *iss, *sharded;

/* ---- helpers ---- */

/* A server certificate from ca_name (1 day); its serial into serial,
 * the certificate returned (the caller's), NULL if not issued. */
static X509 *
issue_one(const char *ca_name, char serial[64])
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *const dv[] = { "s.widgiot.example.net" };
	issue_server_req r = { NULL, 0, ca_name, dv, 1, NULL, 0, "", 1 };
	issue_result out;
	uint8_t *der = NULL;
	char why[256] = "";
	X509 *x = NULL;

	memset(&out, 0, sizeof out);
	serial[0] = '\0';
	if (k && make_csr(k, "server", 0, &der, &r.csr_len) == 0) {
		r.csr = der;
		if (issue_server(&ic, &r, &out, why, sizeof why) == 0) {
			x = pem_cert(out.cert_pem);
			snprintf(serial, 64, "%s", out.serial);
		} else
			tap_diag("issue_server: %s", why);
	}
	issue_result_fini(&out);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	return x;
}

/* The stored CRL of c's shard, parsed; NULL if there is none. */
static X509_CRL *
stored(ca *c, int shard, journal_crl *row)
{
	const unsigned char *p;
	char why[256] = "";
	X509_CRL *crl = NULL;

	if (crl_get(&sc, c, shard, row, why, sizeof why) != 0) {
		tap_diag("crl_get: %s", why);
		return NULL;
	}
	p = row->der;
	crl = d2i_X509_CRL(NULL, &p, (long)row->der_len);
	return crl;
}

static int64_t
crl_number(X509_CRL *crl)
{
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	int64_t v = -1;

	if (n == NULL || !ASN1_INTEGER_get_int64(&v, n))
		v = -1;
	ASN1_INTEGER_free(n);
	return v;
}

/* The first URI of a DistributionPointName (borrowed), or NULL. */
static const char *
dp_uri(const DIST_POINT_NAME *n)
{
	GENERAL_NAME *gn;

	if (n == NULL || n->type != 0 ||
	    sk_GENERAL_NAME_num(n->name.fullname) < 1)
		return NULL;
	gn = sk_GENERAL_NAME_value(n->name.fullname, 0);
	return gn->type == GEN_URI ? (const char *)ASN1_STRING_get0_data(
	    gn->d.uniformResourceIdentifier) : NULL;
}

/* The CRL's IDP URI (malloc'd) and whether it is critical; NULL if none. */
static char *
idp_uri(X509_CRL *crl, int *crit)
{
	ISSUING_DIST_POINT *idp = X509_CRL_get_ext_d2i(crl,
	    NID_issuing_distribution_point, crit, NULL);
	const char *u = idp ? dp_uri(idp->distpoint) : NULL;
	char *s = u ? strdup(u) : NULL;

	ISSUING_DIST_POINT_free(idp);
	return s;
}

/* The certificate's first CRL DP URI (malloc'd), or NULL. */
static char *
cdp_uri(X509 *x)
{
	CRL_DIST_POINTS *dps = X509_get_ext_d2i(x, NID_crl_distribution_points,
	    NULL, NULL);
	const char *u = dps && sk_DIST_POINT_num(dps) > 0 ?
	    dp_uri(sk_DIST_POINT_value(dps, 0)->distpoint) : NULL;
	char *s = u ? strdup(u) : NULL;

	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return s;
}

/* The reason code of serial's entry: -1 not listed, 0 no reasonCode. */
static int
entry_reason(X509_CRL *crl, const X509 *x)
{
	X509_REVOKED *rv = NULL;
	ASN1_ENUMERATED *e;
	int r;

	if (X509_CRL_get0_by_serial(crl, &rv,
	    X509_get0_serialNumber(x)) != 1)
		return -1;
	if ((e = X509_REVOKED_get_ext_d2i(rv, NID_crl_reason, NULL,
	    NULL)) == NULL)
		return 0;
	r = (int)ASN1_ENUMERATED_get(e);
	ASN1_ENUMERATED_free(e);
	return r;
}

/* X509_verify_cert of leaf under root, through the CA certificates
 * between, with crl as the only CRL and the leaf's CRL checked. */
static int
verify_with_crl(X509 *leaf, X509_CRL *crl)
{
	X509 *between[] = { inter->cert, iss->cert, sharded->cert, NULL };

	return chain_error_crl(leaf, root->cert, between, 1, crl);
}

/* ---- the rules ---- */

/* crl_reply_bytes: never less than what the reply really carries (the
 * DER, and the PEM OpenSSL writes of it), so a CRL that passes the check
 * fits; a CRL of 7 MiB fits alone, not with its PEM. */
static void
test_reply_bytes(void)
{
	static const size_t lens[] = { 1, 2, 47, 48, 49, 1000, 65536, 999999 };
	unsigned char *der = calloc(1, 999999);
	int under = 0;

	for (size_t i = 0; der && i < sizeof lens / sizeof lens[0]; i++) {
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long n = 0;

		if (b && PEM_write_bio(b, PEM_STRING_X509_CRL, "", der,
		    (long)lens[i]))
			n = BIO_get_mem_data(b, &data);
		if (n <= 0 || crl_reply_bytes(lens[i], 1) <
		    lens[i] + (size_t)n || crl_reply_bytes(lens[i], 0) <
		    lens[i])
			under++;
		BIO_free(b);
	}
	free(der);
	is_int(under, 0, "crl_reply_bytes: at least the DER and its PEM, for"
	    " 8 sizes from 1 to 999,999 bytes");
	ok(crl_reply_bytes(7u << 20, 0) <= RPC_REPLY_MAX &&
	    crl_reply_bytes(7u << 20, 1) > RPC_REPLY_MAX, "a CRL of 7 MiB:"
	    " Signer.GetCrl carries it, CaAdmin.GetCrl (with PEM) refuses it");
}

static void
test_rules(void)
{
	char *u;

	is_int(crl_shard_of("00", 4), 1, "shard of 00 of 4: 1");
	is_int(crl_shard_of("FF", 4), 4, "shard of FF (255) of 4: 4");
	is_int(crl_shard_of("0100", 4), 1, "shard of 0100 (256) of 4: 1");
	is_int(crl_shard_of("ff", 4), 4, "lower case: the same");
	/* 2^127 - 1 = 1 (mod 7), since 2^3 = 1 (mod 7) and 127 = 3*42+1. */
	is_int(crl_shard_of("7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", 7), 2,
	    "a 16-byte serial: its value modulo 7, plus one");
	is_int(crl_shard_of("FF", 1), 0, "one shard: 0");
	is_int(crl_shard_of("XY", 4), 0, "not hex: 0");
	u = crl_shard_url("http://crl.example.net/a.widgiot.crl", 3);
	is_str(u, "http://crl.example.net/a.widgiot-3.crl",
	    "shard URL: -3 before .crl");
	free(u);
	u = crl_shard_url("http://crl.example.net/a", 12);
	is_str(u, "http://crl.example.net/a-12.crl",
	    "shard URL without .crl: -12.crl appended");
	free(u);
	u = crl_shard_url("http://crl.example.net/a.crl", 0);
	is_str(u, "http://crl.example.net/a.crl", "shard 0: the URL itself");
	free(u);
	test_reply_bytes();
}

/* ---- one CA, one CRL ---- */

static void
test_first_run(int64_t now)
{
	journal_crl row;
	X509_CRL *crl;
	int all = 1;

	ok(crl_due(&sc, iss, now), "a CA without a CRL is due");
	is_int(crl_task(&sc, now), 0, "the task makes every CA's CRL");
	all = !crl_due(&sc, root, now) && !crl_due(&sc, inter, now) &&
	    !crl_due(&sc, iss, now) && !crl_due(&sc, sharded, now);
	ok(all, "then no CA is due");
	crl = stored(iss, 0, &row);
	ok(crl != NULL, "us-east-1 has a stored CRL");
	is_int(row.crl_number, 1, "its number is 1");
	is_int(row.revoked_count, 0, "no entries");
	ok(crl && X509_CRL_get_REVOKED(crl) == NULL, "the DER lists none");
	is_int(crl ? crl_number(crl) : -1, 1, "CRL number extension: 1");
	X509_CRL_free(crl);
	journal_crl_fini(&row);
}

static void
check_fields(X509_CRL *crl, int64_t now, X509 *leaf)
{
	AUTHORITY_KEYID *aki;
	char *idp, *cdp;
	int crit = -1;

	is_int(X509_CRL_get_version(crl), X509_CRL_VERSION_2, "version 2");
	ok(X509_NAME_cmp(X509_CRL_get_issuer(crl),
	    X509_get_subject_name(iss->cert)) == 0, "issuer: the CA's subject");
	is_int(profile_time_unix(X509_CRL_get0_lastUpdate(crl)), now,
	    "thisUpdate: when it was made");
	is_int(profile_time_unix(X509_CRL_get0_nextUpdate(crl)),
	    now + VALIDITY, "nextUpdate: + [crl] validity_seconds");
	aki = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL,
	    NULL);
	ok(aki && aki->keyid && aki->keyid->length == 20 &&
	    memcmp(aki->keyid->data, iss->ski, 20) == 0,
	    "AKI: the CA's key id");
	AUTHORITY_KEYID_free(aki);
	idp = idp_uri(crl, &crit);
	cdp = cdp_uri(leaf);
	ok(idp != NULL && cdp != NULL && strcmp(idp, cdp) == 0,
	    "IDP (%s) is the certificates' CRL DP (%s)", idp ? idp : "-",
	    cdp ? cdp : "-");
	is_int(crit, 1, "IDP critical");
	free(idp);
	free(cdp);
	is_int(X509_CRL_verify(crl, X509_get0_pubkey(iss->cert)), 1,
	    "signature verifies with the CA certificate's key");
	is_int(X509_CRL_verify(crl, X509_get0_pubkey(inter->cert)), 0,
	    "and not with another CA's");
	ERR_clear_error();
}

static void
test_revocations(int64_t now)
{
	char s1[64], s2[64], s3[64];
	X509 *a = issue_one("us-east-1.widgiot", s1);
	X509 *b = issue_one("us-east-1.widgiot", s2);
	X509 *c = issue_one("us-east-1.widgiot", s3);
	journal_crl row;
	X509_CRL *crl;

	ok(a && b && c, "three certificates from us-east-1");
	if (!a || !b || !c)
		goto out;
	ok(!crl_due(&sc, iss, now), "issuing changes nothing");
	is_int(journal_cert_revoke(fx.jn, iss->rec.id, s1, 1, now - 5), 0,
	    "revoke a: keyCompromise");
	is_int(journal_cert_revoke(fx.jn, iss->rec.id, s2, 0, now - 4), 0,
	    "revoke b: unspecified");
	ok(crl_due(&sc, iss, now), "a revocation makes the CA due");
	ok(!crl_due(&sc, inter, now), "but not another CA");
	is_int(crl_task(&sc, now), 0, "the task runs");
	ok(!crl_due(&sc, iss, now), "then it is not due");
	crl = stored(iss, 0, &row);
	ok(crl != NULL, "the new CRL");
	if (crl == NULL)
		goto out;
	is_int(row.crl_number, 2, "number 2");
	is_int(crl_number(crl), 2, "in the extension too");
	is_int(row.revoked_count, 2, "two entries");
	is_int(row.revocations, 2, "made at a revoked count of 2");
	check_fields(crl, now, c);
	is_int(entry_reason(crl, a), 1, "a: reasonCode keyCompromise");
	is_int(entry_reason(crl, b), 0, "b: no reasonCode (unspecified)");
	is_int(entry_reason(crl, c), -1, "c: not listed");
	{
		X509_REVOKED *rv = NULL;

		X509_CRL_get0_by_serial(crl, &rv, X509_get0_serialNumber(a));
		is_int(rv ? profile_time_unix(
		    X509_REVOKED_get0_revocationDate(rv)) : 0, now - 5,
		    "a: revocationDate is when it was revoked");
	}
	is_int(verify_with_crl(a, crl), X509_V_ERR_CERT_REVOKED,
	    "OpenSSL with the CRL: a is revoked");
	is_int(verify_with_crl(c, crl), X509_V_OK,
	    "OpenSSL with the CRL: c verifies");
	is_int(verify_with_crl(c, NULL), X509_V_ERR_UNABLE_TO_GET_CRL,
	    "(and without any CRL, CRL checking fails)");
	X509_CRL_free(crl);
	journal_crl_fini(&row);
out:
	X509_free(a);
	X509_free(b);
	X509_free(c);
}

static void
test_when(int64_t now)
{
	journal_crl row;
	char s[64], why[256] = "";
	X509 *x;
	X509_CRL *crl;
	int state = iss->rec.state;

	ok(!crl_due(&sc, iss, now + VALIDITY - REFRESH - 1),
	    "not due before refresh_before_seconds ahead of nextUpdate");
	ok(crl_due(&sc, iss, now + VALIDITY - REFRESH),
	    "due refresh_before_seconds ahead of nextUpdate");
	iss->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_RETIRED;
	ok(crl_due(&sc, iss, now + VALIDITY - REFRESH),
	    "a RETIRED CA keeps renewing its CRL");
	iss->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_REVOKED;
	ok(!crl_due(&sc, iss, now + VALIDITY),
	    "a REVOKED CA does not renew it");
	iss->rec.state = state;
	x = issue_one("us-east-1.widgiot", s);
	if (x)
		journal_cert_revoke(fx.jn, iss->rec.id, s, 2, now);
	iss->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_REVOKED;
	ok(x && crl_due(&sc, iss, now + VALIDITY),
	    "but a revocation after its own (the cascade) gets a CRL");
	iss->rec.state = state;
	ok(!crl_due(&sc, iss, iss->rec.not_after + 1),
	    "no CRL once the CA certificate has expired");

	/* Server certificates last a day: gone once a CRL's validity
	 * past their notAfter. */
	is_int(crl_make(&sc, iss, now + 86400 + 120 + VALIDITY + 1, why,
	    sizeof why), 0, "a CRL long after they expired (%s)", why);
	crl = stored(iss, 0, &row);
	is_int(row.revoked_count, 0, "expired entries dropped off");
	is_int(row.revocations, 3, "the revoked count is still 3");
	ok(!crl_due(&sc, iss, now), "and that does not make it due");
	X509_CRL_free(crl);
	journal_crl_fini(&row);
	is_int(crl_make(&sc, iss, now, why, sizeof why), 0, "make again now");
	crl = stored(iss, 0, &row);
	is_int(row.revoked_count, 3, "three entries again");
	is_int(row.crl_number, 4, "the number only grows (4)");
	X509_CRL_free(crl);
	journal_crl_fini(&row);
	X509_free(x);
}

/* ---- partitions ---- */

static void
test_shards(int64_t now)
{
	X509 *certs[NSHARDED] = { 0 };
	char serials[NSHARDED][64], *url;
	journal_crl row;
	X509_CRL *crl, *crls[SHARDS + 1] = { 0 };
	int issued = 0, right_dp = 0, in_own = 0, elsewhere = 0, total = 0;
	int crit = -1;

	is_int(sharded->rec.crl_shards, SHARDS, "eu-west-1 has %d shards",
	    SHARDS);
	for (int i = 0; i < NSHARDED; i++) {
		char *cdp;

		if ((certs[i] = issue_one("eu-west-1.widgiot",
		    serials[i])) == NULL)
			continue;
		issued++;
		url = crl_shard_url(sharded->rec.crl_url,
		    crl_shard_of(serials[i], SHARDS));
		cdp = cdp_uri(certs[i]);
		right_dp += url && cdp && strcmp(url, cdp) == 0;
		free(url);
		free(cdp);
		journal_cert_revoke(fx.jn, sharded->rec.id, serials[i], 4, now);
	}
	is_int(issued, NSHARDED, "%d certificates", NSHARDED);
	is_int(right_dp, NSHARDED, "each names its serial's shard as CRL DP");
	is_int(crl_task(&sc, now), 0, "the task makes the partitions");
	for (int k = 0; k <= SHARDS; k++) {
		crls[k] = stored(sharded, k, &row);
		if (k > 0)
			total += (int)row.revoked_count;
		is_int(row.crl_number, 2, "shard %d: number 2", k);
		journal_crl_fini(&row);
	}
	for (int i = 0; i < NSHARDED; i++) {
		int own = crl_shard_of(serials[i], SHARDS);

		for (int k = 1; k <= SHARDS; k++) {
			int listed = crls[k] && entry_reason(crls[k],
			    certs[i]) == 4;

			in_own += k == own && listed;
			elsewhere += k != own && listed;
		}
	}
	is_int(total, NSHARDED, "the shards' entries add up to %d", NSHARDED);
	is_int(in_own, NSHARDED, "every serial is in its own shard");
	is_int(elsewhere, 0, "and in no other");
	is_int(crls[0] ? sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crls[0])) :
	    -1, NSHARDED, "the complete CRL lists all %d", NSHARDED);
	url = crls[0] ? idp_uri(crls[0], &crit) : NULL;
	ok(crls[0] && url == NULL, "the complete CRL has no IDP");
	free(url);
	for (int k = 1; k <= SHARDS; k++) {
		char *want = crl_shard_url(sharded->rec.crl_url, k);

		url = crls[k] ? idp_uri(crls[k], &crit) : NULL;
		is_str(url, want, "shard %d's IDP is its URL", k);
		free(url);
		free(want);
	}
	{
		int own = crl_shard_of(serials[0], SHARDS);
		int other = own % SHARDS + 1;

		is_int(verify_with_crl(certs[0], crls[own]),
		    X509_V_ERR_CERT_REVOKED, "OpenSSL: revoked by its shard's"
		    " CRL");
		is_int(verify_with_crl(certs[0], crls[0]),
		    X509_V_ERR_CERT_REVOKED, "OpenSSL: revoked by the complete"
		    " CRL");
		ok(verify_with_crl(certs[0], crls[other]) != X509_V_OK,
		    "OpenSSL: another shard's CRL does not cover it");
	}
	crl = stored(sharded, SHARDS + 1, &row);
	ok(crl == NULL, "shard %d does not exist", SHARDS + 1);
	for (int k = 0; k <= SHARDS; k++)
		X509_CRL_free(crls[k]);
	for (int i = 0; i < NSHARDED; i++)
		X509_free(certs[i]);
}

/* ---- on demand, refusals ---- */

static void
test_get(void)
{
	ca_create_req r;
	journal_crl row;
	char why[256] = "", *csr = NULL;
	ca *gadget = NULL, *ext = NULL;
	X509_CRL *crl;

	gadget = ca_fixture_create(&fx, ROLE_INTERMEDIATE, "gadget", NULL);
	crl = gadget ? stored(gadget, 1, &row) : NULL;
	ok(crl != NULL, "a new CA's CRL is made on demand");
	is_int(row.crl_number, 1, "number 1");
	is_int(row.shard, 0, "shard 1 of a CA with one CRL is its CRL");
	X509_CRL_free(crl);
	journal_crl_fini(&row);
	is_int(crl_get(&sc, iss, 2, &row, why, sizeof why), SF_EINVAL,
	    "shard 2 of a CA with one: SF_EINVAL (%s)", why);

	memset(&r, 0, sizeof r);
	r.role = ROLE_ISSUING;
	r.product_line = "gadget";
	r.region = "ap-south-1";
	r.external_parent = 1;
	is_int(ca_create(fx.cas, &r, &ext, &csr, why, sizeof why), 0,
	    "a CA waiting for its certificate (%s)", why);
	free(csr);
	csr = NULL;
	why[0] = '\0';
	is_int(ext ? crl_make(&sc, ext, sf_now(), why, sizeof why) : -1,
	    SF_ESTATE, "no CRL without a certificate (%s)", why);

	r.external_parent = 0;
	r.product_line = "widgiot";
	r.region = "ap-west-1";
	r.crl_shards = CONFIG_MAX_SHARDS + 1;
	is_int(ca_create(fx.cas, &r, &gadget, &csr, why, sizeof why),
	    SF_EINVAL, "crl_shards over %d: SF_EINVAL (%s)", CONFIG_MAX_SHARDS,
	    why);
	free(csr);
	is_int(iss->rec.crl_shards, 1, "[defaults] crl_shards: 1");
}

int
main(void)
{
	int64_t now = sf_now();
	ca_create_req r;
	char why[512] = "", *csr = NULL;

	log_init("test_crl", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "sf-crl", "[crl]\nvalidity_seconds = 3600\n"
	    "refresh_before_seconds = 600\n") != 0)
		return tap_done();
	memset(&r, 0, sizeof r);
	r.role = ROLE_ISSUING;
	r.product_line = "widgiot";
	r.region = "eu-west-1";
	r.crl_shards = SHARDS;
	if ((root = ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL)) == NULL ||
	    (inter = ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot",
	    NULL)) == NULL || (iss = ca_fixture_create(&fx, ROLE_ISSUING,
	    "widgiot", "us-east-1")) == NULL)
		sharded = NULL;
	else
		is_int(ca_create(fx.cas, &r, &sharded, &csr, why, sizeof why),
		    0, "eu-west-1 with %d CRL shards (%s)", SHARDS, why);
	free(csr);
	ic.conf = fx.conf;
	ic.cas = fx.cas;
	ic.jn = fx.jn;
	ic.rl = rate_new(100, 3600, 100000, 100000);
	sc.conf = fx.conf;
	sc.tok = fx.tok;
	sc.jn = fx.jn;
	sc.cas = fx.cas;
	test_rules();
	if (sharded && ic.rl) {
		test_first_run(now);
		test_revocations(now);
		test_when(now);
		test_shards(now);
		test_get();
	}
	rate_free(ic.rl);
	ca_fixture_close(&fx);
	return tap_done();
}
