/*
 * config.h - the signer's configuration file (INI, common/conf.h).
 * Every section and key is documented in signer/README.md; unknown keys
 * are refused at start-up so that a typo cannot pass silently.
 */
#ifndef SF_SIGNER_CONFIG_H
#define SF_SIGNER_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#define CONFIG_MAX_UIDS 16
#define CONFIG_MAX_SHARDS 1024   /* [defaults] crl_shards, CreateCa */

typedef struct {
	char *id;                 /* "widgiot" */
	char *display_name;       /* "WidgIoT" */
	/* The product line's intermediate CA. */
	char *ca_subject;         /* template */
	int ca_key_type;
	int ca_validity_days;
	int ca_path_len;
	char *permitted;          /* newline-separated name constraints */
	char *excluded;
	/* The device profile. */
	char *device_subject;     /* template; ${device_id}; CN = id appended if absent */
	int device_validity_days;
	unsigned device_key_types; /* bit (1u << PUBKEY_*) per allowed type */
} product_conf;

typedef struct {
	char *path;               /* the file it came from */
	/* [signer] */
	char *journal;
	char *issuance_socket;    /* "unix:/path" */
	char *admin_socket;
	uid_t issuance_uids[CONFIG_MAX_UIDS];
	size_t n_issuance_uids;
	uid_t admin_uids[CONFIG_MAX_UIDS];
	size_t n_admin_uids;
	gid_t issuance_gid, admin_gid;   /* (gid_t)-1: not set */
	char *user;               /* drop to this user when started as root */
	int workers;
	int log_level;
	size_t csr_max;
	int maint_delay_ms;       /* coalesce changes (revocations) this long */
	/* [token] */
	char *token_module, *token_uri, *token_pin_file;
	int token_sessions;
	/* [token] bad_key = refuse: do not start while a CA cannot sign
	 * (ca_store_check_keys); default unavailable: that CA alone. */
	int bad_key_refuse;
	/* [limits] */
	int device_max;           /* certificates per device per window */
	int device_window;        /* seconds */
	double global_rate;       /* certificates per second, sustained */
	int global_burst;
	int ca_min_remaining_days; /* a CA with less left issues nothing */
	int device_live;          /* unexpired, unrevoked certificates per device */
	int ack_timeout;          /* seconds a renewal waits for its
	                             acknowledgement before it is revoked */
	/* [defaults] */
	char *organization, *country, *domain;
	char *crl_url, *ocsp_url, *ca_issuers_url;   /* templates */
	int server_validity_days;
	int crl_shards;           /* CRL partitions of a new CA */
	/* [crl] */
	int crl_validity_s;       /* nextUpdate - thisUpdate */
	int crl_refresh_s;        /* make a new CRL this long before nextUpdate */
	int crl_check_s;          /* look for CRLs that are due this often */
	/* [root] */
	char *root_subject;
	int root_key_type, root_validity_days, root_path_len;
	/* [issuing] */
	char *issuing_subject;
	int issuing_key_type, issuing_validity_days;
	/* [ocsp] (signer/README.md) */
	int ocsp_delegated;       /* responder = delegated (else ca) */
	int ocsp_validity;        /* seconds from thisUpdate to nextUpdate */
	int ocsp_refresh;         /* a response this old (seconds) is re-signed */
	int ocsp_interval;        /* the background task's period, seconds */
	int ocsp_responder_days;  /* a delegated responder certificate's validity */
	int ocsp_responder_renew_days;  /* renewed with fewer days left */
	int ocsp_on_demand;       /* signatures per second on the request path */
	/* [audit] (signer/README.md) */
	char *audit_key_label;    /* the checkpoints' key in the token */
	int audit_checkpoint_s;   /* a checkpoint this often; 0: on demand */
	/* [product.<id>] */
	product_conf *products;
	size_t nproducts;
} signer_conf;

/* Load and check. On success *out is the caller's, to free with
 * signer_conf_free (NULL-safe). SF_ECONFIG / SF_EIO with why naming file,
 * line, key. */
int signer_conf_load(const char *path, signer_conf **out, char *why,
    size_t whylen);
void signer_conf_free(signer_conf *c);
const product_conf *signer_conf_product(const signer_conf *c,
    const char *id);

/*
 * Expand a template with the CA's variables: ${name}, ${product_line},
 * ${display_name}, ${region}, ${generation}, ${organization}, ${country},
 * ${domain}, ${device_id}. Returns a malloc'd string or NULL (why set).
 */
char *signer_conf_expand(const signer_conf *c, const char *tmpl,
    const char *name, const char *product_line, const char *region, const char *generation,
    const char *device_id, char *why, size_t whylen);
/* The same with ${display_name} given (NULL/"": the product line's). */
char *signer_conf_expand_display(const signer_conf *c, const char *tmpl,
    const char *name, const char *product_line, const char *display_name,
    const char *region, const char *generation, const char *device_id,
    char *why, size_t whylen);

#endif
