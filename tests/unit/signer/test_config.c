/*
 * Unit tests of signer/config.c with files written to a temporary
 * directory: a minimal file and the defaults signer/README.md documents;
 * a file setting every key; the README's own example (users and groups
 * swapped for ours); each refusal (unknown section or key, a key before
 * any section, a bad key type, an integer out of range, a missing
 * required key, equal sockets, ...) as SF_ECONFIG with a message naming
 * the problem; product sections and device_key_types; signer_conf_expand.
 *
 * Environment: SF_SOURCE_ROOT (optional: the tree whose README is read).
 */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "util.h"
#include "../../tap.h"

static char tmpdir[64];

static const char *MINIMAL =
    "[signer]\n"
    "journal = /var/lib/sf/journal.db\n"
    "issuance_socket = unix:/run/sf/issuance/signer.sock\n"
    "admin_socket = unix:/run/sf/admin/signer.sock\n"
    "[token]\n"
    "module = /usr/lib/softhsm/libsofthsm2.so\n"
    "uri = pkcs11:token=secretfree\n"
    "pin_file = /etc/sf/user.pin\n";

static char *
write_conf(const char *name, const char *text)
{
	char *path = sf_aprintf("%s/%s", tmpdir, name);

	if (path == NULL || sf_write_file(path, text, strlen(text), 0600) != 0) {
		free(path);
		return NULL;
	}
	return path;
}

/* Load text as a file; the path is kept in *pathp if asked for. */
static int
load(const char *text, signer_conf **c, char *why, size_t whylen,
    char **pathp)
{
	static int seq;
	char name[32];
	char *path;
	int rc;

	snprintf(name, sizeof name, "c%03d.conf", seq++);
	why[0] = '\0';
	if ((path = write_conf(name, text)) == NULL) {
		*c = NULL;
		return SF_EIO;
	}
	/* *c is left as the caller set it: signer_conf_load must clear it. */
	rc = signer_conf_load(path, c, why, whylen);
	if (pathp)
		*pathp = path;
	else
		free(path);
	return rc;
}

/* MINIMAL with text appended (later sections) or a [signer] key added. */
static char *
minimal_plus(const char *signer_extra, const char *tail)
{
	return sf_aprintf("[signer]\n%s"
	    "journal = /var/lib/sf/journal.db\n"
	    "issuance_socket = unix:/run/sf/issuance/signer.sock\n"
	    "admin_socket = unix:/run/sf/admin/signer.sock\n"
	    "[token]\n"
	    "module = /usr/lib/softhsm/libsofthsm2.so\n"
	    "uri = pkcs11:token=secretfree\n"
	    "pin_file = /etc/sf/user.pin\n%s",
	    signer_extra ? signer_extra : "", tail ? tail : "");
}

static const unsigned ALL_TYPES = (1u << PUBKEY_EC_P256) |
    (1u << PUBKEY_EC_P384) | (1u << PUBKEY_RSA_2048) |
    (1u << PUBKEY_RSA_3072) | (1u << PUBKEY_RSA_4096) |
    (1u << PUBKEY_RSA_OTHER) | (1u << PUBKEY_ED25519);

static void
test_minimal(void)
{
	char why[512];
	signer_conf *c = NULL;
	char *path = NULL;
	int rc;

	rc = load(MINIMAL, &c, why, sizeof why, &path);
	is_int(rc, 0, "a minimal file loads (%s)", why);
	if (c == NULL) {
		free(path);
		return;
	}
	is_str(c->path, path, "path kept");
	is_str(c->journal, "/var/lib/sf/journal.db", "journal");
	is_str(c->issuance_socket, "unix:/run/sf/issuance/signer.sock",
	    "issuance socket");
	is_str(c->admin_socket, "unix:/run/sf/admin/signer.sock",
	    "admin socket");
	is_int(c->n_issuance_uids, 0, "issuance_uids default: none listed"
	    " (the signer's own uid)");
	is_int(c->n_admin_uids, 0, "admin_uids default: none listed");
	ok(c->issuance_gid == (gid_t)-1, "issuance_group default: not set");
	ok(c->admin_gid == (gid_t)-1, "admin_group default: not set");
	ok(c->user == NULL, "user default: none");
	is_int(c->workers, 4, "workers default 4");
	is_int(c->log_level, LOG_LEVEL_INFO, "log_level default info");
	is_int(c->csr_max, 16384, "csr_max_bytes default 16384");
	is_str(c->token_module, "/usr/lib/softhsm/libsofthsm2.so", "module");
	is_str(c->token_uri, "pkcs11:token=secretfree", "uri");
	is_str(c->token_pin_file, "/etc/sf/user.pin", "pin_file");
	is_int(c->token_sessions, 4, "sessions default 4");
	is_int(c->device_max, 10, "device_certs_per_window default 10");
	is_int(c->device_window, 3600, "device_window_seconds default 3600");
	ok(c->global_rate == 1000.0, "global_per_second default 1000");
	is_int(c->global_burst, 2000, "global_burst default 2000");
	is_int(c->ca_min_remaining_days, 1, "ca_min_remaining_days default 1");
	is_str(c->organization, "secretfree", "organization default");
	is_str(c->country, "US", "country default");
	is_str(c->domain, "example.net", "domain default");
	is_str(c->crl_url, "http://crl.${domain}/${name}.crl",
	    "crl_url default template");
	is_str(c->ocsp_url, "http://ocsp.${domain}/${name}",
	    "ocsp_url default template");
	is_str(c->ca_issuers_url, "http://ca.${domain}/${name}.crt",
	    "ca_issuers_url default template");
	is_int(c->server_validity_days, 397, "server_validity_days default 397");
	is_int(c->crl_shards, 1, "crl_shards default 1");
	is_int(c->crl_validity_s, 7 * 86400, "[crl] validity default 7 days");
	is_int(c->crl_refresh_s, 3 * 86400, "[crl] refresh_before default 3"
	    " days");
	is_int(c->crl_check_s, 60, "[crl] check_seconds default 60");
	is_str(c->root_subject,
	    "/C=${country}/O=${organization}/CN=${organization} Root CA",
	    "root subject default");
	is_int(c->root_key_type, PUBKEY_EC_P384, "root key type default"
	    " ec-p384");
	is_int(c->root_validity_days, 7300, "root validity default 7300");
	is_int(c->root_path_len, -1, "root path_len default -1");
	is_str(c->issuing_subject, "/C=${country}/O=${organization}/"
	    "OU=${display_name} ${region}/CN=${region}.${product_line}."
	    "${domain}", "issuing subject default");
	is_int(c->issuing_key_type, PUBKEY_EC_P256, "issuing key type default"
	    " ec-p256");
	is_int(c->issuing_validity_days, 1825, "issuing validity default"
	    " 1825");
	is_int(c->ocsp_delegated, 0, "[ocsp] responder default: ca");
	is_int(c->bad_key_refuse, 0, "[token] bad_key default: unavailable");
	is_int(c->ocsp_validity, 4 * 86400, "[ocsp] validity_seconds default"
	    " 4 days");
	is_int(c->ocsp_refresh, 2 * 86400, "[ocsp] refresh_seconds default:"
	    " half the validity");
	is_int(c->ocsp_interval, 60, "[ocsp] interval_seconds default 60");
	is_int(c->ocsp_responder_days, 30, "[ocsp] responder_validity_days"
	    " default 30");
	is_int(c->ocsp_responder_renew_days, 10, "[ocsp] responder_renew_days"
	    " default: a third");
	is_int(c->ocsp_on_demand, 100, "[ocsp] on_demand_per_second default"
	    " 100");
	is_int(c->nproducts, 0, "no product lines");
	ok(signer_conf_product(c, "widgiot") == NULL,
	    "signer_conf_product: none");
	signer_conf_free(c);
	signer_conf_free(NULL);
	ok(1, "signer_conf_free(NULL) is harmless");
	free(path);
}

/* A file that sets every key, none to its default (malloc'd). */
static char *
every_key_file(void)
{
	struct passwd *pw = getpwuid(0);
	struct group *gr = getgrgid(0);

	return sf_aprintf(
	    "# every key, none at its default\n"
	    "[signer]\n"
	    "journal = /srv/sf/j.db\n"
	    "issuance_socket = unix:/srv/sf/i/s.sock\n"
	    "admin_socket = unix:/srv/sf/a/s.sock\n"
	    "issuance_uids = 1001, %s, 1002\n"
	    "admin_uids = 2001\n"
	    "issuance_group = 3001\n"
	    "admin_group = %s\n"
	    "user = sfsigner\n"
	    "workers = 16\n"
	    "log_level = debug\n"
	    "csr_max_bytes = 4096\n"
	    "[token]\n"
	    "module = /opt/hsm/lib.so\n"
	    "uri = pkcs11:token=other;manufacturer=x\n"
	    "pin_file = /srv/sf/pin\n"
	    "sessions = 8\n"
	    "bad_key = refuse\n"
	    "[limits]\n"
	    "device_certs_per_window = 3\n"
	    "device_window_seconds = 60\n"
	    "global_per_second = 50\n"
	    "global_burst = 75\n"
	    "ca_min_remaining_days = 30\n"
	    "[defaults]\n"
	    "organization = Automatra\n"
	    "country = DE\n"
	    "domain = automatra.net\n"
	    "crl_url = http://c/${name}\n"
	    "ocsp_url = http://o/${name}\n"
	    "ca_issuers_url = http://i/${name}\n"
	    "server_validity_days = 90\n"
	    "crl_shards = 8\n"
	    "[crl]\n"
	    "validity_seconds = 7200\n"
	    "refresh_before_seconds = 3600\n"
	    "check_seconds = 30\n"
	    "[root]\n"
	    "subject = /CN=R\n"
	    "key_type = rsa-4096\n"
	    "validity_days = 10000\n"
	    "path_len = 2\n"
	    "[issuing]\n"
	    "subject = /CN=I ${region}\n"
	    "key_type = ed25519\n"
	    "validity_days = 700\n"
	    "[ocsp]\n"
	    "responder = delegated\n"
	    "validity_seconds = 86400\n"
	    "refresh_seconds = 3600\n"
	    "interval_seconds = 5\n"
	    "responder_validity_days = 7\n"
	    "responder_renew_days = 2\n"
	    "on_demand_per_second = 9\n"
	    "[product.widgiot]\n"
	    "display_name = \"WidgIoT Pro\"\n"
	    "subject = /CN=P\n"
	    "key_type = rsa-3072\n"
	    "validity_days = 3000\n"
	    "path_len = 0\n"
	    "permitted = DNS:.a.example, IP:10.0.0.0/255.0.0.0\n"
	    "excluded = DNS:.b.example\n"
	    "device_subject = /O=X/CN=${device_id}\n"
	    "device_validity_days = 30\n"
	    "device_key_types = ec-p384, rsa-2048\n",
	    pw ? pw->pw_name : "root", gr ? gr->gr_name : "0");
}

/* The [product.widgiot] section of every_key_file(). */
static void
check_every_product_key(const product_conf *p)
{
	is_str(p->id, "widgiot", "product id");
	is_str(p->display_name, "WidgIoT Pro", "display_name (quotes"
	    " removed)");
	is_str(p->ca_subject, "/CN=P", "product subject");
	is_int(p->ca_key_type, PUBKEY_RSA_3072, "product key_type");
	is_int(p->ca_validity_days, 3000, "product validity_days");
	is_int(p->ca_path_len, 0, "product path_len");
	is_str(p->permitted, "DNS:.a.example\nIP:10.0.0.0/255.0.0.0",
	    "permitted: a list becomes lines");
	is_str(p->excluded, "DNS:.b.example", "excluded");
	is_str(p->device_subject, "/O=X/CN=${device_id}", "device_subject");
	is_int(p->device_validity_days, 30, "device_validity_days");
	is_int(p->device_key_types, (1u << PUBKEY_EC_P384) |
	    (1u << PUBKEY_RSA_2048), "device_key_types: exactly those");
}

static void
test_every_key(void)
{
	char why[512], *text = every_key_file();
	signer_conf *c = NULL;
	const product_conf *p;
	int rc;

	rc = text ? load(text, &c, why, sizeof why, NULL) : SF_ENOMEM;
	free(text);
	is_int(rc, 0, "a file setting every key loads (%s)", why);
	if (c == NULL)
		return;
	is_str(c->journal, "/srv/sf/j.db", "journal");
	is_str(c->issuance_socket, "unix:/srv/sf/i/s.sock", "issuance_socket");
	is_str(c->admin_socket, "unix:/srv/sf/a/s.sock", "admin_socket");
	is_int(c->n_issuance_uids, 3, "issuance_uids: three");
	is_int(c->issuance_uids[0], 1001, "issuance_uids[0]: a number");
	is_int(c->issuance_uids[1], 0, "issuance_uids[1]: a user name (root)");
	is_int(c->issuance_uids[2], 1002, "issuance_uids[2]: a number");
	is_int(c->n_admin_uids, 1, "admin_uids: one");
	is_int(c->admin_uids[0], 2001, "admin_uids[0]");
	is_int(c->issuance_gid, 3001, "issuance_group by number");
	is_int(c->admin_gid, 0, "admin_group by name");
	is_str(c->user, "sfsigner", "user");
	is_int(c->workers, 16, "workers");
	is_int(c->log_level, LOG_LEVEL_DEBUG, "log_level debug");
	is_int(c->csr_max, 4096, "csr_max_bytes");
	is_str(c->token_module, "/opt/hsm/lib.so", "module");
	is_str(c->token_uri, "pkcs11:token=other;manufacturer=x", "uri");
	is_str(c->token_pin_file, "/srv/sf/pin", "pin_file");
	is_int(c->token_sessions, 8, "sessions");
	is_int(c->device_max, 3, "device_certs_per_window");
	is_int(c->device_window, 60, "device_window_seconds");
	ok(c->global_rate == 50.0, "global_per_second");
	is_int(c->global_burst, 75, "global_burst");
	is_int(c->ca_min_remaining_days, 30, "ca_min_remaining_days");
	is_str(c->organization, "Automatra", "organization");
	is_str(c->country, "DE", "country");
	is_str(c->domain, "automatra.net", "domain");
	is_str(c->crl_url, "http://c/${name}", "crl_url");
	is_str(c->ocsp_url, "http://o/${name}", "ocsp_url");
	is_str(c->ca_issuers_url, "http://i/${name}", "ca_issuers_url");
	is_int(c->server_validity_days, 90, "server_validity_days");
	is_int(c->crl_shards, 8, "crl_shards");
	is_int(c->crl_validity_s, 7200, "[crl] validity_seconds");
	is_int(c->crl_refresh_s, 3600, "[crl] refresh_before_seconds");
	is_int(c->crl_check_s, 30, "[crl] check_seconds");
	is_str(c->root_subject, "/CN=R", "root subject");
	is_int(c->root_key_type, PUBKEY_RSA_4096, "root key_type");
	is_int(c->root_validity_days, 10000, "root validity_days");
	is_int(c->root_path_len, 2, "root path_len");
	is_str(c->issuing_subject, "/CN=I ${region}", "issuing subject");
	is_int(c->issuing_key_type, PUBKEY_ED25519, "issuing key_type");
	is_int(c->issuing_validity_days, 700, "issuing validity_days");
	is_int(c->ocsp_delegated, 1, "[ocsp] responder = delegated");
	is_int(c->bad_key_refuse, 1, "[token] bad_key = refuse");
	is_int(c->ocsp_validity, 86400, "[ocsp] validity_seconds");
	is_int(c->ocsp_refresh, 3600, "[ocsp] refresh_seconds");
	is_int(c->ocsp_interval, 5, "[ocsp] interval_seconds");
	is_int(c->ocsp_responder_days, 7, "[ocsp] responder_validity_days");
	is_int(c->ocsp_responder_renew_days, 2, "[ocsp] responder_renew_days");
	is_int(c->ocsp_on_demand, 9, "[ocsp] on_demand_per_second");
	is_int(c->nproducts, 1, "one product line");
	p = signer_conf_product(c, "widgiot");
	ok(p != NULL, "signer_conf_product finds widgiot");
	if (p)
		check_every_product_key(p);
	signer_conf_free(c);
}

/* The example in signer/README.md, with our users and groups. */
static void
test_readme(void)
{
	const char *root = getenv("SF_SOURCE_ROOT");
	char *path, *text = NULL, *b, *e, why[512];
	uint8_t *readme = NULL;
	size_t len;
	signer_conf *c = NULL;
	const product_conf *p;
	char uid[32], gid[32];
	int rc;

	if (root == NULL) {
		tap_skip("SF_SOURCE_ROOT not set: README example not checked");
		return;
	}
	path = sf_aprintf("%s/signer/README.md", root);
	rc = path ? sf_read_file(path, 1 << 20, &readme, &len) : SF_EIO;
	free(path);
	ok(rc == 0, "read signer/README.md");
	if (rc != 0)
		return;
	b = strstr((char *)readme, "```ini\n");
	e = b ? strstr(b + 7, "\n```") : NULL;
	ok(b != NULL, "it has an ```ini block");
	ok(e != NULL, "  and the block ends");
	if (b && e) {
		/* Line by line: the sockets' users and groups become ours. */
		size_t cap = (size_t)(e - b) + 256, n = 0;
		char *line, *save = NULL;

		snprintf(uid, sizeof uid, "%u", (unsigned)getuid());
		snprintf(gid, sizeof gid, "%u", (unsigned)getgid());
		*e = '\0';
		text = calloc(1, cap);
		for (line = strtok_r(b + 7, "\n", &save); text && line;
		    line = strtok_r(NULL, "\n", &save)) {
			const char *out = line;
			char buf[128];

			if (strncmp(line, "issuance_uids", 13) == 0 ||
			    strncmp(line, "admin_uids", 10) == 0) {
				snprintf(buf, sizeof buf, "%.*s= %s",
				    (int)strcspn(line, "="), line, uid);
				out = buf;
			} else if (strncmp(line, "issuance_group", 14) == 0 ||
			    strncmp(line, "admin_group", 11) == 0) {
				snprintf(buf, sizeof buf, "%.*s= %s",
				    (int)strcspn(line, "="), line, gid);
				out = buf;
			}
			n += (size_t)snprintf(text + n, cap - n, "%s\n", out);
		}
	}
	free(readme);
	if (text == NULL)
		return;
	rc = load(text, &c, why, sizeof why, NULL);
	free(text);
	is_int(rc, 0, "the README's example loads (%s)", why);
	if (c == NULL)
		return;
	is_str(c->journal, "/var/lib/secretfree/signer/journal.db",
	    "README: journal (no comment in the value)");
	is_int(c->n_issuance_uids, 1, "README: one issuance_uid");
	is_int(c->issuance_uids[0], getuid(), "README: issuance_uids[0]");
	is_int(c->issuance_gid, getgid(), "README: issuance_group");
	is_str(c->user, "secretfree-signer", "README: user");
	is_int(c->workers, 4, "README: workers");
	is_int(c->csr_max, 16384, "README: csr_max_bytes");
	is_str(c->token_pin_file, "/etc/secretfree/user.pin", "README: pin_file");
	is_int(c->token_sessions, 4, "README: sessions");
	is_int(c->device_max, 10, "README: device_certs_per_window");
	is_int(c->global_burst, 2000, "README: global_burst");
	is_int(c->ca_min_remaining_days, 1, "README: ca_min_remaining_days");
	is_int(c->crl_shards, 1, "README: crl_shards");
	is_int(c->crl_validity_s, 604800, "README: [crl] validity_seconds");
	is_int(c->crl_refresh_s, 259200, "README: [crl] refresh_before_seconds");
	is_int(c->crl_check_s, 60, "README: [crl] check_seconds");
	is_str(c->organization, "Automatra", "README: organization");
	is_str(c->domain, "automatra.net", "README: domain");
	is_int(c->root_key_type, PUBKEY_EC_P384, "README: root key_type");
	is_int(c->root_path_len, -1, "README: root path_len");
	is_int(c->issuing_validity_days, 1825, "README: issuing validity_days");
	p = signer_conf_product(c, "widgiot");
	ok(p != NULL, "README: the widgiot product line");
	if (p != NULL) {
		is_str(p->display_name, "WidgIoT", "README: widgiot"
		    " display_name");
		is_int(p->ca_path_len, 1, "README: widgiot path_len");
		is_str(p->permitted, "DNS:.widgiot.automatra.net",
		    "README: widgiot permitted");
		is_str(p->excluded, "IP:0.0.0.0/0.0.0.0",
		    "README: widgiot excluded");
		is_int(p->device_key_types, ALL_TYPES,
		    "README: widgiot device_key_types");
	}
	signer_conf_free(c);
}

/* ---- refusals ---- */

struct bad {
	const char *what;
	const char *signer_extra;   /* added to [signer] of MINIMAL */
	const char *tail;           /* appended to MINIMAL */
	const char *text;           /* or the whole file */
	const char *why_has[3];
};

static const struct bad bads[] = {
	{ "unknown section", NULL, "[signerr]\nx = 1\n", NULL,
	    { "unknown section [signerr]" } },
	{ "unknown section [product]", NULL, "[product]\n", NULL,
	    { "unknown section [product]" } },
	{ "unknown key in [signer]", "jurnal = /tmp/x\n", NULL, NULL,
	    { "unknown key \"jurnal\"", "[signer]" } },
	{ "unknown key in [limits]", NULL, "[limits]\nper_device = 3\n", NULL,
	    { "unknown key \"per_device\"", "[limits]" } },
	{ "unknown key in a product section", NULL,
	    "[product.widgiot]\ndevice_keytypes = ec-p256\n", NULL,
	    { "unknown key \"device_keytypes\"", "[product.widgiot]" } },
	{ "issuing key in [root]", NULL, "[root]\nregion = x\n", NULL,
	    { "unknown key \"region\"", "[root]" } },
	{ "key before any section", NULL, NULL,
	    "journal = /x\n[signer]\njournal = /var/lib/sf/journal.db\n",
	    { "unknown key \"journal\"", "top level" } },
	{ "bad root key type", NULL, "[root]\nkey_type = ec-p521\n", NULL,
	    { "[root] key_type", "unknown key type \"ec-p521\"" } },
	{ "\"rsa\" as a CA key type", NULL, "[issuing]\nkey_type = rsa\n",
	    NULL, { "[issuing] key_type", "\"rsa\"" } },
	{ "bad product key type", NULL,
	    "[product.widgiot]\nkey_type = dsa\n", NULL,
	    { "[product.widgiot] key_type", "\"dsa\"" } },
	{ "bad device key type", NULL,
	    "[product.widgiot]\ndevice_key_types = ec-p256, dsa\n", NULL,
	    { "device_key_types", "unknown key type \"dsa\"" } },
	{ "no device key type", NULL,
	    "[product.widgiot]\ndevice_key_types = ,\n", NULL,
	    { "device_key_types", "no key type allowed" } },
	{ "workers 0", "workers = 0\n", NULL, NULL,
	    { "[signer] workers", "out of range", "1..64" } },
	{ "workers 65", "workers = 65\n", NULL, NULL,
	    { "[signer] workers", "out of range" } },
	{ "workers not a number", "workers = four\n", NULL, NULL,
	    { "[signer] workers", "not an integer" } },
	{ "a comment after a value", "workers = 4  # four\n", NULL, NULL,
	    { "[signer] workers", "not an integer" } },
	{ "csr_max_bytes too small", "csr_max_bytes = 100\n", NULL, NULL,
	    { "csr_max_bytes", "out of range" } },
	{ "sessions 0", NULL, "sessions = 0\n", NULL,
	    { "[token] sessions", "out of range" } },
	{ "device cap 0", NULL, "[limits]\ndevice_certs_per_window = 0\n",
	    NULL, { "device_certs_per_window", "out of range" } },
	{ "window 0", NULL, "[limits]\ndevice_window_seconds = 0\n",
	    NULL, { "device_window_seconds", "out of range" } },
	{ "global rate 0", NULL, "[limits]\nglobal_per_second = 0\n", NULL,
	    { "global_per_second", "out of range" } },
	{ "global burst huge", NULL,
	    "[limits]\nglobal_burst = 99999999999999999999\n", NULL,
	    { "global_burst", "out of range" } },
	{ "CA minimum 3651 days", NULL,
	    "[limits]\nca_min_remaining_days = 3651\n", NULL,
	    { "ca_min_remaining_days", "out of range" } },
	{ "server validity 0", NULL,
	    "[defaults]\nserver_validity_days = 0\n", NULL,
	    { "server_validity_days", "out of range" } },
	{ "crl_shards 0", NULL, "[defaults]\ncrl_shards = 0\n", NULL,
	    { "crl_shards", "out of range", "1..1024" } },
	{ "CRL refreshed before it is made", NULL,
	    "[crl]\nvalidity_seconds = 600\nrefresh_before_seconds = 600\n",
	    NULL, { "refresh_before_seconds (600) must be less than"
	    " validity_seconds (600)" } },
	{ "CRL validity under a minute", NULL,
	    "[crl]\nvalidity_seconds = 59\n", NULL,
	    { "[crl] validity_seconds", "out of range" } },
	{ "root path_len -2", NULL, "[root]\npath_len = -2\n", NULL,
	    { "[root] path_len", "out of range" } },
	{ "root validity 36501", NULL, "[root]\nvalidity_days = 36501\n",
	    NULL, { "[root] validity_days", "out of range" } },
	{ "product path_len 17", NULL, "[product.widgiot]\npath_len = 17\n",
	    NULL, { "[product.widgiot] path_len", "out of range" } },
	{ "device validity 0", NULL,
	    "[product.widgiot]\ndevice_validity_days = 0\n", NULL,
	    { "device_validity_days", "out of range" } },
	{ "bad log level", "log_level = verbose\n", NULL, NULL,
	    { "log_level", "warning, info or debug" } },
	{ "missing journal", NULL, NULL,
	    "[signer]\nissuance_socket = unix:/ia/a\nadmin_socket = unix:/ib/b\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "[signer] journal is required" } },
	{ "missing issuance socket", NULL, NULL,
	    "[signer]\njournal = /j\nadmin_socket = unix:/ib/b\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "issuance_socket", "required" } },
	{ "relative issuance socket", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:a.sock\n"
	    "admin_socket = unix:/ib/b\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "issuance_socket", "unix:/absolute/path" } },
	{ "missing admin socket", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/ia/a\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "admin_socket", "required" } },
	{ "equal sockets", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/run/s.sock\n"
	    "admin_socket = unix:/run/s.sock\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "issuance and admin sockets must differ" } },
	{ "equal sockets spelled with //", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/run/sf/s.sock\n"
	    "admin_socket = unix:/run/sf//s.sock\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "issuance and admin sockets must differ" } },
	{ "equal sockets spelled with /./", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/run/sf/./s.sock\n"
	    "admin_socket = unix:/run/sf/s.sock\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "issuance and admin sockets must differ" } },
	{ "equal sockets, one as unix:///", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:///run/sf/s.sock\n"
	    "admin_socket = unix:/run/sf/s.sock\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "issuance and admin sockets must differ" } },
	{ "both sockets in one directory", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/run/sf/i.sock\n"
	    "admin_socket = unix:/run/sf//a.sock\n"
	    "[token]\nmodule = /m\nuri = pkcs11:token=t\npin_file = /p\n",
	    { "different directories" } },
	{ "no [token] section", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/ia/a\n"
	    "admin_socket = unix:/ib/b\n",
	    { "[token] module", "required" } },
	{ "missing uri", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/ia/a\n"
	    "admin_socket = unix:/ib/b\n[token]\nmodule = /m\npin_file = /p\n",
	    { "[token] uri", "required" } },
	{ "uri not pkcs11", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/ia/a\n"
	    "admin_socket = unix:/ib/b\n[token]\nmodule = /m\n"
	    "uri = token=t\npin_file = /p\n",
	    { "[token] uri", "pkcs11:" } },
	{ "no pin file and no pin-source", NULL, NULL,
	    "[signer]\njournal = /j\nissuance_socket = unix:/ia/a\n"
	    "admin_socket = unix:/ib/b\n[token]\nmodule = /m\n"
	    "uri = pkcs11:token=t\n",
	    { "pin_file is required" } },
	{ "unknown user", "issuance_uids = 1000, no-such-user-xyz\n", NULL,
	    NULL, { "issuance_uids", "unknown user \"no-such-user-xyz\"" } },
	{ "too many uids", "admin_uids = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,"
	    "16,17\n", NULL, NULL, { "admin_uids", "more than 16" } },
	{ "unknown group", "admin_group = no-such-group-xyz\n", NULL, NULL,
	    { "admin_group", "unknown group \"no-such-group-xyz\"" } },
	{ "bad product line id", NULL, "[product.Widg_IoT]\n", NULL,
	    { "[product.Widg_IoT]", "product line id" } },
	{ "empty product line id", NULL, "[product.]\n", NULL,
	    { "[product.]", "product line id" } },
	{ "repeated section", NULL, "[limits]\n[limits]\n", NULL,
	    { "section [limits] repeated" } },
	{ "repeated key", "workers = 2\nworkers = 3\n", NULL, NULL,
	    { "key \"workers\" repeated" } },
	{ "bad_key neither unavailable nor refuse", NULL,
	    "bad_key = ignore\n", NULL,
	    { "[token] bad_key", "\"ignore\"", "neither unavailable nor refuse" } },
	{ "OCSP responder neither ca nor delegated", NULL,
	    "[ocsp]\nresponder = self\n", NULL,
	    { "[ocsp] responder", "\"self\"", "neither ca nor delegated" } },
	{ "OCSP validity over 10 days", NULL,
	    "[ocsp]\nvalidity_seconds = 864001\n", NULL,
	    { "validity_seconds", "out of range" } },
	{ "OCSP refresh not before nextUpdate", NULL,
	    "[ocsp]\nvalidity_seconds = 600\nrefresh_seconds = 600\n", NULL,
	    { "refresh_seconds", "out of range" } },
	{ "OCSP responder renewed too late", NULL,
	    "[ocsp]\nvalidity_seconds = 259200\nresponder_renew_days = 2\n",
	    NULL, { "responder_renew_days (2)", "outlive the responses" } },
	{ "OCSP unknown key", NULL, "[ocsp]\nnonce = echo\n", NULL,
	    { "nonce" } },
};

static void
test_refusals(void)
{
	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		const struct bad *b = &bads[i];
		char why[512], *text, *path = NULL;
		signer_conf *c = (signer_conf *)1;
		int rc, named = 1;

		text = b->text ? strdup(b->text) : minimal_plus(b->signer_extra,
		    b->tail);
		rc = load(text, &c, why, sizeof why, &path);
		free(text);
		is_int(rc, SF_ECONFIG, "%s: SF_ECONFIG", b->what);
		ok(c == NULL, "  and no configuration");
		for (int k = 0; k < 3 && b->why_has[k]; k++)
			named &= strstr(why, b->why_has[k]) != NULL;
		ok(named, "  the message names the problem (%s)", why);
		ok(path ? strstr(why, path) != NULL : 0, "  and the file");
		signer_conf_free(c);
		free(path);
	}
	{
		char why[512];
		signer_conf *c = (signer_conf *)1;
		char *path = sf_aprintf("%s/does-not-exist.conf", tmpdir);

		is_int(signer_conf_load(path, &c, why, sizeof why), SF_EIO,
		    "a missing file: SF_EIO");
		ok(c == NULL, "  *out is cleared");
		ok(strstr(why, path) != NULL, "  naming the file (%s)", why);
		free(path);
	}
}

static void
test_pin_source(void)
{
	char why[512];
	signer_conf *c = NULL;
	int rc;

	rc = load("[signer]\njournal = /j\nissuance_socket = unix:/ia/a\n"
	    "admin_socket = unix:/ib/b\n[token]\nmodule = /m\n"
	    "uri = pkcs11:token=t?pin-source=file:/etc/pin\n", &c, why,
	    sizeof why, NULL);
	is_int(rc, 0, "a pin-source in the uri replaces pin_file (%s)", why);
	ok(c ? c->token_pin_file == NULL : 0, "  and pin_file stays NULL");

	signer_conf_free(c);
}

static void
test_products(void)
{
	char why[512], *text;
	signer_conf *c = NULL;
	const product_conf *w, *g, *r, *e;
	int rc;

	text = minimal_plus(NULL,
	    "[product.widgiot]\n"
	    "display_name = WidgIoT\n"
	    "device_key_types = ec-p256, rsa\n"
	    "[defaults]\n"
	    "organization = Automatra\n"
	    "[product.gadget-2]\n"
	    "[product.rsaonly]\n"
	    "device_key_types = rsa-2048\n"
	    "[product.edonly]\n"
	    "device_key_types = ed25519\n");
	rc = load(text, &c, why, sizeof why, NULL);
	free(text);
	is_int(rc, 0, "four product sections (%s)", why);
	if (c == NULL)
		return;
	is_int(c->nproducts, 4, "nproducts 4");
	is_str(c->products[0].id, "widgiot", "in file order: first widgiot");
	is_str(c->products[1].id, "gadget-2", "in file order: then gadget-2");
	is_str(c->products[3].id, "edonly", "in file order: last edonly");
	w = signer_conf_product(c, "widgiot");
	g = signer_conf_product(c, "gadget-2");
	r = signer_conf_product(c, "rsaonly");
	e = signer_conf_product(c, "edonly");
	ok(w != NULL, "signer_conf_product finds widgiot");
	ok(g != NULL, "signer_conf_product finds gadget-2");
	ok(r != NULL, "signer_conf_product finds rsaonly");
	ok(e != NULL, "signer_conf_product finds edonly");
	ok(signer_conf_product(c, "widgio") == NULL, "and not a prefix of one");
	ok(signer_conf_product(c, "") == NULL, "and not the empty id");
	if (w && g && r && e) {
		is_int(w->device_key_types, (1u << PUBKEY_EC_P256) |
		    (1u << PUBKEY_RSA_OTHER) | (1u << PUBKEY_RSA_2048) |
		    (1u << PUBKEY_RSA_3072) | (1u << PUBKEY_RSA_4096),
		    "\"ec-p256, rsa\": P-256 and RSA of any allowed size");
		is_int(r->device_key_types, 1u << PUBKEY_RSA_2048,
		    "\"rsa-2048\": that size only");
		is_int(e->device_key_types, 1u << PUBKEY_ED25519,
		    "\"ed25519\": Ed25519 only");
		is_int(g->device_key_types, ALL_TYPES, "absent: every type");
		is_str(g->display_name, "gadget-2", "display_name default:"
		    " the id");
		is_str(g->ca_subject, "/C=${country}/O=${organization}/"
		    "CN=${display_name}", "subject default");
		is_int(g->ca_key_type, PUBKEY_EC_P256, "key_type default"
		    " ec-p256");
		is_int(g->ca_validity_days, 3650, "validity_days default 3650");
		is_int(g->ca_path_len, 1, "path_len default 1");
		is_str(g->permitted, "", "no permitted names");
		is_str(g->excluded, "", "no excluded names");
		is_str(g->device_subject, "/O=${organization}/"
		    "OU=${display_name}/CN=${device_id}",
		    "device_subject default");
		is_int(g->device_validity_days, 365, "device_validity_days"
		    " default 365");
	}
	signer_conf_free(c);
}

static void
test_expand(void)
{
	char why[512], *text, *s;
	signer_conf *c = NULL;
	int rc;

	text = minimal_plus(NULL,
	    "[defaults]\n"
	    "organization = Automatra\n"
	    "country = US\n"
	    "domain = automatra.net\n"
	    "[product.widgiot]\n"
	    "display_name = WidgIoT\n");
	rc = load(text, &c, why, sizeof why, NULL);
	free(text);
	is_int(rc, 0, "a file for signer_conf_expand (%s)", why);
	if (c == NULL)
		return;
	s = signer_conf_expand(c, "${name}|${product_line}|${display_name}|"
	    "${region}|${generation}|${organization}|${country}|${domain}|"
	    "${device_id}", "us-east-1.widgiot", "widgiot", "us-east-1",
	    "2026a", "1111", why, sizeof why);
	is_str(s, "us-east-1.widgiot|widgiot|WidgIoT|us-east-1|2026a|"
	    "Automatra|US|automatra.net|1111", "every variable");
	free(s);
	s = signer_conf_expand(c, c->issuing_subject, "us-east-1.widgiot",
	    "widgiot", "us-east-1", "2026a", NULL, why, sizeof why);
	is_str(s, "/C=US/O=Automatra/OU=WidgIoT us-east-1/"
	    "CN=us-east-1.widgiot.automatra.net", "the default issuing subject"
	    " is the reference's");
	free(s);
	s = signer_conf_expand(c, "${display_name}", "x", "gadget", "", "", NULL,
	    why, sizeof why);
	is_str(s, "gadget", "an unconfigured product line: its id as display"
	    " name");
	free(s);
	s = signer_conf_expand(c, "[${name}${product_line}${display_name}${region}"
	    "${generation}${device_id}]", NULL, NULL, NULL, NULL, NULL, why,
	    sizeof why);
	is_str(s, "[]", "NULL arguments expand to \"\"");
	free(s);
	s = signer_conf_expand(c, "no variables, $ and {} alone", "x", NULL, NULL,
	    NULL, NULL, why, sizeof why);
	is_str(s, "no variables, $ and {} alone", "text without ${ is kept");
	free(s);
	why[0] = '\0';
	s = signer_conf_expand(c, "/CN=${nmae}", "x", NULL, NULL, NULL, NULL, why,
	    sizeof why);
	ok(s == NULL, "an unknown variable is refused");
	ok(strstr(why, "unknown variable ${nmae}") != NULL,
	    "  and named (%s)", why);
	free(s);
	why[0] = '\0';
	s = signer_conf_expand(c, "/CN=${name", "x", NULL, NULL, NULL, NULL, why,
	    sizeof why);
	ok(s == NULL, "an unterminated ${ is refused");
	ok(strstr(why, "unterminated") != NULL, "  saying so (%s)", why);

	free(s);
	signer_conf_free(c);
}

int
main(void)
{
	char cmd[128];

	log_init("test_config", LOG_LEVEL_WARN);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/sf-config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	test_minimal();
	test_every_key();
	test_readme();
	test_refusals();
	test_pin_source();
	test_products();
	test_expand();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
	return tap_done();
}
