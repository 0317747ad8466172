/*
 * cmd_ca.c - secretfree ca ...: the CA hierarchy, through the signer's
 * admin socket (CaAdmin). init builds a product line's root, intermediate
 * and issuing CAs in one idempotent go; create makes one CA, or with
 * --external its key and a CSR for a parent outside the signer, which
 * import-cert completes; list (with its expiry warnings), show, chain and
 * csr read what the signer holds. A CA's generations (rotate, retire,
 * revoke) are in cmd_ca_rotate.c, issue-server in cmd_ca_server.c; what
 * they share with this file is in cmd_ca.h. CA keys are made and used
 * inside the signer's token: none passes here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_ca.h"
#include "out.h"
#include "pubkey.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "util.h"

#define SVC (&secretfree__v1__ca_admin__descriptor)
#define PEM_MAX (1024 * 1024)

static const char *KEY_TYPES =
    "ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519";

/* ---- shared output ---- */

static const char *
role_name(int v, char *buf, size_t len)
{
	return out_enum(&secretfree__v1__ca_role__descriptor, v, "CA_ROLE_",
	    buf, len);
}

static const char *
state_name(int v, char *buf, size_t len)
{
	return out_enum(&secretfree__v1__ca_state__descriptor, v, "CA_STATE_",
	    buf, len);
}

static const char *
key_name(int v)
{
	return v ? pubkey_type_name(v) : "";
}

/* What retired_at means in a state: the end of the overlap, its start. */
static const char *
retired_label(int state)
{
	switch (state) {
	case SECRETFREE__V1__CA_STATE__CA_STATE_RETIRED:
		return "retired";
	case SECRETFREE__V1__CA_STATE__CA_STATE_RETIRING:
		return "retiring since";
	}
	return "rotated out";
}

void
cmd_ca_print(const CaInfo *ca)
{
	char b1[32], b2[32], role[32], state[32], *perm, *excl;

	perm = sf_join(ca->permitted_subtrees, ca->n_permitted_subtrees,
	    ", ");
	excl = sf_join(ca->excluded_subtrees, ca->n_excluded_subtrees, ", ");
	out_kv(stdout, "name", "%s", ca->name);
	out_kv(stdout, "role", "%s", role_name(ca->role, role, sizeof role));
	out_kv(stdout, "state", "%s", state_name(ca->state, state,
	    sizeof state));
	if (*ca->unavailable)
		out_kv(stdout, "unavailable", "%s", ca->unavailable);
	if (ca->external_parent)
		out_kv(stdout, "parent", "(external)");
	else
		out_kv(stdout, "parent", "%s%s%s%s", ca->parent,
		    *ca->parent_generation ? " (generation " : "",
		    ca->parent_generation, *ca->parent_generation ? ")" : "");
	out_kv(stdout, "product line", "%s", ca->product_line);
	out_kv(stdout, "region", "%s", ca->region);
	out_kv(stdout, "generation", "%s", ca->generation);
	out_kv(stdout, "key type", "%s", key_name(ca->key_type));
	out_kv(stdout, "key label", "%s", ca->key_label);
	out_kv(stdout, "key uri", "%s", ca->key_uri);
	out_kv(stdout, "subject", "%s", ca->subject);
	out_kv(stdout, "serial", "%s", ca->serial);
	if (ca->not_before)
		out_kv(stdout, "valid", "%s to %s", out_time(ca->not_before,
		    b1, sizeof b1), out_time(ca->not_after, b2, sizeof b2));
	if (ca->path_len)
		out_kv(stdout, "path length", "%u", ca->path_len->value);
	else
		out_kv(stdout, "path length", "unlimited");
	out_kv(stdout, "permitted", "%s", perm ? perm : "");
	out_kv(stdout, "excluded", "%s", excl ? excl : "");
	out_kv(stdout, "crl url", "%s", ca->crl_url);
	if (ca->crl_shards > 1)
		out_kv(stdout, "crl shards", "%u", ca->crl_shards);
	out_kv(stdout, "ocsp url", "%s", ca->ocsp_url);
	out_kv(stdout, "ca issuers url", "%s", ca->ca_issuers_url);
	out_kv(stdout, "created", "%s", out_time(ca->created_at, b1,
	    sizeof b1));
	if (ca->retired_at)
		out_kv(stdout, retired_label(ca->state), "%s",
		    out_time(ca->retired_at, b1, sizeof b1));
	if (ca->revoked_at)
		out_kv(stdout, "revoked", "%s (%s)", out_time(ca->revoked_at,
		    b1, sizeof b1), cli_reason_name(ca->revocation_reason));
	free(perm);
	free(excl);
}

json_t *
cmd_ca_json(const CaInfo *ca)
{
	char role[32], state[32];
	json_t *v;

	v = json_pack("{s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:o, "
	    "s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:b, s:o, "
	    "s:o}",
	    "name", out_jstr(ca->name),
	    "role", role_name(ca->role, role, sizeof role),
	    "state", state_name(ca->state, state, sizeof state),
	    "parent", out_jstr(ca->parent),
	    "product_line", out_jstr(ca->product_line),
	    "region", out_jstr(ca->region),
	    "generation", out_jstr(ca->generation),
	    "key_type", key_name(ca->key_type),
	    "key_label", out_jstr(ca->key_label),
	    "key_uri", out_jstr(ca->key_uri),
	    "subject", out_jstr(ca->subject),
	    "serial", out_jstr(ca->serial),
	    "not_before", out_jtime(ca->not_before),
	    "not_after", out_jtime(ca->not_after),
	    "path_len", ca->path_len ? json_integer(ca->path_len->value) :
	    json_null(),
	    "permitted", out_jstrs(ca->permitted_subtrees,
	    ca->n_permitted_subtrees),
	    "excluded", out_jstrs(ca->excluded_subtrees,
	    ca->n_excluded_subtrees),
	    "crl_url", out_jstr(ca->crl_url),
	    "crl_shards", (json_int_t)ca->crl_shards,
	    "ocsp_url", out_jstr(ca->ocsp_url),
	    "ca_issuers_url", out_jstr(ca->ca_issuers_url),
	    "external_parent", ca->external_parent,
	    "created_at", out_jtime(ca->created_at),
	    "certificate_pem", out_jstr(ca->certificate_pem));
	/* Those of a CA's generations: null while they do not apply. */
	out_jset(&v, "parent_generation", out_jstr(ca->parent_generation));
	out_jset(&v, "unavailable", *ca->unavailable ?
	    out_jstr(ca->unavailable) : json_null());
	out_jset(&v, "retired_at", out_jtime(ca->retired_at));
	out_jset(&v, "revoked_at", out_jtime(ca->revoked_at));
	out_jset(&v, "revocation_reason", ca->revoked_at ?
	    out_jstr(cli_reason_name(ca->revocation_reason)) : json_null());
	return v;
}

/* A CA after a first member "result" (ca init says what it did). */
static json_t *
cmd_ca_json_result(const CaInfo *ca, const char *result)
{
	json_t *v = json_pack("{s:s}", "result", result), *m = cmd_ca_json(ca);

	if (v == NULL || m == NULL || json_object_update(v, m) != 0) {
		json_decref(v);
		v = NULL;
	}
	json_decref(m);
	return v;
}

int
cmd_ca_print_json(cli *c, const CaInfo *ca, const char *csr_pem)
{
	json_t *doc = cmd_ca_json(ca);

	if (doc != NULL && csr_pem != NULL &&
	    json_object_set_new(doc, "csr_pem", out_jstr(csr_pem)) != 0) {
		json_decref(doc);
		doc = NULL;
	}
	return out_json(c, doc);
}

int
cmd_ca_key_type(cli *c, const char *opt, const char *v, int *out)
{
	if ((*out = pubkey_type_parse(v)) == PUBKEY_NONE)
		return cli_usage(c, "%s must be %s, not \"%s\"", opt, KEY_TYPES,
		    v);
	return 0;
}

int
cmd_ca_get(cli *c, const char *name, const char *generation, CaInfo **out)
{
	Secretfree__V1__GetCaRequest req = SECRETFREE__V1__GET_CA_REQUEST__INIT;

	req.name = (char *)name;
	req.generation = (char *)(generation ? generation : "");
	return cli_call(c, CLI_SIGNER, SVC, "GetCa", &req.base,
	    (ProtobufCMessage **)out);
}

/* ---- ca init ---- */

static const char HELP_INIT[] =
"Usage: secretfree ca init --product-line ID --region R [--region R]...\n"
"                          [--display-name NAME] [--root-key-type T]\n"
"                          [--key-type T]\n"
"\n"
"Build the CA hierarchy of a product line in one go, on the signer: the\n"
"root CA (unless there is one), the product line's intermediate CA signed\n"
"by the root, and one issuing CA per region signed by the intermediate,\n"
"named <region>.<product line>. Every key is generated inside the signer's\n"
"PKCS#11 token and never leaves it; subjects, validity and URLs come from\n"
"the signer's configuration, whose [product.ID] section must exist.\n"
"\n"
"It is idempotent: a CA that exists already is reported as \"existing\" and\n"
"left alone, so running it again with one more --region adds that region.\n"
"\n"
"Options:\n"
"  --product-line ID    the product line (1-32 of a-z, 0-9, -), e.g. widgiot\n"
"  --region R           a region to make an issuing CA for; repeat for more\n"
"                       (at least one)\n"
"  --display-name NAME  the product line's display name (e.g. WidgIoT),\n"
"                       sent along with the intermediate's request\n"
"  --root-key-type T    key type of the root, if it is made here\n"
"  --key-type T         key type of the intermediate and issuing CAs\n"
"                       T: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096,\n"
"                       ed25519 (default: the signer's configuration)\n"
"\n"
"Output: one row per CA: name, role, state, result (created or existing),\n"
"generation and expiry; with --json an object {\"cas\": [...]} whose items\n"
"carry the CA's fields and \"result\".\n"
"\n"
"Example:\n"
"  secretfree ca init --product-line widgiot --display-name WidgIoT \\\n"
"      --region us-east-1 --region eu-west-1\n";

typedef struct {
	CaInfo *ca;
	int created;
} init_step;

static int
init_one(cli *c, const Secretfree__V1__CreateCaRequest *req,
    const char *name, init_step *out)
{
	Secretfree__V1__CreateCaResponse *resp = NULL;
	rpc_status st;
	int ec;

	ec = cli_call_quiet(c, CLI_SIGNER, SVC, "CreateCa", &req->base,
	    (ProtobufCMessage **)&resp, &st);
	if (ec == 0) {
		/* Keep the CA, drop the response around it. */
		out->ca = resp->ca;
		resp->ca = NULL;
		out->created = 1;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return 0;
	}
	if (st.code != RPC_ALREADY_EXISTS)
		return cli_rpc_fail(c, CLI_SIGNER, &st);
	out->created = 0;
	return cmd_ca_get(c, name, NULL, &out->ca);
}

static int
init_report(cli *c, init_step *steps, size_t n)
{
	static const char *const hdr[] = { "NAME", "ROLE", "STATE", "RESULT",
	    "GENERATION", "NOT_AFTER" };
	char role[32], state[32], t[32];
	out_table *tb;

	if (c->json) {
		json_t *cas = json_array();

		for (size_t i = 0; i < n; i++)
			out_jappend(&cas, cmd_ca_json_result(steps[i].ca,
			    steps[i].created ? "created" : "existing"));
		return out_json(c, json_pack("{s:o}", "cas", cas));
	}
	if ((tb = out_table_new(6, hdr)) == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const CaInfo *ca = steps[i].ca;
		const char *row[6] = { ca->name, role_name(ca->role, role,
		    sizeof role), state_name(ca->state, state, sizeof state),
		    steps[i].created ? "created" : "existing", ca->generation,
		    out_time(ca->not_after, t, sizeof t) };

		out_table_add(tb, row);
	}
	out_table_print(tb, stdout);
	out_table_free(tb);
	return 0;
}

/* What ca init was asked for. */
typedef struct {
	const char *pl;
	const char *display;
	cli_list regions;
	int root_kt, kt;
} init_opts;

/*
 * Make (or find) the root, the product line's intermediate, then one
 * issuing CA per region, into steps[*n], *n counting those done. Stops at
 * the first failure, which is reported: its exit code.
 */
static int
init_all(cli *c, const init_opts *o, init_step *steps, size_t *n)
{
	Secretfree__V1__CreateCaRequest req;
	char name[128];
	int ec;

	secretfree__v1__create_ca_request__init(&req);
	req.role = SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT;
	req.key_type = o->root_kt;
	if ((ec = init_one(c, &req, "root", &steps[*n])) != 0)
		return ec;
	(*n)++;
	secretfree__v1__create_ca_request__init(&req);
	req.role = SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE;
	req.product_line = (char *)o->pl;
	req.product_display_name = (char *)o->display;
	req.key_type = o->kt;
	if ((ec = init_one(c, &req, o->pl, &steps[*n])) != 0)
		return ec;
	(*n)++;
	for (size_t i = 0; i < o->regions.n; i++) {
		secretfree__v1__create_ca_request__init(&req);
		req.role = SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING;
		req.product_line = (char *)o->pl;
		req.region = o->regions.v[i];
		req.key_type = o->kt;
		snprintf(name, sizeof name, "%s.%s", o->regions.v[i], o->pl);
		if ((ec = init_one(c, &req, name, &steps[*n])) != 0)
			return ec;
		(*n)++;
	}
	return 0;
}

static int
cmd_ca_init(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "product-line", required_argument, NULL, 'p' },
		{ "display-name", required_argument, NULL, 'd' },
		{ "region", required_argument, NULL, 'r' },
		{ "root-key-type", required_argument, NULL, 'R' },
		{ "key-type", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 }
	};
	init_opts o = { .display = "" };
	init_step *steps = NULL;
	size_t n = 0;
	int ch, rc, ec = CLI_EXIT_USAGE;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'p':
			o.pl = optarg;
			break;
		case 'd':
			o.display = optarg;
			break;
		case 'r':
			if ((ec = cli_list_add(c, &o.regions, optarg)) != 0)
				goto out;
			break;
		case 'R':
			if (cmd_ca_key_type(c, "--root-key-type", optarg,
			    &o.root_kt) != 0)
				goto out;
			break;
		case 'k':
			if (cmd_ca_key_type(c, "--key-type", optarg, &o.kt) != 0)
				goto out;
			break;
		default:
			goto out;
		}
	}
	ec = CLI_EXIT_USAGE;
	if (optind < argc) {
		cli_usage(c, "unexpected argument %s", argv[optind]);
		goto out;
	}
	if (o.pl == NULL) {
		cli_usage(c, "--product-line is required");
		goto out;
	}
	if (o.regions.n == 0) {
		cli_usage(c, "at least one --region is required");
		goto out;
	}
	if ((steps = calloc(o.regions.n + 2, sizeof *steps)) == NULL) {
		ec = cli_error(c, CLI_EXIT_ERROR, "out of memory");
		goto out;
	}
	ec = init_all(c, &o, steps, &n);
	/* What was done is shown even when a later step failed. */
	if (n > 0 && (rc = init_report(c, steps, n)) != 0 && ec == 0)
		ec = rc;
out:
	for (size_t i = 0; steps && i < n; i++)
		protobuf_c_message_free_unpacked(&steps[i].ca->base, NULL);
	free(steps);
	cli_list_free(&o.regions);
	return ec;
}

/* ---- ca create ---- */

static const char HELP_CREATE[] =
"Usage: secretfree ca create root|intermediate|issuing [OPTIONS]\n"
"\n"
"Create one CA, one level at a time (CaAdmin.CreateCa), with a new key\n"
"generated in the signer's token:\n"
"  root          self-signed (one per signer)\n"
"  intermediate  signed by the root, one per product line; named after it\n"
"  issuing       signed by the product line's intermediate, one per region;\n"
"                named <region>.<product line>\n"
"With --external the key is made and a CSR returned instead: the CA stays\n"
"pending until its certificate, signed by a parent outside this signer, is\n"
"imported with 'secretfree ca import-cert'. Defaults come from the signer's\n"
"configuration; 'ca init' builds the usual hierarchy in one go.\n"
"\n"
"Options:\n"
"  --product-line ID     the product line (intermediate, issuing)\n"
"  --display-name NAME   the product line's display name (intermediate)\n"
"  --region R            the region (issuing)\n"
"  --key-type T          ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or\n"
"                        ed25519\n"
"  --subject S           subject, \"/C=US/O=Example/CN=Example CA\" or RFC 2253\n"
"  --validity-days N     validity in days\n"
"  --path-len N          basicConstraints pathLenConstraint (0-16)\n"
"  --permit NAME         permitted name-constraint subtree, e.g.\n"
"                        DNS:.widgiot.example.net; repeatable\n"
"  --exclude NAME        excluded subtree, e.g. IP:0.0.0.0/0.0.0.0; repeatable\n"
"  --crl-url U           CRL distribution point of what this CA issues\n"
"  --crl-shards N        CRL partitions (1-1024, fixed for the CA's life):\n"
"                        each certificate names its serial's shard, at\n"
"                        crl-url with -<shard> before .crl (default: the\n"
"                        signer's [defaults] crl_shards)\n"
"  --ocsp-url U          OCSP responder URL (AIA) of what it issues\n"
"  --ca-issuers-url U    caIssuers URL (AIA) of what it issues\n"
"  --generation G        generation, e.g. 2026a (default: year + letter)\n"
"  --external            the parent is outside: make the key and a CSR only\n"
"  --csr-out FILE        with --external: write the CSR there (default:\n"
"                        standard output, after the CA's details)\n"
"\n"
"Example:\n"
"  secretfree ca create root --key-type ec-p384 --validity-days 7300\n"
"  secretfree ca create intermediate --product-line gizmo --external \\\n"
"      --csr-out gizmo.csr\n";

static int
cmd_ca_create(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "product-line", required_argument, NULL, 'p' },
		{ "display-name", required_argument, NULL, 'd' },
		{ "region", required_argument, NULL, 'r' },
		{ "key-type", required_argument, NULL, 'k' },
		{ "subject", required_argument, NULL, 's' },
		{ "validity-days", required_argument, NULL, 'v' },
		{ "path-len", required_argument, NULL, 'l' },
		{ "permit", required_argument, NULL, 'P' },
		{ "exclude", required_argument, NULL, 'X' },
		{ "crl-url", required_argument, NULL, 'C' },
		{ "crl-shards", required_argument, NULL, 'S' },
		{ "ocsp-url", required_argument, NULL, 'O' },
		{ "ca-issuers-url", required_argument, NULL, 'I' },
		{ "generation", required_argument, NULL, 'g' },
		{ "external", no_argument, NULL, 'e' },
		{ "csr-out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__CreateCaRequest req =
	    SECRETFREE__V1__CREATE_CA_REQUEST__INIT;
	Secretfree__V1__PathLen pl = SECRETFREE__V1__PATH_LEN__INIT;
	Secretfree__V1__CreateCaResponse *resp = NULL;
	cli_list permit = { 0 }, exclude = { 0 };
	const char *csr_out = NULL, *role;
	long long n;
	int ch, kt, ec = CLI_EXIT_USAGE;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'p':
			req.product_line = optarg;
			break;
		case 'd':
			req.product_display_name = optarg;
			break;
		case 'r':
			req.region = optarg;
			break;
		case 'k':
			if (cmd_ca_key_type(c, "--key-type", optarg, &kt) != 0)
				goto out;
			req.key_type = kt;
			break;
		case 's':
			req.subject = optarg;
			break;
		case 'v':
			if (cli_num(c, "--validity-days", optarg, 1, 36500,
			    &n) != 0)
				goto out;
			req.validity_days = (uint32_t)n;
			break;
		case 'l':
			if (cli_num(c, "--path-len", optarg, 0, 16, &n) != 0)
				goto out;
			pl.value = (uint32_t)n;
			req.path_len = &pl;
			break;
		case 'P':
			if ((ec = cli_list_add(c, &permit, optarg)) != 0)
				goto out;
			break;
		case 'X':
			if ((ec = cli_list_add(c, &exclude, optarg)) != 0)
				goto out;
			break;
		case 'C':
			req.crl_url = optarg;
			break;
		case 'S':
			if (cli_num(c, "--crl-shards", optarg, 1, 1024, &n) != 0)
				goto out;
			req.crl_shards = (uint32_t)n;
			break;
		case 'O':
			req.ocsp_url = optarg;
			break;
		case 'I':
			req.ca_issuers_url = optarg;
			break;
		case 'g':
			req.generation = optarg;
			break;
		case 'e':
			req.external_parent = 1;
			break;
		case 'o':
			csr_out = optarg;
			break;
		default:
			ec = CLI_EXIT_USAGE;
			goto out;
		}
	}
	ec = CLI_EXIT_USAGE;
	if (optind + 1 != argc) {
		if (optind >= argc)
			cli_usage(c, "which CA: root, intermediate or"
			    " issuing?");
		else
			cli_usage(c, "one role only, not %s", argv[argc - 1]);
		goto out;
	}
	role = argv[optind];
	if (strcmp(role, "root") == 0)
		req.role = SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT;
	else if (strcmp(role, "intermediate") == 0)
		req.role = SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE;
	else if (strcmp(role, "issuing") == 0)
		req.role = SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING;
	else {
		cli_usage(c, "the role is root, intermediate or issuing, not"
		    " \"%s\"", role);
		goto out;
	}
	if (req.role != SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT &&
	    *req.product_line == '\0') {
		cli_usage(c, "--product-line is required for an %s CA", role);
		goto out;
	}
	if (req.role == SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING &&
	    *req.region == '\0') {
		cli_usage(c, "--region is required for an issuing CA");
		goto out;
	}
	if (csr_out && !req.external_parent) {
		cli_usage(c, "--csr-out goes with --external");
		goto out;
	}
	req.permitted_subtrees = permit.v;
	req.n_permitted_subtrees = permit.n;
	req.excluded_subtrees = exclude.v;
	req.n_excluded_subtrees = exclude.n;
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "CreateCa", &req.base,
	    (ProtobufCMessage **)&resp)) != 0)
		goto out;
	if (csr_out && (ec = cli_write_file(c, csr_out, resp->csr_pem,
	    strlen(resp->csr_pem), 0644)) != 0)
		goto out;
	if (c->json)
		ec = cmd_ca_print_json(c, resp->ca, req.external_parent ?
		    resp->csr_pem : NULL);
	else {
		cmd_ca_print(resp->ca);
		if (req.external_parent && csr_out)
			printf("\nCSR written to %s: have it signed by the"
			    " parent, then run\n  secretfree ca import-cert %s"
			    " --cert CERT --chain CHAIN\n", csr_out,
			    resp->ca->name);
		else if (req.external_parent)
			printf("\n%s", resp->csr_pem);
	}
out:
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	cli_list_free(&permit);
	cli_list_free(&exclude);
	return ec;
}

/* ---- ca list / show ---- */

static const char HELP_LIST[] =
"Usage: secretfree ca list [--product-line ID] [--region R] [--all]\n"
"                          [--warn-days N]\n"
"\n"
"List the signer's CAs (CaAdmin.ListCas): name, role, state, parent,\n"
"generation, key type, expiry and a warning for an active CA close to\n"
"its end. Each generation of a CA has its row: after 'ca rotate' the old\n"
"one is retiring beside the new active one. Retired and revoked\n"
"generations are left out unless --all is given.\n"
"\n"
"An active CA that expires within --warn-days gets \"expires in N days\"\n"
"(or \"expired\") in the WARNING column and a line on standard error\n"
"saying what to do. The signer itself refuses to issue from a CA with\n"
"less than its [limits] ca_min_remaining_days left. A CA whose key in\n"
"the token is missing or is not the key its certificate names (the\n"
"signer checks at start-up and on SIGHUP) gets \"unavailable\" there,\n"
"and a line on standard error saying why: it signs nothing.\n"
"\n"
"Options:\n"
"  --product-line ID   only this product line's CAs\n"
"  --region R          only this region's issuing CAs\n"
"  --all               include retired and revoked CAs\n"
"  --warn-days N       warn about active CAs that expire within N days\n"
"                      (default 90; 0: never)\n"
"\n"
"Output: a table; with --json an object {\"cas\": [...]} whose items carry\n"
"the CA's fields (\"unavailable\": why it signs nothing, or null) and\n"
"\"expiry_warning\" (a string, or null).\n"
"\n"
"Example:\n"
"  secretfree ca list --product-line widgiot\n"
"  secretfree --json ca list | jq -r '.cas[].name'\n";

#define WARN_DAYS_DEFAULT 90

/* The warning for an active CA that ends within warn_days, into buf (""
 * when none). Returns buf. */
static const char *
expiry_warning(const CaInfo *ca, int64_t now, long long warn_days,
    char *buf, size_t len)
{
	int64_t left = ca->not_after - now;

	buf[0] = '\0';
	if (ca->state != SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE ||
	    ca->not_after == 0 || left >= warn_days * 86400)
		return buf;
	if (left <= 0)
		snprintf(buf, len, "expired");
	else if (left < 86400)
		snprintf(buf, len, "expires within a day");
	else
		snprintf(buf, len, "expires in %lld day%s",
		    (long long)(left / 86400), left < 2 * 86400 ? "" : "s");
	return buf;
}

/* The WARNING column: "unavailable" (its key cannot sign), else the
 * expiry warning. */
static const char *
row_warning(const CaInfo *ca, int64_t now, long long warn_days, char *buf,
    size_t len)
{
	if (*ca->unavailable) {
		snprintf(buf, len, "unavailable");
		return buf;
	}
	return expiry_warning(ca, now, warn_days, buf, len);
}

/* One line on stderr per warning, after the table. */
static void
expiry_lines(cli *c, const Secretfree__V1__ListCasResponse *resp,
    long long warn_days)
{
	char w[48], t[32];

	for (size_t i = 0; i < resp->n_cas; i++) {
		const CaInfo *ca = resp->cas[i];

		if (*row_warning(ca, sf_now(), warn_days, w, sizeof w) == '\0')
			continue;
		if (*ca->unavailable)
			fprintf(stderr, "secretfree: %s: warning: CA %s"
			    " generation %s is unavailable: it signs nothing:"
			    " %s\n", c->cmd, ca->name, ca->generation,
			    ca->unavailable);
		else if (ca->role == SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT)
			fprintf(stderr, "secretfree: %s: warning: the root CA"
			    " %s (%s): devices that trust only it stop"
			    " verifying then; plan a new trust anchor\n",
			    c->cmd, w, out_time(ca->not_after, t, sizeof t));
		else
			fprintf(stderr, "secretfree: %s: warning: CA %s"
			    " generation %s %s (%s): rotate it: secretfree ca"
			    " rotate %s\n", c->cmd, ca->name, ca->generation, w,
			    out_time(ca->not_after, t, sizeof t), ca->name);
	}
}

static int
list_json(cli *c, const Secretfree__V1__ListCasResponse *resp,
    long long warn_days)
{
	json_t *cas = json_array(), *v;
	char w[48];

	for (size_t i = 0; i < resp->n_cas; i++) {
		v = cmd_ca_json(resp->cas[i]);
		expiry_warning(resp->cas[i], sf_now(), warn_days, w, sizeof w);
		out_jset(&v, "expiry_warning", *w ? out_jstr(w) : json_null());
		out_jappend(&cas, v);
	}
	return out_json(c, json_pack("{s:o}", "cas", cas));
}

static int
list_table(cli *c, const Secretfree__V1__ListCasResponse *resp,
    long long warn_days)
{
	static const char *const hdr[] = { "NAME", "ROLE", "STATE", "PARENT",
	    "GENERATION", "KEY", "NOT_AFTER", "WARNING" };
	char role[32], state[32], t[32], w[48];
	out_table *tb;

	if ((tb = out_table_new(8, hdr)) == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	for (size_t i = 0; i < resp->n_cas; i++) {
		const CaInfo *ca = resp->cas[i];
		const char *row[8] = { ca->name, role_name(ca->role, role,
		    sizeof role), state_name(ca->state, state, sizeof state),
		    ca->external_parent ? "(external)" : ca->parent,
		    ca->generation, key_name(ca->key_type),
		    out_time(ca->not_after, t, sizeof t),
		    row_warning(ca, sf_now(), warn_days, w, sizeof w) };

		out_table_add(tb, row);
	}
	if (out_table_rows(tb) == 0)
		printf("no CAs yet: secretfree ca init --product-line ID"
		    " --region R\n");
	else
		out_table_print(tb, stdout);
	out_table_free(tb);
	return 0;
}

static int
cmd_ca_list(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "product-line", required_argument, NULL, 'p' },
		{ "region", required_argument, NULL, 'r' },
		{ "all", no_argument, NULL, 'a' },
		{ "warn-days", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__ListCasRequest req =
	    SECRETFREE__V1__LIST_CAS_REQUEST__INIT;
	Secretfree__V1__ListCasResponse *resp = NULL;
	long long warn_days = WARN_DAYS_DEFAULT;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'p':
			req.product_line = optarg;
			break;
		case 'r':
			req.region = optarg;
			break;
		case 'a':
			req.include_retired = 1;
			break;
		case 'w':
			if (cli_num(c, "--warn-days", optarg, 0, 36500,
			    &warn_days) != 0)
				return CLI_EXIT_USAGE;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument %s", argv[optind]);
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "ListCas", &req.base,
	    (ProtobufCMessage **)&resp)) != 0)
		return ec;
	ec = c->json ? list_json(c, resp, warn_days) :
	    list_table(c, resp, warn_days);
	fflush(stdout);
	expiry_lines(c, resp, warn_days);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ec;
}

static const char HELP_SHOW[] =
"Usage: secretfree ca show NAME [--generation G]\n"
"\n"
"Show one CA (CaAdmin.GetCa): role, state, parent (and the generation of\n"
"it that signed this one), key type and the PKCS#11 URI of its key,\n"
"subject, serial, validity, path length, name constraints, the URLs it\n"
"puts in what it issues, and when it began retiring or was revoked; for\n"
"a CA whose key in the token cannot sign for it, \"unavailable\" and why.\n"
"NAME is root, a product line (its intermediate) or <region>.<product line>\n"
"(an issuing CA). With --json the certificate's PEM is included.\n"
"\n"
"Options:\n"
"  --generation G   this generation (default: the active one, else the\n"
"                   newest)\n"
"\n"
"Example:\n"
"  secretfree ca show us-east-1.widgiot\n"
"  secretfree ca show us-east-1.widgiot --generation 2026a\n";

int
cmd_ca_one_name(cli *c, int argc, char **argv, const char *what,
    const char **name)
{
	if (optind + 1 != argc)
		return optind >= argc ? cli_usage(c, "which %s?", what) :
		    cli_usage(c, "one %s only, not %s", what, argv[argc - 1]);
	*name = argv[optind];
	return 0;
}

static int
cmd_ca_show(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "generation", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 }
	};
	const char *name, *gen = NULL;
	CaInfo *ca = NULL;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch != 'g')
			return CLI_EXIT_USAGE;
		gen = optarg;
	}
	if ((ec = cmd_ca_one_name(c, argc, argv, "CA", &name)) != 0)
		return ec;
	if ((ec = cmd_ca_get(c, name, gen, &ca)) != 0)
		return ec;
	if (c->json)
		ec = cmd_ca_print_json(c, ca, NULL);
	else
		cmd_ca_print(ca);
	protobuf_c_message_free_unpacked(&ca->base, NULL);
	return ec;
}

/* ---- ca chain / csr / import-cert ---- */

static const char HELP_CHAIN[] =
"Usage: secretfree ca chain NAME [--generation G] [--out FILE]\n"
"\n"
"The certificate chain of a CA (CaAdmin.GetCaChain) in PEM: the CA itself\n"
"first, its root last. The root alone is what devices and TLS clients\n"
"trust: 'secretfree ca chain root --out root.pem'. Each generation has\n"
"its own chain: what a generation issued verifies with that one's.\n"
"\n"
"Options:\n"
"  --generation G   this generation (default: the active one)\n"
"  --out FILE       write the chain to FILE (default: standard output)\n"
"\n"
"Example:\n"
"  secretfree ca chain us-east-1.widgiot --out chain.pem\n"
"  openssl verify -CAfile root.pem -untrusted chain.pem device.crt\n";

static int
cmd_ca_chain(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "generation", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__GetCaRequest req = SECRETFREE__V1__GET_CA_REQUEST__INIT;
	Secretfree__V1__GetChainResponse *resp = NULL;
	const char *out = NULL, *name;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch == 'o')
			out = optarg;
		else if (ch == 'g')
			req.generation = optarg;
		else
			return CLI_EXIT_USAGE;
	}
	if ((ec = cmd_ca_one_name(c, argc, argv, "CA", &name)) != 0)
		return ec;
	req.name = (char *)name;
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "GetCaChain", &req.base,
	    (ProtobufCMessage **)&resp)) != 0)
		return ec;
	if (out)
		ec = cli_write_file(c, out, resp->chain_pem,
		    strlen(resp->chain_pem), 0644);
	if (ec == 0 && c->json)
		ec = out_json(c, json_pack("{s:o, s:o, s:o}",
		    "name", out_jstr(name),
		    "names", out_jstrs(resp->names, resp->n_names),
		    "chain_pem", out_jstr(resp->chain_pem)));
	else if (ec == 0 && out == NULL)
		ec = cli_write_file(c, "-", resp->chain_pem,
		    strlen(resp->chain_pem), 0);
	else if (ec == 0) {
		printf("%s: chain of %zu certificates (", out, resp->n_names);
		for (size_t i = 0; i < resp->n_names; i++)
			printf("%s%s", i ? " <- " : "", resp->names[i]);
		printf(")\n");
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ec;
}

static const char HELP_CSR[] =
"Usage: secretfree ca csr NAME [--subject S] [--out FILE]\n"
"\n"
"A PKCS#10 request for the key of an existing CA (CaAdmin.ExportCaCsr),\n"
"signed inside the signer's token, for a parent outside this signer to\n"
"sign (cross-signing, or a pending CA made with 'ca create --external').\n"
"\n"
"Options:\n"
"  --subject S   the subject to ask for (default: the CA's own)\n"
"  --out FILE    write the CSR to FILE (default: standard output)\n"
"\n"
"Example:\n"
"  secretfree ca csr gizmo --out gizmo.csr\n"
"  openssl req -in gizmo.csr -noout -verify -subject\n";

static int
cmd_ca_csr(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "subject", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__ExportCaCsrRequest req =
	    SECRETFREE__V1__EXPORT_CA_CSR_REQUEST__INIT;
	Secretfree__V1__ExportCaCsrResponse *resp = NULL;
	const char *out = "-", *name;
	int ch, ec, rc;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 's':
			req.subject = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if ((ec = cmd_ca_one_name(c, argc, argv, "CA", &name)) != 0)
		return ec;
	req.name = (char *)name;
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "ExportCaCsr", &req.base,
	    (ProtobufCMessage **)&resp)) != 0)
		return ec;
	if (c->json) {
		if (strcmp(out, "-") != 0)
			ec = cli_write_file(c, out, resp->csr_pem,
			    strlen(resp->csr_pem), 0644);
		rc = out_json(c, json_pack("{s:o, s:o}",
		    "name", out_jstr(name),
		    "csr_pem", out_jstr(resp->csr_pem)));
		ec = ec ? ec : rc;
	} else
		ec = cli_write_file(c, out, resp->csr_pem,
		    strlen(resp->csr_pem), 0644);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ec;
}

static const char HELP_IMPORT[] =
"Usage: secretfree ca import-cert NAME --cert FILE --chain FILE\n"
"\n"
"Give a pending CA (made with 'ca create --external') the certificate its\n"
"outside parent signed (CaAdmin.ImportCaCertificate). The signer checks\n"
"that the certificate is for the CA's key, is a CA certificate with\n"
"keyCertSign, and verifies against the chain; the CA becomes active.\n"
"\n"
"Options:\n"
"  --cert FILE    the CA's certificate (PEM, exactly one)\n"
"  --chain FILE   the parent's chain up to and including its root (PEM)\n"
"\n"
"Example:\n"
"  secretfree ca import-cert gizmo --cert gizmo.crt --chain outside-root.pem\n";

static int
cmd_ca_import_cert(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "chain", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__ImportCaCertificateRequest req =
	    SECRETFREE__V1__IMPORT_CA_CERTIFICATE_REQUEST__INIT;
	const char *certf = NULL, *chainf = NULL, *name;
	uint8_t *cert = NULL, *chain = NULL;
	size_t len;
	CaInfo *ca = NULL;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'c':
			certf = optarg;
			break;
		case 'C':
			chainf = optarg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if ((ec = cmd_ca_one_name(c, argc, argv, "CA", &name)) != 0)
		return ec;
	if (certf == NULL || chainf == NULL)
		return cli_usage(c, "--cert and --chain are required");
	if ((ec = cli_read_file(c, "certificate", certf, PEM_MAX, &cert,
	    &len)) != 0 ||
	    (ec = cli_read_file(c, "chain", chainf, PEM_MAX, &chain,
	    &len)) != 0)
		goto out;
	req.name = (char *)name;
	req.certificate_pem = (char *)cert;
	req.chain_pem = (char *)chain;
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "ImportCaCertificate",
	    &req.base, (ProtobufCMessage **)&ca)) != 0)
		goto out;
	if (c->json)
		ec = cmd_ca_print_json(c, ca, NULL);
	else
		cmd_ca_print(ca);
	protobuf_c_message_free_unpacked(&ca->base, NULL);
out:
	free(cert);
	free(chain);
	return ec;
}

const cli_cmd cmd_ca_table[] = {
	{ "ca", "init", cmd_ca_init, "root, intermediate and issuing CAs in one"
	    " go", HELP_INIT },
	{ "ca", "create", cmd_ca_create, "create one CA (root, intermediate,"
	    " issuing)", HELP_CREATE },
	{ "ca", "list", cmd_ca_list, "list the CAs", HELP_LIST },
	{ "ca", "show", cmd_ca_show, "show one CA", HELP_SHOW },
	{ "ca", "chain", cmd_ca_chain, "a CA's certificate chain (PEM)",
	    HELP_CHAIN },
	{ "ca", "csr", cmd_ca_csr, "a CSR for a CA's key, for an outside"
	    " parent", HELP_CSR },
	{ "ca", "import-cert", cmd_ca_import_cert, "import an outside parent's"
	    " certificate for a pending CA", HELP_IMPORT },
	{ NULL, NULL, NULL, NULL, NULL }
};
