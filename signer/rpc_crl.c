/*
 * rpc_crl.c - the CRL handlers: Signer.GetCrlIndex and Signer.GetCrl
 * (issuance socket: authz's publisher) and CaAdmin.GetCrl (admin socket:
 * the CLI). They hand out what crl.c stored; a CA without a CRL yet gets
 * one made on the spot.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "crl.h"
#include "err.h"
#include "rpc_admin.h"
#include "secretfree/v1/signer.pb-c.h"

/* Where a reply's CRL fields go (GetCrlResponse, GetCrlAdminResponse). */
struct crl_reply {
	ProtobufCBinaryData *der;
	uint64_t *number;
	int64_t *this_update, *next_update;
	uint32_t *shards;
	char **distribution_point;
};

/* Fill r with the stored CRL of a CA's shard (with_pem: the reply will
 * carry its PEM too); *cp gets the CA. The call's status (failed already)
 * when not RPC_OK: RESOURCE_EXHAUSTED for a CRL the reply cannot carry. */
static int
reply(rpc_call *call, signer_ctx *ctx, const char *name, const char *gen,
    uint32_t shard, int with_pem, const struct crl_reply *r, ca **cp)
{
	journal_crl crl;
	char why[256] = "", *url = NULL;
	ca *c;
	int rc;

	if (*name == '\0')
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "ca_name is"
		    " required");
	if ((c = ca_find(ctx->cas, name, gen)) == NULL)
		return rpc_fail(call, RPC_NOT_FOUND, "no CA named %s%s%s", name,
		    *gen ? " generation " : "", gen);
	if (shard > CONFIG_MAX_SHARDS)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "shard %u is out of"
		    " range", shard);
	if ((rc = crl_get(ctx, c, (int)shard, &crl, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	if (crl_reply_bytes(crl.der_len, with_pem) > RPC_REPLY_MAX) {
		size_t len = crl.der_len;

		journal_crl_fini(&crl);
		if (c->rec.crl_shards > 1 && shard == 0)
			return rpc_fail(call, RPC_RESOURCE_EXHAUSTED, "the"
			    " complete CRL of CA %s/%s is %zu bytes%s, more"
			    " than a reply carries (%u MiB): ask for its"
			    " shards one at a time (1..%d)", c->rec.name,
			    c->rec.generation, len, with_pem ? " in DER" :
			    "", RPC_REPLY_MAX >> 20, c->rec.crl_shards);
		return rpc_fail(call, RPC_RESOURCE_EXHAUSTED, "the CRL of CA"
		    " %s/%s%s is %zu bytes%s, more than a reply carries (%u"
		    " MiB)%s", c->rec.name, c->rec.generation, shard ?
		    " (one shard)" : "", len, with_pem ? " in DER, and the"
		    " reply carries its PEM too" : "", RPC_REPLY_MAX >> 20,
		    c->rec.crl_shards > 1 ? "" : ": a CA this large needs"
		    " CRL shards (crl_shards, set when a generation is"
		    " made)");
	}
	/* A CA with one CRL publishes it at crl_url whatever shard was
	 * asked for. */
	if (*c->rec.crl_url && (url = crl_shard_url(c->rec.crl_url,
	    crl.shard)) == NULL) {
		journal_crl_fini(&crl);
		return rpc_fail_err(call, SF_ENOMEM, "out of memory");
	}
	rpc_call_set_bytes(call, r->der, crl.der, crl.der_len);
	*r->number = (uint64_t)crl.crl_number;
	*r->this_update = crl.this_update;
	*r->next_update = crl.next_update;
	*r->shards = (uint32_t)(c->rec.crl_shards > 1 ? c->rec.crl_shards : 1);
	*r->distribution_point = rpc_call_strdup(call, url ? url : "");
	journal_crl_fini(&crl);
	free(url);
	*cp = c;
	return RPC_OK;
}

int
rpc_crl_get(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__GetCrlRequest *req = (const void *)reqm;
	Secretfree__V1__GetCrlResponse *resp = (void *)respm;
	struct crl_reply r = { &resp->crl_der, &resp->crl_number,
	    &resp->this_update, &resp->next_update, &resp->shards,
	    &resp->distribution_point };
	ca *c;

	return reply(call, arg, req->ca_name, req->generation, req->shard, 0,
	    &r, &c);
}

int
rpc_crl_admin_get(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__GetCrlAdminRequest *req = (const void *)reqm;
	Secretfree__V1__GetCrlAdminResponse *resp = (void *)respm;
	struct crl_reply r = { &resp->crl_der, &resp->crl_number,
	    &resp->this_update, &resp->next_update, &resp->shards,
	    &resp->distribution_point };
	BIO *b = NULL;
	char *data;
	long n;
	ca *c;
	int code;

	if ((code = reply(call, arg, req->ca_name, req->generation, req->shard,
	    1, &r, &c)) != RPC_OK)
		return code;
	resp->generation = rpc_call_strdup(call, c->rec.generation);
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio(b, PEM_STRING_X509_CRL, "", resp->crl_der.data,
	    (long)resp->crl_der.len) ||
	    (n = BIO_get_mem_data(b, &data)) <= 0)
		code = rpc_fail_err(call, SF_ENOMEM, "cannot write the CRL in"
		    " PEM");
	else
		resp->crl_pem = rpc_call_strndup(call, data, (size_t)n);
	BIO_free(b);
	return code;
}

int
rpc_crl_index(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__V1__GetCrlIndexResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	ca **all = NULL;
	size_t n = ca_list(ctx->cas, &all);
	int code = RPC_OK;

	(void)reqm;
	resp->cas = rpc_call_alloc(call, (n ? n : 1) * sizeof *resp->cas);
	for (size_t i = 0; resp->cas && i < n; i++) {
		Secretfree__V1__CrlIndexEntry *e;
		const ca *c = all[i];
		journal_crl head;
		int rc;

		/* Every CA with a CRL publishes it, whatever its state. */
		if ((rc = journal_crl_get(ctx->jn, c->rec.id, 0, 0,
		    &head)) == SF_ENOTFOUND)
			continue;
		if (rc != 0) {
			code = rpc_fail_err(call, rc, "cannot read the CRL of"
			    " CA %s", c->rec.name);
			break;
		}
		if ((e = rpc_call_new_message(call,
		    &secretfree__v1__crl_index_entry__descriptor)) == NULL) {
			code = rpc_fail_err(call, SF_ENOMEM, "out of memory");
			break;
		}
		e->ca_name = rpc_call_strdup(call, c->rec.name);
		e->generation = rpc_call_strdup(call, c->rec.generation);
		e->shards = (uint32_t)(c->rec.crl_shards > 1 ?
		    c->rec.crl_shards : 1);
		e->crl_number = (uint64_t)head.crl_number;
		e->this_update = head.this_update;
		e->next_update = head.next_update;
		e->crl_url = rpc_call_strdup(call, c->rec.crl_url);
		resp->cas[resp->n_cas++] = e;
		journal_crl_fini(&head);
	}
	free(all);
	return code;
}
