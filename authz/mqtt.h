/*
 * mqtt.h - authz's MQTT door: a client of an MQTT broker (libmosquitto,
 * TLS) that takes devices' requests from <prefix>/<device id>/csr and
 * <prefix>/<device id>/ack and answers on <prefix>/<device id>/cert.
 * The broker's ACL keeps each device to its own three topics; authz
 * decides everything else with the same enrollment core as the other
 * doors (enroll.c, renewal.c): same checks, same statuses, same
 * idempotency and enrollment ids. Payloads: mqtt_msg.h.
 *
 * The connection is a thread of its own that reconnects with back-off
 * (1 s doubling to [mqtt] reconnect_max_seconds); requests wait in a
 * bounded queue for [mqtt] workers threads. Nothing a device publishes
 * can stop either: a request that does not parse, is too long or finds
 * the queue full is answered with an error.
 */
#ifndef SF_MQTT_H
#define SF_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "authz.h"
#include "mqtt_conf.h"
#include "mqtt_msg.h"

typedef struct mqtt_door mqtt_door;

/*
 * Start the door with the settings mc (borrowed; they must outlive the
 * door or the next mqtt_door_reload): the threads are started and the
 * first connection attempted in the background, so that a broker that is
 * down delays nothing. 0 with *out, or SF_ENOMEM / SF_EINTERNAL with why.
 */
int mqtt_door_start(authz_ctx *ctx, const mqtt_conf *mc, mqtt_door **out,
    char *why, size_t whylen);
/* New settings (SIGHUP): the door reconnects with them (broker, TLS files,
 * credentials, client id, topic prefix); workers and queue stay. */
void mqtt_door_reload(mqtt_door *d, const mqtt_conf *mc);
/* Let the running requests finish and publish their replies, disconnect,
 * stop the threads, free; requests still queued are dropped (devices
 * retry). NULL-safe. */
void mqtt_door_stop(mqtt_door *d);

/*
 * One request as the door handles it, for the workers and the tests:
 * device_id is the topic's (mqtt_msg_topic), kind its MQTT_TOPIC_*. The
 * replies to publish on <prefix>/<device_id>/cert are appended to out;
 * a refusal is one error reply. Returns the request's outcome (0 or the
 * SF_E* code of the refusal) for the log; the reply says it already.
 */
int mqtt_serve(authz_ctx *ctx, const char *device_id, int kind,
    const uint8_t *payload, size_t len, mqtt_msg_out *out);

#endif
