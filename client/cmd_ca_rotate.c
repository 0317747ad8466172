/*
 * cmd_ca_rotate.c - secretfree ca rotate / retire / revoke: a CA's
 * generations through the signer's admin socket. rotate makes the next
 * generation (CaAdmin.RotateCa) and leaves the old one retiring; retire
 * ends that overlap (CaAdmin.RetireCa); revoke revokes a generation and,
 * with --cascade, everything below it, calling CaAdmin.RevokeCa batch
 * after batch until nothing is left and mirroring each batch in authz
 * (mirror.h), the signer first as for every admin change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_ca.h"
#include "mirror.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "util.h"

#define SVC (&secretfree__v1__ca_admin__descriptor)
#define BATCH_MAX 20000

/* ---- ca rotate ---- */

static const char HELP_ROTATE[] =
"Usage: secretfree ca rotate NAME [--key-type T] [--generation G]\n"
"                            [--csr-out FILE]\n"
"\n"
"Give a CA its next generation (CaAdmin.RotateCa): a new key generated in\n"
"the signer's token, and a certificate from the active generation of its\n"
"parent with the old generation's subject, name constraints and path\n"
"length. The old generation becomes retiring: it stays valid and keeps\n"
"signing its CRL and OCSP responses, but issues nothing new. Every new\n"
"certificate comes from the new generation and carries its chain; the\n"
"certificates the old one issued keep theirs. The new generation's CRL\n"
"and caIssuers URLs are its own (a ${name} in the signer's URL templates\n"
"stands for <name>-<generation>). End the overlap with 'secretfree ca\n"
"retire NAME' once devices have moved over.\n"
"\n"
"An intermediate's issuing CAs stay under its old generation, which keeps\n"
"signing their CRLs, until each is rotated in turn: rotate them next,\n"
"then retire them, then the intermediate's old generation.\n"
"\n"
"The root is not rotated (exit 8): devices trust it by its key, so a new\n"
"root is of use only once every device trusts it, which the signer cannot\n"
"bring about.\n"
"\n"
"A CA whose parent is outside the signer: the new generation is pending\n"
"and its CSR is printed (or written to --csr-out); the old one stays\n"
"active until 'secretfree ca import-cert NAME' gives the new one its\n"
"certificate, and retires then.\n"
"\n"
"Options:\n"
"  --key-type T      the new key's type: ec-p256, ec-p384, rsa-2048,\n"
"                    rsa-3072, rsa-4096, ed25519 (default: the old one's)\n"
"  --generation G    the new generation's name (default: the year and\n"
"                    the first free letter, e.g. 2026b)\n"
"  --csr-out FILE    outside parent: write the CSR to FILE\n"
"\n"
"Output: the new generation's details and a line on the old one; with\n"
"--json {\"ca\": {...}, \"previous\": {...}, \"csr_pem\": ...}.\n"
"\n"
"Example:\n"
"  secretfree ca rotate us-east-1.widgiot\n"
"  secretfree ca rotate widgiot --key-type ec-p384 --generation 2027a\n";

static int
rotate_report(cli *c, const Secretfree__V1__RotateCaResponse *resp,
    const char *csr_out)
{
	const CaInfo *prev = resp->previous;
	int pending = *resp->csr_pem != '\0';

	if (c->json)
		return out_json(c, json_pack("{s:o, s:o, s:o}",
		    "ca", cmd_ca_json(resp->ca),
		    "previous", prev ? cmd_ca_json(prev) : json_null(),
		    "csr_pem", pending ? out_jstr(resp->csr_pem) :
		    json_null()));
	cmd_ca_print(resp->ca);
	if (prev)
		printf("\ngeneration %s: %s\n", prev->generation, pending ?
		    "active until the new generation's certificate is imported" :
		    "retiring (it issues nothing new; end the overlap with"
		    " secretfree ca retire)");
	if (pending && csr_out)
		printf("\nCSR written to %s: have it signed by the parent, then"
		    " run\n  secretfree ca import-cert %s --cert CERT --chain"
		    " CHAIN\n", csr_out, resp->ca->name);
	else if (pending)
		printf("\n%s", resp->csr_pem);
	return 0;
}

static int
cmd_ca_rotate(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key-type", required_argument, NULL, 'k' },
		{ "generation", required_argument, NULL, 'g' },
		{ "csr-out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__RotateCaRequest req =
	    SECRETFREE__V1__ROTATE_CA_REQUEST__INIT;
	Secretfree__V1__RotateCaResponse *resp = NULL;
	const char *csr_out = NULL, *name;
	int ch, kt, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'k':
			if (cmd_ca_key_type(c, "--key-type", optarg, &kt) != 0)
				return CLI_EXIT_USAGE;
			req.key_type = kt;
			break;
		case 'g':
			req.generation = optarg;
			break;
		case 'o':
			csr_out = optarg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if ((ec = cmd_ca_one_name(c, argc, argv, "CA", &name)) != 0)
		return ec;
	req.name = (char *)name;
	c->hint[RPC_NOT_FOUND] = "list the CAs: secretfree ca list";
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "RotateCa", &req.base,
	    (ProtobufCMessage **)&resp)) != 0)
		return ec;
	if (csr_out && *resp->csr_pem == '\0')
		fprintf(stderr, "secretfree: %s: --csr-out ignored: the parent"
		    " of %s is in the signer, which signed the new generation\n",
		    c->cmd, name);
	else if (csr_out)
		ec = cli_write_file(c, csr_out, resp->csr_pem,
		    strlen(resp->csr_pem), 0644);
	if (ec == 0)
		ec = rotate_report(c, resp, csr_out);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ec;
}

/* ---- ca retire ---- */

static const char HELP_RETIRE[] =
"Usage: secretfree ca retire NAME [--generation G]\n"
"\n"
"End the overlap after 'secretfree ca rotate NAME' (CaAdmin.RetireCa): the\n"
"retiring generation becomes retired. It keeps signing its CRL, and what\n"
"it issued stays valid until it expires or is revoked; it is no longer\n"
"listed by 'ca list' (only with --all). Retire it once the devices it\n"
"certified have renewed or re-enrolled under the new generation.\n"
"\n"
"Refused (exit 8) for an active or revoked generation, and while it still\n"
"certifies a CA generation that is not retired or revoked (after rotating\n"
"an intermediate: rotate and retire its issuing CAs first). Retiring a\n"
"retired generation again changes nothing.\n"
"\n"
"Options:\n"
"  --generation G   which one (default: the only retiring generation)\n"
"\n"
"Output: the generation's details; with --json the CA object.\n"
"\n"
"Example:\n"
"  secretfree ca retire us-east-1.widgiot\n";

static int
cmd_ca_retire(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "generation", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__RetireCaRequest req =
	    SECRETFREE__V1__RETIRE_CA_REQUEST__INIT;
	CaInfo *ca = NULL;
	const char *name;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch != 'g')
			return CLI_EXIT_USAGE;
		req.generation = optarg;
	}
	if ((ec = cmd_ca_one_name(c, argc, argv, "CA", &name)) != 0)
		return ec;
	req.name = (char *)name;
	c->hint[RPC_NOT_FOUND] = "list the CAs: secretfree ca list --all";
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "RetireCa", &req.base,
	    (ProtobufCMessage **)&ca)) != 0)
		return ec;
	if (c->json)
		ec = cmd_ca_print_json(c, ca, NULL);
	else
		cmd_ca_print(ca);
	protobuf_c_message_free_unpacked(&ca->base, NULL);
	return ec;
}

/* ---- ca revoke ---- */

static const char HELP_REVOKE[] =
"Usage: secretfree ca revoke NAME --reason REASON [--cascade]\n"
"                            [--generation G] [--batch N]\n"
"\n"
"Revoke a CA generation (CaAdmin.RevokeCa). It issues nothing from then\n"
"on, and its own certificate is revoked in its parent's scope, so that\n"
"the parent's CRL lists it. With --cascade, every certificate it issued\n"
"and every CA below it, with all they issued, is revoked too: for\n"
"ca-compromise when REASON is key-compromise, else for REASON. The signer\n"
"revokes them N at a time, each batch one transaction of its journal;\n"
"this command calls again until none is left, showing progress on a\n"
"terminal, and mirrors each batch in authz\n"
"(Registry.UpdateCertificateStatus). A device whose certificate was\n"
"revoked may then enroll again with its registered key and gets a\n"
"certificate from the CA's active generation: rotate first ('secretfree\n"
"ca rotate NAME') so that there is one. The CRLs of the CAs concerned are\n"
"regenerated by the signer's background tasks (within its\n"
"change_delay_ms).\n"
"\n"
"Without --cascade, a CA that still certifies a live CA is refused (exit\n"
"8), and what it issued is left as it is (relying parties that check\n"
"CRLs refuse it through the chain). Run again with the same reason it\n"
"carries on where it stopped; with another reason it is refused (exit\n"
"8). The root cannot be revoked. Once a CA has several generations (after\n"
"a rotation), --generation must say which.\n"
"\n"
"Options:\n"
"  --reason REASON   why (RFC 5280): unspecified, key-compromise,\n"
"                    ca-compromise, affiliation-changed, superseded,\n"
"                    cessation-of-operation, privilege-withdrawn,\n"
"                    aa-compromise (required)\n"
"  --cascade         also every certificate and CA below it\n"
"  --generation G    the generation (required once there are several)\n"
"  --batch N         certificates per call (default 5000, at most 20000)\n"
"\n"
"Output: one line with what was revoked and the CRLs that change; with\n"
"--json {\"ca\": {...}, \"certificates_revoked\": N, \"cas_revoked\": N,\n"
"\"crls\": [\"<name>/<generation>\", ...]}.\n"
"\n"
"Exit status: as for every command; 10 if the signer revoked but authz\n"
"did not record it (the revocation holds; run `secretfree audit\n"
"reconcile` once authz answers).\n"
"\n"
"Example:\n"
"  secretfree ca rotate us-east-1.widgiot\n"
"  secretfree ca revoke us-east-1.widgiot --generation 2026a \\\n"
"      --reason key-compromise --cascade\n";

/* What the batches of one `ca revoke` add up to. */
typedef struct {
	cli *c;
	int tty;
	int progress_shown;
	unsigned long long certs, cas;
	int mirror_ec;            /* the first mirror failure's exit code */
	cli_list crls;            /* "<name>/<generation>", each once */
} revoke_run;

static void
progress_clear(revoke_run *rr)
{
	if (rr->progress_shown) {
		fputs("\r\033[K", stderr);
		rr->progress_shown = 0;
	}
}

/* One batch's answer: mirrored in authz (until authz fails once), added
 * up, and shown on a terminal. */
static int
revoke_batch(revoke_run *rr, const Secretfree__V1__RevokeCaResponse *resp)
{
	char what[200];
	int ec;

	rr->certs += resp->certificates_revoked;
	rr->cas += resp->cas_revoked;
	for (size_t i = 0; i < resp->n_crls_regenerated; i++) {
		size_t k = 0;
		char *dup;

		while (k < rr->crls.n && strcmp(rr->crls.v[k],
		    resp->crls_regenerated[i]) != 0)
			k++;
		if (k < rr->crls.n)
			continue;
		if ((dup = strdup(resp->crls_regenerated[i])) == NULL)
			return cli_error(rr->c, CLI_EXIT_ERROR, "out of memory");
		if ((ec = cli_list_add(rr->c, &rr->crls, dup)) != 0) {
			free(dup);
			return ec;
		}
	}
	if (rr->mirror_ec == 0 && resp->n_revoked > 0) {
		progress_clear(rr);
		snprintf(what, sizeof what, "%zu certificates below CA %s"
		    " revoked", resp->n_revoked, resp->ca->name);
		rr->mirror_ec = mirror_cert_status(rr->c, what, resp->revoked,
		    resp->n_revoked, NULL);
	}
	if (rr->tty && resp->remaining > 0) {
		fprintf(stderr, "\r\033[K%llu certificates revoked, %llu left",
		    rr->certs, (unsigned long long)resp->remaining);
		rr->progress_shown = 1;
	}
	return 0;
}

static int
revoke_report(revoke_run *rr, const CaInfo *ca, int cascade)
{
	char *crls;

	progress_clear(rr);
	if (rr->c->json)
		return out_json(rr->c, json_pack("{s:o, s:I, s:I, s:o}",
		    "ca", cmd_ca_json(ca),
		    "certificates_revoked", (json_int_t)rr->certs,
		    "cas_revoked", (json_int_t)rr->cas,
		    "crls", out_jstrs(rr->crls.v, rr->crls.n)));
	printf("CA %s generation %s revoked (%s); this run revoked %llu"
	    " CA%s%s", ca->name, ca->generation,
	    cli_reason_name(ca->revocation_reason), rr->cas,
	    rr->cas == 1 ? "" : "s", cascade ? "" : "\n");
	if (cascade)
		printf(" and %llu certificate%s below it\n", rr->certs,
		    rr->certs == 1 ? "" : "s");
	if (rr->crls.n && (crls = sf_join(rr->crls.v, rr->crls.n, ", ")) !=
	    NULL) {
		printf("CRLs regenerated: %s\n", crls);
		free(crls);
	}
	return 0;
}

static int
cmd_ca_revoke(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "cascade", no_argument, NULL, 'c' },
		{ "generation", required_argument, NULL, 'g' },
		{ "batch", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__RevokeCaRequest req =
	    SECRETFREE__V1__REVOKE_CA_REQUEST__INIT;
	Secretfree__V1__RevokeCaResponse *resp = NULL;
	revoke_run rr = { .c = c };
	char gen[64] = "";
	const char *name;
	long long n;
	int ch, ec, reason = -1;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'r':
			if (cli_reason(c, optarg, &reason) != 0)
				return CLI_EXIT_USAGE;
			break;
		case 'c':
			req.cascade = 1;
			break;
		case 'g':
			snprintf(gen, sizeof gen, "%s", optarg);
			break;
		case 'b':
			if (cli_num(c, "--batch", optarg, 1, BATCH_MAX, &n) != 0)
				return CLI_EXIT_USAGE;
			req.max_certificates = (uint32_t)n;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if ((ec = cmd_ca_one_name(c, argc, argv, "CA", &name)) != 0)
		return ec;
	if (reason < 0)
		return cli_usage(c, "--reason is required (e.g. --reason"
		    " key-compromise)");
	req.name = (char *)name;
	req.reason = reason;
	rr.tty = !c->json && isatty(STDERR_FILENO);
	c->hint[RPC_NOT_FOUND] = "list the CAs: secretfree ca list --all";
	for (;;) {
		req.generation = gen;
		if ((ec = cli_call(c, CLI_SIGNER, SVC, "RevokeCa", &req.base,
		    (ProtobufCMessage **)&resp)) != 0)
			break;
		/* Later calls name the generation the first one revoked. */
		snprintf(gen, sizeof gen, "%s", resp->ca->generation);
		if ((ec = revoke_batch(&rr, resp)) != 0)
			break;
		if (resp->remaining == 0 || !req.cascade)
			break;
		if (resp->certificates_revoked == 0) {
			ec = cli_error(c, CLI_EXIT_ERROR, "the signer revoked"
			    " nothing in a batch but says %llu remain",
			    (unsigned long long)resp->remaining);
			break;
		}
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
	}
	progress_clear(&rr);
	if (ec == 0 && (ec = revoke_report(&rr, resp->ca, req.cascade)) == 0)
		ec = rr.mirror_ec;
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	for (size_t i = 0; i < rr.crls.n; i++)
		free(rr.crls.v[i]);
	cli_list_free(&rr.crls);
	return ec;
}

const cli_cmd cmd_ca_rotate_table[] = {
	{ "ca", "rotate", cmd_ca_rotate, "a CA's next generation; the old one"
	    " retires", HELP_ROTATE },
	{ "ca", "retire", cmd_ca_retire, "end a rotated CA's overlap",
	    HELP_RETIRE },
	{ "ca", "revoke", cmd_ca_revoke, "revoke a CA (--cascade: all below"
	    " it)", HELP_REVOKE },
	{ NULL, NULL, NULL, NULL, NULL }
};
