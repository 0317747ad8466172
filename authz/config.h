/*
 * config.h - authz's configuration file (INI, common/conf.h); every key is
 * documented in authz/README.md. Unknown sections and keys are refused.
 */
#ifndef SF_AUTHZ_CONFIG_H
#define SF_AUTHZ_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#include "mqtt_conf.h"
#include "registry.h"

#define AUTHZ_MAX_UIDS 16

typedef struct {
	char *name;
	char *document;            /* JSON */
} authz_policy;

typedef struct {
	char *path;
	/* [authz] */
	char *registry;
	/* "unix:/path" of the signer's issuance socket */
	char *signer_socket;
	int signer_timeout_ms;
	char *admin_socket;        /* "unix:/path": Registry + Provisioning */
	uid_t admin_uids[AUTHZ_MAX_UIDS];
	size_t n_admin_uids;
	gid_t admin_gid;
	/* "host:port", TCP + TLS: Provisioning; NULL = none */
	char *device_listen;
	char *tls_cert, *tls_key, *tls_client_ca;
	char *default_region;      /* "" = none */
	char *user;
	int workers;
	int log_level;
	int idempotency_window;    /* seconds */
	int renewal_sweep_s;       /* look for unacknowledged renewals past
	                              their deadline this often */
	/* [http]: CRLs and OCSP over plain HTTP; NULL = none */
	char *http_listen;         /* "host:port" */
	int http_threads;
	int ocsp_cache_entries;    /* OCSP responses kept in memory; 0: none */
	char *crl_dir;             /* CRLs written here too; NULL = none */
	int crl_refresh_s;         /* ask the signer what changed this often */
	/* [http] front doors (REST, EST): HTTPS; NULL = none */
	char *https_listen;        /* "host:port" */
	int plain_front_doors;     /* also on `listen` (loopback only) */
	int enroll_wait_ms;        /* answer 202 when not done by then */
	int retry_after_s;         /* Retry-After of a 202, 429, 503 */
	int http_conn_timeout_s;   /* idle connection timeout */
	int http_max_conns;
	int http_conns_per_addr;
	int latent_max;            /* enrollments running for the front doors */
	char *est_default_ca;      /* EST without a label; "" = derived */
	/* [limits] */
	size_t csr_max;
	size_t max_message;
	int device_max;            /* enrollment requests per device, window */
	int device_window;
	double global_rate;
	int global_burst;
	int max_streams;
	int body_timeout_ms;       /* a call's request must arrive within */
	int pending_per_address;   /* calls not yet on a worker, per address */
	/* [template.<product line>] */
	registry_template *templates;
	size_t ntemplates;
	/* [policy.<name>] */
	authz_policy *policies;
	size_t npolicies;
	/* [mqtt]: the MQTT door (mqtt.h); NULL = none */
	mqtt_conf *mqtt;
} authz_conf;

/*
 * Load and check the file at path. 0 with *out (release it with
 * authz_conf_free), or SF_ECONFIG (SF_EIO, SF_ENOMEM) with a sentence
 * naming the file, section and key in why.
 */
int authz_conf_load(const char *path, authz_conf **out, char *why,
    size_t whylen);
void authz_conf_free(authz_conf *c);   /* NULL-safe */

#endif
