/*
 * cmd_ca_server.c - secretfree ca issue-server: a TLS server certificate
 * (serverAuth) for one of our own endpoints (authz's device listener, the
 * MQTT broker) through the signer's admin socket
 * (CaAdmin.IssueServerCertificate). The CSR is made here from a key that
 * never reaches the signer; the signer takes only its public key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_ca.h"
#include "devkey.h"
#include "err.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"

#define SVC (&secretfree__v1__ca_admin__descriptor)

static const char HELP_SERVER[] =
"Usage: secretfree ca issue-server --dns NAME [--dns NAME]... [--ip ADDR]...\n"
"                                  --key FILE [--generate-key] --out CERT\n"
"                                  [--chain-out FILE] [--ca NAME] [--days N]\n"
"\n"
"A TLS server certificate (serverAuth) for one of our own endpoints:\n"
"authz's device listener, the MQTT broker\n"
"(CaAdmin.IssueServerCertificate). The CSR is made here from the key\n"
"file; the signer takes only its public key and builds the certificate\n"
"from its server profile with the names given.\n"
"\n"
"Options:\n"
"  --dns NAME        a DNS subjectAltName; the first is also the CN\n"
"  --ip ADDR         an IP address subjectAltName (IPv4 or IPv6)\n"
"                    (at least one --dns or --ip)\n"
"  --key FILE        the server's private key (PEM)\n"
"  --generate-key    make the key first: EC P-256, written to --key with\n"
"                    mode 0600; an existing file is never overwritten\n"
"  --out CERT        where the certificate goes; followed by the CA chain\n"
"                    (issuing CA first, root last) unless --chain-out is\n"
"                    given, so that CERT is what the server presents\n"
"  --chain-out FILE  write the chain there instead\n"
"  --ca NAME         the issuing CA (default: the first active one)\n"
"  --days N          validity in days (default: the signer's\n"
"                    server_validity_days, which is also the maximum)\n"
"\n"
"Example:\n"
"  secretfree ca issue-server --dns provision.widgiot.example.net \\\n"
"      --ip 192.0.2.10 --key /etc/secretfree/authz.key --generate-key \\\n"
"      --out /etc/secretfree/authz.crt\n";

int
cmd_ca_key_csr(cli *c, const char *keyf, int gen, const char *cn, char **csr,
    size_t *csrlen)
{
	devkey_opts ko = { 0 };
	devkey *k = NULL;
	char why[512];
	int rc, ec = 0;

	if (gen && (rc = devkey_generate(keyf, why, sizeof why)) != 0)
		return cli_error(c, rc == SF_EEXIST ? CLI_EXIT_STATE :
		    CLI_EXIT_ERROR, "%s", why);
	ko.key_file = keyf;
	if (devkey_open(&ko, &k, why, sizeof why) != 0)
		return cli_error(c, CLI_EXIT_INPUT, "%s", why);
	if (devkey_csr(k, cn, csr, csrlen, why, sizeof why) != 0)
		ec = cli_error(c, CLI_EXIT_ERROR, "%s", why);
	devkey_close(k);
	return ec;
}

int
cmd_ca_write_cert(cli *c, const char *out, const char *chain_out,
    const char *cert, const char *chain)
{
	char *bundle;
	int ec;

	if (chain_out)
		return (ec = cli_write_file(c, out, cert, strlen(cert),
		    0644)) != 0 ? ec : cli_write_file(c, chain_out, chain,
		    strlen(chain), 0644);
	if ((bundle = malloc(strlen(cert) + strlen(chain) + 1)) == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	strcpy(bundle, cert);
	strcat(bundle, chain);
	ec = cli_write_file(c, out, bundle, strlen(bundle), 0644);
	free(bundle);
	return ec;
}

static int
cmd_ca_issue_server(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dns", required_argument, NULL, 'd' },
		{ "ip", required_argument, NULL, 'i' },
		{ "key", required_argument, NULL, 'k' },
		{ "generate-key", no_argument, NULL, 'g' },
		{ "out", required_argument, NULL, 'o' },
		{ "chain-out", required_argument, NULL, 'C' },
		{ "ca", required_argument, NULL, 'a' },
		{ "days", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__IssueServerCertificateRequest req =
	    SECRETFREE__V1__ISSUE_SERVER_CERTIFICATE_REQUEST__INIT;
	Secretfree__V1__IssueServerCertificateResponse *resp = NULL;
	cli_list dns = { 0 }, ips = { 0 };
	const char *keyf = NULL, *out = NULL, *chain_out = NULL;
	char *csr = NULL;
	size_t csrlen;
	long long n;
	int ch, gen = 0, ec = CLI_EXIT_USAGE;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'd':
			if ((ec = cli_list_add(c, &dns, optarg)) != 0)
				goto out;
			break;
		case 'i':
			if ((ec = cli_list_add(c, &ips, optarg)) != 0)
				goto out;
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
			if (cli_num(c, "--days", optarg, 1, 36500, &n) != 0)
				goto out;
			req.validity_days = (uint32_t)n;
			break;
		default:
			ec = CLI_EXIT_USAGE;
			goto out;
		}
	}
	ec = CLI_EXIT_USAGE;
	if (optind < argc) {
		cli_usage(c, "unexpected argument %s", argv[optind]);
		goto out;
	}
	if (dns.n == 0 && ips.n == 0) {
		cli_usage(c, "give at least one --dns or --ip");
		goto out;
	}
	if (keyf == NULL || out == NULL) {
		cli_usage(c, "--key and --out are required");
		goto out;
	}
	if ((ec = cmd_ca_key_csr(c, keyf, gen, dns.n ? dns.v[0] : ips.v[0],
	    &csr, &csrlen)) != 0)
		goto out;
	req.csr.data = (uint8_t *)csr;
	req.csr.len = csrlen;
	req.dns_names = dns.v;
	req.n_dns_names = dns.n;
	req.ip_addresses = ips.v;
	req.n_ip_addresses = ips.n;
	if ((ec = cli_call(c, CLI_SIGNER, SVC, "IssueServerCertificate",
	    &req.base, (ProtobufCMessage **)&resp)) != 0)
		goto out;
	if ((ec = cmd_ca_write_cert(c, out, chain_out, resp->certificate_pem,
	    resp->chain_pem)) != 0)
		goto out;
	if (c->json)
		ec = out_json(c, json_pack("{s:o, s:o, s:b, s:o, s:o, s:o, "
		    "s:o}",
		    "serial", out_jstr(resp->serial),
		    "key", out_jstr(keyf),
		    "key_generated", gen,
		    "certificate_file", out_jstr(out),
		    "chain_file", out_jstr(chain_out),
		    "certificate_pem", out_jstr(resp->certificate_pem),
		    "chain_pem", out_jstr(resp->chain_pem)));
	else {
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
	cli_list_free(&dns);
	cli_list_free(&ips);
	return ec;
}

const cli_cmd cmd_ca_server_table[] = {
	{ "ca", "issue-server", cmd_ca_issue_server, "a TLS server certificate"
	    " for our own endpoints", HELP_SERVER },
	{ NULL, NULL, NULL, NULL, NULL }
};
