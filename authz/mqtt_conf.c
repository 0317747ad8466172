/*
 * mqtt_conf.c - the [mqtt] section of authz's configuration (see
 * mqtt_conf.h), checked once here: the broker address, TLS files that
 * can be read, a password read from its file (the first line), a topic
 * prefix that cannot match other topics, and the door's limits.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "mqtt_conf.h"
#include "util.h"

#define SEC "mqtt"

static const char *const MQTT_KEYS[] = { "broker", "ca_file", "cert_file",
    "key_file", "username", "password_file", "client_id", "topic_prefix",
    "workers", "queue", "max_payload_bytes", "keepalive_seconds",
    "reconnect_max_seconds", NULL };

/* "host:port" or "[v6]:port" into host and port. */
static int
split_address(const char *a, char **host, int *port)
{
	const char *colon = strrchr(a, ':'), *h = a;
	size_t hl;
	char *end;
	long p;

	if (colon == NULL || colon == a)
		return SF_EINVAL;
	hl = (size_t)(colon - a);
	if (a[0] == '[') {
		if (hl < 3 || a[hl - 1] != ']')
			return SF_EINVAL;
		h = a + 1;
		hl -= 2;
	} else if (memchr(a, ':', hl) != NULL)
		return SF_EINVAL;   /* a bare IPv6 address */
	p = strtol(colon + 1, &end, 10);
	if (*end != '\0' || colon[1] == '\0' || p < 1 || p > 65535)
		return SF_EINVAL;
	if ((*host = strndup(h, hl)) == NULL)
		return SF_ENOMEM;
	*port = (int)p;
	return 0;
}

/* A topic prefix: levels of printable ASCII without wildcards, no empty
 * level, no leading '$' (the broker's own topics). */
static int
prefix_valid(const char *p)
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

static int
get_file(const conf *cf, const char *path, const char *key, int required,
    char **out, char *why, size_t whylen)
{
	const char *v = conf_get(cf, SEC, key);

	*out = NULL;
	if (v == NULL) {
		if (!required)
			return 0;
		sf_why(why, whylen, "%s: [mqtt] %s is required", path, key);
		return SF_ECONFIG;
	}
	if (access(v, R_OK) != 0) {
		sf_why(why, whylen, "%s: [mqtt] %s: cannot read %s", path, key,
		    v);
		return SF_ECONFIG;
	}
	return (*out = strdup(v)) ? 0 : SF_ENOMEM;
}

static int
get_password(const conf *cf, const char *path, mqtt_conf *m, char *why,
    size_t whylen)
{
	const char *f = conf_get(cf, SEC, "password_file");
	uint8_t *buf = NULL;
	size_t len = 0;

	if (f == NULL)
		return 0;
	if (m->username == NULL) {
		sf_why(why, whylen, "%s: [mqtt] password_file needs a"
		    " username", path);
		return SF_ECONFIG;
	}
	if (sf_read_file(f, 4096, &buf, &len) != 0) {
		sf_why(why, whylen, "%s: [mqtt] password_file: cannot read %s",
		    path, f);
		return SF_ECONFIG;
	}
	/* The first line; a trailing CR or LF is not part of it. */
	buf[strcspn((char *)buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		free(buf);
		sf_why(why, whylen, "%s: [mqtt] password_file %s is empty",
		    path, f);
		return SF_ECONFIG;
	}
	m->password = (char *)buf;
	return 0;
}

static int
geti(const conf *cf, const char *key, long long def, long long min,
    long long max, int *out, char *why, size_t whylen)
{
	long long v;
	int rc = conf_get_int(cf, SEC, key, def, min, max, &v, why, whylen);

	*out = (int)v;
	return rc;
}

int
mqtt_conf_load(const conf *cf, const char *path, mqtt_conf **out,
    char *why, size_t whylen)
{
	mqtt_conf *m = NULL;
	const char *v;
	int rc, n;

	*out = NULL;
	if (!conf_has_section(cf, SEC))
		return 0;
	if ((rc = conf_check_keys(cf, SEC, MQTT_KEYS, why, whylen)) != 0)
		return rc;
	if ((m = calloc(1, sizeof *m)) == NULL)
		return SF_ENOMEM;
	rc = SF_ECONFIG;
	if ((v = conf_get(cf, SEC, "broker")) == NULL ||
	    split_address(v, &m->host, &m->port) != 0) {
		sf_why(why, whylen, "%s: [mqtt] broker = host:port (the MQTT"
		    " broker, TLS) is required", path);
		goto out;
	}
	if ((rc = get_file(cf, path, "ca_file", 1, &m->ca_file, why,
	    whylen)) != 0 ||
	    (rc = get_file(cf, path, "cert_file", 0, &m->cert_file, why,
	    whylen)) != 0 ||
	    (rc = get_file(cf, path, "key_file", 0, &m->key_file, why,
	    whylen)) != 0)
		goto out;
	if ((m->cert_file == NULL) != (m->key_file == NULL)) {
		sf_why(why, whylen, "%s: [mqtt] cert_file and key_file go"
		    " together", path);
		rc = SF_ECONFIG;
		goto out;
	}
	m->username = sf_strdup(conf_get(cf, SEC, "username"));
	if ((rc = get_password(cf, path, m, why, whylen)) != 0)
		goto out;
	m->client_id = strdup(conf_get_str(cf, SEC, "client_id",
	    "secretfree-authz"));
	m->topic_prefix = strdup(conf_get_str(cf, SEC, "topic_prefix",
	    "secretfree/provisioning"));
	if (m->client_id == NULL || m->topic_prefix == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	if (!prefix_valid(m->client_id) || strchr(m->client_id, '/') ||
	    strlen(m->client_id) > 64) {
		sf_why(why, whylen, "%s: [mqtt] client_id must be 1-64"
		    " printable characters without blanks, /, + or #", path);
		rc = SF_ECONFIG;
		goto out;
	}
	if (!prefix_valid(m->topic_prefix)) {
		sf_why(why, whylen, "%s: [mqtt] topic_prefix must be 1-128"
		    " printable characters without blanks, + or #, empty"
		    " levels, or a leading / or $", path);
		rc = SF_ECONFIG;
		goto out;
	}
	if ((rc = geti(cf, "workers", 2, 1, 64, &m->workers, why,
	    whylen)) != 0 ||
	    (rc = geti(cf, "queue", 256, 1, 100000, &m->queue, why,
	    whylen)) != 0 ||
	    (rc = geti(cf, "max_payload_bytes", 32768, 1024, 1 << 20, &n, why,
	    whylen)) != 0 ||
	    (rc = geti(cf, "keepalive_seconds", 30, 5, 3600, &m->keepalive_s,
	    why, whylen)) != 0 ||
	    (rc = geti(cf, "reconnect_max_seconds", 60, 1, 3600,
	    &m->reconnect_max_s, why, whylen)) != 0)
		goto out;
	m->max_payload = (size_t)n;
	*out = m;
	m = NULL;  /* transferred */
	rc = 0;
out:
	mqtt_conf_free(m);
	return rc;
}

void
mqtt_conf_free(mqtt_conf *m)
{
	if (m == NULL)
		return;
	free(m->host);
	free(m->ca_file);
	free(m->cert_file);
	free(m->key_file);
	free(m->username);
	if (m->password) {
		explicit_bzero(m->password, strlen(m->password));
		free(m->password);
	}
	free(m->client_id);
	free(m->topic_prefix);
	free(m);
}
