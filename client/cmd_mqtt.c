/*
 * cmd_mqtt.c - secretfree mqtt config: the mosquitto configuration of a
 * deployment's MQTT provisioning (authz's MQTT door): mosquitto.conf with
 * one listener for devices' own certificates, one for the shared claim
 * certificate, one for authz, each with its own ACL so that a device
 * reaches only its own provisioning topics; and the [mqtt] section of
 * authz's configuration that matches it. Offline: it calls nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "out.h"
#include "util.h"

static const char HELP_CONFIG[] =
"Usage: secretfree mqtt config --cafile FILE --certfile FILE --keyfile FILE\n"
"                              [--listen [ADDR:]PORT] [--claim-cafile FILE]\n"
"                              [--claim-listen [ADDR:]PORT]\n"
"                              [--service-listen [ADDR:]PORT]\n"
"                              [--service-user NAME] [--crlfile FILE]\n"
"                              [--topic-prefix PREFIX] [--dir DIR]\n"
"                              [--password-file FILE] [--out-dir DIR]\n"
"\n"
"Print the mosquitto configuration for MQTT provisioning through authz\n"
"(authz's [mqtt] door; see authz/README.md): mosquitto.conf, the three ACL\n"
"files it names, and the [mqtt] section of authz's configuration that\n"
"goes with it. Nothing is called: it only writes text.\n"
"\n"
"The broker gets three listeners, each with its own ACL\n"
"(per_listener_settings):\n"
"  devices   TLS, a client certificate from our CAs required; the user name\n"
"            is the certificate's CN, the device id, and so is the client\n"
"            id (use_username_as_clientid: no device can take another's\n"
"            session). ACL: write <prefix>/<own id>/csr and .../ack, read\n"
"            <prefix>/<own id>/cert. Device A can never read device B's\n"
"            certificate topic.\n"
"  claim     (with --claim-cafile) TLS, the shared claim certificate\n"
"            required. Such a client is known by its client id only (the\n"
"            claim certificate is every device's): ACL write\n"
"            <prefix>/<client id>/csr, read <prefix>/<client id>/cert,\n"
"            nothing else. It gives transport, never a certificate: authz\n"
"            issues only for the key registered for the device id.\n"
"  service   TLS and a password: authz, reading every csr and ack topic\n"
"            and writing every cert topic.\n"
"\n"
"Options:\n"
"  --cafile FILE         CA certificates the devices listener trusts: the\n"
"                        root and every CA that issues device certificates\n"
"                        (secretfree ca chain NAME for each)\n"
"  --certfile FILE       the broker's certificate, then its chain\n"
"                        (secretfree ca issue-server); it must name the\n"
"                        host authz connects to\n"
"  --keyfile FILE        the broker's private key\n"
"  --listen [ADDR:]PORT  the devices listener (default 8883)\n"
"  --claim-cafile FILE   the CA chain of the claim certificates (the\n"
"                        --chain-out of secretfree ca issue-claim): adds\n"
"                        the claim listener\n"
"  --claim-listen [ADDR:]PORT  the claim listener (default 8884)\n"
"  --service-listen [ADDR:]PORT  authz's listener (default 127.0.0.1:8885)\n"
"  --service-user NAME   authz's user name (default secretfree-authz)\n"
"  --crlfile FILE        revoked device and claim certificates: authz's\n"
"                        crls.pem ([http] crl_dir), on the devices and\n"
"                        the claim listener; mosquitto reads it at start\n"
"                        (restart it to apply a new CRL)\n"
"  --topic-prefix PREFIX topics are PREFIX/<device id>/{csr,ack,cert}\n"
"                        (default secretfree/provisioning)\n"
"  --dir DIR             where the ACL and password files are to live, an\n"
"                        absolute path (default /etc/mosquitto/secretfree,\n"
"                        or --out-dir)\n"
"  --password-file FILE  for the [mqtt] section: authz's file with the\n"
"                        service password (default\n"
"                        /etc/secretfree/mqtt-password)\n"
"  --out-dir DIR         write mosquitto.conf, devices.acl, claim.acl,\n"
"                        service.acl and authz-mqtt.conf into DIR (which\n"
"                        must exist) instead of printing them\n"
"\n"
"Then make the broker's password file (mosquitto_passwd prompts):\n"
"  mosquitto_passwd -c DIR/service.passwd secretfree-authz\n"
"and put the same password in authz's password file (mode 0600).\n"
"\n"
"With --json: one object, file name -> contents.\n"
"\n"
"Example:\n"
"  secretfree mqtt config --cafile /etc/secretfree/device-cas.pem \\\n"
"      --certfile /etc/secretfree/broker.crt \\\n"
"      --keyfile /etc/secretfree/broker.key \\\n"
"      --claim-cafile /etc/secretfree/claim-ca.pem \\\n"
"      --crlfile /var/lib/secretfree/authz/crl/crls.pem \\\n"
"      --out-dir /etc/mosquitto/secretfree\n";

typedef struct {
	const char *cafile, *certfile, *keyfile, *claim_cafile, *crlfile;
	const char *listen, *claim_listen, *service_listen;
	const char *user, *prefix, *dir, *password_file, *out_dir;
} mqtt_opts;

/* "[ADDR:]PORT" as mosquitto's "listener PORT [ADDR]"; 0 or -1. */
static int
listener(const char *s, char *out, size_t len, char *host, size_t hlen)
{
	const char *colon = strrchr(s, ':'), *port = colon ? colon + 1 : s;
	char *end;
	long p = strtol(port, &end, 10);

	if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
		return -1;
	if (colon == NULL) {
		snprintf(out, len, "listener %ld", p);
		snprintf(host, hlen, "localhost");
		return 0;
	}
	if (colon == s || (size_t)(colon - s) >= hlen)
		return -1;
	snprintf(host, hlen, "%.*s", (int)(colon - s), s);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = '\0';
	}
	if (strpbrk(host, " \t\n#") != NULL || host[0] == '\0')
		return -1;
	snprintf(out, len, "listener %ld %s", p, host);
	return 0;
}

/* A topic prefix as authz accepts it ([mqtt] topic_prefix). */
static int
prefix_ok(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > 128 || p[0] == '/' || p[n - 1] == '/' ||
	    p[0] == '$' || strstr(p, "//") != NULL)
		return 0;
	for (; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '+' || *p == '#')
			return 0;
	return 1;
}

/* A value for a configuration line: no newline, no leading blank. */
static int
line_ok(const char *s)
{
	return *s != '\0' && *s != ' ' && strpbrk(s, "\r\n") == NULL;
}

static char *
make_conf(const mqtt_opts *o, const char *dev, const char *claim,
    const char *svc)
{
	char *crl = o->crlfile ? sf_aprintf("crlfile %s\n", o->crlfile) :
	    strdup(""), *claim_part, *s;

	if (o->claim_cafile)
		claim_part = sf_aprintf(
"\n"
"# Devices with the shared claim certificate, to be provisioned: known by\n"
"# their client id only, they reach <prefix>/<client id>/csr and .../cert\n"
"# and nothing else. authz issues only for the key registered for the\n"
"# device id the CSR names, which must be the topic's.\n"
"%s\n"
"cafile %s\n"
"certfile %s\n"
"keyfile %s\n"
"%s"
"require_certificate true\n"
"use_identity_as_username true\n"
"allow_anonymous false\n"
"acl_file %s/claim.acl\n",
		    claim, o->claim_cafile, o->certfile, o->keyfile, crl, o->dir);
	else
		claim_part = sf_aprintf(
"\n"
"# (No claim listener: give --claim-cafile for one.)\n");
	if (crl == NULL || claim_part == NULL) {
		free(crl);
		free(claim_part);
		return NULL;
	}
	s = sf_aprintf(
"# mosquitto.conf for secretfree's MQTT provisioning\n"
"# (made by secretfree mqtt config; see authz/README.md, \"MQTT door\").\n"
"# Each listener has its own ACL file.\n"
"per_listener_settings true\n"
"# The largest packet (payload, topic and header): a reply of 64 KiB at\n"
"# most (chunk_size); a request is read up to authz's [mqtt]\n"
"# max_payload_bytes. A client sending more is disconnected.\n"
"max_packet_size 66560\n"
"\n"
"# Devices with their own certificates: the user name and the client id\n"
"# are the certificate's CN, the device id.\n"
"%s\n"
"cafile %s\n"
"certfile %s\n"
"keyfile %s\n"
"%s"
"require_certificate true\n"
"use_identity_as_username true\n"
"use_username_as_clientid true\n"
"allow_anonymous false\n"
"acl_file %s/devices.acl\n"
"%s"
"\n"
"# authz (secretfree-authz, [mqtt]): TLS and a password.\n"
"%s\n"
"certfile %s\n"
"keyfile %s\n"
"password_file %s/service.passwd\n"
"allow_anonymous false\n"
"acl_file %s/service.acl\n",
	    dev, o->cafile, o->certfile, o->keyfile, crl, o->dir, claim_part,
	    svc, o->certfile, o->keyfile, o->dir, o->dir);
	free(crl);
	free(claim_part);
	return s;
}

static char *
make_devices_acl(const mqtt_opts *o)
{
	return sf_aprintf(
"# Devices listener: the user name is the certificate's CN, the device\n"
"# id. Each device requests and acknowledges on its own topics and reads\n"
"# only its own replies.\n"
"pattern write %s/%%u/csr\n"
"pattern write %s/%%u/ack\n"
"pattern read %s/%%u/cert\n"
"# The devices' own topics go here too, e.g.:\n"
"# pattern readwrite telemetry/%%u\n", o->prefix, o->prefix, o->prefix);
}

static char *
make_claim_acl(const mqtt_opts *o)
{
	return sf_aprintf(
"# Claim listener: every client has the same certificate, so the client\n"
"# id tells them apart (a claim client chooses it: the claim certificate\n"
"# is a shared secret that opens these topics and nothing else).\n"
"pattern write %s/%%c/csr\n"
"pattern read %s/%%c/cert\n", o->prefix, o->prefix);
}

static char *
make_service_acl(const mqtt_opts *o)
{
	return sf_aprintf(
"# Service listener: authz reads every request and answers every device.\n"
"user %s\n"
"topic read %s/+/csr\n"
"topic read %s/+/ack\n"
"topic write %s/+/cert\n", o->user, o->prefix, o->prefix, o->prefix);
}

static char *
make_authz(const mqtt_opts *o, const char *svc_host, const char *svc_port)
{
	return sf_aprintf(
"# The [mqtt] section of authz's configuration (authz/README.md).\n"
"[mqtt]\n"
"broker = %s%s%s:%s\n"
"# verifies the broker's certificate (which must name %s)\n"
"ca_file = %s\n"
"username = %s\n"
"# the password given to mosquitto_passwd, alone on the first line (0600)\n"
"password_file = %s\n"
"topic_prefix = %s\n", strchr(svc_host, ':') ? "[" : "", svc_host,
	    strchr(svc_host, ':') ? "]" : "", svc_port, svc_host, o->cafile,
	    o->user, o->password_file, o->prefix);
}

static int
cmd_mqtt_config(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cafile", required_argument, NULL, 'a' },
		{ "certfile", required_argument, NULL, 'c' },
		{ "keyfile", required_argument, NULL, 'k' },
		{ "listen", required_argument, NULL, 'l' },
		{ "claim-cafile", required_argument, NULL, 'A' },
		{ "claim-listen", required_argument, NULL, 'L' },
		{ "service-listen", required_argument, NULL, 's' },
		{ "service-user", required_argument, NULL, 'u' },
		{ "crlfile", required_argument, NULL, 'r' },
		{ "topic-prefix", required_argument, NULL, 'p' },
		{ "dir", required_argument, NULL, 'd' },
		{ "password-file", required_argument, NULL, 'P' },
		{ "out-dir", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const names[] = { "mosquitto.conf", "devices.acl",
	    "claim.acl", "service.acl", "authz-mqtt.conf" };
	mqtt_opts o = { 0 };
	char dev[300], claim[300], svc[300], svc_host[256], host[256];
	char *files[5] = { NULL }, *absdir = NULL, *svc_port;
	int ch, ec = CLI_EXIT_USAGE;

	o.listen = "8883";
	o.claim_listen = "8884";
	o.service_listen = "127.0.0.1:8885";
	o.user = "secretfree-authz";
	o.prefix = "secretfree/provisioning";
	o.password_file = "/etc/secretfree/mqtt-password";
	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'a': o.cafile = optarg; break;
		case 'c': o.certfile = optarg; break;
		case 'k': o.keyfile = optarg; break;
		case 'l': o.listen = optarg; break;
		case 'A': o.claim_cafile = optarg; break;
		case 'L': o.claim_listen = optarg; break;
		case 's': o.service_listen = optarg; break;
		case 'u': o.user = optarg; break;
		case 'r': o.crlfile = optarg; break;
		case 'p': o.prefix = optarg; break;
		case 'd': o.dir = optarg; break;
		case 'P': o.password_file = optarg; break;
		case 'o': o.out_dir = optarg; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage(c, "unexpected argument %s", argv[optind]);
	if (!o.cafile || !o.certfile || !o.keyfile)
		return cli_usage(c, "--cafile, --certfile and --keyfile are"
		    " required");
	if (!prefix_ok(o.prefix))
		return cli_usage(c, "--topic-prefix: 1-128 printable"
		    " characters without blanks, + or #, empty levels, or a"
		    " leading / or $");
	if (!line_ok(o.cafile) || !line_ok(o.certfile) ||
	    !line_ok(o.keyfile) || !line_ok(o.user) ||
	    strpbrk(o.user, " \t") || !line_ok(o.password_file) ||
	    (o.claim_cafile && !line_ok(o.claim_cafile)) ||
	    (o.crlfile && !line_ok(o.crlfile)))
		return cli_usage(c, "file names and the user name must be one"
		    " line each");
	if (listener(o.listen, dev, sizeof dev, host, sizeof host) != 0 ||
	    listener(o.claim_listen, claim, sizeof claim, host,
	    sizeof host) != 0 ||
	    listener(o.service_listen, svc, sizeof svc, svc_host,
	    sizeof svc_host) != 0)
		return cli_usage(c, "a listener is [ADDR:]PORT, PORT 1-65535");
	svc_port = strrchr(o.service_listen, ':') ?
	    strrchr(o.service_listen, ':') + 1 : (char *)o.service_listen;
	if (o.dir == NULL && o.out_dir) {
		if ((absdir = realpath(o.out_dir, NULL)) == NULL)
			return cli_error(c, CLI_EXIT_INPUT, "--out-dir %s: %s",
			    o.out_dir, strerror(errno));
		o.dir = absdir;
	} else if (o.dir == NULL)
		o.dir = "/etc/mosquitto/secretfree";
	if (o.dir[0] != '/' || !line_ok(o.dir) || strpbrk(o.dir, " \t")) {
		ec = cli_usage(c, "--dir must be an absolute path without"
		    " blanks");
		goto out;
	}
	files[0] = make_conf(&o, dev, claim, svc);
	files[1] = make_devices_acl(&o);
	files[2] = o.claim_cafile ? make_claim_acl(&o) : NULL;
	files[3] = make_service_acl(&o);
	files[4] = make_authz(&o, svc_host, svc_port);
	ec = CLI_EXIT_ERROR;
	for (int i = 0; i < 5; i++)
		if (files[i] == NULL && i != 2) {
			cli_error(c, ec, "out of memory");
			goto out;
		}
	ec = CLI_EXIT_OK;
	if (c->json) {
		json_t *doc = json_object();

		for (int i = 0; i < 5; i++)
			if (files[i])
				out_jset(&doc, names[i], out_jstr(files[i]));
		ec = out_json(c, doc);
	} else if (o.out_dir) {
		for (int i = 0; i < 5 && ec == CLI_EXIT_OK; i++) {
			char *p;

			if (files[i] == NULL)
				continue;
			if ((p = sf_aprintf("%s/%s", o.out_dir,
			    names[i])) == NULL) {
				ec = cli_error(c, CLI_EXIT_ERROR, "out of"
				    " memory");
				break;
			}
			if ((ec = cli_write_file(c, p, files[i],
			    strlen(files[i]), 0644)) == CLI_EXIT_OK)
				printf("%s\n", p);
			free(p);
		}
	} else
		for (int i = 0; i < 5; i++)
			if (files[i])
				printf("%s# ---- %s ----\n%s", i ? "\n" : "",
				    names[i], files[i]);
out:
	for (int i = 0; i < 5; i++)
		free(files[i]);
	free(absdir);
	return ec;
}

const cli_cmd cmd_mqtt_table[] = {
	{ "mqtt", "config", cmd_mqtt_config, "mosquitto configuration and"
	    " ACLs for MQTT provisioning", HELP_CONFIG },
	{ NULL, NULL, NULL, NULL, NULL }
};
