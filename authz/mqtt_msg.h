/*
 * mqtt_msg.h - the payloads of authz's MQTT door (JSON, jansson): the
 * requests a device publishes on <prefix>/<device id>/csr and
 * <prefix>/<device id>/ack, checked field by field, and the replies authz
 * publishes on <prefix>/<device id>/cert: a certificate whole or in
 * chunks that fit the device's buffer, an acknowledgement, an error with
 * its status. No I/O and no decision here: mqtt.c moves the bytes,
 * mqtt_serve.c asks the enrollment core. The schema is authz/README.md's
 * "MQTT door".
 */
#ifndef SF_MQTT_MSG_H
#define SF_MQTT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define MQTT_MSG_ID_MAX 32          /* a request's "id", echoed */
#define MQTT_MSG_CHUNK_MIN 512      /* chunk_size bounds, bytes */
#define MQTT_MSG_CHUNK_MAX 65536
#define MQTT_MSG_ERROR_MAX 512      /* an error reply is never longer */
#define MQTT_MSG_TOPIC_MAX 256      /* <prefix>/<device id>/<kind> */

/* The topic a message came on (mqtt_msg_topic). */
enum { MQTT_TOPIC_CSR = 1, MQTT_TOPIC_ACK = 2 };
/* What a request asks (mqtt_msg_req.type). */
enum { MQTT_REQ_ENROLL = 1, MQTT_REQ_RENEW, MQTT_REQ_FETCH, MQTT_REQ_ACK };

/*
 * The topic "<prefix>/<device id>/csr" or ".../ack": 0 with the device id
 * in id (idlen >= DEVICE_ID_MAX + 1) and *kind; SF_EINVAL for any other
 * topic, or one whose middle level is not a valid device id.
 */
int mqtt_msg_topic(const char *prefix, const char *topic, char *id,
    size_t idlen, int *kind);

/* A request, checked (mqtt_msg_parse). Absent strings are "", never
 * NULL; everything is owned (mqtt_msg_req_fini). */
typedef struct {
	int type;                          /* MQTT_REQ_* */
	char id[MQTT_MSG_ID_MAX + 1];      /* "" = none */
	uint8_t *csr;                      /* enroll, renew: PEM or base64 */
	size_t csr_len;
	char *idempotency_key;
	char *region;                      /* enroll */
	char *current_serial;              /* renew */
	uint8_t *key_signature;            /* renew: current_key_signature;
	                                      ack: key_signature (decoded) */
	size_t key_signature_len;
	char *enrollment_id;               /* fetch, ack */
	char *serial;                      /* ack */
	size_t chunk_size;                 /* 0: the certificate whole */
	long long index;                   /* fetch: one chunk; -1: all */
	char *birth_certificate;           /* enroll: PEM, a manufacturer's
	                                      birth certificate (and its
	                                      chain); "" = none */
} mqtt_msg_req;

/*
 * Parse and check the payload of a message on a topic of kind. 0 with
 * *out; else SF_EINVAL (not a JSON object, an unknown or repeated field,
 * a field of the wrong type or out of range, a required field missing)
 * or SF_ENOMEM, with a sentence in why. Even then *out holds what was
 * read before the fault (the "id" and type, for the error reply): always
 * call mqtt_msg_req_fini.
 */
int mqtt_msg_parse(int kind, const uint8_t *payload, size_t len,
    mqtt_msg_req *out, char *why, size_t whylen);
void mqtt_msg_req_fini(mqtt_msg_req *r);

/* "enroll", "renew", "fetch", "ack"; NULL for anything else. */
const char *mqtt_msg_type_name(int type);
/* The HTTP-like code of an SF_E* error, as DESIGN.md's errors table
 * says (400, 403, 404, 409, 413, 429, 503; else 500). */
int mqtt_msg_http_code(int err);

/* Messages to publish, in order: each malloc'd, with its length. */
typedef struct {
	char **msg;
	size_t *len;
	size_t n, cap;
} mqtt_msg_out;

void mqtt_msg_out_fini(mqtt_msg_out *o);   /* zeroes *o */

/*
 * An error reply for r (NULL or type 0: the request could not be read):
 * its id, the request's type, the status name and HTTP-like code of err,
 * and message (control and non-ASCII bytes become '?', cut so that the
 * reply is at most MQTT_MSG_ERROR_MAX bytes). 0 or SF_ENOMEM.
 */
int mqtt_msg_error(const mqtt_msg_req *r, int err, const char *message,
    mqtt_msg_out *out);

/*
 * The certificate of en for request r. With r->chunk_size 0: one
 * "certificate" message with the PEMs. Else a "certificate" header
 * without them, then the bundle (leaf, then chain, as FetchCertificate
 * serves it) in "chunk" messages, every message at most r->chunk_size
 * bytes as published; a fetch with an index gets that chunk only.
 * SF_EINVAL (why) when an index is past the last chunk or the
 * chunk size cannot hold a message; SF_ENOMEM, SF_ECRYPTO.
 */
int mqtt_msg_certificate(const mqtt_msg_req *r, const registry_enrollment *en,
    int replayed, mqtt_msg_out *out, char *why, size_t whylen);

/* The "acknowledged" reply: enrollment_id, serial and the serial it
 * superseded. 0 or SF_ENOMEM. */
int mqtt_msg_acknowledged(const mqtt_msg_req *r, const char *enrollment_id,
    const char *serial, const char *superseded, mqtt_msg_out *out);

#endif
