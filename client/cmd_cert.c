/*
 * cmd_cert.c - secretfree cert ...: the signer's issuance journal through
 * its admin socket: one certificate by its serial, written as openssl
 * prints it (CaAdmin.GetCertificate), a list by issuing CA or device,
 * fetched page by page (CaAdmin.ListCertificates), and revocation
 * (CaAdmin.RevokeCertificate, then mirrored in authz).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mirror.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "util.h"

#define SVC (&secretfree__v1__ca_admin__descriptor)
#define PAGE_MAX 1000

typedef Secretfree__V1__CertificateInfo CertInfo;

static const char *
status_name(int v, char *buf, size_t len)
{
	return out_enum(&secretfree__v1__certificate_status__descriptor, v,
	    "CERTIFICATE_STATUS_", buf, len);
}

/* Serials as the signer writes them: upper-case hex, no colons, whole
 * bytes (a leading zero that "%X" would drop is put back). */
static int
normalize_serial(cli *c, const char *in, char *out, size_t len)
{
	size_t k = 0, digits = 0;

	for (const char *p = in; *p; p++)
		digits += *p != ':';
	if (digits % 2 == 1 && len > 1)
		out[k++] = '0';
	for (const char *p = in; *p; p++) {
		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p) || k + 1 >= len)
			return cli_error(c, CLI_EXIT_INPUT, "\"%s\" is not a"
			    " serial number (hex, as openssl x509 -serial"
			    " prints it)", in);
		out[k++] = (char)toupper((unsigned char)*p);
	}
	out[k] = '\0';
	if (digits == 0)
		return cli_error(c, CLI_EXIT_INPUT, "empty serial number");
	return 0;
}

/* A certificate as --json prints it; with its PEM when pem is set. */
static json_t *
cmd_cert_json(const CertInfo *ci, int pem)
{
	char st[32], reason[48], hex[65] = "";

	if (ci->key_sha256.len == 32)
		sf_hex(ci->key_sha256.data, 32, hex);
	/* revocation_reason and revoked_at only once it is revoked. */
	return json_pack("{s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:s, "
	    "s:s*, s:o*, s:o, s:o, s:o, s:o*}",
	    "serial", out_jstr(ci->serial),
	    "ca", out_jstr(ci->ca_name),
	    "subject", out_jstr(ci->subject),
	    "device_id", out_jstr(ci->device_id),
	    "key_sha256", hex,
	    "not_before", out_jtime(ci->not_before),
	    "not_after", out_jtime(ci->not_after),
	    "issued_at", out_jtime(ci->issued_at),
	    "status", status_name(ci->status, st, sizeof st),
	    "revocation_reason", ci->revoked_at ? out_enum(
	    &secretfree__v1__revocation_reason__descriptor,
	    ci->revocation_reason, "REVOCATION_REASON_", reason,
	    sizeof reason) : NULL,
	    "revoked_at", ci->revoked_at ? out_jtime(ci->revoked_at) : NULL,
	    "profile", out_jstr(ci->profile),
	    "requester", out_jstr(ci->requester),
	    "enrollment_id", out_jstr(ci->enrollment_id),
	    "certificate_pem", pem ? out_jstr(ci->certificate_pem) : NULL);
}

static const char HELP_SHOW[] =
"Usage: secretfree cert show SERIAL [--ca NAME] [--pem]\n"
"\n"
"Show a certificate from the signer's issuance journal\n"
"(CaAdmin.GetCertificate): the issuing CA, subject, device id, key\n"
"fingerprint, validity, status, profile, requester and enrollment id.\n"
"SERIAL is hex as 'openssl x509 -serial' prints it (colons and lower case\n"
"are accepted).\n"
"\n"
"Options:\n"
"  --ca NAME   the issuing CA, if the serial is ambiguous\n"
"  --pem       print only the certificate in PEM\n"
"\n"
"Example:\n"
"  secretfree cert show 5F3A9C0E71B2D4A6E8F0123456789ABC\n"
"  secretfree cert show 5F3A9C0E71B2D4A6E8F0123456789ABC --pem |\n"
"      openssl x509 -noout -text\n";

static int
cmd_cert_show(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'a' },
		{ "pem", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__GetCertificateRequest req =
	    SECRETFREE__V1__GET_CERTIFICATE_REQUEST__INIT;
	CertInfo *ci = NULL;
	char serial[128], b1[32], b2[32], st[32], hex[65] = "";
	int ch, ec, pem = 0;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'a':
			req.ca_name = optarg;
			break;
		case 'p':
			pem = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return optind >= argc ? cli_usage(c, "which serial?") :
		    cli_usage(c, "one serial only, not %s", argv[argc - 1]);
	if ((ec = normalize_serial(c, argv[optind], serial,
	    sizeof serial)) != 0)
		return ec;
	req.serial = serial;
	c->hint[RPC_NOT_FOUND] = "list what was issued: secretfree cert list";
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "GetCertificate", &req.base,
	    (ProtobufCMessage **)&ci)) != 0)
		return ec;
	if (c->json)
		ec = out_json(c, cmd_cert_json(ci, 1));
	else if (pem)
		ec = cli_write_file(c, "-", ci->certificate_pem,
		    strlen(ci->certificate_pem), 0);
	else {
		if (ci->key_sha256.len == 32)
			sf_hex(ci->key_sha256.data, 32, hex);
		out_kv(stdout, "serial", "%s", ci->serial);
		out_kv(stdout, "ca", "%s", ci->ca_name);
		out_kv(stdout, "subject", "%s", ci->subject);
		out_kv(stdout, "device", "%s", ci->device_id);
		out_kv(stdout, "key sha256", "%s", hex);
		out_kv(stdout, "valid", "%s to %s", out_time(ci->not_before, b1,
		    sizeof b1), out_time(ci->not_after, b2, sizeof b2));
		out_kv(stdout, "issued", "%s", out_time(ci->issued_at, b1,
		    sizeof b1));
		out_kv(stdout, "status", "%s", status_name(ci->status, st,
		    sizeof st));
		if (ci->revoked_at)
			out_kv(stdout, "revoked", "%s", out_time(ci->revoked_at,
			    b1, sizeof b1));
		out_kv(stdout, "profile", "%s", ci->profile);
		out_kv(stdout, "requester", "%s", ci->requester);
		out_kv(stdout, "enrollment id", "%s", ci->enrollment_id);
	}
	protobuf_c_message_free_unpacked(&ci->base, NULL);
	return ec;
}

static const char HELP_LIST[] =
"Usage: secretfree cert list [--ca NAME] [--device ID] [--limit N]\n"
"\n"
"List certificates from the signer's issuance journal\n"
"(CaAdmin.ListCertificates), in serial order: serial, issuing CA, device\n"
"(or subject), status, profile and expiry.\n"
"\n"
"Options:\n"
"  --ca NAME     only those this CA issued\n"
"  --device ID   only this device's certificates\n"
"  --limit N     at most N certificates (default 100)\n"
"\n"
"Example:\n"
"  secretfree cert list --device 1111\n"
"  secretfree cert list --ca us-east-1.widgiot --limit 5000\n";

static int
cmd_cert_list(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'a' },
		{ "device", required_argument, NULL, 'd' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const hdr[] = { "SERIAL", "CA", "DEVICE/SUBJECT",
	    "STATUS", "PROFILE", "NOT_AFTER" };
	Secretfree__V1__ListCertificatesRequest req =
	    SECRETFREE__V1__LIST_CERTIFICATES_REQUEST__INIT;
	Secretfree__V1__ListCertificatesResponse *resp = NULL;
	out_table *tb = NULL;
	char after[128] = "", st[32], t[32];
	long long limit = 100, n;
	size_t shown = 0;
	int ch, ec = 0;
	out_stream js;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'a':
			req.ca_name = optarg;
			break;
		case 'd':
			req.device_id = optarg;
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
		out_stream_open(&js, stdout, NULL, "certificates");
	else if ((tb = out_table_new(6, hdr)) == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	/* Pages of at most PAGE_MAX until the limit or the end. */
	while ((long long)shown < limit) {
		n = limit - (long long)shown;
		req.limit = (uint32_t)(n > PAGE_MAX ? PAGE_MAX : n);
		req.after_serial = after;
		if ((ec = cli_call(c, CLI_SIGNER, SVC, "ListCertificates",
		    &req.base, (ProtobufCMessage **)&resp)) != 0)
			break;
		for (size_t i = 0; i < resp->n_certificates; i++) {
			const CertInfo *ci = resp->certificates[i];

			if (c->json)
				out_stream_item(&js, cmd_cert_json(ci, 0));
			else {
				const char *row[6] = { ci->serial, ci->ca_name,
				    *ci->device_id ? ci->device_id :
				    ci->subject, status_name(ci->status, st,
				    sizeof st), ci->profile,
				    out_time(ci->not_after, t, sizeof t) };

				out_table_add(tb, row);
			}
			snprintf(after, sizeof after, "%s", ci->serial);
		}
		shown += resp->n_certificates;
		n = (long long)resp->n_certificates;
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

static const char HELP_REVOKE[] =
"Usage: secretfree cert revoke SERIAL [--reason REASON] [--ca NAME]\n"
"\n"
"Revoke one certificate. The signer records the revocation in its journal\n"
"before it answers (CaAdmin.RevokeCertificate), and its background tasks\n"
"then regenerate the issuing CA's CRL and OCSP responses (within\n"
"change_delay_ms). authz then mirrors the new status\n"
"(Registry.UpdateCertificateStatus); a device whose current certificate\n"
"it was may enroll again with its registered key.\n"
"\n"
"Revoking is permanent. Revoking again with the same reason changes\n"
"nothing and succeeds; with another reason it is refused (exit 8).\n"
"\n"
"Options:\n"
"  --reason REASON  why (RFC 5280): unspecified (default), key-compromise,\n"
"                   ca-compromise, affiliation-changed, superseded,\n"
"                   cessation-of-operation, privilege-withdrawn,\n"
"                   aa-compromise\n"
"  --ca NAME        the issuing CA, if the serial alone is ambiguous\n"
"\n"
"SERIAL is hex as `openssl x509 -serial` prints it (colons and a missing\n"
"leading zero are accepted).\n"
"\n"
"Exit status: as for every command; 10 if the signer revoked it but authz\n"
"could not record that (the revocation holds; run `secretfree audit\n"
"reconcile` later).\n"
"\n"
"Example:\n"
"  secretfree cert revoke 5F3A9C0E71B2D4A6E8F0123456789ABC \\\n"
"      --reason key-compromise\n";

static int
cmd_cert_revoke(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'a' },
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__RevokeCertificateRequest req =
	    SECRETFREE__V1__REVOKE_CERTIFICATE_REQUEST__INIT;
	Secretfree__V1__CertificateStatusUpdate u =
	    SECRETFREE__V1__CERTIFICATE_STATUS_UPDATE__INIT, *up = &u;
	CertInfo *ci = NULL;
	char serial[128], what[200], b1[32];
	int ch, ec, reason = 0;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'a':
			req.ca_name = optarg;
			break;
		case 'r':
			if (cli_reason(c, optarg, &reason) != 0)
				return CLI_EXIT_USAGE;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return optind >= argc ? cli_usage(c, "which serial?") :
		    cli_usage(c, "one serial only, not %s", argv[argc - 1]);
	if ((ec = normalize_serial(c, argv[optind], serial,
	    sizeof serial)) != 0)
		return ec;
	req.serial = serial;
	req.reason = reason;
	c->hint[RPC_NOT_FOUND] = "list what was issued: secretfree cert list";
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "RevokeCertificate", &req.base,
	    (ProtobufCMessage **)&ci)) != 0)
		return ec;
	u.serial = ci->serial;
	u.status = ci->status;
	u.reason = ci->revocation_reason;
	u.revoked_at = ci->revoked_at;
	u.device_id = ci->device_id;
	snprintf(what, sizeof what, "certificate %s revoked", ci->serial);
	ec = mirror_cert_status(c, what, &up, 1, NULL);
	if (c->json) {
		int jec = out_json(c, cmd_cert_json(ci, 0));

		ec = ec ? ec : jec;
	} else
		printf("certificate %s (%s%s) revoked at %s: %s\n",
		    ci->serial, *ci->device_id ? "device " : "",
		    *ci->device_id ? ci->device_id : ci->subject,
		    out_time(ci->revoked_at, b1, sizeof b1),
		    cli_reason_name(ci->revocation_reason));
	protobuf_c_message_free_unpacked(&ci->base, NULL);
	return ec;
}

const cli_cmd cmd_cert_table[] = {
	{ "cert", "show", cmd_cert_show, "show an issued certificate",
	    HELP_SHOW },
	{ "cert", "list", cmd_cert_list, "list issued certificates",
	    HELP_LIST },
	{ "cert", "revoke", cmd_cert_revoke, "revoke a certificate (signer,"
	    " then authz)", HELP_REVOKE },
	{ NULL, NULL, NULL, NULL, NULL }
};
