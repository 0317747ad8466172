/*
 * config.c - the signer's configuration (see config.h, signer/README.md).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "devrec.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "util.h"

static const char *const SIGNER_KEYS[] = { "journal", "issuance_socket",
    "admin_socket", "issuance_uids", "admin_uids", "issuance_group",
    "admin_group", "user", "workers", "log_level", "csr_max_bytes",
    "change_delay_ms", NULL };
static const char *const TOKEN_KEYS[] = { "module", "uri", "pin_file",
    "sessions", "bad_key", NULL };
static const char *const LIMIT_KEYS[] = { "device_certs_per_window",
    "device_window_seconds", "global_per_second", "global_burst",
    "ca_min_remaining_days", "device_live_certificates",
    "ack_timeout_seconds", NULL };
static const char *const DEFAULT_KEYS[] = { "organization", "country",
    "domain", "crl_url", "ocsp_url", "ca_issuers_url",
    "server_validity_days", "crl_shards", NULL };
static const char *const CRL_KEYS[] = { "validity_seconds",
    "refresh_before_seconds", "check_seconds", NULL };
static const char *const AUDIT_KEYS[] = { "key_label",
    "checkpoint_seconds", NULL };
static const char *const ROOT_KEYS[] = { "subject", "key_type",
    "validity_days", "path_len", NULL };
static const char *const ISSUING_KEYS[] = { "subject", "key_type",
    "validity_days", NULL };
static const char *const OCSP_KEYS[] = { "responder", "validity_seconds",
    "refresh_seconds", "interval_seconds", "responder_validity_days",
    "responder_renew_days", "on_demand_per_second", NULL };
static const char *const PRODUCT_KEYS[] = { "display_name", "subject",
    "key_type", "validity_days", "path_len", "permitted", "excluded",
    "device_subject", "device_validity_days", "device_key_types", NULL };

/* path: the file, for the message (config.h: why names file and key). */
static int
get_key_type(const conf *cf, const char *path, const char *sec,
    const char *key, int def, int *out, char *why, size_t whylen)
{
	const char *v = conf_get(cf, sec, key);
	int t;

	*out = def;
	if (v == NULL)
		return 0;
	t = pubkey_type_parse(v);
	if (t == PUBKEY_NONE || t == PUBKEY_RSA_OTHER) {
		sf_why(why, whylen, "%s: [%s] %s: unknown key type \"%s\""
		    " (ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519)",
		    path, sec, key, v);
		return SF_ECONFIG;
	}
	*out = t;
	return 0;
}

static int
get_int(const conf *cf, const char *sec, const char *key, long long def,
    long long min, long long max, int *out, char *why, size_t whylen)
{
	long long v;
	int rc = conf_get_int(cf, sec, key, def, min, max, &v, why, whylen);

	*out = (int)v;
	return rc;
}

/*
 * A socket address's path with "//" and "/./" folded: two spellings of one
 * file must not pass as two sockets (the second listener would unlink the
 * first one's socket and bind its own in its place).
 */
static void
socket_path(const char *addr, char *out, size_t outlen)
{
	const char *p = addr + strlen("unix:");
	size_t n = 0;

	while (*p && n + 1 < outlen) {
		if (p[0] == '/' && p[1] == '/')
			p++;
		else if (p[0] == '/' && p[1] == '.' && (p[2] == '/' ||
		    p[2] == '\0'))
			p += 2;
		else
			out[n++] = *p++;
	}
	out[n] = '\0';
}

/* "a, b" -> "a\nb" (name constraints are stored newline-separated). */
static char *
list_to_lines(const char *v)
{
	char **items = NULL;
	size_t n = conf_split_list(v ? v : "", &items), len = 1;
	char *out;

	for (size_t i = 0; i < n; i++)
		len += strlen(items[i]) + 1;
	if ((out = calloc(1, len)) != NULL)
		for (size_t i = 0; i < n; i++) {
			if (i)
				strcat(out, "\n");
			strcat(out, items[i]);
		}
	conf_list_free(items, n);
	return out;
}

static int
parse_key_types(const char *v, unsigned *mask, const char *what, char *why,
    size_t whylen)
{
	char **items = NULL;
	size_t n;
	int rc = 0;

	if (v == NULL) {
		*mask = (1u << PUBKEY_EC_P256) | (1u << PUBKEY_EC_P384) |
		    (1u << PUBKEY_RSA_2048) | (1u << PUBKEY_RSA_3072) |
		    (1u << PUBKEY_RSA_4096) | (1u << PUBKEY_RSA_OTHER) |
		    (1u << PUBKEY_ED25519);
		return 0;
	}
	*mask = 0;
	n = conf_split_list(v, &items);
	for (size_t i = 0; i < n; i++) {
		int t = strcmp(items[i], "rsa") == 0 ? PUBKEY_RSA_OTHER :
		    pubkey_type_parse(items[i]);

		if (t == PUBKEY_NONE) {
			sf_why(why, whylen, "%s: unknown key type \"%s\"", what,
			    items[i]);
			rc = SF_ECONFIG;
			break;
		}
		*mask |= 1u << t;
		if (t == PUBKEY_RSA_OTHER)  /* "rsa": any allowed RSA size */
			*mask |= (1u << PUBKEY_RSA_2048) |
			    (1u << PUBKEY_RSA_3072) | (1u << PUBKEY_RSA_4096);
	}
	conf_list_free(items, n);
	if (rc == 0 && *mask == 0) {
		sf_why(why, whylen, "%s: no key type allowed", what);
		rc = SF_ECONFIG;
	}
	return rc;
}

static int
load_product(const conf *cf, const char *sec, signer_conf *c,
    product_conf *p, char *why, size_t whylen)
{
	char what[160];
	int rc;

	memset(p, 0, sizeof *p);
	p->id = strdup(sec + strlen("product."));
	if (p->id == NULL)
		return SF_ENOMEM;
	if (!sf_name_valid(p->id)) {
		sf_why(why, whylen, "%s: [%s]: a product line id is 1-32 of"
		    " [a-z0-9-]", c->path, sec);
		return SF_ECONFIG;
	}
	if ((rc = conf_check_keys(cf, sec, PRODUCT_KEYS, why, whylen)) != 0)
		return rc;
	p->display_name = sf_strdup(conf_get_str(cf, sec, "display_name", p->id));
	p->ca_subject = sf_strdup(conf_get_str(cf, sec, "subject",
	    "/C=${country}/O=${organization}/CN=${display_name}"));
	p->device_subject = sf_strdup(conf_get_str(cf, sec, "device_subject",
	    "/O=${organization}/OU=${display_name}/CN=${device_id}"));
	p->permitted = list_to_lines(conf_get(cf, sec, "permitted"));
	p->excluded = list_to_lines(conf_get(cf, sec, "excluded"));
	if (!p->display_name || !p->ca_subject || !p->device_subject ||
	    !p->permitted || !p->excluded)
		return SF_ENOMEM;
	snprintf(what, sizeof what, "%s: [%s] device_key_types", c->path, sec);
	if ((rc = get_key_type(cf, c->path, sec, "key_type", PUBKEY_EC_P256,
	    &p->ca_key_type, why, whylen)) != 0 ||
	    (rc = get_int(cf, sec, "validity_days", 3650, 1, 36500,
	    &p->ca_validity_days, why, whylen)) != 0 ||
	    (rc = get_int(cf, sec, "path_len", 1, -1, 16, &p->ca_path_len,
	    why, whylen)) != 0 ||
	    (rc = get_int(cf, sec, "device_validity_days", 365, 1, 36500,
	    &p->device_validity_days, why, whylen)) != 0 ||
	    (rc = parse_key_types(conf_get(cf, sec, "device_key_types"),
	    &p->device_key_types, what, why, whylen)) != 0)
		return rc;
	return 0;
}

/* [ocsp]: who signs the responses and how long each one lasts. */
static int
load_ocsp(const conf *cf, signer_conf *c, char *why, size_t whylen)
{
	const char *v = conf_get_str(cf, "ocsp", "responder", "ca");
	int rc;

	if (strcmp(v, "ca") != 0 && strcmp(v, "delegated") != 0) {
		sf_why(why, whylen, "%s: [ocsp] responder: \"%s\" is neither ca"
		    " nor delegated", c->path, v);
		return SF_ECONFIG;
	}
	c->ocsp_delegated = strcmp(v, "delegated") == 0;
	/* At most 10 days, as the CA/Browser Forum allows. */
	if ((rc = get_int(cf, "ocsp", "validity_seconds", 4 * 86400, 60,
	    10 * 86400, &c->ocsp_validity, why, whylen)) != 0 ||
	    (rc = get_int(cf, "ocsp", "refresh_seconds", c->ocsp_validity / 2,
	    1, c->ocsp_validity - 1, &c->ocsp_refresh, why, whylen)) != 0 ||
	    (rc = get_int(cf, "ocsp", "interval_seconds", 60, 1, 3600,
	    &c->ocsp_interval, why, whylen)) != 0 ||
	    (rc = get_int(cf, "ocsp", "responder_validity_days", 30, 3, 397,
	    &c->ocsp_responder_days, why, whylen)) != 0 ||
	    (rc = get_int(cf, "ocsp", "responder_renew_days",
	    c->ocsp_responder_days / 3, 1, c->ocsp_responder_days - 1,
	    &c->ocsp_responder_renew_days, why, whylen)) != 0 ||
	    (rc = get_int(cf, "ocsp", "on_demand_per_second", 100, 1, 100000,
	    &c->ocsp_on_demand, why, whylen)) != 0)
		return rc;
	/* A responder must outlive every response it signs. */
	if ((int64_t)c->ocsp_responder_renew_days * 86400 < c->ocsp_validity) {
		sf_why(why, whylen, "%s: [ocsp] responder_renew_days (%d) must"
		    " cover validity_seconds (%d): a responder certificate"
		    " must outlive the responses it signs", c->path,
		    c->ocsp_responder_renew_days, c->ocsp_validity);
		return SF_ECONFIG;
	}
	return 0;
}

/* [crl]: how long a CRL is valid and when the next one is made. */
static int
load_crl(const conf *cf, signer_conf *c, char *why, size_t whylen)
{
	int rc;

	if ((rc = get_int(cf, "crl", "validity_seconds", 7 * 86400, 60,
	    366 * 86400, &c->crl_validity_s, why, whylen)) != 0 ||
	    (rc = get_int(cf, "crl", "refresh_before_seconds", 3 * 86400, 0,
	    366 * 86400, &c->crl_refresh_s, why, whylen)) != 0 ||
	    (rc = get_int(cf, "crl", "check_seconds", 60, 1, 3600,
	    &c->crl_check_s, why, whylen)) != 0)
		return rc;
	if (c->crl_refresh_s >= c->crl_validity_s) {
		sf_why(why, whylen, "%s: [crl] refresh_before_seconds (%d) must"
		    " be less than validity_seconds (%d)", c->path,
		    c->crl_refresh_s, c->crl_validity_s);
		return SF_ECONFIG;
	}
	return 0;
}

/* [audit]: the checkpoints' key and how often one is made. */
static int
load_audit(const conf *cf, signer_conf *c, char *why, size_t whylen)
{
	const char *v = conf_get_str(cf, "audit", "key_label",
	    "audit-checkpoint");
	size_t n = strlen(v);

	if (n == 0 || n > 64) {
		sf_why(why, whylen, "%s: [audit] key_label must be 1-64"
		    " characters", c->path);
		return SF_ECONFIG;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x21 || v[i] == 0x7f) {
			sf_why(why, whylen, "%s: [audit] key_label: no spaces"
			    " or control characters", c->path);
			return SF_ECONFIG;
		}
	if ((c->audit_key_label = strdup(v)) == NULL)
		return SF_ENOMEM;
	return get_int(cf, "audit", "checkpoint_seconds", 3600, 0,
	    30 * 86400, &c->audit_checkpoint_s, why, whylen);
}

static void
product_fini(product_conf *p)
{
	free(p->id);
	free(p->display_name);
	free(p->ca_subject);
	free(p->permitted);
	free(p->excluded);
	free(p->device_subject);
}

int
signer_conf_load(const char *path, signer_conf **out, char *why,
    size_t whylen)
{
	static const char *const known[] = { "signer", "token", "limits",
	    "defaults", "root", "issuing", "ocsp", "crl", "audit", NULL };
	conf *cf = NULL;
	signer_conf *c = NULL;
	const char **secs = NULL;
	size_t nsecs;
	long long ll;
	char ipath[1024], apath[1024];
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
	/* Every section must be one we know. */
	nsecs = conf_sections(cf, "", &secs);
	for (size_t i = 0; i < nsecs; i++) {
		int ok = strncmp(secs[i], "product.", 8) == 0 ||
		    secs[i][0] == '\0';

		for (size_t k = 0; !ok && known[k]; k++)
			ok = strcmp(secs[i], known[k]) == 0;
		if (!ok) {
			sf_why(why, whylen, "%s: unknown section [%s]", path,
			    secs[i]);
			rc = SF_ECONFIG;
			goto out;
		}
	}
	{
		static const char *const none[] = { NULL };

		/* No keys before the first section. */
		if ((rc = conf_check_keys(cf, "", none, why, whylen)) != 0)
			goto out;
	}
	if ((rc = conf_check_keys(cf, "signer", SIGNER_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "token", TOKEN_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "limits", LIMIT_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "defaults", DEFAULT_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "root", ROOT_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "issuing", ISSUING_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "crl", CRL_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "ocsp", OCSP_KEYS, why, whylen)) ||
	    (rc = conf_check_keys(cf, "audit", AUDIT_KEYS, why, whylen)) ||
	    (rc = load_audit(cf, c, why, whylen)) ||
	    (rc = load_ocsp(cf, c, why, whylen)))
		goto out;

	rc = SF_ECONFIG;
	if ((v = conf_get(cf, "signer", "journal")) == NULL) {
		sf_why(why, whylen, "%s: [signer] journal is required", path);
		goto out;
	}
	c->journal = strdup(v);
	if ((v = conf_get(cf, "signer", "issuance_socket")) == NULL ||
	    strncmp(v, "unix:/", 6) != 0) {
		sf_why(why, whylen, "%s: [signer] issuance_socket = "
		    "unix:/absolute/path is required", path);
		goto out;
	}
	c->issuance_socket = strdup(v);
	if ((v = conf_get(cf, "signer", "admin_socket")) == NULL ||
	    strncmp(v, "unix:/", 6) != 0) {
		sf_why(why, whylen, "%s: [signer] admin_socket = "
		    "unix:/absolute/path is required", path);
		goto out;
	}
	c->admin_socket = strdup(v);
	socket_path(c->issuance_socket, ipath, sizeof ipath);
	socket_path(c->admin_socket, apath, sizeof apath);
	if (strcmp(ipath, apath) == 0) {
		sf_why(why, whylen, "%s: [signer] the issuance and admin"
		    " sockets must differ", path);
		goto out;
	}
	/*
	 * Each socket sits in a directory whose group admits only its peer
	 * (DESIGN.md), so the two cannot share one.
	 */
	{
		char *is = strrchr(ipath, '/'), *as = strrchr(apath, '/');

		if (is && as && is - ipath == as - apath &&
		    strncmp(ipath, apath, (size_t)(is - ipath)) == 0) {
			sf_why(why, whylen, "%s: [signer] the issuance and"
			    " admin sockets must be in different directories"
			    " (each directory admits only its peer)", path);
			goto out;
		}
	}
	if ((rc = conf_get_uids(cf, "signer", "issuance_uids",
	    c->issuance_uids, CONFIG_MAX_UIDS, &c->n_issuance_uids, why,
	    whylen)) != 0 ||
	    (rc = conf_get_uids(cf, "signer", "admin_uids", c->admin_uids,
	    CONFIG_MAX_UIDS, &c->n_admin_uids, why, whylen)) != 0 ||
	    (rc = conf_get_gid(cf, "signer", "issuance_group",
	    &c->issuance_gid, why, whylen)) != 0 ||
	    (rc = conf_get_gid(cf, "signer", "admin_group", &c->admin_gid,
	    why, whylen)) != 0)
		goto out;
	c->user = sf_strdup(conf_get(cf, "signer", "user"));
	if ((rc = get_int(cf, "signer", "workers", 4, 1, 64, &c->workers, why,
	    whylen)) != 0 ||
	    (rc = conf_get_log_level(cf, "signer", "log_level", LOG_LEVEL_INFO,
	    &c->log_level, why, whylen)) != 0 ||
	    (rc = get_int(cf, "signer", "change_delay_ms", 1000, 1, 60000,
	    &c->maint_delay_ms, why, whylen)) != 0)
		goto out;
	if ((rc = conf_get_int(cf, "signer", "csr_max_bytes", 16384, 256,
	    1 << 20, &ll, why, whylen)) != 0)
		goto out;
	c->csr_max = (size_t)ll;

	rc = SF_ECONFIG;
	if ((v = conf_get(cf, "token", "module")) == NULL) {
		sf_why(why, whylen, "%s: [token] module (path of the PKCS#11"
		    " module) is required", path);
		goto out;
	}
	c->token_module = strdup(v);
	if ((v = conf_get(cf, "token", "uri")) == NULL ||
	    strncmp(v, "pkcs11:", 7) != 0) {
		sf_why(why, whylen, "%s: [token] uri = pkcs11:token=... is"
		    " required", path);
		goto out;
	}
	c->token_uri = strdup(v);
	c->token_pin_file = sf_strdup(conf_get(cf, "token", "pin_file"));
	if (c->token_pin_file == NULL && strstr(c->token_uri, "pin-source=") ==
	    NULL) {
		sf_why(why, whylen, "%s: [token] pin_file is required (or a"
		    " pin-source in the uri)", path);
		goto out;
	}
	if ((rc = get_int(cf, "token", "sessions", 4, 1, 64,
	    &c->token_sessions, why, whylen)) != 0)
		goto out;
	v = conf_get_str(cf, "token", "bad_key", "unavailable");
	if (strcmp(v, "unavailable") != 0 && strcmp(v, "refuse") != 0) {
		sf_why(why, whylen, "%s: [token] bad_key: \"%s\" is neither"
		    " unavailable nor refuse", path, v);
		rc = SF_ECONFIG;
		goto out;
	}
	c->bad_key_refuse = strcmp(v, "refuse") == 0;

	if ((rc = get_int(cf, "limits", "device_certs_per_window", 10, 1,
	    1000000, &c->device_max, why, whylen)) != 0 ||
	    (rc = get_int(cf, "limits", "device_window_seconds", 3600, 1,
	    86400 * 365, &c->device_window, why, whylen)) != 0 ||
	    (rc = get_int(cf, "limits", "global_burst", 2000, 1, 10000000,
	    &c->global_burst, why, whylen)) != 0 ||
	    (rc = get_int(cf, "limits", "ca_min_remaining_days", 1, 0, 3650,
	    &c->ca_min_remaining_days, why, whylen)) != 0 ||
	    (rc = get_int(cf, "limits", "device_live_certificates", 2, 1,
	    1000000, &c->device_live, why, whylen)) != 0 ||
	    (rc = get_int(cf, "limits", "ack_timeout_seconds", 72 * 3600, 1,
	    86400 * 90, &c->ack_timeout, why, whylen)) != 0)
		goto out;
	if ((rc = conf_get_int(cf, "limits", "global_per_second", 1000, 1,
	    10000000, &ll, why, whylen)) != 0)
		goto out;
	c->global_rate = (double)ll;

	c->organization = sf_strdup(conf_get_str(cf, "defaults", "organization",
	    "secretfree"));
	c->country = sf_strdup(conf_get_str(cf, "defaults", "country", "US"));
	c->domain = sf_strdup(conf_get_str(cf, "defaults", "domain",
	    "example.net"));
	c->crl_url = sf_strdup(conf_get_str(cf, "defaults", "crl_url",
	    "http://crl.${domain}/${name}.crl"));
	c->ocsp_url = sf_strdup(conf_get_str(cf, "defaults", "ocsp_url",
	    "http://ocsp.${domain}/${name}"));
	c->ca_issuers_url = sf_strdup(conf_get_str(cf, "defaults",
	    "ca_issuers_url", "http://ca.${domain}/${name}.crt"));
	if ((rc = get_int(cf, "defaults", "server_validity_days", 397, 1,
	    3650, &c->server_validity_days, why, whylen)) != 0 ||
	    (rc = get_int(cf, "defaults", "crl_shards", 1, 1, CONFIG_MAX_SHARDS,
	    &c->crl_shards, why, whylen)) != 0)
		goto out;
	if ((rc = load_crl(cf, c, why, whylen)) != 0)
		goto out;

	c->root_subject = sf_strdup(conf_get_str(cf, "root", "subject",
	    "/C=${country}/O=${organization}/CN=${organization} Root CA"));
	if ((rc = get_key_type(cf, path, "root", "key_type", PUBKEY_EC_P384,
	    &c->root_key_type, why, whylen)) != 0 ||
	    (rc = get_int(cf, "root", "validity_days", 7300, 1, 36500,
	    &c->root_validity_days, why, whylen)) != 0 ||
	    (rc = get_int(cf, "root", "path_len", -1, -1, 16,
	    &c->root_path_len, why, whylen)) != 0)
		goto out;
	c->issuing_subject = sf_strdup(conf_get_str(cf, "issuing", "subject",
	    "/C=${country}/O=${organization}/OU=${display_name} ${region}"
	    "/CN=${region}.${product_line}.${domain}"));
	if ((rc = get_key_type(cf, path, "issuing", "key_type", PUBKEY_EC_P256,
	    &c->issuing_key_type, why, whylen)) != 0 ||
	    (rc = get_int(cf, "issuing", "validity_days", 1825, 1, 36500,
	    &c->issuing_validity_days, why, whylen)) != 0)
		goto out;

	free(secs);
	c->nproducts = conf_sections(cf, "product.", &secs);
	if (c->nproducts && (c->products = calloc(c->nproducts,
	    sizeof *c->products)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->nproducts; i++)
		if ((rc = load_product(cf, secs[i], c, &c->products[i], why,
		    whylen)) != 0)
			goto out;
	if (!c->organization || !c->country || !c->domain || !c->crl_url ||
	    !c->ocsp_url || !c->ca_issuers_url || !c->root_subject ||
	    !c->issuing_subject || !c->journal || !c->issuance_socket ||
	    !c->admin_socket || !c->token_module || !c->token_uri) {
		rc = SF_ENOMEM;
		goto out;
	}
	*out = c;
	c = NULL;  /* transferred */
	rc = 0;
out:
	free(secs);
	signer_conf_free(c);
	conf_free(cf);
	return rc;
}

void
signer_conf_free(signer_conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; c->products && i < c->nproducts; i++)
		product_fini(&c->products[i]);
	free(c->products);
	free(c->path);
	free(c->journal);
	free(c->issuance_socket);
	free(c->admin_socket);
	free(c->user);
	free(c->token_module);
	free(c->token_uri);
	free(c->token_pin_file);
	free(c->organization);
	free(c->country);
	free(c->domain);
	free(c->crl_url);
	free(c->ocsp_url);
	free(c->ca_issuers_url);
	free(c->audit_key_label);
	free(c->root_subject);
	free(c->issuing_subject);
	free(c);
}

const product_conf *
signer_conf_product(const signer_conf *c, const char *id)
{
	for (size_t i = 0; i < c->nproducts; i++)
		if (strcmp(c->products[i].id, id) == 0)
			return &c->products[i];
	return NULL;
}

char *
signer_conf_expand(const signer_conf *c, const char *tmpl,
    const char *name, const char *product_line, const char *region,
    const char *generation, const char *device_id, char *why, size_t whylen)
{
	return signer_conf_expand_display(c, tmpl, name, product_line, NULL,
	    region, generation, device_id, why, whylen);
}

char *
signer_conf_expand_display(const signer_conf *c, const char *tmpl,
    const char *name, const char *product_line, const char *display_name,
    const char *region, const char *generation, const char *device_id,
    char *why, size_t whylen)
{
	const product_conf *p = product_line && *product_line ?
	    signer_conf_product(c, product_line) : NULL;
	const char *dn = display_name && *display_name ? display_name :
	    p ? p->display_name : (product_line ? product_line : "");
	const char *vars[] = {
		"name", name ? name : "",
		"product_line", product_line ? product_line : "",
		"display_name", dn,
		"region", region ? region : "",
		"generation", generation ? generation : "",
		"organization", c->organization,
		"country", c->country,
		"domain", c->domain,
		"device_id", device_id ? device_id : "",
		NULL,
	};

	return conf_expand(tmpl, vars, why, whylen);
}
