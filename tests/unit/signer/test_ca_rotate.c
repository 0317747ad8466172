/*
 * Unit tests of signer/ca_rotate.c against a real SoftHSM2 token
 * (ca_fixture.h). Rotating an issuing CA: the new generation has a new key
 * in the token, the old one's subject and pathLen, a certificate from the
 * intermediate, its own CRL and caIssuers URLs, and its chain verifies;
 * the old one is RETIRING in the store and the journal, issues nothing
 * (ca_issue refuses it), and what it issued still verifies with its own
 * chain. Rotating the intermediate leaves its issuing CAs under the old
 * generation until they are rotated; retiring refuses a generation that
 * still certifies a live one, an ambiguous name and an active generation.
 * The root is not rotated. A reopened store has the same generations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pbenum.h"
#include "profile.h"
#include "ca_fixture.h"

static ca_fixture fx;
static ca *root, *inter, *iss, *gen1;

static int
pem_count(const char *text)
{
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, "-----BEGIN")); p++)
		n++;
	return n;
}

/* A leaf for a fresh software key, issued by c through ca_issue (NULL if
 * that was refused; *rc says why). */
static X509 *
issue_leaf(ca *c, int *rc)
{
	ca_issue_meta m = { "device:widgiot", "leaf", (const uint8_t *)
	    "0123456789abcdef0123456789abcdef", "test", "", "" };
	X509 *x = ca_fixture_leaf(m.profile, "leaf", 30, NULL, NULL);
	char serial[64];

	*rc = x ? ca_issue(fx.cas, c, x, &m, serial) : SF_ENOMEM;
	if (*rc != 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static ca *
rotate(const char *name, const char *gen, int *rc, char *why, size_t len)
{
	ca_rotate_req r = { name, 0, gen };
	ca *c = NULL, *prev = NULL;
	char *csr = NULL;

	*rc = ca_rotate(fx.cas, &r, &c, &prev, &csr, why, len);
	free(csr);
	return c;
}

/* The state of CA id as the journal has it; -1 if it is not there. */
static int
journal_state(int64_t id, int64_t *retired_at)
{
	journal_ca *v = NULL;
	size_t n = 0;
	int st = -1;

	if (journal_ca_list(fx.jn, &v, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (v[i].id == id) {
				st = v[i].state;
				if (retired_at)
					*retired_at = v[i].retired_at;
			}
	journal_ca_list_free(v, n);
	return st;
}

static void
test_issuing(void)
{
	X509 *old_leaf, *x, *old_chain[] = { iss->cert, inter->cert, NULL };
	X509 *new_chain[] = { NULL, inter->cert, NULL };
	char why[512] = "", label[80], crl[160];
	int64_t retired = 0;
	ca *c;
	int rc;

	old_leaf = issue_leaf(iss, &rc);
	ok(old_leaf != NULL, "a leaf from generation %s", iss->rec.generation);
	c = rotate("us-east-1.widgiot", NULL, &rc, why, sizeof why);
	is_int(rc, 0, "ca_rotate us-east-1.widgiot (%s)", why);
	if (c == NULL)
		goto out;
	ok(strcmp(c->rec.generation, iss->rec.generation) != 0,
	    "  a new generation, %s", c->rec.generation);
	is_int(c->rec.state, STATE_ACTIVE, "  active");
	is_int(iss->rec.state, CA_RETIRING, "  the old one retiring");
	ok(iss->rec.retired_at >= c->rec.created_at && iss->rec.retired_at > 0,
	    "  since the rotation");
	is_int(journal_state(iss->rec.id, &retired), CA_RETIRING,
	    "  in the journal too");
	is_int(journal_state(c->rec.id, NULL), CA_ACTIVE,
	    "  where the new one is active");
	ok(c->parent == inter, "  signed by the intermediate");
	snprintf(label, sizeof label, "issuing-widgiot-us-east-1-%s",
	    c->rec.generation);
	is_str(c->rec.key_label, label, "  its key labelled with it");
	ok(c->key && memcmp(c->ski, iss->ski, sizeof c->ski) != 0,
	    "  a new key in the token");
	is_int(X509_NAME_cmp(X509_get_subject_name(c->cert),
	    X509_get_subject_name(iss->cert)), 0, "  the old subject");
	is_int(c->rec.path_len, iss->rec.path_len, "  the old pathLen");
	is_str(c->rec.permitted, iss->rec.permitted,
	    "  the old name constraints");
	snprintf(crl, sizeof crl, "http://crl.example.net/us-east-1.widgiot-%s"
	    ".crl", c->rec.generation);
	is_str(c->rec.crl_url, crl, "  its own CRL URL");
	ok(strcmp(c->rec.ca_issuers_url, iss->rec.ca_issuers_url) != 0,
	    "  and caIssuers URL");
	new_chain[0] = c->cert;
	is_int(chain_error(c->cert, root->cert, new_chain + 1), X509_V_OK,
	    "  its certificate verifies up to the root");
	ok(ca_find_issuing(fx.cas, "widgiot", "us-east-1") == c,
	    "ca_find_issuing: the new generation");
	ok(ca_find(fx.cas, "us-east-1.widgiot", NULL) == c,
	    "ca_find without a generation: the new one");

	x = issue_leaf(iss, &rc);
	ok(x == NULL && rc == SF_ESTATE, "ca_issue from the retiring"
	    " generation: SF_ESTATE");
	X509_free(x);
	is_int(ca_usable(fx.cas, iss, why, sizeof why), SF_ESTATE,
	    "ca_usable: retiring (%s)", why);
	x = issue_leaf(c, &rc);
	is_int(x ? chain_error(x, root->cert, new_chain) : -2, X509_V_OK,
	    "a leaf from the new generation verifies with its chain");
	is_int(x ? chain_error(x, root->cert, old_chain) : -2,
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
	    "  and not with the old one's");
	X509_free(x);
	is_int(old_leaf ? chain_error(old_leaf, root->cert, old_chain) : -2,
	    X509_V_OK, "the old leaf still verifies with the old chain");
	X509_free(old_leaf);

	rotate("us-east-1.widgiot", c->rec.generation, &rc, why, sizeof why);
	is_int(rc, SF_EEXIST, "a taken generation: SF_EEXIST");
	rotate("root", NULL, &rc, why, sizeof why);
	ok(rc == SF_ESTATE && strstr(why, "root CA is not rotated"),
	    "the root: SF_ESTATE, saying why (%s)", why);
	rotate("nowhere.widgiot", NULL, &rc, why, sizeof why);
	is_int(rc, SF_ENOTFOUND, "an unknown CA: SF_ENOTFOUND");
out:
	iss = c;
}

static void
test_intermediate(void)
{
	char why[512] = "";
	ca *c, *i2, *old_iss = iss, *out = NULL;
	int rc;

	i2 = rotate("widgiot", NULL, &rc, why, sizeof why);
	is_int(rc, 0, "ca_rotate widgiot (%s)", why);
	if (i2 == NULL)
		return;
	is_int(inter->rec.state, CA_RETIRING, "  the old intermediate retires");
	ok(i2->parent == root, "  the new one signed by the root");
	ok(iss->parent == inter, "its issuing CA stays under the old"
	    " generation");
	is_int(ca_usable(fx.cas, iss, why, sizeof why), 0,
	    "  and still issues (%s)", why);
	is_int(ca_retire(fx.cas, "widgiot", NULL, &out, why, sizeof why),
	    SF_ESTATE, "retiring the old intermediate while it certifies an"
	    " active CA: SF_ESTATE");
	ok(strstr(why, "us-east-1.widgiot") != NULL, "  naming it (%s)", why);

	c = rotate("us-east-1.widgiot", NULL, &rc, why, sizeof why);
	is_int(rc, 0, "rotate the issuing CA again (%s)", why);
	ok(c && c->parent == i2, "  now under the new intermediate");
	is_int(c ? pem_count(c->chain_pem) : -1, 3,
	    "  its chain: itself, the new intermediate, the root");
	is_int(ca_retire(fx.cas, "us-east-1.widgiot", NULL, &out, why,
	    sizeof why), SF_EINVAL, "retire with two retiring generations:"
	    " SF_EINVAL");
	ok(strstr(why, "name the one") != NULL, "  asking which (%s)", why);
	is_int(ca_retire(fx.cas, "us-east-1.widgiot", c ? c->rec.generation :
	    "", &out, why, sizeof why), SF_ESTATE, "retire the active"
	    " generation: SF_ESTATE");
	is_int(ca_retire(fx.cas, "widgiot", NULL, &out, why, sizeof why),
	    SF_ESTATE, "the old intermediate still certifies a retiring one:"
	    " SF_ESTATE");
	for (int k = 0; k < 2; k++) {
		ca *want = k ? old_iss : gen1;

		is_int(ca_retire(fx.cas, "us-east-1.widgiot",
		    want->rec.generation, &out, why, sizeof why), 0,
		    "retire us-east-1.widgiot %s (%s)", want->rec.generation,
		    why);
		ok(out == want && out->rec.state == CA_RETIRED, "  retired");
	}
	is_int(ca_retire(fx.cas, "widgiot", NULL, &out, why, sizeof why), 0,
	    "now the old intermediate retires (%s)", why);
	is_int(out ? journal_state(out->rec.id, NULL) : -1, CA_RETIRED,
	    "  RETIRED in the journal");
	is_int(ca_retire(fx.cas, "widgiot", inter->rec.generation, &out, why,
	    sizeof why), 0, "retiring it again: 0");
	is_int(ca_retire(fx.cas, "widgiot", NULL, &out, why, sizeof why),
	    SF_ESTATE, "nothing left to retire: SF_ESTATE");
	iss = c;
	inter = i2;
}

/* A store opened again has one active generation per name. */
static void
test_reopen(void)
{
	char why[512] = "";
	ca **all = NULL;
	size_t n;
	int active = 0, retired = 0;

	ca_store_close(fx.cas);
	root = inter = iss = NULL;
	is_int(ca_store_open(fx.conf, fx.tok, fx.jn, &fx.cas, why, sizeof why),
	    0, "reopen the store (%s)", why);
	if (fx.cas == NULL)
		return;
	n = ca_list(fx.cas, &all);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(all[i]->rec.name, "us-east-1.widgiot") != 0)
			continue;
		active += all[i]->rec.state == CA_ACTIVE;
		retired += all[i]->rec.state == CA_RETIRED;
	}
	free(all);
	is_int(active, 1, "us-east-1.widgiot: one active generation");
	is_int(retired, 2, "  and the two retired ones");
	ok(ca_find_issuing(fx.cas, "widgiot", "us-east-1") != NULL &&
	    ca_find_issuing(fx.cas, "widgiot", "us-east-1")->parent ==
	    ca_find(fx.cas, "widgiot", NULL), "  under the active"
	    " intermediate");
}

int
main(void)
{
	log_init("test_ca_rotate", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "sf-carot", NULL) != 0)
		return tap_done();
	root = ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL);
	inter = ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot", NULL);
	gen1 = iss = ca_fixture_create(&fx, ROLE_ISSUING, "widgiot",
	    "us-east-1");
	if (root && inter && iss) {
		test_issuing();
		test_intermediate();
		test_reopen();
	}
	ca_fixture_close(&fx);
	return tap_done();
}
