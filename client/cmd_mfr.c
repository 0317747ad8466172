/*
 * cmd_mfr.c - just-in-time provisioning: secretfree ca
 * register-manufacturer / manufacturers / manufacturer-crl and secretfree
 * device allow-birth. Each change goes to the signer first (CaAdmin), which
 * checks it and is the source of truth, then authz follows (Registry);
 * when authz cannot, the change holds and the exit status is 10.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "out.h"
#include "rpc.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"

#define CA_SVC (&secretfree__v1__ca_admin__descriptor)
#define REG_SVC (&secretfree__v1__registry__descriptor)
#define PEM_MAX (1 << 20)

static const char HELP_REGISTER[] =
"Usage: secretfree ca register-manufacturer PEM --product-line ID\n"
"                                           [--name NAME]\n"
"\n"
"Register a manufacturer's CA for just-in-time provisioning: a device\n"
"that presents a birth certificate issued by this CA (its CN the device\n"
"id) is registered on first contact, with the key of its birth\n"
"certificate, in product line ID, and gets our certificate; its thing,\n"
"group and policies come from the product line's template. PEM is the\n"
"CA's certificate (PEM or DER) and nothing else: a file holding a private\n"
"key is refused, since we never hold the manufacturer's key. It must be a\n"
"CA (basicConstraints CA:TRUE, keyCertSign) and not expired; the product\n"
"line must have a profile in the signer's configuration and an issuing\n"
"CA.\n"
"\n"
"The signer records it first (CaAdmin.RegisterManufacturer) and checks\n"
"every birth certificate against it itself; then authz\n"
"(Registry.RegisterManufacturer), whose device TLS listener trusts the\n"
"CA for client certificates from the next connection on (no restart).\n"
"gRPC verifies a client chain up to a self-signed certificate: register\n"
"the manufacturer's root, or the device must send its intermediates.\n"
"Registering the same CA again under the same name and product line\n"
"changes nothing.\n"
"\n"
"Options:\n"
"  --product-line ID  the product line its devices belong to (required)\n"
"  --name NAME        our name for the manufacturer (1-32 of a-z, 0-9,\n"
"                     -); default: the CA's CN in lower case, each run of\n"
"                     other characters one '-'\n"
"\n"
"Prints \"manufacturer NAME: registered for product line ID\"; with --json\n"
"the signer's record.\n"
"\n"
"Exit status: 5 when the file is no CA certificate or holds a key, 8 when\n"
"the product line is unknown or the name or CA is registered already\n"
"otherwise, 10 when the signer registered it but authz did not follow\n"
"(run the same command again once authz answers).\n"
"\n"
"Example:\n"
"  secretfree ca register-manufacturer acme-root.pem --product-line widgiot\n";

static const char HELP_LIST[] =
"Usage: secretfree ca manufacturers [--product-line ID]\n"
"\n"
"List the registered manufacturer CAs (the signer's record,\n"
"CaAdmin.ListManufacturers): name, product line, the CA's subject, its\n"
"end, and its CRL's number and next update when one is registered.\n"
"\n"
"Options:\n"
"  --product-line ID  only those of this product line\n"
"\n"
"With --json one array of objects (name, product_line, subject,\n"
"spki_sha256, not_after, crl_number, crl_next_update, created_at).\n"
"\n"
"Example:\n"
"  secretfree ca manufacturers --product-line widgiot\n";

static const char HELP_CRL[] =
"Usage: secretfree ca manufacturer-crl NAME CRL\n"
"\n"
"Register manufacturer NAME's CRL (PEM or DER): birth certificates it\n"
"lists are refused from then on, and so is every birth certificate of\n"
"that CA once the CRL's nextUpdate has passed, until a newer CRL is\n"
"registered. The CRL must be signed by the manufacturer's registered CA\n"
"and have a higher CRL number than the one it replaces. A CRL covers\n"
"the birth certificates the registered CA issued directly. The signer\n"
"records it first (CaAdmin.SetManufacturerCrl), then authz.\n"
"\n"
"Exit status: 3 when no manufacturer is called NAME, 5 when the CRL is\n"
"not one of its CA, 8 when it is not newer, 10 when authz did not follow.\n"
"\n"
"Example:\n"
"  secretfree ca manufacturer-crl acme-root-ca acme.crl\n";

static const char HELP_ALLOW[] =
"Usage: secretfree device allow-birth ID\n"
"\n"
"Let a device registered by its birth certificate use that certificate\n"
"once more for a first enrollment (CaAdmin.AllowBirthCertificate). After\n"
"its first certificate, a device's birth certificate is refused\n"
"(PERMISSION_DENIED): the device renews with the certificate we issued.\n"
"A device that lost that certificate (factory reset) needs the admin's\n"
"leave, which its next certificate uses up. The signer alone decides\n"
"this; authz has nothing to mirror.\n"
"\n"
"Exit status: 3 when the signer does not know the device, 8 when it was\n"
"not registered by a birth certificate.\n"
"\n"
"Example:\n"
"  secretfree device allow-birth dev-0001\n";

static json_t *
mfr_json(const Secretfree__V1__ManufacturerInfo *m)
{
	char hex[65];

	hex[0] = '\0';
	if (m->spki_sha256.len == 32)
		for (size_t i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", m->spki_sha256.data[i]);
	return json_pack("{s:o, s:o, s:o, s:s, s:o, s:I, s:o, s:o}",
	    "name", out_jstr(m->name),
	    "product_line", out_jstr(m->product_line),
	    "subject", out_jstr(m->subject),
	    "spki_sha256", hex,
	    "not_after", out_jtime(m->not_after),
	    "crl_number", (json_int_t)m->crl_number,
	    "crl_next_update", out_jtime(m->crl_next_update),
	    "created_at", out_jtime(m->created_at));
}

/* authz follows the signer; CLI_EXIT_MIRROR after a message if not. */
static int
mirror(cli *c, const char *what, const char *method,
    const ProtobufCMessage *req)
{
	ProtobufCMessage *resp = NULL;
	rpc_status st;

	if (cli_call_quiet(c, CLI_AUTHZ, REG_SVC, method, req, &resp,
	    &st) != 0)
		return cli_error(c, CLI_EXIT_MIRROR, "%s at the signer, but"
		    " authz did not record it (%s: %s); the change holds at"
		    " the signer; run the same command again once authz"
		    " answers", what, rpc_code_name(st.code), st.message);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

static int
cmd_register(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "product-line", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__RegisterManufacturerRequest req =
	    SECRETFREE__V1__REGISTER_MANUFACTURER_REQUEST__INIT;
	Secretfree__V1__ManufacturerInfo *m = NULL;
	const char *path = NULL, *pl = NULL, *name = "";
	uint8_t *pem = NULL;
	size_t len = 0;
	char what[160];
	int ch, ec, jec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch == 'p')
			pl = optarg;
		else if (ch == 'n')
			name = optarg;
		else
			return CLI_EXIT_USAGE;
	}
	if ((ec = cli_operand(c, argc, argv, "CA certificate file",
	    &path)) != 0)
		return ec;
	if (pl == NULL)
		return cli_usage(c, "--product-line is required: the product"
		    " line the manufacturer's devices belong to");
	if ((ec = cli_read_file(c, "CA certificate", path, PEM_MAX, &pem,
	    &len)) != 0)
		return ec;
	/* DER is sent as it is; the signer tells PEM and DER apart. */
	if ((req.certificate_pem = malloc(len + 1)) == NULL) {
		free(pem);
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	}
	memcpy(req.certificate_pem, pem, len);
	req.certificate_pem[len] = '\0';
	if (strlen(req.certificate_pem) != len) {
		free(pem);
		free(req.certificate_pem);
		return cli_error(c, CLI_EXIT_INPUT, "%s: a DER certificate"
		    " cannot be sent as text; convert it: openssl x509 -inform"
		    " DER -in %s -out ca.pem", path, path);
	}
	free(pem);
	req.name = (char *)name;
	req.product_line = (char *)pl;
	c->hint[RPC_FAILED_PRECONDITION] = "is the product line configured"
	    " in the signer ([product.ID]) with an issuing CA? secretfree ca"
	    " list";
	ec = cli_call(c, CLI_SIGNER, CA_SVC, "RegisterManufacturer",
	    &req.base, (ProtobufCMessage **)&m);
	if (ec) {
		free(req.certificate_pem);
		return ec;
	}
	/* authz gets the name the signer chose. */
	req.name = m->name;
	snprintf(what, sizeof what, "manufacturer %s registered", m->name);
	ec = mirror(c, what, "RegisterManufacturer", &req.base);
	free(req.certificate_pem);
	if (c->json) {
		jec = out_json(c, mfr_json(m));
		ec = ec ? ec : jec;
	} else if (ec == 0)
		printf("manufacturer %s: registered for product line %s\n",
		    m->name, m->product_line);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return ec;
}

static int
cmd_list(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "product-line", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const hdr[] = { "NAME", "PRODUCT_LINE", "SUBJECT",
	    "NOT_AFTER", "CRL", "CRL_NEXT_UPDATE" };
	Secretfree__V1__ListManufacturersRequest req =
	    SECRETFREE__V1__LIST_MANUFACTURERS_REQUEST__INIT;
	Secretfree__V1__ListManufacturersResponse *r = NULL;
	out_table *t;
	json_t *a;
	char na[32], nu[32], num[24];
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch != 'p')
			return CLI_EXIT_USAGE;
		req.product_line = optarg;
	}
	if (optind != argc)
		return cli_usage(c, "unexpected %s", argv[optind]);
	if ((ec = cli_call(c, CLI_SIGNER, CA_SVC, "ListManufacturers",
	    &req.base, (ProtobufCMessage **)&r)) != 0)
		return ec;
	if (c->json) {
		a = json_array();
		for (size_t i = 0; i < r->n_manufacturers; i++)
			out_jappend(&a, mfr_json(r->manufacturers[i]));
		ec = out_json(c, a);
	} else {
		t = out_table_new(6, hdr);
		for (size_t i = 0; t && i < r->n_manufacturers; i++) {
			const Secretfree__V1__ManufacturerInfo *m =
			    r->manufacturers[i];
			const char *row[7];

			snprintf(num, sizeof num, "%lld",
			    (long long)m->crl_number);
			row[0] = m->name;
			row[1] = m->product_line;
			row[2] = m->subject;
			row[3] = out_time(m->not_after, na, sizeof na);
			row[4] = *m->crl_pem ? num : "-";
			row[5] = *m->crl_pem ? out_time(m->crl_next_update, nu,
			    sizeof nu) : "-";
			row[6] = NULL;
			out_table_add(t, row);
		}
		if (t)
			out_table_print(t, stdout);
		out_table_free(t);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ec;
}

static int
cmd_crl(cli *c, int argc, char **argv)
{
	static const struct option opts[] = { { NULL, 0, NULL, 0 } };
	Secretfree__V1__SetManufacturerCrlRequest req =
	    SECRETFREE__V1__SET_MANUFACTURER_CRL_REQUEST__INIT;
	Secretfree__V1__ManufacturerInfo *m = NULL;
	uint8_t *crl = NULL;
	size_t len = 0;
	char what[160];
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1)
		return CLI_EXIT_USAGE;
	if (argc - optind != 2)
		return cli_usage(c, "give the manufacturer's name and the CRL"
		    " file");
	if ((ec = cli_read_file(c, "CRL", argv[optind + 1], 16 * PEM_MAX,
	    &crl, &len)) != 0)
		return ec;
	if ((req.crl_pem = malloc(len + 1)) == NULL) {
		free(crl);
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	}
	memcpy(req.crl_pem, crl, len);
	req.crl_pem[len] = '\0';
	free(crl);
	if (strlen(req.crl_pem) != len) {
		free(req.crl_pem);
		return cli_error(c, CLI_EXIT_INPUT, "%s: give the CRL in PEM"
		    " (openssl crl -inform DER -in %s -out crl.pem)",
		    argv[optind + 1], argv[optind + 1]);
	}
	req.name = argv[optind];
	c->hint[RPC_NOT_FOUND] = "secretfree ca manufacturers";
	c->hint[RPC_FAILED_PRECONDITION] = "only a CRL with a higher number"
	    " replaces the registered one";
	if ((ec = cli_call(c, CLI_SIGNER, CA_SVC, "SetManufacturerCrl",
	    &req.base, (ProtobufCMessage **)&m)) != 0) {
		free(req.crl_pem);
		return ec;
	}
	snprintf(what, sizeof what, "CRL %lld of manufacturer %s registered",
	    (long long)m->crl_number, m->name);
	ec = mirror(c, what, "SetManufacturerCrl", &req.base);
	free(req.crl_pem);
	if (c->json) {
		int jec = out_json(c, mfr_json(m));

		ec = ec ? ec : jec;
	} else if (ec == 0)
		printf("manufacturer %s: CRL number %lld registered\n",
		    m->name, (long long)m->crl_number);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return ec;
}

static int
cmd_allow(cli *c, int argc, char **argv)
{
	static const struct option opts[] = { { NULL, 0, NULL, 0 } };
	Secretfree__V1__AllowBirthCertificateRequest req =
	    SECRETFREE__V1__ALLOW_BIRTH_CERTIFICATE_REQUEST__INIT;
	Secretfree__V1__DeviceKeyInfo *k = NULL;
	const char *id = NULL;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1)
		return CLI_EXIT_USAGE;
	if ((ec = cli_operand(c, argc, argv, "device", &id)) != 0)
		return ec;
	req.device_id = (char *)id;
	c->hint[RPC_NOT_FOUND] = "secretfree device list";
	if ((ec = cli_call(c, CLI_SIGNER, CA_SVC, "AllowBirthCertificate",
	    &req.base, (ProtobufCMessage **)&k)) != 0)
		return ec;
	if (c->json)
		ec = out_json(c, json_pack("{s:o, s:o, s:o, s:b}",
		    "device_id", out_jstr(k->device_id),
		    "origin", out_jstr(k->origin),
		    "birth_serial", out_jstr(k->birth_serial),
		    "birth_reuse", k->birth_reuse));
	else
		printf("device %s: its birth certificate (%s) may be used once"
		    " more\n", k->device_id, k->birth_serial);
	protobuf_c_message_free_unpacked(&k->base, NULL);
	return ec;
}

const cli_cmd cmd_mfr_table[] = {
	{ "ca", "register-manufacturer", cmd_register, "register a"
	    " manufacturer's CA for just-in-time provisioning", HELP_REGISTER },
	{ "ca", "manufacturers", cmd_list, "list the manufacturer CAs",
	    HELP_LIST },
	{ "ca", "manufacturer-crl", cmd_crl, "register a manufacturer's CRL",
	    HELP_CRL },
	{ "device", "allow-birth", cmd_allow, "let a device use its birth"
	    " certificate once more", HELP_ALLOW },
	{ NULL, NULL, NULL, NULL, NULL }
};
