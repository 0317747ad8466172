/*
 * Unit tests of signer/rpc_admin.c under concurrency: CaAdmin.ListCas and
 * CaAdmin.GetCa called from two threads (the admin listener has two
 * workers) while the main thread rotates a CA with an external parent
 * and imports each new generation's certificate
 * (CaAdmin.ImportCaCertificate), which replaces the CA's serial, chain
 * and certificate and retires the generation before it. Every call goes
 * through rpc_dispatch_raw, the path a socket call takes after its bytes
 * are read, with the real handlers on a SoftHSM2 token and a journal.
 *
 * Built plainly, the readers check that every CA they see is whole. Built
 * with ThreadSanitizer (scripts/test --tsan) it is what would catch a
 * reader that looks at a CA's record without the store's lock while an
 * import frees part of it (the race this test was written for).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_fixture.h"
#include "log.h"
#include "rpc.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "signer.h"

#define ROUNDS 8
#define ISSUING "eu-west-1.widgiot"

static ca_fixture fx;
static signer_ctx ctx;
static rpc_server *srv;
static EVP_PKEY *ext_key;
static X509 *ext_root;
static atomic_int stop;

struct reader {
	int calls, bad;
	char first_bad[256];
};

/* A certificate for the request's key and subject from the outside root
 * (self-signed when there is no root yet), as PEM. */
static char *
ext_sign_pem(const X509_NAME *subject, EVP_PKEY *pub)
{
	X509 *x = X509_new();
	uint8_t serial[SERIAL_LEN];
	char hex[2 * SERIAL_LEN + 1], *pem = NULL;

	if (x && X509_set_version(x, X509_VERSION_3) &&
	    profile_serial_new(serial, hex) == 0 &&
	    profile_set_serial(x, serial, sizeof serial) == 0 &&
	    X509_set_subject_name(x, subject) &&
	    X509_set_issuer_name(x, ext_root ?
	    X509_get_subject_name(ext_root) : subject) &&
	    profile_set_validity(x, 365) == 0 && X509_set_pubkey(x, pub) &&
	    profile_add0(x, profile_ext_basic(1, -1)) == 0 &&
	    profile_add0(x, profile_ext_key_usage(KU_KEY_CERT_SIGN |
	    KU_CRL_SIGN)) == 0 && X509_sign(x, ext_key, EVP_sha256()) > 0)
		pem = profile_cert_pem(x);
	if (ext_root == NULL && pem != NULL) {
		ext_root = x;
		return pem;
	}
	X509_free(x);
	return pem;
}

static int
make_ext_root(void)
{
	X509_NAME *n = X509_NAME_new();
	char *pem = NULL;

	if ((ext_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) != NULL &&
	    n && X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"Offline Root", -1, -1, 0))
		pem = ext_sign_pem(n, ext_key);
	X509_NAME_free(n);
	free(pem);
	return ext_root ? 0 : -1;
}

/* Call a CaAdmin method with msg; the reply unpacked with desc, or NULL. */
static ProtobufCMessage *
call(const char *method, const ProtobufCMessage *msg,
    const ProtobufCMessageDescriptor *desc, rpc_status *st)
{
	char path[96];
	size_t len = protobuf_c_message_get_packed_size(msg), rlen = 0;
	uint8_t *body = malloc(len ? len : 1), *reply = NULL;
	ProtobufCMessage *out = NULL;

	if (body == NULL)
		return NULL;
	protobuf_c_message_pack(msg, body);
	snprintf(path, sizeof path, "/secretfree.v1.CaAdmin/%s", method);
	memset(st, 0, sizeof *st);
	if (rpc_dispatch_raw(srv, SIGNER_ADMIN, path, body, len, &reply,
	    &rlen, st) == RPC_OK && reply != NULL)
		out = protobuf_c_message_unpack(desc, NULL, rlen, reply);
	free(reply);
	free(body);
	return out;
}

/* A CA as a reader sees it: a pending one without a serial or
 * certificate, any other with both, and a chain's serial in hex. */
static int
whole(const Secretfree__V1__CaInfo *ci, char *why, size_t whylen)
{
	size_t n = strlen(ci->serial);

	if (ci->state == SECRETFREE__V1__CA_STATE__CA_STATE_PENDING) {
		if (n != 0 || *ci->certificate_pem) {
			snprintf(why, whylen, "%s %s: pending with serial"
			    " \"%s\"", ci->name, ci->generation, ci->serial);
			return 0;
		}
		return 1;
	}
	if (n == 0 || n > 40 || strspn(ci->serial, "0123456789ABCDEF") != n ||
	    strncmp(ci->certificate_pem, "-----BEGIN CERTIFICATE-----", 27)) {
		snprintf(why, whylen, "%s %s (state %d): serial \"%.48s\","
		    " certificate %.30s", ci->name, ci->generation, ci->state,
		    ci->serial, ci->certificate_pem);
		return 0;
	}
	return 1;
}

static void *
reader(void *arg)
{
	struct reader *r = arg;
	Secretfree__V1__ListCasRequest lreq =
	    SECRETFREE__V1__LIST_CAS_REQUEST__INIT;
	Secretfree__V1__GetCaRequest greq = SECRETFREE__V1__GET_CA_REQUEST__INIT;
	char why[256];
	rpc_status st;

	lreq.include_retired = 1;
	greq.name = ISSUING;
	while (!atomic_load(&stop)) {
		Secretfree__V1__ListCasResponse *l = (void *)call("ListCas",
		    &lreq.base, &secretfree__v1__list_cas_response__descriptor,
		    &st);
		Secretfree__V1__CaInfo *g = (void *)call("GetCa", &greq.base,
		    &secretfree__v1__ca_info__descriptor, &st);

		r->calls += 2;
		if (l == NULL || g == NULL) {
			if (r->bad++ == 0)
				snprintf(r->first_bad, sizeof r->first_bad,
				    "a call failed: %.200s", st.message);
		} else {
			for (size_t i = 0; i <= l->n_cas; i++) {
				const Secretfree__V1__CaInfo *ci = i < l->n_cas ?
				    l->cas[i] : g;

				if (!whole(ci, why, sizeof why) && r->bad++ == 0)
					snprintf(r->first_bad,
					    sizeof r->first_bad, "%s", why);
			}
		}
		protobuf_c_message_free_unpacked((ProtobufCMessage *)l, NULL);
		protobuf_c_message_free_unpacked((ProtobufCMessage *)g, NULL);
	}
	return NULL;
}

/* Import the pending generation's certificate through the handler. */
static int
import(const char *csr_pem)
{
	Secretfree__V1__ImportCaCertificateRequest req =
	    SECRETFREE__V1__IMPORT_CA_CERTIFICATE_REQUEST__INIT;
	BIO *b = BIO_new_mem_buf(csr_pem, -1);
	X509_REQ *csr = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	char *pem = csr ? ext_sign_pem(X509_REQ_get_subject_name(csr),
	    X509_REQ_get0_pubkey(csr)) : NULL;
	char *chain = profile_cert_pem(ext_root);
	ProtobufCMessage *ci = NULL;
	rpc_status st;

	req.name = ISSUING;
	req.certificate_pem = pem;
	req.chain_pem = chain;
	if (pem && chain)
		ci = call("ImportCaCertificate", &req.base,
		    &secretfree__v1__ca_info__descriptor, &st);
	if (ci == NULL)
		tap_diag("import: %s", pem && chain ? st.message : "no PEM");
	protobuf_c_message_free_unpacked(ci, NULL);
	X509_REQ_free(csr);
	BIO_free(b);
	free(pem);
	free(chain);
	return ci ? 0 : -1;
}

static void
test_hammer(void)
{
	struct reader r[2];
	pthread_t th[2];
	ca_create_req cr;
	ca_rotate_req rr = { ISSUING, 0, NULL };
	char why[512] = "", *csr = NULL;
	ca *c = NULL, *prev = NULL;
	int imported = 0;

	memset(&cr, 0, sizeof cr);
	cr.role = ROLE_ISSUING;
	cr.product_line = "widgiot";
	cr.region = "eu-west-1";
	cr.external_parent = 1;
	if (ca_fixture_create(&fx, ROLE_ROOT, NULL, NULL) == NULL ||
	    ca_fixture_create(&fx, ROLE_INTERMEDIATE, "widgiot", NULL) == NULL ||
	    make_ext_root() != 0) {
		ok(0, "the CAs and the outside root");
		return;
	}
	/* The first generation, then rotations: each pending until its
	 * certificate is imported while the readers list and show. */
	if (ca_create(fx.cas, &cr, &c, &csr, why, sizeof why) != 0) {
		ok(0, "a CA with an external parent (%s)", why);
		return;
	}
	memset(r, 0, sizeof r);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, &r[i]);
	if (import(csr) == 0)
		imported++;
	for (int i = 1; i < ROUNDS; i++) {
		free(csr);
		csr = NULL;
		if (ca_rotate(fx.cas, &rr, &c, &prev, &csr, why,
		    sizeof why) != 0) {
			tap_diag("rotate: %s", why);
			break;
		}
		if (import(csr) == 0)
			imported++;
	}
	free(csr);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	is_int(imported, ROUNDS, "%d generations of %s imported while two"
	    " threads list and show the CAs", ROUNDS, ISSUING);
	for (int i = 0; i < 2; i++) {
		ok(r[i].calls > 0, "reader %d made %d calls", i, r[i].calls);
		is_int(r[i].bad, 0, "reader %d saw every CA whole%s%s", i,
		    r[i].bad ? ": " : "", r[i].first_bad);
	}
}

int
main(void)
{
	log_init("test_rpc_admin", LOG_LEVEL_WARN);
	if (ca_fixture_open(&fx, "rpcadmin", NULL) != 0)
		return tap_done();
	rpc_init();
	ctx.conf = fx.conf;
	ctx.tok = fx.tok;
	ctx.jn = fx.jn;
	ctx.cas = fx.cas;
	if ((srv = rpc_server_new()) == NULL ||
	    rpc_admin_register(srv, &ctx) != 0) {
		ok(0, "the CaAdmin service registered");
		goto out;
	}
	test_hammer();
out:
	rpc_server_free(srv);
	X509_free(ext_root);
	EVP_PKEY_free(ext_key);
	ca_fixture_close(&fx);
	rpc_fini();
	return tap_done();
}
