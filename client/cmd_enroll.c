/*
 * cmd_enroll.c - secretfree enroll: the device simulator. It does what a
 * device does at first boot: a CSR with CN = its id, signed by its key (a
 * PEM file, or a key in a PKCS#11 token standing in for a secure
 * element), sent to Provisioning.Enroll over TLS; optionally it fetches
 * the bundle again in small chunks, as a device with little memory would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli.h"
#include "cmd_renew.h"
#include "out.h"
#include "devkey.h"
#include "err.h"
#include "pubkey.h"
#include "secretfree/v1/provisioning.pb-c.h"
#include "util.h"

#define SVC (&secretfree__v1__provisioning__descriptor)
#define CSR_FILE_MAX (64 * 1024)

static const char HELP_ENROLL[] =
"Usage: secretfree enroll --id ID (--key FILE | --pkcs11-uri URI\n"
"                         [--pin-file FILE] [--pkcs11-module PATH])\n"
"                         [--endpoint HOST:PORT | --endpoint unix:PATH]\n"
"                         [--ca-file FILE] [--server-name NAME] [--region R]\n"
"                         [--idempotency-key K] [--out CERT]\n"
"                         [--chain-out FILE] [--chunk-size N] [--csr-out FILE]\n"
"       secretfree enroll --renew --cert CURRENT (--key FILE | --pkcs11-uri URI\n"
"                         ...) [--chain FILE] [--new-key FILE] [--no-ack]\n"
"                         [--endpoint T] [--ca-file FILE] [--server-name NAME]\n"
"                         [--idempotency-key K] [--out CERT] [--chain-out FILE]\n"
"       secretfree enroll --ack ENROLLMENT_ID (--key FILE | --pkcs11-uri URI\n"
"                         ...) [--endpoint T] [--ca-file FILE]\n"
"\n"
"Enroll as a device does at first boot (Provisioning.Enroll): make a\n"
"PKCS#10 CSR with CN = ID, signed by the device's key, send it to authz's\n"
"device endpoint over TLS (or to a unix: socket that serves Provisioning,\n"
"such as authz's admin socket), and write the certificate and its chain.\n"
"authz issues only if the CSR's key is the one the factory registered for\n"
"ID. Prints the serial, the enrollment id, the issuing CA and the\n"
"validity.\n"
"\n"
"The key is a PEM file, or a key in a PKCS#11 token used through libp11's\n"
"OpenSSL engine, as a device's secure element would be: the private key\n"
"never leaves the token. The token PIN is read from --pin-file or from the\n"
"URI's pin-source (a file of mode 0600), never from the command line.\n"
"\n"
"Options:\n"
"  --id ID               the device id (the CSR's CN)\n"
"  --key FILE            the device's private key (PEM), or\n"
"  --pkcs11-uri URI      its key in a token, e.g.\n"
"                        'pkcs11:token=device;object=1111;type=private'\n"
"  --pin-file FILE       the token's user PIN\n"
"  --pkcs11-module PATH  the PKCS#11 module (default: libp11's, p11-kit)\n"
"  --endpoint T          authz's device endpoint, HOST:PORT (TLS) or\n"
"                        unix:PATH (env SECRETFREE_ENDPOINT, config endpoint)\n"
"  --ca-file FILE        the root(s) to trust for TLS (config ca_file;\n"
"                        default: the system's roots)\n"
"  --server-name NAME    the TLS name to expect, if not the endpoint's host\n"
"  --region R            ask for this region's issuing CA\n"
"  --idempotency-key K   a retry with the same key returns the same\n"
"                        certificate\n"
"  --out CERT            write the certificate there (default: certificate\n"
"                        and chain on standard output, details on stderr)\n"
"  --chain-out FILE      write the chain there (issuing CA first, root last)\n"
"  --chunk-size N        then fetch the bundle again with\n"
"                        Provisioning.FetchCertificate in chunks of N bytes,\n"
"                        reassemble it and check its SHA-256 and that it is\n"
"                        what Enroll returned\n"
"  --csr-out FILE        only write the CSR to FILE and exit\n"
"  --csr FILE            send this CSR (PEM or DER) instead of making one;\n"
"                        no key is needed then\n"
"\n"
"Renewal (--renew): the device proves it holds its current certificate\n"
"and gets a new one (Provisioning.Renew), same key or, with --new-key, a\n"
"new key. With a key file, a TLS endpoint and the certificate's chain\n"
"(after the certificate in --cert, or in --chain) the proof is the TLS\n"
"handshake with the current certificate as client certificate;\n"
"otherwise it is the current certificate's serial with a CSR its key\n"
"signed. With --new-key the CSR carries the new key and the current key\n"
"signs the CSR (current_key_signature): authz and the signer each check\n"
"that signature against the key they hold. The new certificate is\n"
"pending until acknowledged: then the current one is superseded\n"
"(revoked, reason superseded) and a new key becomes the device's\n"
"registered key. Without an acknowledgement before the deadline (the\n"
"signer's [limits] ack_timeout_seconds) the new certificate is revoked\n"
"and the current one stays. Unless --no-ack, the simulator acknowledges\n"
"at once (Provisioning.Acknowledge, signing the enrollment id with the\n"
"new certificate's key); --ack ENROLLMENT_ID acknowledges later, with\n"
"--key the new certificate's key. A device may also acknowledge by using\n"
"the new certificate as TLS client certificate on any Provisioning call.\n"
"\n"
"Renewal options:\n"
"  --renew               renew the certificate in --cert\n"
"  --cert FILE           the current certificate (PEM; its chain may\n"
"                        follow it); its CN is the device id\n"
"  --chain FILE          the current certificate's chain, for TLS\n"
"  --key FILE            with --renew: the current key; with --ack: the\n"
"                        new certificate's key\n"
"  --new-key FILE        move to this key (PEM private key)\n"
"  --no-ack              do not acknowledge: print the enrollment id and\n"
"                        the deadline\n"
"  --ack ENROLLMENT_ID   acknowledge a renewal\n"
"\n"
"With --json: for --renew one object with device_id, serial,\n"
"enrollment_id, replaces_serial, proof (tls or serial), state, new_key,\n"
"replayed, superseded_serial, ack_deadline, not_before, not_after,\n"
"renew_after, renew_before, certificate_file and certificate_pem; for\n"
"--ack enrollment_id, state and superseded_serial.\n"
"\n"
"Exit status (renewal): 4 without a valid proof (another device's\n"
"certificate, a new key without the current key's signature), 8 when the\n"
"current certificate is not active or already has a pending renewal, or\n"
"the renewal's deadline passed before --ack.\n"
"\n"
"Example:\n"
"  secretfree enroll --id 1111 --key 1111.key \\\n"
"      --endpoint provision.example.net:8443 --ca-file root.pem \\\n"
"      --out 1111.crt --chain-out 1111-chain.pem\n"
"  secretfree enroll --id 1112 --pkcs11-module /usr/lib/softhsm/libsofthsm2.so\\\n"
"      --pkcs11-uri 'pkcs11:token=device;object=1112;type=private' \\\n"
"      --pin-file device.pin --chunk-size 100 --out 1112.crt\n"
"  secretfree enroll --renew --cert 1111.crt --chain 1111-chain.pem \\\n"
"      --key 1111.key --new-key 1111-2027.key --out 1111-2027.crt\n"
"  secretfree enroll --ack enr-5f0c... --key 1111-2027.key\n";

typedef struct {
	const char *id;
	const char *csr_file;
	const char *csr_out;
	const char *out;
	const char *chain_out;
	long long chunk;
	devkey_opts key;
} enroll_opts;

/* The issuer of the leaf, as text. */
static void
issuer_of(const char *pem, char *buf, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO *o;
	char *data;
	long n;

	snprintf(buf, len, "?");
	if (x && (o = BIO_new(BIO_s_mem())) != NULL) {
		if (X509_NAME_print_ex(o, X509_get_issuer_name(x), 0,
		    XN_FLAG_RFC2253) >= 0 && (n = BIO_get_mem_data(o,
		    &data)) > 0)
			snprintf(buf, len, "%.*s", (int)n, data);
		BIO_free(o);
	}
	X509_free(x);
	BIO_free(b);
}

/*
 * Fetch the enrollment's bundle in chunks as a small device would, and
 * check it against its hash and against what Enroll returned.
 */
static int
fetch_chunks(cli *c, const Secretfree__V1__EnrollResponse *en, size_t chunk,
    size_t *nchunks, size_t *total)
{
	Secretfree__V1__FetchCertificateRequest req =
	    SECRETFREE__V1__FETCH_CERTIFICATE_REQUEST__INIT;
	Secretfree__V1__FetchCertificateResponse *resp = NULL;
	size_t want = strlen(en->certificate_pem) + strlen(en->chain_pem);
	size_t got = 0, tot = 0;
	uint8_t *buf = NULL, sha[32], fsha[32];
	unsigned int shalen;
	int ec = CLI_EXIT_ERROR, have_sha = 0;

	*nchunks = 0;
	*total = 0;
	req.enrollment_id = en->enrollment_id;
	do {
		req.offset = got;
		req.length = chunk;
		if ((ec = cli_call(c, CLI_ENDPOINT, SVC, "FetchCertificate",
		    &req.base, (ProtobufCMessage **)&resp)) != 0)
			goto out;
		ec = CLI_EXIT_ERROR;
		if (*nchunks == 0) {
			tot = resp->total;
			if (tot == 0 || tot > 16 * 1024 * 1024 ||
			    (buf = malloc(tot)) == NULL) {
				cli_error(c, ec, "FetchCertificate: bad total"
				    " length %zu", tot);
				goto out;
			}
		}
		if (resp->total != tot || resp->offset != got ||
		    resp->data.len == 0 || resp->data.len > chunk ||
		    resp->data.len > tot - got || resp->sha256.len != 32 ||
		    (have_sha && memcmp(fsha, resp->sha256.data, 32) != 0)) {
			cli_error(c, ec, "FetchCertificate: chunk %zu at offset"
			    " %zu is inconsistent (%zu bytes of %llu at %llu)",
			    *nchunks, got, resp->data.len,
			    (unsigned long long)resp->total,
			    (unsigned long long)resp->offset);
			goto out;
		}
		memcpy(fsha, resp->sha256.data, 32);
		have_sha = 1;
		memcpy(buf + got, resp->data.data, resp->data.len);
		got += resp->data.len;
		(*nchunks)++;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
	} while (got < tot);
	if (!EVP_Digest(buf, tot, sha, &shalen, EVP_sha256(), NULL) ||
	    memcmp(sha, fsha, 32) != 0) {
		cli_error(c, ec, "the reassembled bundle does not match its"
		    " SHA-256");
		goto out;
	}
	if (tot != want || memcmp(buf, en->certificate_pem,
	    strlen(en->certificate_pem)) != 0 ||
	    memcmp(buf + strlen(en->certificate_pem), en->chain_pem,
	    strlen(en->chain_pem)) != 0 ||
	    (en->bundle_sha256.len == 32 &&
	    memcmp(en->bundle_sha256.data, sha, 32) != 0)) {
		cli_error(c, ec, "the fetched bundle is not what Enroll"
		    " returned");
		goto out;
	}
	*total = tot;
	ec = 0;
out:
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	free(buf);
	return ec;
}

static int
report(cli *c, const enroll_opts *o, const Secretfree__V1__EnrollResponse *en,
    size_t nchunks, size_t total)
{
	char issuer[512], b1[32], b2[32], hex[65], state[32];
	FILE *f = o->out ? stdout : stderr;

	issuer_of(en->certificate_pem, issuer, sizeof issuer);
	out_enum(&secretfree__v1__enrollment_state__descriptor, en->state,
	    "ENROLLMENT_STATE_", state, sizeof state);
	hex[0] = '\0';
	if (en->bundle_sha256.len == 32)
		sf_hex(en->bundle_sha256.data, 32, hex);
	/* "fetch" only when the bundle was fetched again in chunks. */
	if (c->json)
		return out_json(c, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, "
		    "s:s, s:b, s:I, s:s, s:o, s:o, s:o*, s:o, s:o}",
		    "device_id", out_jstr(en->device_id),
		    "serial", out_jstr(en->serial),
		    "enrollment_id", out_jstr(en->enrollment_id),
		    "issuer", out_jstr(issuer),
		    "not_before", out_jtime(en->not_before),
		    "not_after", out_jtime(en->not_after),
		    "state", state,
		    "replayed", en->replayed,
		    "bundle_length", (json_int_t)en->bundle_length,
		    "bundle_sha256", hex,
		    "certificate_file", out_jstr(o->out),
		    "chain_file", out_jstr(o->chain_out),
		    "fetch", o->chunk ? json_pack("{s:I, s:I, s:I, s:b}",
		    "chunk_size", (json_int_t)o->chunk,
		    "chunks", (json_int_t)nchunks,
		    "bytes", (json_int_t)total,
		    "sha256_ok", 1) : NULL,
		    "certificate_pem", out_jstr(en->certificate_pem),
		    "chain_pem", out_jstr(en->chain_pem)));
	out_kv(f, "device", "%s", en->device_id);
	out_kv(f, "serial", "%s", en->serial);
	out_kv(f, "enrollment id", "%s", en->enrollment_id);
	out_kv(f, "issuing CA", "%s", issuer);
	out_kv(f, "valid", "%s to %s", out_time(en->not_before, b1, sizeof b1),
	    out_time(en->not_after, b2, sizeof b2));
	out_kv(f, "replayed", "%s", en->replayed ? "yes (an earlier"
	    " enrollment's certificate)" : "no");
	out_kv(f, "certificate", "%s", o->out ? o->out : "");
	out_kv(f, "chain", "%s", o->chain_out ? o->chain_out : "");
	if (o->chunk)
		out_kv(f, "fetched", "%zu bytes in %zu chunks of at most %lld;"
		    " SHA-256 %s matches", total, nchunks, o->chunk, hex);
	return 0;
}

static int
write_results(cli *c, const enroll_opts *o,
    const Secretfree__V1__EnrollResponse *en)
{
	const char *cert = en->certificate_pem, *chain = en->chain_pem;
	int ec;

	if (o->out == NULL) {
		if (c->json)
			return 0;
		if ((ec = cli_write_file(c, "-", cert, strlen(cert), 0)) != 0)
			return ec;
		if (o->chain_out == NULL)
			return cli_write_file(c, "-", chain, strlen(chain), 0);
	} else if ((ec = cli_write_file(c, o->out, cert, strlen(cert),
	    0644)) != 0)
		return ec;
	if (o->chain_out)
		return cli_write_file(c, o->chain_out, chain, strlen(chain),
		    0644);
	return 0;
}

/* The CSR: made with the device key, or read from --csr. */
static int
make_csr(cli *c, const enroll_opts *o, uint8_t **csr, size_t *len)
{
	devkey *k = NULL;
	char why[512], *pem;
	int rc;

	if (o->csr_file)
		return cli_read_file(c, "CSR", o->csr_file, CSR_FILE_MAX, csr,
		    len);
	if ((rc = devkey_open(&o->key, &k, why, sizeof why)) != 0)
		return cli_error(c, rc == SF_EUNAVAIL ? CLI_EXIT_UNAVAIL :
		    CLI_EXIT_INPUT, "%s", why);
	rc = devkey_csr(k, o->id, &pem, len, why, sizeof why);
	devkey_close(k);
	if (rc != 0)
		return cli_error(c, CLI_EXIT_ERROR, "%s", why);
	*csr = (uint8_t *)pem;
	return 0;
}

/* enroll --renew or --ack: the options they take, then cmd_renew.c. */
static int
renew_options(cli *c, const enroll_opts *o, const char *region, int renew,
    renew_opts *ro)
{
	if (renew == (ro->ack != NULL))
		return cli_usage(c, "give either --renew or --ack ENROLLMENT_ID");
	if (renew && ro->cert == NULL)
		return cli_usage(c, "--renew needs --cert, the current"
		    " certificate");
	if (!renew && (ro->cert || ro->chain || ro->new_key || ro->no_ack))
		return cli_usage(c, "--cert, --chain, --new-key and --no-ack go"
		    " with --renew");
	if (o->csr_file || o->csr_out || o->chunk || *region)
		return cli_usage(c, "--csr, --csr-out, --chunk-size and --region"
		    " do not go with %s", renew ? "--renew" : "--ack");
	if ((o->key.key_file == NULL) == (o->key.pkcs11_uri == NULL))
		return cli_usage(c, "give the device key with either --key FILE"
		    " or --pkcs11-uri URI");
	if (o->key.key_file && (o->key.pin_file || o->key.module))
		return cli_usage(c, "--pin-file and --pkcs11-module go with"
		    " --pkcs11-uri");
	ro->id = o->id;
	ro->out = o->out;
	ro->chain_out = o->chain_out;
	ro->key = o->key;
	return renew ? cmd_renew_run(c, ro) : cmd_renew_ack(c, ro);
}

static int
cmd_enroll(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "key", required_argument, NULL, 'k' },
		{ "pkcs11-uri", required_argument, NULL, 'u' },
		{ "pin-file", required_argument, NULL, 'P' },
		{ "pkcs11-module", required_argument, NULL, 'm' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "ca-file", required_argument, NULL, 'a' },
		{ "server-name", required_argument, NULL, 's' },
		{ "region", required_argument, NULL, 'r' },
		{ "idempotency-key", required_argument, NULL, 'I' },
		{ "out", required_argument, NULL, 'o' },
		{ "chain-out", required_argument, NULL, 'C' },
		{ "chunk-size", required_argument, NULL, 'n' },
		{ "csr-out", required_argument, NULL, 'q' },
		{ "csr", required_argument, NULL, 'Q' },
		{ "renew", no_argument, NULL, 'R' },
		{ "cert", required_argument, NULL, 'c' },
		{ "chain", required_argument, NULL, 'H' },
		{ "new-key", required_argument, NULL, 'N' },
		{ "no-ack", no_argument, NULL, 'x' },
		{ "ack", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 }
	};
	static char hint_nf[256], hint_pd[512];
	Secretfree__V1__EnrollRequest req =
	    SECRETFREE__V1__ENROLL_REQUEST__INIT;
	Secretfree__V1__EnrollResponse *en = NULL;
	enroll_opts o;
	renew_opts ro;
	int renew = 0;
	uint8_t *csr = NULL;
	size_t csrlen = 0, nchunks = 0, total = 0;
	char why[256];
	int ch, ec;

	memset(&o, 0, sizeof o);
	memset(&ro, 0, sizeof ro);
	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'R':
			renew = 1;
			break;
		case 'c':
			ro.cert = optarg;
			break;
		case 'H':
			ro.chain = optarg;
			break;
		case 'N':
			ro.new_key = optarg;
			break;
		case 'x':
			ro.no_ack = 1;
			break;
		case 'A':
			ro.ack = optarg;
			break;
		case 'i':
			o.id = optarg;
			break;
		case 'k':
			o.key.key_file = optarg;
			break;
		case 'u':
			o.key.pkcs11_uri = optarg;
			break;
		case 'P':
			o.key.pin_file = optarg;
			break;
		case 'm':
			o.key.module = optarg;
			break;
		case 'e':
			c->opt_target[CLI_ENDPOINT] = optarg;
			break;
		case 'a':
			c->ca_file = optarg;
			break;
		case 's':
			c->server_name = optarg;
			break;
		case 'r':
			req.region = optarg;
			break;
		case 'I':
			req.idempotency_key = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'C':
			o.chain_out = optarg;
			break;
		case 'q':
			o.csr_out = optarg;
			break;
		case 'Q':
			o.csr_file = optarg;
			break;
		case 'n':
			if (cli_num(c, "--chunk-size", optarg, 1, 1024 * 1024,
			    &o.chunk) != 0)
				return CLI_EXIT_USAGE;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument %s", argv[optind]);
	if (renew || ro.ack || ro.cert || ro.chain || ro.new_key ||
	    ro.no_ack) {
		ro.idempotency_key = req.idempotency_key;
		return renew_options(c, &o, req.region, renew, &ro);
	}
	if (o.csr_file) {
		if (o.key.key_file || o.key.pkcs11_uri || o.csr_out)
			return cli_usage(c, "--csr replaces --key, --pkcs11-uri"
			    " and --csr-out");
	} else {
		if (o.id == NULL)
			return cli_usage(c, "--id is required");
		if ((o.key.key_file == NULL) == (o.key.pkcs11_uri == NULL))
			return cli_usage(c, "give the device key with either"
			    " --key FILE or --pkcs11-uri URI");
		if (o.key.key_file && (o.key.pin_file || o.key.module))
			return cli_usage(c, "--pin-file and --pkcs11-module go"
			    " with --pkcs11-uri");
		if (!device_id_valid(o.id, why, sizeof why))
			return cli_error(c, CLI_EXIT_INPUT, "bad device id"
			    " \"%s\": %s", o.id, why);
	}
	if ((ec = make_csr(c, &o, &csr, &csrlen)) != 0)
		goto out;
	if (o.csr_out) {
		if ((ec = cli_write_file(c, o.csr_out, csr, csrlen, 0644)) == 0
		    && !c->json)
			printf("CSR for device %s written to %s\n", o.id,
			    o.csr_out);
		goto out;
	}
	snprintf(hint_nf, sizeof hint_nf, "import the device first:"
	    " secretfree device import FILE --product-line ID");
	snprintf(hint_pd, sizeof hint_pd, "the CSR's key must be the one"
	    " registered for the device, the device must be enabled"
	    " (secretfree device show %s), and a device registered with a"
	    " region enrolls only there", o.id ? o.id : "ID");
	c->hint[RPC_NOT_FOUND] = hint_nf;
	c->hint[RPC_PERMISSION_DENIED] = hint_pd;
	c->hint[RPC_INVALID_ARGUMENT] = "the CSR was refused as malformed:"
	    " check the key type and the device id";
	req.csr.data = csr;
	req.csr.len = csrlen;
	if ((ec = cli_call(c, CLI_ENDPOINT, SVC, "Enroll", &req.base,
	    (ProtobufCMessage **)&en)) != 0)
		goto out;
	c->hint[RPC_NOT_FOUND] = NULL;
	c->hint[RPC_PERMISSION_DENIED] = NULL;
	c->hint[RPC_INVALID_ARGUMENT] = NULL;
	if (o.chunk && (ec = fetch_chunks(c, en, (size_t)o.chunk, &nchunks,
	    &total)) != 0)
		goto out;
	if ((ec = write_results(c, &o, en)) != 0)
		goto out;
	ec = report(c, &o, en, nchunks, total);
out:
	if (en)
		protobuf_c_message_free_unpacked(&en->base, NULL);
	free(csr);
	return ec;
}

const cli_cmd cmd_enroll_table[] = {
	{ NULL, "enroll", cmd_enroll, "enroll as a device would, with its"
	    " key", HELP_ENROLL },
	{ NULL, NULL, NULL, NULL, NULL }
};
