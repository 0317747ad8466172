/*
 * cmd_ca_claim.c - secretfree ca issue-claim / revoke-claim: claim
 * certificates for MQTT provisioning (reference 004) through the signer's
 * admin socket (CaAdmin.IssueClaimCertificate, RevokeClaimBatch). A claim
 * certificate lets a batch of devices reach their own provisioning topics
 * on the broker's claim listener; it never gets a device a certificate
 * (authz still issues only for the registered key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_ca.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"

#define SVC (&secretfree__v1__ca_admin__descriptor)

static const char HELP_ISSUE[] =
"Usage: secretfree ca issue-claim --batch NAME --key FILE [--generate-key]\n"
"                                 --out CERT [--chain-out FILE] [--ca NAME]\n"
"                                 [--days N]\n"
"\n"
"A claim certificate (clientAuth) for a batch of devices: the key and\n"
"certificate that every device of the batch ships with, good for one\n"
"thing only, connecting to the MQTT broker's claim listener to reach its\n"
"own provisioning topics (`secretfree mqtt config --claim-cafile`). It\n"
"never gets a device a certificate by itself: authz issues only for the\n"
"key registered for that device id. Subject O=<organization>, OU=claim,\n"
"CN=claim-<batch>; journaled with profile \"claim\" and enrollment id\n"
"claim:<batch>, so that `secretfree ca revoke-claim` revokes the whole\n"
"batch. Issuing again for the same batch adds a certificate to it (a new\n"
"key for the batch's next production run).\n"
"\n"
"The CSR is made here from the key file; the signer takes only its\n"
"public key.\n"
"\n"
"Options:\n"
"  --batch NAME      1-48 of A-Z a-z 0-9 . _ -\n"
"  --key FILE        the batch's private key (PEM)\n"
"  --generate-key    make the key first: EC P-256, written to --key with\n"
"                    mode 0600; an existing file is never overwritten\n"
"  --out CERT        where the certificate goes; followed by the CA chain\n"
"                    (issuing CA first, root last) unless --chain-out is\n"
"                    given\n"
"  --chain-out FILE  write the chain there instead\n"
"  --ca NAME         the issuing CA (default: the first active one); the\n"
"                    broker's claim listener trusts this CA's chain\n"
"  --days N          validity in days (default 365, at most 3650; never\n"
"                    beyond the issuing CA's own)\n"
"\n"
"Example:\n"
"  secretfree ca issue-claim --batch 2026-w49 --key claim-2026-w49.key \\\n"
"      --generate-key --out claim-2026-w49.crt --chain-out claim-ca.pem\n";

static const char HELP_REVOKE[] =
"Usage: secretfree ca revoke-claim --batch NAME [--reason REASON]\n"
"\n"
"Revoke every claim certificate of a batch in one journal transaction\n"
"(CaAdmin.RevokeClaimBatch). The issuing CA's CRL and OCSP responses\n"
"follow within change_delay_ms; the broker's claim listener refuses the\n"
"batch once it reloads that CRL (`crlfile` in the configuration that\n"
"`secretfree mqtt config` writes; send mosquitto SIGHUP). Devices of the\n"
"batch that already hold their own certificate are not affected.\n"
"Revoking a batch again changes nothing and succeeds.\n"
"\n"
"Options:\n"
"  --batch NAME      the batch given to issue-claim\n"
"  --reason REASON   unspecified (default), key-compromise,\n"
"                    affiliation-changed, superseded,\n"
"                    cessation-of-operation, privilege-withdrawn\n"
"\n"
"Prints each certificate of the batch with its status; exit 3 (not\n"
"found) when the batch has no claim certificate.\n"
"\n"
"Example:\n"
"  secretfree ca revoke-claim --batch 2026-w49 --reason key-compromise\n";

static int
cmd_ca_issue_claim(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "batch", required_argument, NULL, 'b' },
		{ "key", required_argument, NULL, 'k' },
		{ "generate-key", no_argument, NULL, 'g' },
		{ "out", required_argument, NULL, 'o' },
		{ "chain-out", required_argument, NULL, 'C' },
		{ "ca", required_argument, NULL, 'a' },
		{ "days", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__IssueClaimCertificateRequest req =
	    SECRETFREE__V1__ISSUE_CLAIM_CERTIFICATE_REQUEST__INIT;
	Secretfree__V1__IssueServerCertificateResponse *resp = NULL;
	const char *keyf = NULL, *out = NULL, *chain_out = NULL;
	char cn[64], *csr = NULL;
	size_t csrlen;
	long long n;
	int ch, gen = 0, ec = CLI_EXIT_USAGE;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'b':
			req.batch = optarg;
			break;
		case 'k':
			keyf = optarg;
			break;
		case 'g':
			gen = 1;
			break;
		case 'o':
			out = optarg;
			break;
		case 'C':
			chain_out = optarg;
			break;
		case 'a':
			req.ca_name = optarg;
			break;
		case 'n':
			if (cli_num(c, "--days", optarg, 1, 3650, &n) != 0)
				goto out;
			req.validity_days = (uint32_t)n;
			break;
		default:
			goto out;
		}
	}
	if (optind < argc) {
		cli_usage(c, "unexpected argument %s", argv[optind]);
		goto out;
	}
	if (*req.batch == '\0' || keyf == NULL || out == NULL) {
		cli_usage(c, "--batch, --key and --out are required");
		goto out;
	}
	snprintf(cn, sizeof cn, "claim-%.48s", req.batch);
	if ((ec = cmd_ca_key_csr(c, keyf, gen, cn, &csr, &csrlen)) != 0)
		goto out;
	req.csr.data = (uint8_t *)csr;
	req.csr.len = csrlen;
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "IssueClaimCertificate",
	    &req.base, (ProtobufCMessage **)&resp)) != 0)
		goto out;
	if ((ec = cmd_ca_write_cert(c, out, chain_out, resp->certificate_pem,
	    resp->chain_pem)) != 0)
		goto out;
	if (c->json)
		ec = out_json(c, json_pack("{s:o, s:o, s:o, s:b, s:o, s:o, "
		    "s:o, s:o}",
		    "batch", out_jstr(req.batch),
		    "serial", out_jstr(resp->serial),
		    "key", out_jstr(keyf),
		    "key_generated", gen,
		    "certificate_file", out_jstr(out),
		    "chain_file", out_jstr(chain_out),
		    "certificate_pem", out_jstr(resp->certificate_pem),
		    "chain_pem", out_jstr(resp->chain_pem)));
	else {
		out_kv(stdout, "batch", "%s", req.batch);
		out_kv(stdout, "serial", "%s", resp->serial);
		out_kv(stdout, "key", "%s%s", keyf, gen ? " (generated)" : "");
		out_kv(stdout, "certificate", "%s%s", out, chain_out ? "" :
		    " (with its chain)");
		if (chain_out)
			out_kv(stdout, "chain", "%s", chain_out);
	}
out:
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	free(csr);
	return ec;
}

static int
cmd_ca_revoke_claim(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "batch", required_argument, NULL, 'b' },
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__RevokeClaimBatchRequest req =
	    SECRETFREE__V1__REVOKE_CLAIM_BATCH_REQUEST__INIT;
	Secretfree__V1__RevokeClaimBatchResponse *resp = NULL;
	json_t *arr = NULL;
	char st[32], b1[32];
	int ch, ec, reason = 0;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'b':
			req.batch = optarg;
			break;
		case 'r':
			if (cli_reason(c, optarg, &reason) != 0)
				return CLI_EXIT_USAGE;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument %s", argv[optind]);
	if (*req.batch == '\0')
		return cli_usage(c, "--batch is required");
	req.reason = reason;
	c->hint[RPC_NOT_FOUND] = "list claim certificates: secretfree cert"
	    " list (profile claim)";
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "RevokeClaimBatch", &req.base,
	    (ProtobufCMessage **)&resp)) != 0)
		return ec;
	if (c->json) {
		arr = json_array();
		for (size_t i = 0; i < resp->n_certificates; i++) {
			const Secretfree__V1__CertificateInfo *ci =
			    resp->certificates[i];

			out_jappend(&arr, json_pack("{s:o, s:o, s:o, s:o}",
			    "serial", out_jstr(ci->serial),
			    "ca", out_jstr(ci->ca_name),
			    "status", out_jstr(out_enum(
			    &secretfree__v1__certificate_status__descriptor,
			    ci->status, "CERTIFICATE_STATUS_", st, sizeof st)),
			    "not_after", out_jtime(ci->not_after)));
		}
		if (arr == NULL) {
			ec = cli_error(c, CLI_EXIT_ERROR, "out of memory");
			goto out;
		}
		ec = out_json(c, json_pack("{s:o, s:i, s:o}",
		    "batch", out_jstr(req.batch),
		    "revoked", (int)resp->revoked,
		    "certificates", arr));
	} else {
		printf("claim batch %s: %u certificate(s) revoked now (%s)\n",
		    req.batch, resp->revoked, cli_reason_name(reason));
		for (size_t i = 0; i < resp->n_certificates; i++) {
			const Secretfree__V1__CertificateInfo *ci =
			    resp->certificates[i];

			printf("  %s  %s  %s  until %s\n", ci->serial,
			    ci->ca_name, out_enum(
			    &secretfree__v1__certificate_status__descriptor,
			    ci->status, "CERTIFICATE_STATUS_", st, sizeof st),
			    out_time(ci->not_after, b1, sizeof b1));
		}
	}
out:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ec;
}

const cli_cmd cmd_ca_claim_table[] = {
	{ "ca", "issue-claim", cmd_ca_issue_claim, "a claim certificate for a"
	    " batch of devices (MQTT)", HELP_ISSUE },
	{ "ca", "revoke-claim", cmd_ca_revoke_claim, "revoke a batch's claim"
	    " certificates", HELP_REVOKE },
	{ NULL, NULL, NULL, NULL, NULL }
};
