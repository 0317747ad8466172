/*
 * mqtt_conf.h - the [mqtt] section of authz's configuration: the broker
 * the MQTT door connects to, its credentials, the topics and the door's
 * limits. Every key is documented in authz/README.md ("MQTT door");
 * unknown keys are refused.
 */
#ifndef SF_MQTT_CONF_H
#define SF_MQTT_CONF_H

#include <stddef.h>

#include "conf.h"

typedef struct {
	char *host;                /* the broker (TLS) */
	int port;
	char *ca_file;             /* verifies the broker's certificate */
	char *cert_file, *key_file;   /* a client certificate; NULL: none */
	char *username;            /* NULL: none */
	char *password;            /* from password_file; never logged */
	char *client_id;
	char *topic_prefix;        /* <prefix>/<device id>/{csr,ack,cert} */
	int workers;               /* requests handled at once */
	int queue;                 /* requests waiting for a worker */
	size_t max_payload;        /* bytes of a request */
	int keepalive_s;
	int reconnect_max_s;       /* back-off ceiling */
} mqtt_conf;

/*
 * The [mqtt] section of cf (from the file path, for messages): 0 with
 * *out (NULL when the section is absent: no MQTT door), or SF_ECONFIG
 * (SF_ENOMEM) with a sentence naming the file and key in why.
 */
int mqtt_conf_load(const conf *cf, const char *path, mqtt_conf **out,
    char *why, size_t whylen);
void mqtt_conf_free(mqtt_conf *m);   /* NULL-safe */

#endif
