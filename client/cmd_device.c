/*
 * cmd_device.c - secretfree device ...: import the factory's records (the
 * options here; the protocol, signer first and then authz, is
 * devimport.c's), and list and show the devices in authz's registry
 * (Registry.ListDevices, GetDevice, GetThing, ListCertificates) with the
 * signer's view of each beside it (CaAdmin.GetDeviceKey). Changes of a
 * device's state are cmd_devstate.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_device.h"
#include "devimport.h"
#include "devrec.h"
#include "import.h"
#include "out.h"
#include "pubkey.h"
#include "recres.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"
#include "util.h"

#define REG_SVC (&secretfree__v1__registry__descriptor)
#define PAGE_MAX 1000

/* ---- device import ---- */

static const char HELP_IMPORT[] =
"Usage: secretfree device import FILE|DIR [--format csv|jsonl|dir]\n"
"                                [--product-line P] [--region R]\n"
"                                [--batch N] [--dry-run]\n"
"\n"
"Import the factory's records (device id, public key) into both places\n"
"that check a device's key: each batch goes first to the signer\n"
"(CaAdmin.RegisterDeviceKeys), then the records the signer accepted go to\n"
"authz (Registry.ImportDevices). Both check every record again and refuse\n"
"a bad id, a bad or weak key, a known id with another key, a known key\n"
"under another id. Re-running an import is idempotent: records already\n"
"there with the same key are \"unchanged\".\n"
"\n"
"Formats (told by the name unless --format is given):\n"
"  csv    device_id,public_key[,product_line,region]; RFC 4180 quoting, so\n"
"         a PEM key fits in a quoted field; an optional header line\n"
"  jsonl  one JSON object per line (*.jsonl, *.ndjson, *.json):\n"
"         {\"device_id\": ..., \"public_key\": ..., \"product_line\": ...,\n"
"          \"region\": ...}\n"
"  dir    a directory of PEM public keys named <device id>.pem\n"
"public_key is a PEM PUBLIC KEY block or base64 of the DER\n"
"SubjectPublicKeyInfo. FILE may be - for standard input (with --format).\n"
"The file is streamed: a million records are fine. The file is read, the\n"
"signer called and authz called side by side: while authz stores one\n"
"batch, the signer stores the next and the next after is read, so at\n"
"most three batches are held. If authz fails, the import stops there; the\n"
"signer may already hold the next batch, which is harmless (nobody\n"
"enrolls without authz) and which re-running the import completes.\n"
"\n"
"Every refused record is reported on stderr with where it is and who\n"
"refused it, e.g.\n"
"  devices.csv:7: device 1111: registered with another key (signer)\n"
"and the last line is the summary \"imported N, unchanged N, refused N\"\n"
"(imported: new to the signer or to authz; unchanged: both had it).\n"
"Progress goes to stderr when it is a terminal. With --json the summary\n"
"and the refusals are printed as one JSON object instead.\n"
"\n"
"Options:\n"
"  --format F         csv, jsonl or dir\n"
"  --product-line P   the product line of records that name none\n"
"  --region R         the region of records that name none (a device with\n"
"                     a region enrolls only there)\n"
"  --batch N          records per call and per commit (default 5000, at\n"
"                     most 10000): larger batches import faster and hold\n"
"                     each store's write lock longer\n"
"  --dry-run          read and check the records here; send nothing\n"
"\n"
"Exit status 9 when the import finished but refused records.\n"
"\n"
"Example:\n"
"  secretfree device import devices.csv --product-line widgiot\n"
"  secretfree device import keys/ --product-line widgiot --region eu-west-1\n";

static int
cmd_device_import(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "product-line", required_argument, NULL, 'p' },
		{ "region", required_argument, NULL, 'r' },
		{ "batch", required_argument, NULL, 'b' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	devimport_opts o = { .fmt = IMPORT_AUTO, .batch = 5000 };
	long long batch;
	int ch;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'f':
			if (strcmp(optarg, "csv") == 0)
				o.fmt = IMPORT_CSV;
			else if (strcmp(optarg, "jsonl") == 0)
				o.fmt = IMPORT_JSONL;
			else if (strcmp(optarg, "dir") == 0)
				o.fmt = IMPORT_DIR;
			else
				return cli_usage(c, "--format is csv, jsonl or"
				    " dir, not \"%s\"", optarg);
			break;
		case 'p':
			o.product_line = optarg;
			break;
		case 'r':
			o.region = optarg;
			break;
		case 'b':
			if (cli_num(c, "--batch", optarg, 1, RECRES_MAX_RECORDS,
			    &batch) != 0)
				return CLI_EXIT_USAGE;
			o.batch = (size_t)batch;
			break;
		case 'n':
			o.dry_run = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return optind >= argc ? cli_usage(c, "which file or"
		    " directory?") : cli_usage(c, "one file or directory only,"
		    " not %s", argv[argc - 1]);
	o.path = argv[optind];
	return devimport_run(c, &o);
}

/* ---- device list / show ---- */

const char *
cmd_device_state_name(int v, char *buf, size_t len)
{
	return out_enum(&secretfree__v1__device_state__descriptor, v,
	    "DEVICE_STATE_", buf, len);
}

json_t *
cmd_device_json(const Secretfree__V1__Device *d)
{
	char st[32], hex[65] = "";
	pubkey_info pk;
	json_t *v;

	if (d->key_sha256.len == 32)
		sf_hex(d->key_sha256.data, 32, hex);
	v = json_pack("{s:o, s:o, s:o, s:s, s:s, s:s*, s:o, s:o, s:o, s:o}",
	    "device_id", out_jstr(d->device_id),
	    "product_line", out_jstr(d->product_line),
	    "region", out_jstr(d->region),
	    "state", cmd_device_state_name(d->state, st, sizeof st),
	    "key_sha256", hex,
	    "key_type", pubkey_from_spki(d->spki_der.data, d->spki_der.len,
	    &pk, NULL, 0) == 0 ? pubkey_type_name(pk.type) : NULL,
	    "current_serial", out_jstr(d->current_serial),
	    "thing_name", out_jstr(d->thing_name),
	    "created_at", out_jtime(d->created_at),
	    "updated_at", out_jtime(d->updated_at));
	pubkey_info_free(&pk);
	out_jset(&v, "origin", json_string(*d->origin ? d->origin :
	    "factory"));
	return v;
}

static int
state_opt(cli *c, const char *v, int *out)
{
	if (strcmp(v, "registered") == 0)
		*out = SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_REGISTERED;
	else if (strcmp(v, "active") == 0)
		*out = SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_ACTIVE;
	else if (strcmp(v, "disabled") == 0)
		*out = SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_DISABLED;
	else if (strcmp(v, "revoked") == 0)
		*out = SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_REVOKED;
	else
		return cli_usage(c, "--state is registered, active, disabled or"
		    " revoked, not \"%s\"", v);
	return 0;
}

static const char HELP_LIST[] =
"Usage: secretfree device list [--product-line P] [--region R]\n"
"                              [--state registered|active|disabled|revoked]\n"
"                              [--limit N]\n"
"\n"
"List the devices in authz's registry (Registry.ListDevices), by id:\n"
"product line, region, state, current certificate and key fingerprint.\n"
"registered: imported, never enrolled; active: holds a certificate;\n"
"disabled: refused at enrollment until enabled again; revoked: refused\n"
"for good (secretfree device revoke).\n"
"\n"
"Options:\n"
"  --product-line P   only this product line\n"
"  --region R         only this region\n"
"  --state S          only devices in this state\n"
"  --limit N          at most N devices (default 100)\n"
"\n"
"Example:\n"
"  secretfree device list --product-line widgiot --state registered\n";

static int
cmd_device_list(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "product-line", required_argument, NULL, 'p' },
		{ "region", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const hdr[] = { "DEVICE", "PRODUCT_LINE", "REGION",
	    "STATE", "SERIAL", "KEY_SHA256" };
	Secretfree__V1__ListDevicesRequest req =
	    SECRETFREE__V1__LIST_DEVICES_REQUEST__INIT;
	Secretfree__V1__ListDevicesResponse *resp = NULL;
	out_table *tb = NULL;
	char after[DEVICE_ID_MAX + 1] = "", st[32], hex[65];
	long long limit = 100, n;
	size_t shown = 0;
	int ch, state = 0, ec = 0;
	out_stream js;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'p':
			req.product_line = optarg;
			break;
		case 'r':
			req.region = optarg;
			break;
		case 's':
			if (state_opt(c, optarg, &state) != 0)
				return CLI_EXIT_USAGE;
			req.state = state;
			break;
		case 'n':
			if (cli_num(c, "--limit", optarg, 1, 100000000,
			    &limit) != 0)
				return CLI_EXIT_USAGE;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument %s", argv[optind]);
	if (c->json)
		out_stream_open(&js, stdout, NULL, "devices");
	else if ((tb = out_table_new(6, hdr)) == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	while ((long long)shown < limit) {
		n = limit - (long long)shown;
		req.limit = (uint32_t)(n > PAGE_MAX ? PAGE_MAX : n);
		req.after_device_id = after;
		if ((ec = cli_call(c, CLI_AUTHZ, REG_SVC, "ListDevices",
		    &req.base, (ProtobufCMessage **)&resp)) != 0)
			break;
		for (size_t i = 0; i < resp->n_devices; i++) {
			const Secretfree__V1__Device *d = resp->devices[i];

			if (c->json)
				out_stream_item(&js, cmd_device_json(d));
			else {
				const char *row[6];

				hex[0] = '\0';
				if (d->key_sha256.len == 32)
					sf_hex(d->key_sha256.data, 8, hex);
				row[0] = d->device_id;
				row[1] = d->product_line;
				row[2] = d->region;
				row[3] = cmd_device_state_name(d->state, st,
				    sizeof st);
				row[4] = d->current_serial;
				row[5] = hex;
				out_table_add(tb, row);
			}
			snprintf(after, sizeof after, "%s", d->device_id);
		}
		shown += resp->n_devices;
		n = (long long)resp->n_devices;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
		if (n < (long long)req.limit)
			break;
	}
	if (c->json)
		out_stream_close(&js, NULL);
	else if (ec == 0)
		out_table_print(tb, stdout);
	out_table_free(tb);
	return ec;
}

static const char HELP_SHOW[] =
"Usage: secretfree device show ID\n"
"\n"
"Show a device from authz's registry (Registry.GetDevice): product line,\n"
"region, state, key type and fingerprint; beside it the signer's record\n"
"(CaAdmin.GetDeviceKey), which decides: its state there (active,\n"
"disabled, revoked), how many live certificates it holds (unexpired,\n"
"not revoked; the signer caps them) and its current one; its thing\n"
"(Registry.GetThing) with attributes, groups and policies once it has\n"
"enrolled; and its certificates (Registry.ListCertificates).\n"
"\n"
"When the two disagree, `secretfree audit reconcile` says why and makes\n"
"authz follow the signer. When the signer cannot be asked, authz's view\n"
"is shown, the signer's error follows on stderr and the exit status is\n"
"that error's.\n"
"\n"
"Example:\n"
"  secretfree device show 1111\n"
"  secretfree --json device show 1111 | jq .thing.attributes\n";

/* A device's thing as --json prints it; null before it enrolled. */
static json_t *
thing_json(const Secretfree__V1__Thing *t)
{
	json_t *attrs = json_object();

	if (t == NULL) {
		json_decref(attrs);
		return json_null();
	}
	for (size_t i = 0; i < t->n_attributes; i++)
		out_jset(&attrs, t->attributes[i]->name,
		    out_jstr(t->attributes[i]->value));
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}",
	    "name", out_jstr(t->name),
	    "attributes", attrs,
	    "groups", out_jstrs(t->groups, t->n_groups),
	    "policies", out_jstrs(t->policies, t->n_policies),
	    "certificate_serial", out_jstr(t->certificate_serial),
	    "created_at", out_jtime(t->created_at));
}

/* A device's certificates as --json prints them. */
static json_t *
certs_json(const Secretfree__V1__ListDeviceCertificatesResponse *cl)
{
	json_t *a = json_array();
	char st[32];

	for (size_t i = 0; i < cl->n_certificates; i++) {
		const Secretfree__V1__CertificateInfo *ci = cl->certificates[i];

		out_jappend(&a, json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o}",
		    "serial", out_jstr(ci->serial),
		    "ca", out_jstr(ci->ca_name),
		    "status", out_enum(
		    &secretfree__v1__certificate_status__descriptor,
		    ci->status, "CERTIFICATE_STATUS_", st, sizeof st),
		    "not_before", out_jtime(ci->not_before),
		    "not_after", out_jtime(ci->not_after),
		    "issued_at", out_jtime(ci->issued_at),
		    "enrollment_id", out_jstr(ci->enrollment_id)));
	}
	return a;
}

/* The signer's record of a device as --json prints it; null if none. */
static json_t *
signer_json(const Secretfree__V1__DeviceKeyInfo *k)
{
	char st[32];

	if (k == NULL)
		return json_null();
	return json_pack("{s:s, s:i, s:o, s:o, s:s, s:o, s:b}",
	    "state", cmd_device_state_name(k->state, st, sizeof st),
	    "live_certificates", (int)k->live_certificates,
	    "current_serial", out_jstr(k->current_serial),
	    "updated_at", out_jtime(k->updated_at),
	    "origin", *k->origin ? k->origin : "factory",
	    "birth_serial", out_jstr(k->birth_serial),
	    "birth_reuse", k->birth_reuse);
}

static void
show_human(const Secretfree__V1__Device *d,
    const Secretfree__V1__DeviceKeyInfo *k, const Secretfree__V1__Thing *t,
    const Secretfree__V1__ListDeviceCertificatesResponse *cl)
{
	static const char *const hdr[] = { "SERIAL", "CA", "STATUS",
	    "NOT_AFTER", "ENROLLMENT" };
	char st[32], hex[65] = "", b1[32], b2[32];
	pubkey_info pk;
	out_table *tb;

	if (d->key_sha256.len == 32)
		sf_hex(d->key_sha256.data, 32, hex);
	out_kv(stdout, "device", "%s", d->device_id);
	out_kv(stdout, "state", "%s", cmd_device_state_name(d->state, st,
	    sizeof st));
	out_kv(stdout, "product line", "%s", d->product_line);
	out_kv(stdout, "region", "%s", *d->region ? d->region : "(any)");
	out_kv(stdout, "origin", "%s", *d->origin ? d->origin : "factory");
	if (pubkey_from_spki(d->spki_der.data, d->spki_der.len, &pk, NULL,
	    0) == 0)
		out_kv(stdout, "key type", "%s", pubkey_type_name(pk.type));
	pubkey_info_free(&pk);
	out_kv(stdout, "key sha256", "%s", hex);
	out_kv(stdout, "current serial", "%s", d->current_serial);
	out_kv(stdout, "created", "%s", out_time(d->created_at, b1,
	    sizeof b1));
	out_kv(stdout, "updated", "%s", out_time(d->updated_at, b2,
	    sizeof b2));
	if (k) {
		out_kv(stdout, "signer state", "%s",
		    cmd_device_state_name(k->state, st, sizeof st));
		out_kv(stdout, "live certs", "%u", k->live_certificates);
		out_kv(stdout, "signer serial", "%s", k->current_serial);
		if (*k->origin)
			out_kv(stdout, "birth cert", "%s%s", k->birth_serial,
			    k->birth_reuse ? " (allowed once more)" : "");
	}
	if (t) {
		printf("\nthing %s\n", t->name);
		for (size_t i = 0; i < t->n_attributes; i++)
			printf("  attribute  %s = %s\n", t->attributes[i]->name,
			    t->attributes[i]->value);
		for (size_t i = 0; i < t->n_groups; i++)
			printf("  group      %s\n", t->groups[i]);
		for (size_t i = 0; i < t->n_policies; i++)
			printf("  policy     %s\n", t->policies[i]);
	}
	if (cl == NULL || cl->n_certificates == 0) {
		printf("\nno certificates yet\n");
		return;
	}
	printf("\ncertificates\n");
	if ((tb = out_table_new(5, hdr)) == NULL)
		return;
	for (size_t i = 0; i < cl->n_certificates; i++) {
		const Secretfree__V1__CertificateInfo *ci = cl->certificates[i];
		const char *row[5] = { ci->serial, ci->ca_name, out_enum(
		    &secretfree__v1__certificate_status__descriptor,
		    ci->status, "CERTIFICATE_STATUS_", st, sizeof st),
		    out_time(ci->not_after, b1, sizeof b1),
		    ci->enrollment_id };

		out_table_add(tb, row);
	}
	out_table_print(tb, stdout);
	out_table_free(tb);
}

/*
 * The signer's record of device id into *k (NULL when the signer has none
 * or cannot be asked). 0, or the exit code of the signer's failure after
 * its message (NOT_FOUND: a line saying the signer does not know it).
 */
static int
signer_view(cli *c, const char *id, Secretfree__V1__DeviceKeyInfo **k)
{
	Secretfree__V1__GetDeviceKeyRequest req =
	    SECRETFREE__V1__GET_DEVICE_KEY_REQUEST__INIT;
	rpc_status rs;
	int ec;

	req.device_id = (char *)id;
	ec = cli_call_quiet(c, CLI_SIGNER,
	    &secretfree__v1__ca_admin__descriptor, "GetDeviceKey", &req.base,
	    (ProtobufCMessage **)k, &rs);
	if (ec == 0)
		return 0;
	if (rs.code == RPC_NOT_FOUND) {
		cli_error(c, 0, "device %s is not registered at the signer;"
		    " `secretfree audit reconcile` lists such devices", id);
		return 0;
	}
	return cli_rpc_fail(c, CLI_SIGNER, &rs);
}

static int
cmd_device_show(cli *c, int argc, char **argv)
{
	static const struct option opts[] = { { NULL, 0, NULL, 0 } };
	Secretfree__V1__GetDeviceRequest dreq =
	    SECRETFREE__V1__GET_DEVICE_REQUEST__INIT;
	Secretfree__V1__GetThingRequest treq =
	    SECRETFREE__V1__GET_THING_REQUEST__INIT;
	Secretfree__V1__ListDeviceCertificatesRequest creq =
	    SECRETFREE__V1__LIST_DEVICE_CERTIFICATES_REQUEST__INIT;
	Secretfree__V1__Device *d = NULL;
	Secretfree__V1__DeviceKeyInfo *k = NULL;
	Secretfree__V1__Thing *t = NULL;
	Secretfree__V1__ListDeviceCertificatesResponse *cl = NULL;
	const char *id = NULL;
	rpc_status rs;
	int ch, ec, sec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1)
		return CLI_EXIT_USAGE;
	if ((ec = cli_operand(c, argc, argv, "device", &id)) != 0)
		return ec;
	dreq.device_id = (char *)id;
	c->hint[RPC_NOT_FOUND] = "import it first: secretfree device import"
	    " FILE --product-line ID";
	if ((ec = cli_call(c, CLI_AUTHZ, REG_SVC, "GetDevice", &dreq.base,
	    (ProtobufCMessage **)&d)) != 0)
		return ec;
	c->hint[RPC_NOT_FOUND] = NULL;
	/* A device that never enrolled has no thing: not an error. */
	treq.name = d->device_id;
	ec = cli_call_quiet(c, CLI_AUTHZ, REG_SVC, "GetThing", &treq.base,
	    (ProtobufCMessage **)&t, &rs);
	if (ec != 0 && rs.code != RPC_NOT_FOUND) {
		ec = cli_rpc_fail(c, CLI_AUTHZ, &rs);
		goto out;
	}
	creq.device_id = d->device_id;
	if ((ec = cli_call(c, CLI_AUTHZ, REG_SVC, "ListCertificates",
	    &creq.base, (ProtobufCMessage **)&cl)) != 0)
		goto out;
	/* authz's view is shown even when the signer cannot be asked. */
	sec = signer_view(c, d->device_id, &k);
	if (c->json)
		ec = out_json(c, json_pack("{s:o, s:o, s:o, s:o}",
		    "device", cmd_device_json(d),
		    "signer", signer_json(k),
		    "thing", thing_json(t),
		    "certificates", certs_json(cl)));
	else
		show_human(d, k, t, cl);
	ec = ec ? ec : sec;
out:
	protobuf_c_message_free_unpacked(&d->base, NULL);
	if (k)
		protobuf_c_message_free_unpacked(&k->base, NULL);
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
	if (cl)
		protobuf_c_message_free_unpacked(&cl->base, NULL);
	return ec;
}

const cli_cmd cmd_device_table[] = {
	{ "device", "import", cmd_device_import, "import factory records into"
	    " the signer and authz", HELP_IMPORT },
	{ "device", "list", cmd_device_list, "list registered devices",
	    HELP_LIST },
	{ "device", "show", cmd_device_show, "show a device, its thing and"
	    " certificates", HELP_SHOW },
	{ NULL, NULL, NULL, NULL, NULL }
};
