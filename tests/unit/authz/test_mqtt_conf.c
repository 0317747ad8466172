/*
 * Unit tests of authz/mqtt_conf.c, the [mqtt] section: absent means no
 * door; the defaults authz/README.md documents; the broker address in its
 * forms; files that cannot be read, a certificate without its key, a
 * password file without a user name or empty; the password is the first
 * line; topic prefixes and client ids that could match other topics;
 * unknown keys and out-of-range numbers. Each refusal names the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "err.h"
#include "mqtt_conf.h"
#include "../../tap.h"

static char dir[] = "/tmp/sf-mqtt-conf-XXXXXX";
static char ca[256], pw[256], pwcrlf[256], empty[256];

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

/* Load "[mqtt]\n" + body; the result in *out, the code returned. */
static int
load(const char *body, mqtt_conf **out, char *why, size_t whylen)
{
	char *text = malloc(strlen(body) + 64);
	conf *cf = NULL;
	int rc;

	sprintf(text, "[mqtt]\n%s", body);
	*out = NULL;
	if ((rc = conf_parse("authz.conf", text, &cf, why, whylen)) == 0)
		rc = mqtt_conf_load(cf, "authz.conf", out, why, whylen);
	conf_free(cf);
	free(text);
	return rc;
}

/* body, with each "@" standing for the CA file, is refused naming
 * want. */
static void
refused(const char *body, const char *want, const char *what)
{
	char text[1024], why[512] = "";
	size_t k = 0;
	mqtt_conf *m;
	int rc;

	for (; *body && k + strlen(ca) + 1 < sizeof text; body++)
		if (*body == '@') {
			strcpy(text + k, ca);
			k += strlen(ca);
		} else
			text[k++] = *body;
	text[k] = '\0';
	rc = load(text, &m, why, sizeof why);
	ok(rc == SF_ECONFIG && m == NULL && strstr(why, want) != NULL,
	    "%s (%s)", what, why);
	mqtt_conf_free(m);
}

int
main(void)
{
	char text[4096], why[512];
	mqtt_conf *m;
	conf *cf;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(pw, sizeof pw, "%s/pw", dir);
	snprintf(pwcrlf, sizeof pwcrlf, "%s/pwcrlf", dir);
	snprintf(empty, sizeof empty, "%s/empty", dir);
	put(ca, "not checked here\n");
	put(pw, "s3cret\nsecond line\n");
	put(pwcrlf, "crlf-pass\r\n");
	put(empty, "\n");

	conf_parse("authz.conf", "[authz]\nregistry = x\n", &cf, why,
	    sizeof why);
	m = (mqtt_conf *)1;
	is_int(mqtt_conf_load(cf, "authz.conf", &m, why, sizeof why), 0,
	    "no [mqtt] section");
	ok(m == NULL, "  no door");
	conf_free(cf);

	snprintf(text, sizeof text, "broker = mqtt.example.net:8885\n"
	    "ca_file = %s\n", ca);
	is_int(load(text, &m, why, sizeof why), 0, "the least: broker and"
	    " ca_file");
	ok(m && strcmp(m->host, "mqtt.example.net") == 0 && m->port == 8885,
	    "  host and port");
	ok(m && strcmp(m->client_id, "secretfree-authz") == 0 &&
	    strcmp(m->topic_prefix, "secretfree/provisioning") == 0 &&
	    m->workers == 2 && m->queue == 256 && m->max_payload == 32768 &&
	    m->keepalive_s == 30 && m->reconnect_max_s == 60 &&
	    m->username == NULL && m->password == NULL &&
	    m->cert_file == NULL, "  the documented defaults");
	mqtt_conf_free(m);

	snprintf(text, sizeof text, "broker = [::1]:8885\nca_file = %s\n"
	    "username = authz\npassword_file = %s\ncert_file = %s\n"
	    "key_file = %s\nclient_id = authz-2\ntopic_prefix = a/b-c\n"
	    "workers = 8\nqueue = 10\nmax_payload_bytes = 4096\n"
	    "keepalive_seconds = 60\nreconnect_max_seconds = 5\n", ca, pw, ca,
	    ca);
	is_int(load(text, &m, why, sizeof why), 0, "every key (%s)", why);
	ok(m && strcmp(m->host, "::1") == 0 && m->port == 8885,
	    "  an IPv6 broker in brackets");
	ok(m && m->password && strcmp(m->password, "s3cret") == 0,
	    "  the password is the file's first line");
	ok(m && m->workers == 8 && m->queue == 10 && m->max_payload == 4096 &&
	    m->keepalive_s == 60 && m->reconnect_max_s == 5 &&
	    strcmp(m->topic_prefix, "a/b-c") == 0, "  the values given");
	mqtt_conf_free(m);

	snprintf(text, sizeof text, "broker = h:1\nca_file = %s\n"
	    "username = u\npassword_file = %s\n", ca, pwcrlf);
	is_int(load(text, &m, why, sizeof why), 0, "a password file with CRLF");
	ok(m && strcmp(m->password, "crlf-pass") == 0, "  without the CR");
	mqtt_conf_free(m);

	refused("ca_file = @\n", "broker", "no broker");
	refused("broker = hostonly\nca_file = @\n", "broker", "no port");
	refused("broker = h:0\nca_file = @\n", "broker", "port 0");
	refused("broker = h:65536\nca_file = @\n", "broker", "port 65536");
	refused("broker = ::1:8883\nca_file = @\n", "broker",
	    "an IPv6 address without brackets");
	refused("broker = h:1\n", "ca_file is required", "no ca_file");
	refused("broker = h:1\nca_file = /nonexistent/ca.pem\n", "ca_file",
	    "a ca_file that cannot be read");
	refused("broker = h:1\nca_file = @\ncert_file = @\n",
	    "go together", "a certificate without its key");
	snprintf(text, sizeof text, "broker = h:1\nca_file = @\n"
	    "password_file = %s\n", pw);
	refused(text, "needs a username", "a password without a user name");
	snprintf(text, sizeof text, "broker = h:1\nca_file = @\n"
	    "username = u\npassword_file = %s\n", empty);
	refused(text, "is empty", "an empty password");
	refused("broker = h:1\nca_file = @\ncolour = blue\n", "colour",
	    "an unknown key");
	refused("broker = h:1\nca_file = @\ntopic_prefix = a/+/b\n",
	    "topic_prefix", "a prefix with a wildcard");
	refused("broker = h:1\nca_file = @\ntopic_prefix = /a\n",
	    "topic_prefix", "a prefix with a leading /");
	refused("broker = h:1\nca_file = @\ntopic_prefix = $SYS/x\n",
	    "topic_prefix", "a prefix under $");
	refused("broker = h:1\nca_file = @\ntopic_prefix = a//b\n",
	    "topic_prefix", "a prefix with an empty level");
	refused("broker = h:1\nca_file = @\nclient_id = a/b\n", "client_id",
	    "a client id with a /");
	refused("broker = h:1\nca_file = @\nworkers = 0\n", "workers",
	    "0 workers");
	refused("broker = h:1\nca_file = @\nmax_payload_bytes = 100\n",
	    "max_payload_bytes", "a 100-byte payload limit");

	unlink(ca);
	unlink(pw);
	unlink(pwcrlf);
	unlink(empty);
	rmdir(dir);
	return tap_done();
}
