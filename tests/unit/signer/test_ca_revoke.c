/*
 * Unit tests of signer/ca_revoke.c against a real SoftHSM2 token
 * (ca_fixture.h). An issuing CA with 25 certificates is revoked with
 * cascade 10 at a time: the CA is REVOKED at once (nothing more is
 * issued), its own certificate is revoked in the intermediate's scope,
 * each call revokes the next batch in the journal (for cACompromise, at
 * the CA's time) and says how many remain, and calling again once none
 * remain changes nothing. Refusals: the root, a reason not offered,
 * another reason the second time, a name with several generations and
 * none named, and an intermediate with live CAs below it without
 * cascade; with cascade it takes them and what they issued along.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pbenum.h"
#include "profile.h"
#include "ca_fixture.h"

static ca_fixture fx;
static ca *root, *inter, *east, *west;

/* Issue n leaves from c; how many were issued. */
static int
issue_leaves(ca *c, int n)
{
	ca_issue_meta m = { "device:widgiot", "dev", (const uint8_t *)
	    "0123456789abcdef0123456789abcdef", "test", "", "" };
	char serial[64];
	int done = 0;

	for (int i = 0; i < n; i++) {
		X509 *x = ca_fixture_leaf(m.profile, "dev", 30, NULL, NULL);

		if (x && ca_issue(fx.cas, c, x, &m, serial) == 0)
			done++;
		X509_free(x);
	}
	return done;
}

/* The certificates of CA c the journal has as revoked for reason at
 * c's own time of revocation. */
static int
revoked_with(const ca *c, int reason)
{
	journal_cert_row *v = NULL;
	size_t n = 0;
	int k = 0;

	if (journal_cert_list(fx.jn, c->rec.id, "", "", 1000, &v, &n) == 0)
		for (size_t i = 0; i < n; i++)
			k += v[i].status == CERT_REVOKED &&
			    v[i].revocation_reason == reason &&
			    v[i].revoked_at == c->rec.revoked_at;
	journal_cert_rows_free(v, n);
	return k;
}

/* The status of CA c's own certificate in its parent's scope. */
static int
own_status(const ca *c)
{
	journal_cert_row row;
	int st = -1;

	if (journal_cert_get(fx.jn, c->rec.serial, c->parent->rec.id,
	    &row) == 0)
		st = row.status;
	journal_cert_row_fini(&row);
	return st;
}

static int
revoke_ca(ca *c, int reason, int cascade, size_t max, ca_revoke_result *res,
    char *why, size_t whylen)
{
	ca_revoke_req r = { reason, cascade, max };

	return ca_revoke(fx.cas, c, &r, res, why, whylen);
}

static void
test_refusals(void)
{
	ca_revoke_result res;
	char why[512] = "";
	ca *c;

	is_int(revoke_ca(root, REASON_KEY_COMPROMISE, 1, 10, &res, why,
	    sizeof why), SF_ESTATE, "the root: SF_ESTATE");
	ok(strstr(why, "root CA cannot be revoked") != NULL, "  saying so"
	    " (%s)", why);
	is_int(revoke_ca(east, 6, 1, 10, &res, why, sizeof why), SF_EINVAL,
	    "certificateHold: SF_EINVAL");
	is_int(revoke_ca(inter, 0, 0, 10, &res, why, sizeof why), SF_ESTATE,
	    "the intermediate without cascade, its issuing CAs live:"
	    " SF_ESTATE");
	ok(strstr(why, "cascade") != NULL, "  saying what to do (%s)", why);
	is_int(inter->rec.state, CA_ACTIVE, "  and it is still active");
	is_int(ca_pick(fx.cas, "us-east-1.widgiot", NULL, &c, why,
	    sizeof why), 0, "ca_pick without a generation: the only one");
	ok(c == east, "  us-east-1.widgiot");
	is_int(ca_pick(fx.cas, "nowhere", NULL, &c, why, sizeof why),
	    SF_ENOTFOUND, "ca_pick of an unknown CA: SF_ENOTFOUND");
}

static void
test_batches(void)
{
	ca_revoke_result res;
	char why[512] = "";
	int64_t left[] = { 15, 5, 0, 0 };
	size_t got[] = { 10, 10, 5, 0 };
	ca *c;

	is_int(issue_leaves(east, 25), 25, "25 certificates from %s",
	    east->rec.name);
	for (int i = 0; i < 4; i++) {
		is_int(revoke_ca(east, REASON_KEY_COMPROMISE, 1, 10, &res, why,
		    sizeof why), 0, "revoke with cascade, call %d (%s)", i + 1,
		    why);
		is_int(res.ncerts, got[i], "  %zu certificates revoked",
		    got[i]);
		is_int(res.remaining, left[i], "  %lld remain",
		    (long long)left[i]);
		is_int(res.cas_revoked, i == 0, "  %d CA revoked", i == 0);
		if (i == 0) {
			is_int(east->rec.state, CA_REVOKED, "  the CA is"
			    " REVOKED at once");
			is_int(east->rec.revocation_reason,
			    REASON_KEY_COMPROMISE, "  for keyCompromise");
			is_int(own_status(east), CERT_REVOKED, "  its own"
			    " certificate revoked under %s",
			    inter->rec.name);
			ok(res.nchanged == 2 && res.changed[0] == inter &&
			    res.changed[1] == east, "  the CRLs of %s and %s"
			    " change", inter->rec.name, east->rec.name);
			ok(ca_find_issuing(fx.cas, "widgiot", "us-east-1") ==
			    NULL, "  it is no longer the issuing CA");
			is_int(issue_leaves(east, 1), 0, "  and ca_issue"
			    " refuses it");
		}
		ca_revoke_result_fini(&res);
	}
	is_int(revoked_with(east, REASON_CA_COMPROMISE), 25,
	    "the journal: all 25 REVOKED, for cACompromise, at the CA's time");
	is_int(revoke_ca(east, SECRETFREE__V1__REVOCATION_REASON__REVOCATION_REASON_SUPERSEDED, 1, 10, &res, why, sizeof why),
	    SF_ESTATE, "again for another reason: SF_ESTATE");
	ok(strstr(why, "keyCompromise") != NULL, "  naming the first (%s)",
	    why);
	is_int(ca_pick(fx.cas, "us-east-1.widgiot", NULL, &c, why,
	    sizeof why), 0, "a revoked CA can still be picked");
}

/* The intermediate with cascade: the other issuing CA, its certificates,
 * its own certificate; the one revoked before is left as it was. */
static void
test_cascade_down(void)
{
	ca_revoke_result res;
	char why[512] = "";
	int64_t east_at = east->rec.revoked_at;

	is_int(issue_leaves(west, 5), 5, "5 certificates from %s",
	    west->rec.name);
	is_int(revoke_ca(inter, REASON_CA_COMPROMISE, 1, 1000, &res, why,
	    sizeof why), 0, "revoke the intermediate with cascade (%s)", why);
	is_int(res.cas_revoked, 2, "  it and %s", west->rec.name);
	is_int(res.ncerts, 6, "  %s's 5 certificates and its own",
	    west->rec.name);
	is_int(res.remaining, 0, "  none left");
	is_int(west->rec.state, CA_REVOKED, "%s is REVOKED", west->rec.name);
	is_int(west->rec.revocation_reason, REASON_CA_COMPROMISE,
	    "  for cACompromise");
	is_int(own_status(inter), CERT_REVOKED, "the intermediate's own"
	    " certificate is revoked under the root");
	is_int(east->rec.revoked_at, east_at, "%s keeps its revocation",
	    east->rec.name);
	is_int(revoked_with(west, REASON_CA_COMPROMISE), 5,
	    "the journal: %s's certificates REVOKED", west->rec.name);
	ca_revoke_result_fini(&res);
}

int
main(void)
{
	log_init("test_ca_revoke", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "sf-carev", NULL) != 0)
		return tap_done();
	root = ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL);
	inter = ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot", NULL);
	east = ca_fixture_create(&fx, ROLE_ISSUING, "widgiot", "us-east-1");
	west = ca_fixture_create(&fx, ROLE_ISSUING, "widgiot", "eu-west-1");
	if (root && inter && east && west) {
		test_refusals();
		test_batches();
		test_cascade_down();
	}
	ca_fixture_close(&fx);
	return tap_done();
}
