/*
 * mqtt_msg.c - the MQTT door's payloads (see mqtt_msg.h): requests are
 * read with jansson and checked field by field, every field named in
 * the refusal; replies are built with jansson, and a chunked certificate
 * is cut so that every message, as published, fits the chunk size the
 * device asked for (base64 and the JSON around it included).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "devrec.h"
#include "enroll.h"
#include "err.h"
#include "keysig.h"
#include "mqtt_msg.h"
#include "pbenum.h"
#include "pubkey.h"
#include "pubkey_int.h"
#include "rpc.h"
#include "util.h"

#define STR_MAX 256          /* any string field but csr */
#define BIRTH_MAX 16384      /* birth_certificate: a PEM chain */

/* ---- topics ---- */

int
mqtt_msg_topic(const char *prefix, const char *topic, char *id, size_t idlen,
    int *kind)
{
	size_t plen = strlen(prefix), n;
	const char *p, *slash;

	if (strlen(topic) > MQTT_MSG_TOPIC_MAX ||
	    strncmp(topic, prefix, plen) != 0 || topic[plen] != '/')
		return SF_EINVAL;
	p = topic + plen + 1;
	if ((slash = strchr(p, '/')) == NULL)
		return SF_EINVAL;
	n = (size_t)(slash - p);
	if (n == 0 || n >= idlen || n > DEVICE_ID_MAX)
		return SF_EINVAL;
	if (strcmp(slash + 1, "csr") == 0)
		*kind = MQTT_TOPIC_CSR;
	else if (strcmp(slash + 1, "ack") == 0)
		*kind = MQTT_TOPIC_ACK;
	else
		return SF_EINVAL;
	memcpy(id, p, n);
	id[n] = '\0';
	return device_id_valid(id, NULL, 0) ? 0 : SF_EINVAL;
}

/* ---- requests ---- */

const char *
mqtt_msg_type_name(int type)
{
	switch (type) {
	case MQTT_REQ_ENROLL: return "enroll";
	case MQTT_REQ_RENEW: return "renew";
	case MQTT_REQ_FETCH: return "fetch";
	case MQTT_REQ_ACK: return "ack";
	}
	return NULL;
}

void
mqtt_msg_req_fini(mqtt_msg_req *r)
{
	if (r == NULL)
		return;
	free(r->csr);
	free(r->idempotency_key);
	free(r->region);
	free(r->current_serial);
	free(r->key_signature);
	free(r->enrollment_id);
	free(r->serial);
	free(r->birth_certificate);
	memset(r, 0, sizeof *r);
}

/* The fields each request may carry ("type" and "id" always may). */
static const char *const ENROLL_FIELDS[] = { "csr", "idempotency_key",
    "region", "chunk_size", "birth_certificate", NULL };
static const char *const RENEW_FIELDS[] = { "csr", "idempotency_key",
    "current_serial", "current_key_signature", "chunk_size", NULL };
static const char *const FETCH_FIELDS[] = { "enrollment_id", "chunk_size",
    "index", NULL };
static const char *const ACK_FIELDS[] = { "enrollment_id", "serial",
    "key_signature", NULL };

static int
listed(const char *const *names, const char *k)
{
	for (; *names; names++)
		if (strcmp(*names, k) == 0)
			return 1;
	return 0;
}

/* "id": 1-32 of [A-Za-z0-9._:-]. */
static int
id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MQTT_MSG_ID_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
		    *s == ':' || *s == '-'))
			return 0;
	return 1;
}

/* The string field k of o, copied into *out ("" when absent). */
static int
get_str(json_t *o, const char *k, size_t max, char **out, char *why,
    size_t whylen)
{
	json_t *v = json_object_get(o, k);
	const char *s = "";

	if (v != NULL) {
		if (!json_is_string(v)) {
			sf_why(why, whylen, "%s must be a string", k);
			return SF_EINVAL;
		}
		if (json_string_length(v) > max ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			sf_why(why, whylen, "%s must be at most %zu bytes", k,
			    max);
			return SF_EINVAL;
		}
		s = json_string_value(v);
	}
	return (*out = strdup(s)) ? 0 : SF_ENOMEM;
}

/* The integer field k of o in [min, max] (def when absent). */
static int
get_int(json_t *o, const char *k, long long def, long long min,
    long long max, long long *out, char *why, size_t whylen)
{
	json_t *v = json_object_get(o, k);

	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		sf_why(why, whylen, "%s must be an integer from %lld to %lld",
		    k, min, max);
		return SF_EINVAL;
	}
	*out = json_integer_value(v);
	return 0;
}

/* A base64 field: a signature, decoded. */
static int
get_sig(json_t *o, const char *k, uint8_t **out, size_t *len, char *why,
    size_t whylen)
{
	char *s = NULL;
	int rc;

	if ((rc = get_str(o, k, STR_MAX * 8, &s, why, whylen)) != 0)
		return rc;
	if (*s != '\0' && (pubkey_b64_decode(s, strlen(s), out, len) != 0 ||
	    *len > KEYSIG_MAX)) {
		sf_why(why, whylen, "%s must be base64 of at most %d bytes", k,
		    KEYSIG_MAX);
		rc = SF_EINVAL;
	}
	free(s);
	return rc;
}

static int
parse_type(int kind, json_t *o, mqtt_msg_req *r, char *why, size_t whylen)
{
	json_t *v = json_object_get(o, "type");
	const char *t;

	if (v == NULL) {
		r->type = kind == MQTT_TOPIC_ACK ? MQTT_REQ_ACK :
		    MQTT_REQ_ENROLL;
		return 0;
	}
	t = json_is_string(v) ? json_string_value(v) : "";
	if (kind == MQTT_TOPIC_ACK) {
		if (strcmp(t, "ack") == 0) {
			r->type = MQTT_REQ_ACK;
			return 0;
		}
		sf_why(why, whylen, "type must be \"ack\" on the ack topic");
		return SF_EINVAL;
	}
	if (strcmp(t, "enroll") == 0)
		r->type = MQTT_REQ_ENROLL;
	else if (strcmp(t, "renew") == 0)
		r->type = MQTT_REQ_RENEW;
	else if (strcmp(t, "fetch") == 0)
		r->type = MQTT_REQ_FETCH;
	else {
		sf_why(why, whylen, "type must be \"enroll\", \"renew\" or"
		    " \"fetch\" on the csr topic");
		return SF_EINVAL;
	}
	return 0;
}

/* Every field of o is one this request may carry. */
static int
fields_check(const mqtt_msg_req *r, json_t *o, char *why, size_t whylen)
{
	const char *const *allowed = r->type == MQTT_REQ_ENROLL ?
	    ENROLL_FIELDS : r->type == MQTT_REQ_RENEW ? RENEW_FIELDS :
	    r->type == MQTT_REQ_FETCH ? FETCH_FIELDS : ACK_FIELDS;
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		if (strcmp(k, "type") == 0 || strcmp(k, "id") == 0 ||
		    listed(allowed, k))
			continue;
		sf_why(why, whylen, "unknown field \"%.32s\" in a%s %s request",
		    k, r->type == MQTT_REQ_ENROLL || r->type == MQTT_REQ_ACK ?
		    "n" : "", mqtt_msg_type_name(r->type));
		return SF_EINVAL;
	}
	return 0;
}

static int
parse_fields(json_t *o, mqtt_msg_req *r, char *why, size_t whylen)
{
	long long ll;
	char *csr = NULL;
	int rc;

	if ((rc = get_str(o, "csr", SIZE_MAX, &csr, why, whylen)) != 0)
		return rc;
	r->csr = (uint8_t *)csr;
	r->csr_len = strlen(csr);
	if ((rc = get_str(o, "idempotency_key", STR_MAX, &r->idempotency_key,
	    why, whylen)) != 0 ||
	    (rc = get_str(o, "region", STR_MAX, &r->region, why,
	    whylen)) != 0 ||
	    (rc = get_str(o, "current_serial", STR_MAX, &r->current_serial,
	    why, whylen)) != 0 ||
	    (rc = get_str(o, "enrollment_id", STR_MAX, &r->enrollment_id,
	    why, whylen)) != 0 ||
	    (rc = get_str(o, "serial", STR_MAX, &r->serial, why,
	    whylen)) != 0 ||
	    (rc = get_str(o, "birth_certificate", BIRTH_MAX,
	    &r->birth_certificate, why, whylen)) != 0 ||
	    (rc = get_sig(o, r->type == MQTT_REQ_ACK ? "key_signature" :
	    "current_key_signature", &r->key_signature,
	    &r->key_signature_len, why, whylen)) != 0 ||
	    (rc = get_int(o, "chunk_size", 0, 0, MQTT_MSG_CHUNK_MAX, &ll, why,
	    whylen)) != 0)
		return rc;
	if (ll != 0 && ll < MQTT_MSG_CHUNK_MIN) {
		sf_why(why, whylen, "chunk_size must be 0 (the certificate"
		    " whole) or %d to %d bytes", MQTT_MSG_CHUNK_MIN,
		    MQTT_MSG_CHUNK_MAX);
		return SF_EINVAL;
	}
	r->chunk_size = (size_t)ll;
	if ((rc = get_int(o, "index", -1, 0, 1 << 20, &r->index, why,
	    whylen)) != 0)
		return rc;
	if (r->index >= 0 && r->chunk_size == 0) {
		sf_why(why, whylen, "index needs a chunk_size");
		return SF_EINVAL;
	}
	return 0;
}

/* The fields each request needs, and their syntax. */
static int
required_check(const mqtt_msg_req *r, char *why, size_t whylen)
{
	switch (r->type) {
	case MQTT_REQ_RENEW:
		if (*r->current_serial == '\0') {
			sf_why(why, whylen, "a renew request needs"
			    " current_serial, the serial of the certificate"
			    " it renews");
			return SF_EINVAL;
		}
		/* FALLTHROUGH */
	case MQTT_REQ_ENROLL:
		if (r->csr_len == 0) {
			sf_why(why, whylen, "csr is required");
			return SF_EINVAL;
		}
		return 0;
	case MQTT_REQ_FETCH:
	case MQTT_REQ_ACK:
		if (!sf_enrollment_id_valid(r->enrollment_id)) {
			sf_why(why, whylen, "enrollment_id is required: 1-64"
			    " of [A-Za-z0-9._:-]");
			return SF_EINVAL;
		}
		if (*r->serial && !sf_serial_valid(r->serial)) {
			sf_why(why, whylen, "serial must be 1-40 upper-case"
			    " hex digits");
			return SF_EINVAL;
		}
		return 0;
	}
	return SF_EINTERNAL;
}

int
mqtt_msg_parse(int kind, const uint8_t *payload, size_t len,
    mqtt_msg_req *out, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *o, *id;
	int rc;

	memset(out, 0, sizeof *out);
	out->index = -1;
	sf_why(why, whylen, "%s", "");
	o = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (o == NULL || !json_is_object(o)) {
		if (o == NULL)
			sf_why(why, whylen, "the payload is not JSON: %.80s at"
			    " byte %d", jerr.text, jerr.position);
		else
			sf_why(why, whylen, "the payload must be a JSON"
			    " object");
		rc = SF_EINVAL;
		goto out;
	}
	/* The id first, so that even a refusal can carry it. */
	if ((id = json_object_get(o, "id")) != NULL) {
		if (!json_is_string(id) || !id_valid(json_string_value(id))) {
			sf_why(why, whylen, "id must be 1-%d of"
			    " [A-Za-z0-9._:-]", MQTT_MSG_ID_MAX);
			rc = SF_EINVAL;
			goto out;
		}
		sf_strlcpy(out->id, json_string_value(id), sizeof out->id);
	}
	if ((rc = parse_type(kind, o, out, why, whylen)) != 0 ||
	    (rc = fields_check(out, o, why, whylen)) != 0 ||
	    (rc = parse_fields(o, out, why, whylen)) != 0 ||
	    (rc = required_check(out, why, whylen)) != 0)
		goto out;
out:
	json_decref(o);
	return rc;
}

/* ---- replies ---- */

int
mqtt_msg_http_code(int err)
{
	switch (err) {
	case SF_OK: return 200;
	case SF_EINVAL:
	case SF_EKEYTYPE: return 400;
	case SF_ETOOBIG: return 413;
	case SF_ENOTFOUND: return 404;
	case SF_EPERM:
	case SF_ECONFLICT: return 403;
	case SF_ELIMIT: return 429;
	case SF_ESTATE: return 409;
	case SF_EUNAVAIL: return 503;
	}
	return 500;
}

void
mqtt_msg_out_fini(mqtt_msg_out *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->msg[i]);
	free(o->msg);
	free(o->len);
	memset(o, 0, sizeof *o);
}

/* Append m (taken over; freed on failure). */
static int
out_add(mqtt_msg_out *o, char *m)
{
	if (m == NULL)
		return SF_ENOMEM;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 8;
		char **msg = realloc(o->msg, cap * sizeof *msg);
		size_t *len;

		if (msg == NULL) {
			free(m);
			return SF_ENOMEM;
		}
		o->msg = msg;
		if ((len = realloc(o->len, cap * sizeof *len)) == NULL) {
			free(m);
			return SF_ENOMEM;
		}
		o->len = len;
		o->cap = cap;
	}
	o->msg[o->n] = m;
	o->len[o->n] = strlen(m);
	o->n++;
	return 0;
}

/* A new reply object of type t with r's id; NULL when out of memory. */
static json_t *
reply_new(const char *t, const mqtt_msg_req *r)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "type", json_string(t)) != 0 ||
	    (r && *r->id && json_object_set_new(o, "id",
	    json_string(r->id)) != 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* o as compact JSON (malloc'd); o is released. */
static char *
dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

static int
set_str(json_t *o, const char *k, const char *v)
{
	return json_object_set_new(o, k, json_string(v ? v : "")) ? -1 : 0;
}

static int
set_int(json_t *o, const char *k, long long v)
{
	return json_object_set_new(o, k, json_integer(v)) ? -1 : 0;
}

int
mqtt_msg_error(const mqtt_msg_req *r, int err, const char *message,
    mqtt_msg_out *out)
{
	const char *t = r ? mqtt_msg_type_name(r->type) : NULL;
	size_t n = strlen(message), cut, over;
	char *m, *s = NULL;

	if ((m = malloc(n + 1)) == NULL)
		return SF_ENOMEM;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)message[i];

		m[i] = c == '\0' ? '\0' : c < 0x20 || c >= 0x7f ? '?' :
		    (char)c;
	}
	/* Shorter until it fits: quotes and backslashes are escaped. */
	for (cut = n;;) {
		json_t *o = reply_new("error", r);

		m[cut] = '\0';
		if (o == NULL || (t && set_str(o, "request", t) != 0) ||
		    set_str(o, "status", rpc_code_name(rpc_status_from_err(
		    err))) != 0 ||
		    set_int(o, "code", mqtt_msg_http_code(err)) != 0 ||
		    set_str(o, "message", m) != 0) {
			json_decref(o);
			break;
		}
		if ((s = dump(o)) == NULL || strlen(s) <= MQTT_MSG_ERROR_MAX ||
		    cut == 0)
			break;
		/* An escaped character takes at most two bytes. */
		over = (strlen(s) - MQTT_MSG_ERROR_MAX + 1) / 2;
		cut = over < cut ? cut - over : 0;
		free(s);
		s = NULL;
	}
	free(m);
	return out_add(out, s);
}

static const char *
state_name(int state)
{
	switch (state) {
	case ENROLLMENT_ISSUED: return "ISSUED";
	case ENROLLMENT_PENDING_ACK: return "PENDING_ACK";
	case ENROLLMENT_ACKNOWLEDGED: return "ACKNOWLEDGED";
	case ENROLLMENT_FAILED: return "FAILED";
	}
	return "UNSPECIFIED";
}

/*
 * The "certificate" message: everything a device needs to know about the
 * enrollment. Whole (pems) it carries the PEMs and the certificate's
 * details; as the header of chunks only what the certificate does not
 * say itself, so that it fits a small chunk size.
 */
static char *
certificate_json(const mqtt_msg_req *r, const registry_enrollment *en,
    int replayed, int pems, size_t total, const char *sha, size_t count)
{
	json_t *o = reply_new("certificate", r);
	int bad;

	if (o == NULL)
		return NULL;
	bad = set_str(o, "request", mqtt_msg_type_name(r->type)) ||
	    set_str(o, "enrollment_id", en->enrollment_id) ||
	    set_str(o, "serial", en->serial) ||
	    set_str(o, "state", state_name(en->state)) ||
	    json_object_set_new(o, "replayed", json_boolean(replayed));
	if (!bad && *en->replaces_serial)
		bad = set_str(o, "replaces_serial", en->replaces_serial) ||
		    set_int(o, "ack_deadline", en->ack_deadline);
	if (!bad)
		bad = set_int(o, "renew_after", en->renew_after) ||
		    set_int(o, "renew_before", en->renew_before);
	if (!bad && pems)
		bad = set_str(o, "device_id", en->device_id) ||
		    set_str(o, "ca_name", en->ca_name) ||
		    set_int(o, "not_before", en->not_before) ||
		    set_int(o, "not_after", en->not_after) ||
		    set_str(o, "certificate_pem", en->certificate_pem) ||
		    set_str(o, "chain_pem", en->chain_pem);
	if (!bad)
		bad = set_int(o, "total", (long long)total) ||
		    set_str(o, "sha256", sha);
	if (!bad && !pems)
		bad = set_int(o, "chunks", (long long)count) ||
		    set_int(o, "chunk_size", (long long)r->chunk_size);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return dump(o);
}

/* One "chunk" message; data is base64 of the bundle's bytes at offset. */
static char *
chunk_json(const mqtt_msg_req *r, const char *eid, size_t index, size_t count,
    size_t offset, size_t total, const char *sha, const char *data)
{
	json_t *o = reply_new("chunk", r);

	if (o == NULL || set_str(o, "enrollment_id", eid) ||
	    set_int(o, "index", (long long)index) ||
	    set_int(o, "count", (long long)count) ||
	    set_int(o, "offset", (long long)offset) ||
	    set_int(o, "total", (long long)total) ||
	    set_str(o, "sha256", sha) || set_str(o, "data", data)) {
		json_decref(o);
		return NULL;
	}
	return dump(o);
}

/*
 * How many bundle bytes one chunk carries so that every chunk message of
 * a total-byte bundle is at most max bytes: the JSON around the data is
 * measured with the largest index and offset it can hold, and the rest is
 * base64 (4 characters for 3 bytes). Fewer bytes per chunk can mean more
 * chunks and wider numbers, so it is measured again until it holds.
 * 0 with *per and *count; SF_EINVAL when max cannot hold one byte.
 */
static int
chunk_plan(const mqtt_msg_req *r, const char *eid, size_t total,
    const char *sha, size_t max, size_t *per, size_t *count)
{
	size_t raw = max / 4 * 3, n, env, fit;
	char *s;

	for (;;) {
		n = total ? (total + raw - 1) / raw : 1;
		if ((s = chunk_json(r, eid, n, n, total, total, sha,
		    "")) == NULL)
			return SF_ENOMEM;
		env = strlen(s);
		free(s);
		if (env + 4 > max)
			return SF_EINVAL;
		fit = (max - env) / 4 * 3;
		if (fit >= raw)
			break;
		raw = fit;
	}
	*per = raw;
	*count = n;
	return 0;
}

static int
add_chunk(const mqtt_msg_req *r, const registry_enrollment *en,
    const char *bundle, size_t total, const char *sha, size_t per,
    size_t count, size_t i, mqtt_msg_out *out)
{
	size_t off = i * per, n = total - off < per ? total - off : per;
	char *b64, *m;
	int rc;

	if ((b64 = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return SF_ENOMEM;
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)bundle +
	    off, (int)n);
	m = chunk_json(r, en->enrollment_id, i, count, off, total, sha, b64);
	free(b64);
	if (m && strlen(m) > r->chunk_size) {
		free(m);
		return SF_EINTERNAL;   /* chunk_plan is wrong */
	}
	if ((rc = out_add(out, m)) != 0)
		return rc;
	return 0;
}

int
mqtt_msg_certificate(const mqtt_msg_req *r, const registry_enrollment *en,
    int replayed, mqtt_msg_out *out, char *why, size_t whylen)
{
	char *bundle = NULL, *m = NULL, sha[65];
	uint8_t digest[32];
	size_t total, per = 0, count = 0;
	int rc;

	if ((rc = enroll_bundle(en, &bundle, &total, digest)) != 0) {
		sf_why(why, whylen, "cannot build the certificate bundle");
		return rc;
	}
	sf_hex(digest, 32, sha);
	if (r->chunk_size == 0) {
		rc = out_add(out, certificate_json(r, en, replayed, 1, total,
		    sha, 0));
		goto out;
	}
	if ((rc = chunk_plan(r, en->enrollment_id, total, sha, r->chunk_size,
	    &per, &count)) != 0) {
		if (rc == SF_EINVAL)
			sf_why(why, whylen, "chunk_size %zu cannot hold a"
			    " chunk", r->chunk_size);
		goto out;
	}
	if (r->index >= 0) {
		if ((size_t)r->index >= count) {
			sf_why(why, whylen, "index %lld is past the last chunk"
			    " (%zu chunks of chunk_size %zu)", r->index, count,
			    r->chunk_size);
			rc = SF_EINVAL;
			goto out;
		}
		rc = add_chunk(r, en, bundle, total, sha, per, count,
		    (size_t)r->index, out);
		goto out;
	}
	if ((m = certificate_json(r, en, replayed, 0, total, sha,
	    count)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	if (strlen(m) > r->chunk_size) {
		sf_why(why, whylen, "chunk_size %zu cannot hold the"
		    " certificate's header", r->chunk_size);
		free(m);
		rc = SF_EINVAL;
		goto out;
	}
	if ((rc = out_add(out, m)) != 0)
		goto out;
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = add_chunk(r, en, bundle, total, sha, per, count, i, out);
	if (rc == SF_EINTERNAL)
		sf_why(why, whylen, "a chunk came out longer than chunk_size");
out:
	free(bundle);
	return rc;
}

int
mqtt_msg_acknowledged(const mqtt_msg_req *r, const char *enrollment_id,
    const char *serial, const char *superseded, mqtt_msg_out *out)
{
	json_t *o = reply_new("acknowledged", r);

	if (o == NULL || set_str(o, "request", "ack") ||
	    set_str(o, "enrollment_id", enrollment_id) ||
	    set_str(o, "serial", serial) ||
	    set_str(o, "state", "ACKNOWLEDGED") ||
	    set_str(o, "superseded_serial", superseded)) {
		json_decref(o);
		return SF_ENOMEM;
	}
	return out_add(out, dump(o));
}
