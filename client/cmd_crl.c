/*
 * cmd_crl.c - secretfree ca crl: a CA's current CRL from the signer
 * (CaAdmin.GetCrl), the one the signer signed in its token and authz
 * publishes, written in PEM or DER with a summary of what it says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "cli.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"

#define SVC (&secretfree__v1__ca_admin__descriptor)

typedef Secretfree__V1__GetCrlAdminResponse CrlResp;

/* How many entries the CRL lists; -1 if it does not parse. */
static long
crl_entries(const CrlResp *r)
{
	const unsigned char *p = r->crl_der.data;
	X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)r->crl_der.len);
	STACK_OF(X509_REVOKED) *rv;
	long n = -1;

	if (crl) {
		rv = X509_CRL_get_REVOKED(crl);
		n = rv ? sk_X509_REVOKED_num(rv) : 0;
		X509_CRL_free(crl);
	}
	return n;
}

static json_t *
crl_json(const char *name, unsigned shard, const CrlResp *r, long entries,
    const char *path)
{
	return json_pack("{s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:I, s:o*,"
	    " s:o*}",
	    "ca", out_jstr(name),
	    "generation", out_jstr(r->generation),
	    "shard", (json_int_t)(r->shards > 1 ? shard : 0),
	    "shards", (json_int_t)r->shards,
	    "crl_number", (json_int_t)r->crl_number,
	    "this_update", out_jtime(r->this_update),
	    "next_update", out_jtime(r->next_update),
	    "distribution_point", out_jstr(r->distribution_point),
	    "revoked", (json_int_t)entries,
	    "file", path ? out_jstr(path) : NULL,
	    "crl_pem", path ? NULL : out_jstr(r->crl_pem));
}

static const char HELP_CRL[] =
"Usage: secretfree ca crl NAME [--shard N] [--generation G] [--out FILE]\n"
"                       [--der]\n"
"\n"
"The current CRL of a CA (CaAdmin.GetCrl): the one the signer signed in its\n"
"token and authz publishes at the CA's CRL distribution point. A CA without\n"
"a CRL yet gets one made first. Without --out the CRL is written to\n"
"standard output (PEM, or DER with --der); with --out it goes to FILE and a\n"
"summary is printed: CRL number, this and next update, how many\n"
"certificates it lists, where it is published.\n"
"\n"
"A CA with CRL partitions (crl_shards > 1) has one CRL per shard, each\n"
"listing the revoked certificates whose serial falls in it and published\n"
"at its own URL, and a complete CRL (shard 0, the default) listing all of\n"
"them. The signer makes new CRLs soon after a revocation (change_delay_ms)\n"
"and before nextUpdate; see signer/README.md, [crl].\n"
"\n"
"Options:\n"
"  --shard N        0: the complete CRL (default); 1..crl_shards: one\n"
"                   partition\n"
"  --generation G   the CA generation (default: the active one)\n"
"  --out FILE       write the CRL to FILE, print a summary\n"
"  --der            DER instead of PEM (not to a terminal)\n"
"\n"
"With --json: ca, generation, shard, shards, crl_number, this_update,\n"
"next_update, distribution_point, revoked (entries), and crl_pem (or file\n"
"with --out).\n"
"\n"
"Example:\n"
"  secretfree ca crl us-east-1.widgiot --out us-east-1.crl.pem\n"
"  secretfree ca crl us-east-1.widgiot | openssl crl -noout -text\n"
"  openssl verify -crl_check -CAfile root.pem -untrusted chain.pem \\\n"
"      -CRLfile us-east-1.crl.pem device.crt\n";

static int
cmd_ca_crl(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "shard", required_argument, NULL, 's' },
		{ "generation", required_argument, NULL, 'g' },
		{ "out", required_argument, NULL, 'o' },
		{ "der", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__GetCrlAdminRequest req =
	    SECRETFREE__V1__GET_CRL_ADMIN_REQUEST__INIT;
	CrlResp *r = NULL;
	const char *path = NULL;
	char b1[32], b2[32];
	long long shard = 0;
	long entries;
	int ch, ec, der = 0;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 's':
			if (cli_num(c, "--shard", optarg, 0, 1024, &shard) != 0)
				return CLI_EXIT_USAGE;
			break;
		case 'g':
			req.generation = optarg;
			break;
		case 'o':
			path = optarg;
			break;
		case 'd':
			der = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return optind >= argc ? cli_usage(c, "which CA?") :
		    cli_usage(c, "one CA only, not %s", argv[argc - 1]);
	if (der && path == NULL && (c->json || isatty(STDOUT_FILENO)))
		return cli_usage(c, "--der needs --out FILE (or a pipe), not %s",
		    c->json ? "--json" : "a terminal");
	req.ca_name = argv[optind];
	req.shard = (uint32_t)shard;
	c->hint[RPC_NOT_FOUND] = "list the CAs: secretfree ca list";
	c->hint[RPC_INVALID_ARGUMENT] = "see the CA's shards: secretfree ca"
	    " show NAME";
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "GetCrl", &req.base,
	    (ProtobufCMessage **)&r)) != 0)
		return ec;
	entries = crl_entries(r);
	if (path)
		ec = der ? cli_write_file(c, path, r->crl_der.data,
		    r->crl_der.len, 0644) : cli_write_file(c, path, r->crl_pem,
		    strlen(r->crl_pem), 0644);
	if (ec != 0)
		goto out;
	if (c->json)
		ec = out_json(c, crl_json(req.ca_name, req.shard, r, entries,
		    path));
	else if (path == NULL)
		ec = der ? cli_write_file(c, "-", r->crl_der.data,
		    r->crl_der.len, 0) : cli_write_file(c, "-", r->crl_pem,
		    strlen(r->crl_pem), 0);
	else {
		printf("%s: CRL %llu of %s", path,
		    (unsigned long long)r->crl_number, req.ca_name);
		if (r->shards > 1 && req.shard)
			printf(" (shard %u of %u)", req.shard, r->shards);
		else if (r->shards > 1)
			printf(" (complete; %u shards)", r->shards);
		printf(", %ld revoked\n", entries);
		out_kv(stdout, "this update", "%s", out_time(r->this_update, b1,
		    sizeof b1));
		out_kv(stdout, "next update", "%s", out_time(r->next_update, b2,
		    sizeof b2));
		out_kv(stdout, "published at", "%s", r->distribution_point);
	}
out:
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ec;
}

const cli_cmd cmd_crl_table[] = {
	{ "ca", "crl", cmd_ca_crl, "a CA's current CRL (PEM or DER)",
	    HELP_CRL },
	{ NULL, NULL, NULL, NULL, NULL }
};
