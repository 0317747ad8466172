/*
 * libFuzzer target: the MQTT door's payloads (authz/mqtt_msg.c). The
 * first byte picks the topic (csr or ack) the rest arrives on; the rest
 * is parsed as a request. A request that parses is answered as the door
 * would: its certificate (a bundle made of the request's own bytes) whole
 * or in the chunks it asked for, each checked against the chunk size;
 * every refusal becomes an error reply, checked against its bound. The
 * input is also tried as a topic.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mqtt_msg.h"
#include "pbenum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void
answer(const mqtt_msg_req *r, const uint8_t *rest, size_t len)
{
	registry_enrollment en;
	mqtt_msg_out out = { 0 };
	char why[512], *leaf;

	/* The certificate is text: the request's bytes up to a NUL. */
	if ((leaf = malloc(len + 1)) == NULL)
		return;
	memcpy(leaf, rest, len);
	leaf[len] = '\0';
	memset(&en, 0, sizeof en);
	en.enrollment_id = r->enrollment_id && *r->enrollment_id ?
	    r->enrollment_id : "enr-0123456789abcdef0123456789abcdef";
	en.device_id = "fuzz-1";
	en.serial = r->serial && *r->serial ? r->serial : "0A";
	en.ca_name = "us-east-1.widgiot";
	en.certificate_pem = leaf;
	en.chain_pem = r->region ? r->region : "";
	en.replaces_serial = r->current_serial ? r->current_serial : "";
	en.state = ENROLLMENT_PENDING_ACK;
	if (mqtt_msg_certificate(r, &en, 0, &out, why, sizeof why) == 0) {
		for (size_t i = 0; r->chunk_size && i < out.n; i++)
			if (out.len[i] > r->chunk_size)
				abort();   /* a message past the chunk size */
	} else {
		mqtt_msg_out_fini(&out);
		mqtt_msg_error(r, SF_EINVAL, why, &out);
	}
	mqtt_msg_out_fini(&out);
	if (r->type == MQTT_REQ_ACK)
		mqtt_msg_acknowledged(r, en.enrollment_id, en.serial, "0B",
		    &out);
	mqtt_msg_out_fini(&out);
	free(leaf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	mqtt_msg_req r;
	mqtt_msg_out out = { 0 };
	char why[512], id[65], *topic;
	int kind;

	if (len == 0)
		return 0;
	kind = data[0] & 1 ? MQTT_TOPIC_ACK : MQTT_TOPIC_CSR;
	if (mqtt_msg_parse(kind, data + 1, len - 1, &r, why,
	    sizeof why) == 0)
		answer(&r, data + 1, len - 1);
	else {
		mqtt_msg_error(&r, SF_EINVAL, why, &out);
		for (size_t i = 0; i < out.n; i++)
			if (out.len[i] > MQTT_MSG_ERROR_MAX)
				abort();
		mqtt_msg_out_fini(&out);
	}
	mqtt_msg_req_fini(&r);
	if ((topic = malloc(len)) != NULL) {
		memcpy(topic, data + 1, len - 1);
		topic[len - 1] = '\0';
		(void)mqtt_msg_topic("secretfree/provisioning", topic, id,
		    sizeof id, &kind);
		free(topic);
	}
	return 0;
}
