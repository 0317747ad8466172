/*
 * cmd_status.c - secretfree status: the signer's health (CaAdmin.GetStatus:
 * its token probed now, fault and repair counts, the CAs that cannot
 * sign) and whether authz's admin socket answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"

typedef Secretfree__V1__GetStatusResponse StatusResp;

static const char HELP_STATUS[] =
"Usage: secretfree status [--signer-only]\n"
"\n"
"Is the CA working? Asks the signer (CaAdmin.GetStatus). The signer probes\n"
"its token through the session pool; if a repair is owed after a fault,\n"
"it tries the repair first, so asking also heals. The answer shows:\n"
"  - whether the token answers now (available / UNAVAILABLE);\n"
"  - how many fault answers the token gave since start, the last one and\n"
"    when;\n"
"  - how many times the session pool was rebuilt (and how many rebuilds\n"
"    failed);\n"
"  - the sessions in use;\n"
"  - how many CAs cannot sign (their key is missing or not bound to their\n"
"    certificate: see `secretfree ca list`);\n"
"  - the signer's start time and version.\n"
"Then it checks that authz's admin socket answers (Registry.ListDevices),\n"
"unless --signer-only is given.\n"
"\n"
"Exit status: 0 when the token is available, no CA is unavailable and\n"
"authz answers; 6 when the token or authz is unavailable; 1 when some CA\n"
"cannot sign; the usual codes when the signer cannot be asked.\n"
"\n"
"Options:\n"
"  --signer-only   do not ask authz\n"
"\n"
"With --json: token {label, available, faults, repairs, failed_repairs,\n"
"last_fault, last_fault_at, last_repair_at, sessions, sessions_busy},\n"
"started_at, cas, cas_unavailable, version, authz (\"ok\" or the error;\n"
"absent with --signer-only).\n"
"\n"
"Example:\n"
"  secretfree status\n"
"  secretfree --json status | jq .token.available\n";

static int
cmd_status(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "signer-only", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__GetStatusRequest req =
	    SECRETFREE__V1__GET_STATUS_REQUEST__INIT;
	Secretfree__V1__ListDevicesRequest creq =
	    SECRETFREE__V1__LIST_DEVICES_REQUEST__INIT;
	rpc_status st;
	char aerr[600];
	const Secretfree__V1__TokenStatus *t;
	ProtobufCMessage *cresp = NULL;
	StatusResp *r = NULL;
	const char *authz = NULL;
	char b1[32], b2[32], b3[32];
	int ch, ec, signer_only = 0, aec = 0;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch != 's')
			return CLI_EXIT_USAGE;
		signer_only = 1;
	}
	if (optind != argc)
		return cli_usage(c, "no operands, not %s", argv[optind]);
	if ((ec = cli_call(c, CLI_SIGNER,
	    &secretfree__v1__ca_admin__descriptor, "GetStatus", &req.base,
	    (ProtobufCMessage **)&r)) != 0)
		return ec;
	if (!signer_only) {
		creq.limit = 1;
		memset(&st, 0, sizeof st);
		aec = cli_call_quiet(c, CLI_AUTHZ,
		    &secretfree__v1__registry__descriptor, "ListDevices",
		    &creq.base, &cresp, &st);
		snprintf(aerr, sizeof aerr, "UNAVAILABLE: %s", st.message[0] ?
		    st.message : "no answer");
		authz = aec == 0 ? "ok" : aerr;
		if (cresp)
			protobuf_c_message_free_unpacked(cresp, NULL);
	}
	t = r->token;
	if (c->json) {
		ec = out_json(c, json_pack("{s:{s:o, s:b, s:I, s:I, s:I, s:o,"
		    " s:o, s:o, s:I, s:I}, s:o, s:I, s:I, s:o, s:o*}",
		    "token",
		    "label", out_jstr(t ? t->label : ""),
		    "available", t && t->available,
		    "faults", (json_int_t)(t ? t->faults : 0),
		    "repairs", (json_int_t)(t ? t->repairs : 0),
		    "failed_repairs", (json_int_t)(t ? t->failed_repairs : 0),
		    "last_fault", out_jstr(t ? t->last_fault : ""),
		    "last_fault_at", out_jtime(t ? t->last_fault_at : 0),
		    "last_repair_at", out_jtime(t ? t->last_repair_at : 0),
		    "sessions", (json_int_t)(t ? t->sessions : 0),
		    "sessions_busy", (json_int_t)(t ? t->sessions_busy : 0),
		    "started_at", out_jtime(r->started_at),
		    "cas", (json_int_t)r->cas,
		    "cas_unavailable", (json_int_t)r->cas_unavailable,
		    "version", out_jstr(r->version),
		    "authz", authz ? out_jstr(authz) : NULL));
		if (ec != 0)
			goto out;
	} else {
		out_kv(stdout, "token", "%s: %s", t ? t->label : "?",
		    t && t->available ? "available" : "UNAVAILABLE");
		out_kv(stdout, "token faults", "%llu%s%s%s%s",
		    (unsigned long long)(t ? t->faults : 0),
		    t && *t->last_fault ? " (last: " : "",
		    t && *t->last_fault ? t->last_fault : "",
		    t && *t->last_fault ? " at " : "",
		    t && *t->last_fault ? out_time(t->last_fault_at, b1,
		    sizeof b1) : "");
		if (t && *t->last_fault)
			printf(")\n");
		else
			printf("\n");
		out_kv(stdout, "token repairs", "%llu (%llu failed)%s%s",
		    (unsigned long long)(t ? t->repairs : 0),
		    (unsigned long long)(t ? t->failed_repairs : 0),
		    t && t->last_repair_at ? ", last at " : "",
		    t && t->last_repair_at ? out_time(t->last_repair_at, b2,
		    sizeof b2) : "");
		out_kv(stdout, "sessions", "%u, %u in use", t ? t->sessions : 0,
		    t ? t->sessions_busy : 0);
		out_kv(stdout, "CAs", "%u, %u unavailable", r->cas,
		    r->cas_unavailable);
		out_kv(stdout, "signer", "%s, up since %s", r->version,
		    out_time(r->started_at, b3, sizeof b3));
		if (authz)
			out_kv(stdout, "authz", "%s", authz);
	}
	if (t == NULL || !t->available || (authz && aec != 0))
		ec = CLI_EXIT_UNAVAIL;
	else if (r->cas_unavailable)
		ec = CLI_EXIT_ERROR;
out:
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ec;
}

const cli_cmd cmd_status_table[] = {
	{ NULL, "status", cmd_status, "the signer's token and CAs, and authz:"
	    " are they working?", HELP_STATUS },
	{ NULL, NULL, NULL, NULL, NULL }
};
