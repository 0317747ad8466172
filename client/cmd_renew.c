/*
 * cmd_renew.c - renewal with acknowledgement from the command line: the
 * device simulator's side (secretfree enroll --renew, enroll --ack), and
 * the administrator's (secretfree device renew-early, which pulls the
 * suggested renewal window of a set of devices forward).
 *
 * The simulator renews as a device does: it proves it holds its current
 * certificate by presenting it as the TLS client certificate (a key file
 * and a TLS endpoint), or by naming its serial with a CSR its registered
 * key signed; with --new-key the CSR carries the new key and the current
 * key signs the CSR's DER, authorizing the move. Then it acknowledges the
 * new certificate with the new key's signature over the enrollment id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli.h"
#include "cmd_renew.h"
#include "err.h"
#include "keysig.h"
#include "out.h"
#include "pubkey.h"
#include "secretfree/v1/provisioning.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"
#include "util.h"

#define PROV_SVC (&secretfree__v1__provisioning__descriptor)
#define REG_SVC (&secretfree__v1__registry__descriptor)
#define PEM_MAX (256 * 1024)

/* The current certificate: its serial and CN, and whether its file has a
 * chain after it. */
typedef struct {
	char serial[64];
	char cn[80];
	char *pem;          /* the file's text (malloc'd) */
	int has_chain;
} current_cert;

static int
cert_read(cli *c, const char *path, current_cert *cc)
{
	uint8_t *data = NULL;
	size_t len = 0;
	BIO *b = NULL;
	X509 *x = NULL;
	const ASN1_INTEGER *ai;
	int ec;

	memset(cc, 0, sizeof *cc);
	if ((ec = cli_read_file(c, "certificate", path, PEM_MAX, &data,
	    &len)) != 0)
		return ec;
	cc->pem = (char *)data;
	ec = cli_error(c, CLI_EXIT_INPUT, "%s: not a PEM certificate with a"
	    " CN and a serial", path);
	if ((b = BIO_new_mem_buf(data, (int)len)) != NULL &&
	    (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL &&
	    (ai = X509_get0_serialNumber(x)) != NULL &&
	    ASN1_STRING_length(ai) > 0 && ASN1_STRING_length(ai) <= 20 &&
	    X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, cc->cn, sizeof cc->cn) > 0) {
		sf_hex_upper(ASN1_STRING_get0_data(ai),
		    (size_t)ASN1_STRING_length(ai), cc->serial);
		cc->has_chain = strstr(strstr((char *)data, "-----END") + 8,
		    "-----BEGIN CERTIFICATE") != NULL;
		ec = 0;
	}
	if (ec != 0) {
		free(cc->pem);
		cc->pem = NULL;
	}
	ERR_clear_error();
	X509_free(x);
	BIO_free(b);
	return ec;
}

/* A CSR in PEM as DER, malloc'd (the bytes a key-change signature
 * covers are the bytes sent). */
static int
csr_der(const char *pem, uint8_t **der, size_t *len)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	unsigned char *d = NULL;
	int n = req ? i2d_X509_REQ(req, &d) : -1;

	*der = NULL;
	*len = 0;
	if (n > 0 && (*der = malloc((size_t)n)) != NULL) {
		memcpy(*der, d, (size_t)n);
		*len = (size_t)n;
	}
	OPENSSL_free(d);
	X509_REQ_free(req);
	BIO_free(b);
	ERR_clear_error();
	return *der ? 0 : SF_ECRYPTO;
}

/*
 * The client certificate for TLS: the current certificate with its chain
 * (authz verifies it up to its tls_client_ca), in a private temporary
 * file when --chain gives the chain apart. *tmp is that file's name (to
 * unlink; "" when none).
 */
static int
tls_identity(cli *c, const renew_opts *o, const current_cert *cc,
    char tmp[64])
{
	uint8_t *chain = NULL;
	size_t len = 0;
	int fd, ec = 0;

	tmp[0] = '\0';
	if (o->chain == NULL) {
		c->tls_cert_file = o->cert;
		c->tls_key_file = o->key.key_file;
		return 0;
	}
	if ((ec = cli_read_file(c, "chain", o->chain, PEM_MAX, &chain,
	    &len)) != 0)
		return ec;
	snprintf(tmp, 64, "%s/sf-renew-XXXXXX", getenv("TMPDIR") ?
	    getenv("TMPDIR") : "/tmp");
	if (strlen(tmp) > 60 || (fd = mkstemp(tmp)) < 0) {
		ec = cli_error(c, CLI_EXIT_ERROR, "cannot make a temporary"
		    " file: %s", strerror(errno));
		tmp[0] = '\0';
	} else {
		FILE *f = fdopen(fd, "w");

		if (f == NULL || fputs(cc->pem, f) < 0 ||
		    (cc->pem[strlen(cc->pem) - 1] != '\n' && fputc('\n', f) < 0)
		    || fwrite(chain, 1, len, f) != len || fclose(f) != 0)
			ec = cli_error(c, CLI_EXIT_ERROR, "cannot write %s",
			    tmp);
		if (f == NULL)
			close(fd);
		c->tls_cert_file = tmp;
		c->tls_key_file = o->key.key_file;
	}
	free(chain);
	return ec;
}

/* Sign data with the key o names (the current key, or --new-key). */
static int
sign_with(cli *c, const devkey_opts *ko, const uint8_t *data, size_t len,
    uint8_t **sig, size_t *siglen)
{
	devkey *k = NULL;
	char why[512];
	int rc;

	if ((rc = devkey_open(ko, &k, why, sizeof why)) != 0)
		return cli_error(c, rc == SF_EUNAVAIL ? CLI_EXIT_UNAVAIL :
		    CLI_EXIT_INPUT, "%s", why);
	rc = keysig_sign(devkey_pkey(k), data, len, sig, siglen, why,
	    sizeof why);
	devkey_close(k);
	return rc ? cli_error(c, CLI_EXIT_ERROR, "%s", why) : 0;
}

/* The CSR (DER) for id by the new key, or by the current one. */
static int
make_csr(cli *c, const renew_opts *o, const char *id, uint8_t **der,
    size_t *len)
{
	devkey_opts nk = { o->new_key, NULL, NULL, NULL };
	devkey *k = NULL;
	char why[512], *pem = NULL;
	size_t plen;
	int rc;

	if ((rc = devkey_open(o->new_key ? &nk : &o->key, &k, why,
	    sizeof why)) != 0)
		return cli_error(c, rc == SF_EUNAVAIL ? CLI_EXIT_UNAVAIL :
		    CLI_EXIT_INPUT, "%s", why);
	rc = devkey_csr(k, id, &pem, &plen, why, sizeof why);
	devkey_close(k);
	if (rc == 0 && csr_der(pem, der, len) != 0)
		snprintf(why, sizeof why, "cannot encode the CSR");
	free(pem);
	return *der ? 0 : cli_error(c, CLI_EXIT_ERROR, "%s", why);
}

/* Provisioning.Acknowledge of enrollment eid with ko's signature over it;
 * *resp the reply. */
static int
acknowledge(cli *c, const devkey_opts *ko, const char *eid,
    const char *serial, Secretfree__V1__AcknowledgeResponse **resp)
{
	Secretfree__V1__AcknowledgeRequest req =
	    SECRETFREE__V1__ACKNOWLEDGE_REQUEST__INIT;
	uint8_t *sig = NULL;
	size_t siglen = 0;
	int ec;

	*resp = NULL;
	if ((ec = sign_with(c, ko, (const uint8_t *)eid, strlen(eid), &sig,
	    &siglen)) != 0)
		return ec;
	req.enrollment_id = (char *)eid;
	req.serial = (char *)(serial ? serial : "");
	req.key_signature.data = sig;
	req.key_signature.len = siglen;
	c->hint[RPC_FAILED_PRECONDITION] = "a renewal not acknowledged before"
	    " its deadline is revoked, and the current certificate stays:"
	    " renew again";
	c->hint[RPC_PERMISSION_DENIED] = "acknowledge with the new"
	    " certificate's key";
	ec = cli_call(c, CLI_ENDPOINT, PROV_SVC, "Acknowledge", &req.base,
	    (ProtobufCMessage **)resp);
	free(sig);
	return ec;
}

static int
write_out(cli *c, const renew_opts *o,
    const Secretfree__V1__EnrollResponse *en)
{
	int ec = 0;

	if (o->out)
		ec = cli_write_file(c, o->out, en->certificate_pem,
		    strlen(en->certificate_pem), 0644);
	else if (!c->json)
		ec = cli_write_file(c, "-", en->certificate_pem,
		    strlen(en->certificate_pem), 0);
	if (ec == 0 && o->chain_out)
		ec = cli_write_file(c, o->chain_out, en->chain_pem,
		    strlen(en->chain_pem), 0644);
	return ec;
}

static int
report(cli *c, const renew_opts *o, const Secretfree__V1__EnrollResponse *en,
    int tls, const char *superseded)
{
	FILE *f = o->out ? stdout : stderr;
	char b1[32], b2[32], b3[32], state[32];

	out_enum(&secretfree__v1__enrollment_state__descriptor,
	    superseded ? SECRETFREE__V1__ENROLLMENT_STATE__ENROLLMENT_STATE_ACKNOWLEDGED
	    : en->state, "ENROLLMENT_STATE_", state, sizeof state);
	if (c->json)
		return out_json(c, json_pack("{s:o, s:o, s:o, s:o, s:s, s:s,"
		    " s:b, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		    "device_id", out_jstr(en->device_id),
		    "serial", out_jstr(en->serial),
		    "enrollment_id", out_jstr(en->enrollment_id),
		    "replaces_serial", out_jstr(en->replaces_serial),
		    "proof", tls ? "tls" : "serial",
		    "state", state,
		    "new_key", o->new_key != NULL,
		    "replayed", en->replayed,
		    "superseded_serial", superseded ? out_jstr(superseded) :
		    json_null(),
		    "ack_deadline", out_jtime(en->ack_deadline),
		    "not_before", out_jtime(en->not_before),
		    "not_after", out_jtime(en->not_after),
		    "renew_after", out_jtime(en->renew_after),
		    "renew_before", out_jtime(en->renew_before),
		    "certificate_file", out_jstr(o->out),
		    "certificate_pem", out_jstr(en->certificate_pem)));
	out_kv(f, "device", "%s", en->device_id);
	out_kv(f, "serial", "%s", en->serial);
	out_kv(f, "enrollment id", "%s", en->enrollment_id);
	out_kv(f, "renews", "%s (proved by %s)%s", en->replaces_serial, tls ?
	    "the TLS client certificate" : "its serial and the CSR's"
	    " signature", o->new_key ? "; new key" : "");
	out_kv(f, "valid", "%s to %s", out_time(en->not_before, b1, sizeof b1),
	    out_time(en->not_after, b2, sizeof b2));
	out_kv(f, "renew", "%s to %s", out_time(en->renew_after, b1,
	    sizeof b1), out_time(en->renew_before, b2, sizeof b2));
	out_kv(f, "replayed", "%s", en->replayed ? "yes" : "no");
	if (superseded)
		out_kv(f, "acknowledged", "yes; %s superseded", superseded);
	else
		out_kv(f, "acknowledged", "no: run secretfree enroll --ack %s"
		    " before %s", en->enrollment_id, out_time(en->ack_deadline,
		    b3, sizeof b3));
	out_kv(f, "certificate", "%s", o->out ? o->out : "");
	return 0;
}

int
cmd_renew_run(cli *c, const renew_opts *o)
{
	Secretfree__V1__RenewRequest req = SECRETFREE__V1__RENEW_REQUEST__INIT;
	Secretfree__V1__EnrollResponse *en = NULL;
	Secretfree__V1__AcknowledgeResponse *ack = NULL;
	devkey_opts nk = { o->new_key, NULL, NULL, NULL };
	current_cert cc;
	uint8_t *csr = NULL, *sig = NULL;
	size_t csrlen = 0, siglen = 0;
	char tmp[64] = "";
	const char *t;
	int ec, tls;

	if ((ec = cert_read(c, o->cert, &cc)) != 0)
		return ec;
	if (o->id && strcmp(o->id, cc.cn) != 0) {
		ec = cli_error(c, CLI_EXIT_INPUT, "%s is device %s's"
		    " certificate, not %s's", o->cert, cc.cn, o->id);
		goto out;
	}
	if ((ec = make_csr(c, o, cc.cn, &csr, &csrlen)) != 0 ||
	    (o->new_key && (ec = sign_with(c, &o->key, csr, csrlen, &sig,
	    &siglen)) != 0))
		goto out;
	/* TLS with the current certificate when a device could: a key file,
	 * a TLS endpoint, and the chain to present. */
	if ((t = cli_target(c, CLI_ENDPOINT)) == NULL) {
		ec = CLI_EXIT_USAGE;
		goto out;
	}
	tls = o->key.key_file && strncmp(t, "unix:", 5) != 0 &&
	    (o->chain || cc.has_chain);
	if (tls && (ec = tls_identity(c, o, &cc, tmp)) != 0)
		goto out;
	req.csr.data = csr;
	req.csr.len = csrlen;
	req.idempotency_key = (char *)(o->idempotency_key ?
	    o->idempotency_key : "");
	req.current_serial = cc.serial;
	req.current_key_signature.data = sig;
	req.current_key_signature.len = siglen;
	c->hint[RPC_PERMISSION_DENIED] = "renew with the device's current"
	    " certificate and key; a new key needs the current key's"
	    " signature (--new-key does it)";
	c->hint[RPC_FAILED_PRECONDITION] = "the current certificate must be"
	    " active, with no renewal pending: acknowledge that one"
	    " (enroll --ack) or wait for its deadline";
	if ((ec = cli_call(c, CLI_ENDPOINT, PROV_SVC, "Renew", &req.base,
	    (ProtobufCMessage **)&en)) != 0)
		goto out;
	if ((ec = write_out(c, o, en)) != 0)
		goto out;
	if (!o->no_ack && (ec = acknowledge(c, o->new_key ? &nk : &o->key,
	    en->enrollment_id, en->serial, &ack)) != 0)
		goto out;
	ec = report(c, o, en, tls, ack ? ack->superseded_serial : NULL);
out:
	if (*tmp)
		unlink(tmp);
	if (en)
		protobuf_c_message_free_unpacked(&en->base, NULL);
	if (ack)
		protobuf_c_message_free_unpacked(&ack->base, NULL);
	free(cc.pem);
	free(csr);
	free(sig);
	return ec;
}

int
cmd_renew_ack(cli *c, const renew_opts *o)
{
	Secretfree__V1__AcknowledgeResponse *ack = NULL;
	int ec;

	if ((ec = acknowledge(c, &o->key, o->ack, NULL, &ack)) != 0)
		return ec;
	if (c->json)
		ec = out_json(c, json_pack("{s:o, s:s, s:o}",
		    "enrollment_id", out_jstr(o->ack),
		    "state", "acknowledged",
		    "superseded_serial", out_jstr(ack->superseded_serial)));
	else
		printf("enrollment %s acknowledged; certificate %s"
		    " superseded\n", o->ack, ack->superseded_serial);
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	return ec;
}

/* ---- device renew-early ---- */

/* TIME: seconds since the epoch, or an RFC 3339 UTC time
 * ("2026-12-05T18:00:00Z") or date ("2026-12-05"). */
static int
parse_time(cli *c, const char *opt, const char *s, int64_t *out)
{
	struct tm tm;
	const char *end;
	long long v;
	char *e;

	errno = 0;
	v = strtoll(s, &e, 10);
	if (*s && *e == '\0' && errno == 0 && v > 0) {
		*out = v;
		return 0;
	}
	memset(&tm, 0, sizeof tm);
	if (((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) != NULL &&
	    *end == '\0') || (memset(&tm, 0, sizeof tm),
	    (end = strptime(s, "%Y-%m-%d", &tm)) != NULL && *end == '\0')) {
		*out = (int64_t)timegm(&tm);
		return 0;
	}
	return cli_usage(c, "%s %s: a time is seconds since the epoch or"
	    " YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DD (UTC)", opt, s);
}

static const char HELP_RENEW_EARLY[] =
"Usage: secretfree device renew-early (ID... | --product-line P | --ca NAME)\n"
"                                     [--at TIME] [--until TIME]\n"
"                                     [--note TEXT]\n"
"\n"
"Pull the suggested renewal window of devices' certificates forward, so\n"
"that they renew early: after an incident, ahead of a CA's rotation or\n"
"retirement, or to move a product line to a new key type. Every\n"
"certificate gets a window when it is issued (from two thirds of its\n"
"validity to five sixths); a device asks for it with\n"
"Provisioning.GetRenewalInfo (in the spirit of ACME Renewal Information,\n"
"RFC 9773) and renews inside it. This command sets the window of the\n"
"active certificates of the devices named (Registry.SetRenewalWindow),\n"
"never later than it was: each end becomes the earlier of the two. The\n"
"note is the explanation GetRenewalInfo gives.\n"
"\n"
"Select the devices by id, by product line, or by the CA that issued\n"
"their certificates (--product-line with --ca: the certificates that\n"
"match both).\n"
"\n"
"Options:\n"
"  --product-line P  every device of product line P\n"
"  --ca NAME         every certificate issued by CA NAME\n"
"                    (e.g. us-east-1.widgiot)\n"
"  --at TIME         the window opens then (default: now); TIME is\n"
"                    seconds since the epoch, YYYY-MM-DDTHH:MM:SSZ or\n"
"                    YYYY-MM-DD (UTC)\n"
"  --until TIME      the window closes then (default: 7 days after --at)\n"
"  --note TEXT       why, for the devices (at most 256 bytes)\n"
"\n"
"Prints how many certificates got the new window; with --json an object\n"
"with certificates, renew_after, renew_before and note.\n"
"\n"
"Exit status: 5 for a bad selection or window (--until not after --at).\n"
"\n"
"Example:\n"
"  secretfree device renew-early --ca us-east-1.widgiot \\\n"
"      --note \"CA key rotation, incident 2026-41\"\n"
"  secretfree device renew-early 1111 1112 --at 2026-12-05\n";

static int
cmd_device_renew_early(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "product-line", required_argument, NULL, 'p' },
		{ "ca", required_argument, NULL, 'c' },
		{ "at", required_argument, NULL, 'a' },
		{ "until", required_argument, NULL, 'u' },
		{ "note", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__SetRenewalWindowRequest req =
	    SECRETFREE__V1__SET_RENEWAL_WINDOW_REQUEST__INIT;
	Secretfree__V1__SetRenewalWindowResponse *r = NULL;
	char b1[32], b2[32];
	int64_t after = 0, before = 0;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'p':
			req.product_line = optarg;
			break;
		case 'c':
			req.ca_name = optarg;
			break;
		case 'a':
			if ((ec = parse_time(c, "--at", optarg, &after)) != 0)
				return ec;
			break;
		case 'u':
			if ((ec = parse_time(c, "--until", optarg,
			    &before)) != 0)
				return ec;
			break;
		case 'n':
			req.explanation = optarg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	req.device_ids = argv + optind;
	req.n_device_ids = (size_t)(argc - optind);
	if (req.n_device_ids == 0 && *req.product_line == '\0' &&
	    *req.ca_name == '\0')
		return cli_usage(c, "name the devices: IDs, --product-line or"
		    " --ca");
	if (req.n_device_ids && (*req.product_line || *req.ca_name))
		return cli_usage(c, "give device ids, or --product-line and"
		    " --ca, not both");
	req.renew_after = after ? after : (int64_t)time(NULL);
	req.renew_before = before ? before : req.renew_after + 7 * 86400;
	if ((ec = cli_call(c, CLI_AUTHZ, REG_SVC, "SetRenewalWindow",
	    &req.base, (ProtobufCMessage **)&r)) != 0)
		return ec;
	if (c->json)
		ec = out_json(c, json_pack("{s:i, s:o, s:o, s:o}",
		    "certificates", (int)r->certificates,
		    "renew_after", out_jtime(req.renew_after),
		    "renew_before", out_jtime(req.renew_before),
		    "note", out_jstr(req.explanation)));
	else
		printf("renewal window of %u certificates: from %s to %s%s%s\n",
		    r->certificates, out_time(req.renew_after, b1, sizeof b1),
		    out_time(req.renew_before, b2, sizeof b2),
		    *req.explanation ? ": " : "", req.explanation);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ec;
}

const cli_cmd cmd_renew_table[] = {
	{ "device", "renew-early", cmd_device_renew_early, "pull devices'"
	    " renewal window forward", HELP_RENEW_EARLY },
	{ NULL, NULL, NULL, NULL, NULL }
};
