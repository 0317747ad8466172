/*
 * config.c - authz's configuration file: [authz] (sockets, listeners,
 * region, workers), [limits], [http], [mqtt] (mqtt_conf.c), and the
 * [template.*] and [policy.*] sections that main.c seeds into the
 * registry at start and on SIGHUP. Every key is checked here, once, so
 * that the rest of authz reads a validated authz_conf (see config.h,
 * authz/README.md).
 */
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf.h"
#include "config.h"
#include "devrec.h"
#include "err.h"
#include "log.h"
#include "util.h"

static const char *const AUTHZ_KEYS[] = { "registry", "signer_socket",
    "signer_timeout_ms", "admin_socket", "admin_uids", "admin_group",
    "device_listen", "tls_cert", "tls_key", "tls_client_ca",
    "default_region", "user", "workers", "log_level",
    "idempotency_window_seconds", "renewal_sweep_seconds", NULL };
static const char *const LIMIT_KEYS[] = { "csr_max_bytes",
    "max_message_bytes", "device_requests_per_window",
    "device_window_seconds", "global_per_second", "global_burst",
    "max_concurrent_streams", "body_timeout_ms", "pending_per_address",
    NULL };
static const char *const HTTP_KEYS[] = { "listen", "threads",
    "ocsp_cache_entries", "crl_dir", "crl_refresh_seconds", "tls_listen",
    "plain_front_doors", "enroll_wait_ms", "retry_after_seconds",
    "connection_timeout_seconds", "max_connections",
    "connections_per_address", "max_pending_enrollments", "est_default_ca",
    NULL };
static const char *const TEMPLATE_KEYS[] = { "thing_group", "policies",
    "attributes", NULL };
static const char *const POLICY_KEYS[] = { "document", "document_file",
    NULL };

static int
geti(const conf *cf, const char *sec, const char *key, long long def,
    long long min, long long max, int *out, char *why, size_t whylen)
{
	long long v;
	int rc = conf_get_int(cf, sec, key, def, min, max, &v, why, whylen);

	*out = (int)v;
	return rc;
}

/*
 * Every address "host:port" names is a loopback address (127.0.0.0/8,
 * ::1); 0 when one is not, or when it does not resolve.
 */
static int
loopback_only(const char *hostport)
{
	struct addrinfo hints, *res = NULL, *ai;
	const char *colon = strrchr(hostport, ':');
	char host[256];
	size_t hl;
	int ok = 1;

	if (colon == NULL || colon == hostport)
		return 0;
	hl = (size_t)(colon - hostport);
	if (hostport[0] == '[' && hl >= 2 && hostport[hl - 1] == ']') {
		hostport++;
		hl -= 2;
	}
	if (hl >= sizeof host)
		return 0;
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
		return 0;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *in = (const void *)ai->ai_addr;

			ok &= (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *in6 =
			    (const void *)ai->ai_addr;

			ok &= IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		} else
			ok = 0;
	}
	freeaddrinfo(res);
	return ok;
}

/* "<region>.<product line>", each a valid name. */
static int
ca_label_valid(const char *s)
{
	const char *dot = strchr(s, '.');
	char region[40];
	size_t n;

	if (dot == NULL || (n = (size_t)(dot - s)) == 0 || n >= sizeof region)
		return 0;
	memcpy(region, s, n);
	region[n] = '\0';
	return sf_name_valid(region) && sf_name_valid(dot + 1);
}

/* [http]'s front doors (REST, EST). */
static int
load_front_doors(const conf *cf, authz_conf *c, const char *path, char *why,
    size_t whylen)
{
	int rc;

	if ((rc = conf_get_bool(cf, "http", "plain_front_doors", 0,
	    &c->plain_front_doors, why, whylen)) ||
	    (rc = geti(cf, "http", "enroll_wait_ms", 5000, 0, 600000,
	    &c->enroll_wait_ms, why, whylen)) ||
	    (rc = geti(cf, "http", "retry_after_seconds", 5, 1, 3600,
	    &c->retry_after_s, why, whylen)) ||
	    (rc = geti(cf, "http", "connection_timeout_seconds", 10, 1, 3600,
	    &c->http_conn_timeout_s, why, whylen)) ||
	    (rc = geti(cf, "http", "max_connections", 256, 1, 100000,
	    &c->http_max_conns, why, whylen)) ||
	    (rc = geti(cf, "http", "connections_per_address", 32, 1, 100000,
	    &c->http_conns_per_addr, why, whylen)) ||
	    (rc = geti(cf, "http", "max_pending_enrollments", 64, 1, 10000,
	    &c->latent_max, why, whylen)))
		return rc;
	c->https_listen = sf_strdup(conf_get(cf, "http", "tls_listen"));
	if ((c->est_default_ca = strdup(conf_get_str(cf, "http",
	    "est_default_ca", ""))) == NULL)
		return SF_ENOMEM;
	if (*c->est_default_ca && !ca_label_valid(c->est_default_ca)) {
		sf_why(why, whylen, "%s: [http] est_default_ca \"%s\" is not a"
		    " CA name (<region>.<product line>, as us-east-1.widgiot)",
		    path, c->est_default_ca);
		return SF_ECONFIG;
	}
	if (c->https_listen && (!c->tls_cert || !c->tls_key)) {
		sf_why(why, whylen, "%s: [http] tls_listen needs [authz]"
		    " tls_cert and tls_key", path);
		return SF_ECONFIG;
	}
	if (c->plain_front_doors && c->http_listen == NULL) {
		sf_why(why, whylen, "%s: [http] plain_front_doors needs [http]"
		    " listen", path);
		return SF_ECONFIG;
	}
	/* Device requests travel in clear only where nobody can listen. */
	if (c->plain_front_doors && !loopback_only(c->http_listen)) {
		sf_why(why, whylen, "%s: [http] plain_front_doors: the REST and"
		    " EST front doors are served over plain HTTP only on a"
		    " loopback address (127.0.0.1, ::1), and listen = %s is"
		    " not one; serve them over TLS with tls_listen", path,
		    c->http_listen);
		return SF_ECONFIG;
	}
	return 0;
}

static int
load_template(const conf *cf, const char *sec, registry_template *t, char *why,
    size_t whylen)
{
	char **items = NULL;
	size_t n;
	int rc;

	memset(t, 0, sizeof *t);
	if ((rc = conf_check_keys(cf, sec, TEMPLATE_KEYS, why, whylen)) != 0)
		return rc;
	t->product_line = strdup(sec + strlen("template."));
	t->thing_group = strdup(conf_get_str(cf, sec, "thing_group", ""));
	if (!t->product_line || !t->thing_group)
		return SF_ENOMEM;
	if (!sf_name_valid(t->product_line)) {
		sf_why(why, whylen, "[%s]: a product line id is 1-32 of"
		    " [a-z0-9-]", sec);
		return SF_ECONFIG;
	}
	t->npolicies = conf_split_list(conf_get_str(cf, sec, "policies", ""),
	    &t->policies);
	n = conf_split_list(conf_get_str(cf, sec, "attributes", ""), &items);
	t->attr_names = calloc(n ? n : 1, sizeof(char *));
	t->attr_values = calloc(n ? n : 1, sizeof(char *));
	if (!t->attr_names || !t->attr_values) {
		conf_list_free(items, n);
		return SF_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		char *eq = strchr(items[i], '=');

		if (eq == NULL || eq == items[i]) {
			sf_why(why, whylen, "[%s] attributes: \"%s\" is not"
			    " name=value", sec, items[i]);
			conf_list_free(items, n);
			return SF_ECONFIG;
		}
		*eq = '\0';
		t->attr_names[i] = strdup(items[i]);
		t->attr_values[i] = strdup(eq + 1);
		t->nattrs++;
		if (!t->attr_names[i] || !t->attr_values[i]) {
			conf_list_free(items, n);
			return SF_ENOMEM;
		}
	}
	conf_list_free(items, n);
	return 0;
}

static int
load_policy(const conf *cf, const char *sec, authz_policy *p, char *why,
    size_t whylen)
{
	const char *doc = conf_get(cf, sec, "document");
	const char *file = conf_get(cf, sec, "document_file");
	int rc;

	memset(p, 0, sizeof *p);
	if ((rc = conf_check_keys(cf, sec, POLICY_KEYS, why, whylen)) != 0)
		return rc;
	if ((p->name = strdup(sec + strlen("policy."))) == NULL)
		return SF_ENOMEM;
	if ((doc == NULL) == (file == NULL)) {
		sf_why(why, whylen, "[%s]: give exactly one of document and"
		    " document_file", sec);
		return SF_ECONFIG;
	}
	if (doc)
		p->document = strdup(doc);
	else {
		uint8_t *buf;
		size_t len;

		if (sf_read_file(file, 1 << 20, &buf, &len) != 0) {
			sf_why(why, whylen, "[%s]: cannot read %s", sec, file);
			return SF_ECONFIG;
		}
		p->document = (char *)buf;
	}
	return p->document ? 0 : SF_ENOMEM;
}

int
authz_conf_load(const char *path, authz_conf **out, char *why,
    size_t whylen)
{
	static const char *const none[] = { NULL };
	conf *cf = NULL;
	authz_conf *c = NULL;
	const char **secs = NULL;
	size_t nsecs;
	long long ll;
	const char *v;
	int rc;

	*out = NULL;
	if ((rc = conf_load(path, &cf, why, whylen)) != 0)
		return rc;
	if ((c = calloc(1, sizeof *c)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	c->path = strdup(path);
	nsecs = conf_sections(cf, "", &secs);
	for (size_t i = 0; i < nsecs; i++) {
		if (secs[i][0] == '\0' || strcmp(secs[i], "authz") == 0 ||
		    strcmp(secs[i], "limits") == 0 ||
		    strcmp(secs[i], "http") == 0 ||
		    strcmp(secs[i], "mqtt") == 0 ||
		    strncmp(secs[i], "template.", 9) == 0 ||
		    strncmp(secs[i], "policy.", 7) == 0)
			continue;
		sf_why(why, whylen, "%s: unknown section [%s]", path,
		    secs[i]);
		rc = SF_ECONFIG;
		goto out;
	}
	free(secs);
	secs = NULL;
	if ((rc = conf_check_keys(cf, "", none, why, whylen)) ||
	    (rc = conf_check_keys(cf, "authz", AUTHZ_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "limits", LIMIT_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "http", HTTP_KEYS, why, whylen)))
		goto out;
	rc = SF_ECONFIG;
	if ((v = conf_get(cf, "authz", "registry")) == NULL) {
		sf_why(why, whylen, "%s: [authz] registry is required", path);
		goto out;
	}
	c->registry = strdup(v);
	if ((v = conf_get(cf, "authz", "signer_socket")) == NULL ||
	    strncmp(v, "unix:/", 6) != 0) {
		sf_why(why, whylen, "%s: [authz] signer_socket = unix:/path"
		    " (the signer's issuance socket) is required", path);
		goto out;
	}
	c->signer_socket = strdup(v);
	if ((v = conf_get(cf, "authz", "admin_socket")) == NULL ||
	    strncmp(v, "unix:/", 6) != 0) {
		sf_why(why, whylen, "%s: [authz] admin_socket = unix:/path"
		    " is required", path);
		goto out;
	}
	c->admin_socket = strdup(v);
	/* rc stays SF_ECONFIG on failure: the checks below rely on it. */
	if (conf_get_uids(cf, "authz", "admin_uids", c->admin_uids,
	    AUTHZ_MAX_UIDS, &c->n_admin_uids, why, whylen) != 0 ||
	    conf_get_gid(cf, "authz", "admin_group", &c->admin_gid, why,
	    whylen) != 0)
		goto out;
	c->device_listen = sf_strdup(conf_get(cf, "authz", "device_listen"));
	c->tls_cert = sf_strdup(conf_get(cf, "authz", "tls_cert"));
	c->tls_key = sf_strdup(conf_get(cf, "authz", "tls_key"));
	c->tls_client_ca = sf_strdup(conf_get(cf, "authz", "tls_client_ca"));
	if (c->device_listen && (!c->tls_cert || !c->tls_key)) {
		sf_why(why, whylen, "%s: [authz] device_listen needs tls_cert"
		    " and tls_key", path);
		goto out;
	}
	c->default_region = strdup(conf_get_str(cf, "authz",
	    "default_region", ""));
	if (*c->default_region && !sf_name_valid(c->default_region)) {
		sf_why(why, whylen, "%s: [authz] default_region is not a"
		    " valid region id", path);
		goto out;
	}
	c->user = sf_strdup(conf_get(cf, "authz", "user"));
	if ((rc = conf_get_log_level(cf, "authz", "log_level", LOG_LEVEL_INFO,
	    &c->log_level, why, whylen)) ||
	    (rc = geti(cf, "authz", "workers", 8, 1, 128, &c->workers, why,
	    whylen)) ||
	    (rc = geti(cf, "authz", "signer_timeout_ms", 10000, 100, 600000,
	    &c->signer_timeout_ms, why, whylen)) ||
	    (rc = geti(cf, "authz", "idempotency_window_seconds", 86400, 0,
	    86400 * 365, &c->idempotency_window, why, whylen)) ||
	    (rc = geti(cf, "authz", "renewal_sweep_seconds", 60, 1, 86400,
	    &c->renewal_sweep_s, why, whylen)) ||
	    (rc = geti(cf, "limits", "device_requests_per_window", 20, 1,
	    1000000, &c->device_max, why, whylen)) ||
	    (rc = geti(cf, "limits", "device_window_seconds", 3600, 1,
	    86400 * 365, &c->device_window, why, whylen)) ||
	    (rc = geti(cf, "limits", "global_burst", 2000, 1, 10000000,
	    &c->global_burst, why, whylen)) ||
	    (rc = geti(cf, "limits", "max_concurrent_streams", 16, 1, 1000,
	    &c->max_streams, why, whylen)) ||
	    (rc = geti(cf, "limits", "body_timeout_ms", 5000, 100, 600000,
	    &c->body_timeout_ms, why, whylen)) ||
	    (rc = geti(cf, "limits", "pending_per_address", 64, 1, 1000000,
	    &c->pending_per_address, why, whylen)) ||
	    (rc = geti(cf, "http", "threads", 4, 1, 64, &c->http_threads,
	    why, whylen)) ||
	    (rc = geti(cf, "http", "ocsp_cache_entries", 100000, 0, 10000000,
	    &c->ocsp_cache_entries, why, whylen)) ||
	    (rc = geti(cf, "http", "crl_refresh_seconds", 5, 1, 3600,
	    &c->crl_refresh_s, why, whylen)))
		goto out;
	c->http_listen = sf_strdup(conf_get(cf, "http", "listen"));
	c->crl_dir = sf_strdup(conf_get(cf, "http", "crl_dir"));
	if ((rc = load_front_doors(cf, c, path, why, whylen)) != 0)
		goto out;
	if (c->crl_dir && c->crl_dir[0] != '/') {
		sf_why(why, whylen, "%s: [http] crl_dir must be an absolute"
		    " path", path);
		rc = SF_ECONFIG;
		goto out;
	}
	if ((rc = conf_get_int(cf, "limits", "global_per_second", 1000, 1,
	    10000000, &ll, why, whylen)) != 0)
		goto out;
	c->global_rate = (double)ll;
	if ((rc = conf_get_int(cf, "limits", "csr_max_bytes", 16384, 256,
	    1 << 20, &ll, why, whylen)) != 0)
		goto out;
	c->csr_max = (size_t)ll;
	if ((rc = conf_get_int(cf, "limits", "max_message_bytes", 65536, 4096,
	    16 << 20, &ll, why, whylen)) != 0)
		goto out;
	c->max_message = (size_t)ll;
	if ((rc = mqtt_conf_load(cf, path, &c->mqtt, why, whylen)) != 0)
		goto out;

	c->ntemplates = conf_sections(cf, "template.", &secs);
	c->templates = calloc(c->ntemplates ? c->ntemplates : 1,
	    sizeof *c->templates);
	if (c->templates == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->ntemplates; i++)
		if ((rc = load_template(cf, secs[i], &c->templates[i], why,
		    whylen)) != 0)
			goto out;
	free(secs);
	secs = NULL;
	c->npolicies = conf_sections(cf, "policy.", &secs);
	c->policies = calloc(c->npolicies ? c->npolicies : 1,
	    sizeof *c->policies);
	if (c->policies == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->npolicies; i++)
		if ((rc = load_policy(cf, secs[i], &c->policies[i], why,
		    whylen)) != 0)
			goto out;
	if (!c->path || !c->registry || !c->signer_socket || !c->admin_socket ||
	    !c->default_region) {
		rc = SF_ENOMEM;
		goto out;
	}
	*out = c;
	c = NULL;  /* transferred */
	rc = 0;
out:
	free(secs);
	authz_conf_free(c);
	conf_free(cf);
	return rc;
}

void
authz_conf_free(authz_conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; c->templates && i < c->ntemplates; i++)
		registry_template_fini(&c->templates[i]);
	free(c->templates);
	for (size_t i = 0; c->policies && i < c->npolicies; i++) {
		free(c->policies[i].name);
		free(c->policies[i].document);
	}
	free(c->policies);
	free(c->path);
	free(c->registry);
	free(c->signer_socket);
	free(c->admin_socket);
	free(c->device_listen);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_client_ca);
	free(c->http_listen);
	free(c->https_listen);
	free(c->est_default_ca);
	free(c->crl_dir);
	free(c->default_region);
	free(c->user);
	mqtt_conf_free(c->mqtt);
	free(c);
}
