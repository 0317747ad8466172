/*
 * Unit tests of authz/mqtt_msg.c, the MQTT door's payloads: topics are
 * <prefix>/<device id>/csr or .../ack and nothing else; requests are read
 * field by field (unknown, repeated, mistyped and out-of-range fields
 * refused, each named; the id kept for the error reply); a certificate
 * goes whole, or in chunks whose every message, as published, fits the
 * chunk size asked for (from 512 bytes, with the longest ids and serials)
 * and which reassemble to the bundle with the SHA-256 they carry; a fetch
 * of one chunk; error replies carry status and code and never pass 512
 * bytes, whatever the message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "err.h"
#include "mqtt_msg.h"
#include "pbenum.h"
#include "../../tap.h"

#define PREFIX "secretfree/provisioning"

static void
test_topics(void)
{
	char id[65];
	int kind = 0;

	is_int(mqtt_msg_topic(PREFIX, PREFIX "/1111/csr", id, sizeof id,
	    &kind), 0, "csr topic");
	is_str(id, "1111", "  its device id");
	is_int(kind, MQTT_TOPIC_CSR, "  its kind");
	is_int(mqtt_msg_topic(PREFIX, PREFIX "/dev-1.a_b/ack", id, sizeof id,
	    &kind), 0, "ack topic");
	is_int(kind, MQTT_TOPIC_ACK, "  its kind");
	is_int(mqtt_msg_topic(PREFIX, PREFIX "/1111/cert", id, sizeof id,
	    &kind), SF_EINVAL, "the reply topic is not a request topic");
	is_int(mqtt_msg_topic(PREFIX, PREFIX "/1111/csr/x", id, sizeof id,
	    &kind), SF_EINVAL, "an extra level is refused");
	is_int(mqtt_msg_topic(PREFIX, PREFIX "X/1111/csr", id, sizeof id,
	    &kind), SF_EINVAL, "a longer prefix is another prefix");
	is_int(mqtt_msg_topic(PREFIX, "other/1111/csr", id, sizeof id,
	    &kind), SF_EINVAL, "another prefix");
	is_int(mqtt_msg_topic(PREFIX, PREFIX "//csr", id, sizeof id, &kind),
	    SF_EINVAL, "an empty device id");
	is_int(mqtt_msg_topic(PREFIX, PREFIX "/-dash/csr", id, sizeof id,
	    &kind), SF_EINVAL, "a device id starting with a dash");
	is_int(mqtt_msg_topic(PREFIX, PREFIX "/a b/csr", id, sizeof id,
	    &kind), SF_EINVAL, "a blank in the device id");
	is_int(mqtt_msg_topic(PREFIX, PREFIX "/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "/csr", id, sizeof id, &kind), SF_EINVAL, "a 65-character id");
}

static int
parse(int kind, const char *json, mqtt_msg_req *r, char *why)
{
	return mqtt_msg_parse(kind, (const uint8_t *)json, strlen(json), r,
	    why, 256);
}

/* The request json is refused with a message containing want. */
static void
refused(int kind, const char *json, const char *want, const char *what)
{
	mqtt_msg_req r;
	char why[256];
	int rc = parse(kind, json, &r, why);

	ok(rc == SF_EINVAL && strstr(why, want) != NULL, "%s (%s)", what, why);
	mqtt_msg_req_fini(&r);
}

static void
test_requests(void)
{
	mqtt_msg_req r;
	char why[256];

	is_int(parse(MQTT_TOPIC_CSR, "{\"csr\": \"PEM\", \"id\": \"r-1\","
	    " \"idempotency_key\": \"k1\", \"region\": \"us-east-1\","
	    " \"chunk_size\": 1024}", &r, why), 0, "an enroll request");
	is_int(r.type, MQTT_REQ_ENROLL, "  type enroll by default on csr");
	ok(r.csr_len == 3 && memcmp(r.csr, "PEM", 3) == 0, "  its csr");
	is_str(r.id, "r-1", "  its id");
	is_str(r.idempotency_key, "k1", "  its idempotency key");
	is_str(r.region, "us-east-1", "  its region");
	is_int((int)r.chunk_size, 1024, "  its chunk size");
	is_str(r.current_serial, "", "  absent strings are empty");
	mqtt_msg_req_fini(&r);

	is_int(parse(MQTT_TOPIC_CSR, "{\"type\": \"renew\", \"csr\": \"x\","
	    " \"current_serial\": \"0A1B\", \"current_key_signature\":"
	    " \"AAEC\"}", &r, why), 0, "a renew request");
	ok(r.type == MQTT_REQ_RENEW && r.key_signature_len == 3 &&
	    r.key_signature[2] == 2, "  its signature decoded");
	mqtt_msg_req_fini(&r);

	is_int(parse(MQTT_TOPIC_ACK, "{\"enrollment_id\": \"enr-00ff\","
	    " \"serial\": \"0A\", \"key_signature\": \"AAEC\"}", &r, why), 0,
	    "an ack");
	ok(r.type == MQTT_REQ_ACK && strcmp(r.enrollment_id, "enr-00ff") == 0
	    && r.key_signature_len == 3, "  type ack by default on ack");
	mqtt_msg_req_fini(&r);

	is_int(parse(MQTT_TOPIC_CSR, "{\"type\": \"fetch\", \"enrollment_id\":"
	    " \"enr-1\", \"chunk_size\": 512, \"index\": 3}", &r, why), 0,
	    "a fetch of one chunk");
	ok(r.type == MQTT_REQ_FETCH && r.index == 3 && r.chunk_size == 512,
	    "  its index and chunk size");
	mqtt_msg_req_fini(&r);

	/* The id survives a refusal later on. */
	is_int(parse(MQTT_TOPIC_CSR, "{\"id\": \"abc\", \"csr\": 5}", &r, why),
	    SF_EINVAL, "a csr that is a number");
	is_str(r.id, "abc", "  the id is kept for the error reply");
	mqtt_msg_req_fini(&r);

	refused(MQTT_TOPIC_CSR, "garbage", "not JSON", "not JSON");
	refused(MQTT_TOPIC_CSR, "", "not JSON", "empty");
	refused(MQTT_TOPIC_CSR, "[1,2]", "JSON object", "an array");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\"} trailing", "not JSON",
	    "trailing bytes");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\", \"csr\": \"b\"}",
	    "not JSON", "a repeated field");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\\u0000b\"}", "not JSON",
	    "a NUL in a string");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\", \"colour\": 1}",
	    "unknown field \"colour\"", "an unknown field");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\", \"current_serial\": \"0A\"}",
	    "unknown field \"current_serial\" in an enroll",
	    "a renew field in an enroll request");
	refused(MQTT_TOPIC_CSR, "{\"type\": \"fetch\", \"enrollment_id\":"
	    " \"e\", \"index\": 0}", "index needs a chunk_size",
	    "an index without a chunk size");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\", \"chunk_size\": 511}",
	    "chunk_size", "chunk_size 511");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\", \"chunk_size\": 65537}",
	    "chunk_size", "chunk_size 65537");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\", \"chunk_size\": 1024.0}",
	    "chunk_size", "a chunk size that is not an integer");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\", \"chunk_size\": \"1024\"}",
	    "chunk_size", "a chunk size that is a string");
	refused(MQTT_TOPIC_CSR, "{}", "csr is required", "no csr");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"\"}", "csr is required",
	    "an empty csr");
	refused(MQTT_TOPIC_CSR, "{\"type\": \"renew\", \"csr\": \"a\"}",
	    "current_serial", "a renewal without current_serial");
	refused(MQTT_TOPIC_CSR, "{\"type\": \"fetch\"}", "enrollment_id",
	    "a fetch without an enrollment id");
	refused(MQTT_TOPIC_CSR, "{\"type\": \"ack\", \"enrollment_id\":"
	    " \"e\"}", "type must be", "an ack on the csr topic");
	refused(MQTT_TOPIC_ACK, "{\"type\": \"enroll\", \"csr\": \"a\"}",
	    "type must be \"ack\"", "an enroll on the ack topic");
	refused(MQTT_TOPIC_CSR, "{\"type\": 1, \"csr\": \"a\"}",
	    "type must be", "a type that is a number");
	refused(MQTT_TOPIC_ACK, "{\"enrollment_id\": \"bad id\"}",
	    "enrollment_id", "an enrollment id with a blank");
	refused(MQTT_TOPIC_ACK, "{\"enrollment_id\": \"e\", \"serial\":"
	    " \"xyz\"}", "serial", "a serial that is not hex");
	refused(MQTT_TOPIC_ACK, "{\"enrollment_id\": \"e\", \"key_signature\":"
	    " \"not base64!\"}", "key_signature", "a signature not in base64");
	refused(MQTT_TOPIC_CSR, "{\"id\": \"has space\", \"csr\": \"a\"}",
	    "id must be", "an id with a blank");
	refused(MQTT_TOPIC_CSR, "{\"id\": \"0123456789012345678901234567890123\","
	    " \"csr\": \"a\"}", "id must be", "a 34-character id");
	refused(MQTT_TOPIC_CSR, "{\"csr\": \"a\", \"region\": \""
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "a\"}", "region must be at most", "a 257-byte region");
	{
		/* A signature longer than any key makes (1024 bytes). */
		char sig[2000], *json;
		unsigned char raw[1100];

		memset(raw, 7, sizeof raw);
		EVP_EncodeBlock((unsigned char *)sig, raw, sizeof raw);
		json = malloc(strlen(sig) + 64);
		sprintf(json, "{\"enrollment_id\": \"e\", \"key_signature\":"
		    " \"%s\"}", sig);
		refused(MQTT_TOPIC_ACK, json, "key_signature",
		    "a 1100-byte signature");
		free(json);
	}
}

static const char *
bigpem(char c, size_t n)
{
	static char buf[2][8192];
	static int k;
	char *b = buf[k++ & 1];

	snprintf(b, 32, "-----BEGIN CERTIFICATE-----\n");
	memset(b + strlen(b), c, n);
	b[28 + n] = '\0';
	strcat(b, "\n-----END CERTIFICATE-----\n");
	return b;
}

/* An enrollment with the longest fields the registry can hold. */
static void
fake(registry_enrollment *en, const char *leaf, const char *chain)
{
	memset(en, 0, sizeof *en);
	en->enrollment_id = "enr-0123456789abcdef0123456789abcdef";
	en->device_id = "1111";
	en->idempotency_key = "";
	en->serial = "0123456789ABCDEF0123456789ABCDEF01234567";
	en->ca_name = "us-east-1.widgiot";
	en->certificate_pem = (char *)leaf;
	en->chain_pem = (char *)chain;
	en->region = "us-east-1";
	en->not_before = 1800000000;
	en->not_after = 1900000000;
	en->state = ENROLLMENT_PENDING_ACK;
	en->replaces_serial = "FEDCBA9876543210FEDCBA9876543210FEDCBA98";
	en->ack_deadline = 9999999999LL;
	en->renew_after = 9999999999LL;
	en->renew_before = 9999999999LL;
}

static json_t *
load(const char *s, size_t len)
{
	return json_loadb(s, len, 0, NULL);
}

/* The chunks of out, reassembled and checked: returns 1 if every message
 * fits max, the header says how many chunks follow, every chunk's index,
 * count, offset, total and sha256 agree, and the bytes are the bundle. */
static int
reassemble(const mqtt_msg_out *out, size_t max, const char *bundle,
    char *diag, size_t dlen)
{
	size_t total = strlen(bundle), got = 0, count;
	unsigned char digest[32], *buf = calloc(1, total + 4);
	char hex[65];
	json_t *h, *c;
	int good = 1;

	EVP_Digest(bundle, total, digest, NULL, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", digest[i]);
	h = load(out->msg[0], out->len[0]);
	count = (size_t)json_integer_value(json_object_get(h, "chunks"));
	if (out->len[0] > max || count + 1 != out->n ||
	    strcmp(json_string_value(json_object_get(h, "type")),
	    "certificate") != 0 ||
	    strcmp(json_string_value(json_object_get(h, "sha256")), hex) != 0 ||
	    (size_t)json_integer_value(json_object_get(h, "total")) != total) {
		snprintf(diag, dlen, "header %.*s", (int)out->len[0],
		    out->msg[0]);
		good = 0;
	}
	json_decref(h);
	for (size_t i = 1; good && i < out->n; i++) {
		const char *data;
		size_t off;
		int n;

		c = load(out->msg[i], out->len[i]);
		data = json_string_value(json_object_get(c, "data"));
		off = (size_t)json_integer_value(json_object_get(c, "offset"));
		if (out->len[i] > max || c == NULL || data == NULL ||
		    (size_t)json_integer_value(json_object_get(c, "index")) !=
		    i - 1 ||
		    (size_t)json_integer_value(json_object_get(c, "count")) !=
		    count || off != got ||
		    (size_t)json_integer_value(json_object_get(c, "total")) !=
		    total ||
		    strcmp(json_string_value(json_object_get(c, "sha256")),
		    hex) != 0 || strlen(data) / 4 * 3 > total - got + 2) {
			snprintf(diag, dlen, "chunk %zu (%zu bytes): %.200s", i,
			    out->len[i], out->msg[i]);
			good = 0;
		} else {
			n = EVP_DecodeBlock(buf + got, (const unsigned char *)
			    data, (int)strlen(data));
			n -= (int)(strlen(data) > 1 && data[strlen(data) - 1] ==
			    '=') + (strlen(data) > 2 && data[strlen(data) - 2] ==
			    '=');
			got += (size_t)n;
		}
		json_decref(c);
	}
	if (good && (got != total || memcmp(buf, bundle, total) != 0)) {
		snprintf(diag, dlen, "reassembled %zu of %zu bytes", got,
		    total);
		good = 0;
	}
	free(buf);
	return good;
}

static void
test_certificate(void)
{
	static const size_t sizes[] = { 512, 513, 600, 777, 1024, 4096,
	    65536 };
	const char *leaf = bigpem('L', 900), *chain;
	registry_enrollment en;
	mqtt_msg_req r;
	mqtt_msg_out out = { 0 };
	char bundle[16384], why[256], diag[512];
	json_t *o;
	int rc;

	chain = bigpem('C', 2500);
	snprintf(bundle, sizeof bundle, "%s%s", leaf, chain);
	fake(&en, leaf, chain);
	memset(&r, 0, sizeof r);
	r.type = MQTT_REQ_RENEW;
	r.index = -1;
	strcpy(r.id, "0123456789abcdef0123456789abcdef");   /* 32: the most */

	is_int(mqtt_msg_certificate(&r, &en, 0, &out, why, sizeof why), 0,
	    "whole delivery");
	o = out.n == 1 ? load(out.msg[0], out.len[0]) : NULL;
	ok(o && strcmp(json_string_value(json_object_get(o,
	    "certificate_pem")), leaf) == 0 && strcmp(json_string_value(
	    json_object_get(o, "chain_pem")), chain) == 0,
	    "  one message with the PEMs");
	ok(o && strcmp(json_string_value(json_object_get(o, "state")),
	    "PENDING_ACK") == 0 && json_integer_value(json_object_get(o,
	    "ack_deadline")) == 9999999999LL && strcmp(json_string_value(
	    json_object_get(o, "id")), r.id) == 0, "  with state, deadline, id");
	json_decref(o);
	mqtt_msg_out_fini(&out);

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		r.chunk_size = sizes[i];
		rc = mqtt_msg_certificate(&r, &en, 0, &out, why, sizeof why);
		is_int(rc, 0, "chunk_size %zu: %zu messages", sizes[i], out.n);
		diag[0] = '\0';
		ok(rc == 0 && reassemble(&out, sizes[i], bundle, diag,
		    sizeof diag), "  each at most %zu bytes; reassembled, same"
		    " SHA-256 %s", sizes[i], diag);
		mqtt_msg_out_fini(&out);
	}

	/* One chunk again, as a fetch asks. */
	r.type = MQTT_REQ_FETCH;
	r.chunk_size = 1024;
	r.index = 2;
	is_int(mqtt_msg_certificate(&r, &en, 1, &out, why, sizeof why), 0,
	    "fetch of chunk 2");
	o = out.n == 1 ? load(out.msg[0], out.len[0]) : NULL;
	ok(o && json_integer_value(json_object_get(o, "index")) == 2 &&
	    out.len[0] <= 1024, "  that chunk alone");
	json_decref(o);
	mqtt_msg_out_fini(&out);
	r.index = 100;
	rc = mqtt_msg_certificate(&r, &en, 1, &out, why, sizeof why);
	ok(rc == SF_EINVAL && strstr(why, "past the last chunk") && out.n == 0,
	    "an index past the last chunk is refused (%s)", why);
	mqtt_msg_out_fini(&out);
}

static void
test_errors(void)
{
	mqtt_msg_out out = { 0 };
	mqtt_msg_req r;
	char big[3000];
	json_t *o;

	memset(&r, 0, sizeof r);
	r.type = MQTT_REQ_ENROLL;
	strcpy(r.id, "req-7");
	is_int(mqtt_msg_error(&r, SF_EPERM, "the CSR key is not the key"
	    " registered for device 1111", &out), 0, "an error reply");
	o = load(out.msg[0], out.len[0]);
	ok(strcmp(json_string_value(json_object_get(o, "type")), "error") == 0
	    && strcmp(json_string_value(json_object_get(o, "status")),
	    "PERMISSION_DENIED") == 0 && json_integer_value(json_object_get(o,
	    "code")) == 403 && strcmp(json_string_value(json_object_get(o,
	    "request")), "enroll") == 0 && strcmp(json_string_value(
	    json_object_get(o, "id")), "req-7") == 0,
	    "  type, status, code, request and id: %.*s", (int)out.len[0],
	    out.msg[0]);
	json_decref(o);
	mqtt_msg_out_fini(&out);

	memset(big, '"', sizeof big);
	big[sizeof big - 1] = '\0';
	big[10] = '\n';
	big[11] = (char)0xc3;
	mqtt_msg_error(NULL, SF_ENOTFOUND, big, &out);
	o = load(out.msg[0], out.len[0]);
	ok(out.len[0] <= MQTT_MSG_ERROR_MAX && out.len[0] > MQTT_MSG_ERROR_MAX -
	    8 && o != NULL && json_integer_value(json_object_get(o,
	    "code")) == 404, "a 3000-byte message of quotes is cut to fit %d"
	    " bytes, and no shorter (%zu)", MQTT_MSG_ERROR_MAX, out.len[0]);
	ok(o && strchr(json_string_value(json_object_get(o, "message")),
	    '\n') == NULL && json_object_get(o, "request") == NULL &&
	    json_object_get(o, "id") == NULL, "  no control bytes; no request"
	    " or id without a request");
	json_decref(o);
	mqtt_msg_out_fini(&out);

	is_int(mqtt_msg_http_code(SF_ETOOBIG), 413, "ETOOBIG is 413");
	is_int(mqtt_msg_http_code(SF_ELIMIT), 429, "ELIMIT is 429");
	is_int(mqtt_msg_http_code(SF_ESTATE), 409, "ESTATE is 409");
	is_int(mqtt_msg_http_code(SF_EUNAVAIL), 503, "EUNAVAIL is 503");
	is_int(mqtt_msg_http_code(SF_EDB), 500, "EDB is 500");
	is_int(mqtt_msg_http_code(SF_EKEYTYPE), 400, "EKEYTYPE is 400");
}

int
main(void)
{
	test_topics();
	test_requests();
	test_certificate();
	test_errors();
	return tap_done();
}
