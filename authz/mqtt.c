/*
 * mqtt.c - the MQTT door's connection and threads (see mqtt.h): one
 * thread owns the libmosquitto session (connect, loop, reconnect with
 * back-off, subscribe on every connection), takes each message off the
 * csr and ack topics and queues it; [mqtt] workers threads answer them
 * through mqtt_serve and publish the replies. Only this file includes
 * mosquitto.h.
 *
 * The session is persistent (clean session off, a fixed client id), so
 * that requests published while authz is away wait at the broker, and
 * QoS 1 both ways: a request or reply is delivered at least once, and
 * the enrollment core's idempotency makes a duplicate harmless.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "err.h"
#include "log.h"
#include "mqtt.h"
#include "pubkey.h"
#include "util.h"

#define BACKOFF_MIN_MS 1000
#define LOOP_MS 250            /* how often the loop thread looks up */
#define STOP_WAIT_MS 5000      /* for the loop thread at shutdown */

struct job {
	struct job *next;
	char device_id[DEVICE_ID_MAX + 1];
	int kind;
	uint8_t *payload;
	size_t len;
};

struct mqtt_door {
	authz_ctx *ctx;
	pthread_mutex_t mu;        /* the fields below but mosq */
	pthread_cond_t work;       /* a job, or stop_workers */
	pthread_cond_t wake;       /* stop_loop or next, in the back-off */
	const mqtt_conf *mc;       /* the settings of the session */
	const mqtt_conf *next;     /* mqtt_door_reload's, not yet in use */
	struct job *head, *tail;
	size_t queued;
	size_t queue_max;
	int stop_workers, stop_loop;
	int had_session;           /* CONNACK accepted since the last try */
	int loop_done;             /* the loop thread has ended */
	int sub_mid[2];
	uint64_t rnd;              /* back-off jitter */
	/* The session; replies are published under pub_mu. */
	pthread_mutex_t pub_mu;
	struct mosquitto *mosq;
	pthread_t loop;
	int loop_started;
	pthread_t *workers;
	int nworkers;
};

/* ---- replies ---- */

/* Publish out's messages on <prefix>/<device_id>/cert, QoS 1. */
static void
publish_all(mqtt_door *d, const char *device_id, const mqtt_msg_out *out)
{
	char topic[MQTT_MSG_TOPIC_MAX + 16];
	int rc = MOSQ_ERR_SUCCESS;
	size_t i;

	pthread_mutex_lock(&d->mu);
	snprintf(topic, sizeof topic, "%s/%s/cert", d->mc->topic_prefix,
	    device_id);
	pthread_mutex_unlock(&d->mu);
	pthread_mutex_lock(&d->pub_mu);
	for (i = 0; i < out->n && rc == MOSQ_ERR_SUCCESS; i++)
		rc = d->mosq ? mosquitto_publish(d->mosq, NULL, topic,
		    (int)out->len[i], out->msg[i], 1, false) :
		    MOSQ_ERR_NO_CONN;
	pthread_mutex_unlock(&d->pub_mu);
	if (rc != MOSQ_ERR_SUCCESS)
		log_warnx("mqtt: %zu of %zu replies to device %s not sent: %s"
		    " (the device retries)", out->n - i + 1, out->n, device_id,
		    mosquitto_strerror(rc));
}

/* An error reply straight from the loop thread (no worker needed). */
static void
refuse(mqtt_door *d, const char *device_id, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
refuse(mqtt_door *d, const char *device_id, int err, const char *fmt, ...)
{
	mqtt_msg_out out = { 0 };
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	log_info("mqtt: request from device %s refused: %s", device_id, why);
	if (mqtt_msg_error(NULL, err, why, &out) == 0)
		publish_all(d, device_id, &out);
	mqtt_msg_out_fini(&out);
}

/* ---- the workers ---- */

static void *
worker_main(void *arg)
{
	mqtt_door *d = arg;
	struct job *j;

	for (;;) {
		mqtt_msg_out out = { 0 };

		pthread_mutex_lock(&d->mu);
		while (d->head == NULL && !d->stop_workers)
			pthread_cond_wait(&d->work, &d->mu);
		if (d->stop_workers) {
			pthread_mutex_unlock(&d->mu);
			break;
		}
		j = d->head;
		if ((d->head = j->next) == NULL)
			d->tail = NULL;
		d->queued--;
		pthread_mutex_unlock(&d->mu);

		mqtt_serve(d->ctx, j->device_id, j->kind, j->payload, j->len,
		    &out);
		publish_all(d, j->device_id, &out);
		mqtt_msg_out_fini(&out);
		free(j->payload);
		free(j);
	}
	return NULL;
}

/* ---- libmosquitto's callbacks (in the loop thread) ---- */

static void
on_connect(struct mosquitto *m, void *arg, int rc)
{
	mqtt_door *d = arg;
	char csr[MQTT_MSG_TOPIC_MAX], ack[MQTT_MSG_TOPIC_MAX];
	const mqtt_conf *mc;

	if (rc != 0) {
		log_warnx("mqtt: the broker refused the connection: %s",
		    mosquitto_connack_string(rc));
		return;
	}
	pthread_mutex_lock(&d->mu);
	mc = d->mc;
	d->had_session = 1;
	pthread_mutex_unlock(&d->mu);
	snprintf(csr, sizeof csr, "%s/+/csr", mc->topic_prefix);
	snprintf(ack, sizeof ack, "%s/+/ack", mc->topic_prefix);
	if (mosquitto_subscribe(m, &d->sub_mid[0], csr, 1) != 0 ||
	    mosquitto_subscribe(m, &d->sub_mid[1], ack, 1) != 0)
		log_warnx("mqtt: cannot subscribe to %s and %s", csr, ack);
	log_info("mqtt: connected to %s:%d as %s; requests on %s and %s",
	    mc->host, mc->port, mc->client_id, csr, ack);
}

static void
on_subscribe(struct mosquitto *m, void *arg, int mid, int n,
    const int *granted)
{
	mqtt_door *d = arg;

	(void)m;
	for (int i = 0; i < n; i++)
		if (granted[i] == 0x80)
			log_warnx("mqtt: the broker refused subscription %d"
			    " (%s): check its ACL for this client", mid,
			    mid == d->sub_mid[0] ? "csr" : "ack");
}

static void
on_log(struct mosquitto *m, void *arg, int level, const char *s)
{
	(void)m;
	(void)arg;
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
		log_warnx("mqtt: libmosquitto: %.300s", s);
	else if (level & (MOSQ_LOG_NOTICE | MOSQ_LOG_INFO))
		log_debug("mqtt: libmosquitto: %.300s", s);
}

static void
on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
	mqtt_door *d = arg;
	char id[DEVICE_ID_MAX + 1];
	struct job *j;
	int kind;

	(void)m;
	/* A retained message is an old one: it was answered when it was
	 * published (a live subscriber never sees the retain flag). */
	if (msg->retain) {
		log_debug("mqtt: ignored a retained message on %.200s",
		    msg->topic);
		return;
	}
	pthread_mutex_lock(&d->mu);
	kind = mqtt_msg_topic(d->mc->topic_prefix, msg->topic, id, sizeof id,
	    &kind) == 0 ? kind : 0;
	pthread_mutex_unlock(&d->mu);
	if (kind == 0) {
		log_info("mqtt: ignored a message on %.200s: not"
		    " <prefix>/<device id>/csr or .../ack", msg->topic);
		return;
	}
	if (msg->payloadlen < 0 || (size_t)msg->payloadlen >
	    d->mc->max_payload) {
		refuse(d, id, SF_ETOOBIG, "the request is %d bytes; at most %zu"
		    " are read", msg->payloadlen, d->mc->max_payload);
		return;
	}
	if ((j = calloc(1, sizeof *j)) == NULL ||
	    (j->payload = malloc(msg->payloadlen ? msg->payloadlen :
	    1)) == NULL) {
		free(j);
		refuse(d, id, SF_ENOMEM, "out of memory");
		return;
	}
	memcpy(j->payload, msg->payload, (size_t)msg->payloadlen);
	j->len = (size_t)msg->payloadlen;
	j->kind = kind;
	sf_strlcpy(j->device_id, id, sizeof j->device_id);
	pthread_mutex_lock(&d->mu);
	if (d->queued >= d->queue_max) {
		pthread_mutex_unlock(&d->mu);
		free(j->payload);
		free(j);
		refuse(d, id, SF_ELIMIT, "authz has %zu MQTT requests waiting;"
		    " retry later", d->queue_max);
		return;
	}
	if (d->tail)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
	d->queued++;
	pthread_cond_signal(&d->work);
	pthread_mutex_unlock(&d->mu);
}

/* ---- the session ---- */

/* A libmosquitto client set up for mc; NULL (logged) on failure. */
static struct mosquitto *
session_new(mqtt_door *d, const mqtt_conf *mc)
{
	struct mosquitto *m;
	int rc;

	if ((m = mosquitto_new(mc->client_id, false, d)) == NULL) {
		log_warnx("mqtt: cannot make a client: %s", strerror(errno));
		return NULL;
	}
	mosquitto_threaded_set(m, true);
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
	    MQTT_PROTOCOL_V311);
	mosquitto_connect_callback_set(m, on_connect);
	mosquitto_subscribe_callback_set(m, on_subscribe);
	mosquitto_message_callback_set(m, on_message);
	mosquitto_log_callback_set(m, on_log);
	if ((rc = mosquitto_tls_set(m, mc->ca_file, NULL, mc->cert_file,
	    mc->key_file, NULL)) != MOSQ_ERR_SUCCESS ||
	    (rc = mosquitto_tls_opts_set(m, 1, "tlsv1.2", NULL)) !=
	    MOSQ_ERR_SUCCESS ||
	    (mc->username && (rc = mosquitto_username_pw_set(m, mc->username,
	    mc->password)) != MOSQ_ERR_SUCCESS)) {
		log_warnx("mqtt: cannot set up TLS or credentials (ca_file %s):"
		    " %s", mc->ca_file, mosquitto_strerror(rc));
		mosquitto_destroy(m);
		return NULL;
	}
	return m;
}

static void
session_set(mqtt_door *d, struct mosquitto *m)
{
	pthread_mutex_lock(&d->pub_mu);
	d->mosq = m;
	pthread_mutex_unlock(&d->pub_mu);
}

/* Nothing more to do with the session (stop, or new settings). */
static int
interrupted(mqtt_door *d)
{
	int r;

	pthread_mutex_lock(&d->mu);
	r = d->stop_loop || d->next != NULL;
	pthread_mutex_unlock(&d->mu);
	return r;
}

/* Say goodbye to the broker, giving queued replies a second to go. */
static void
session_end(mqtt_door *d, struct mosquitto *m)
{
	int64_t until = sf_mono_ms() + 1000;

	if (mosquitto_want_write(m)) {
		while (sf_mono_ms() < until && mosquitto_want_write(m) &&
		    mosquitto_loop(m, 100, 1) == MOSQ_ERR_SUCCESS)
			;
	}
	mosquitto_disconnect(m);
	mosquitto_loop(m, 100, 1);
	session_set(d, NULL);
	mosquitto_destroy(m);
}

/* Wait ms (plus up to a quarter more) unless stopped or reloaded. */
static void
backoff_wait(mqtt_door *d, int ms)
{
	struct timespec ts;
	int64_t ns;

	d->rnd ^= d->rnd << 13;
	d->rnd ^= d->rnd >> 7;
	d->rnd ^= d->rnd << 17;
	ms += (int)(d->rnd % (uint64_t)(ms / 4 + 1));
	clock_gettime(CLOCK_REALTIME, &ts);
	ns = ts.tv_nsec + (int64_t)(ms % 1000) * 1000000;
	ts.tv_sec += ms / 1000 + ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	pthread_mutex_lock(&d->mu);
	while (!d->stop_loop && d->next == NULL &&
	    pthread_cond_timedwait(&d->wake, &d->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&d->mu);
}

static const char *
why_lost(int rc, int err)
{
	return rc == MOSQ_ERR_ERRNO ? strerror(err) : mosquitto_strerror(rc);
}

static void *
loop_main(void *arg)
{
	mqtt_door *d = arg;
	struct mosquitto *m = NULL;
	const mqtt_conf *mc;
	char host[256];
	int backoff = BACKOFF_MIN_MS, rc, was, err, port, keepalive, cap;

	for (;;) {
		pthread_mutex_lock(&d->mu);
		if (d->stop_loop) {
			pthread_mutex_unlock(&d->mu);
			break;
		}
		if (d->next) {
			d->mc = d->next;
			d->next = NULL;
			pthread_mutex_unlock(&d->mu);
			if (m) {
				session_end(d, m);
				m = NULL;
			}
			backoff = BACKOFF_MIN_MS;
			pthread_mutex_lock(&d->mu);
		}
		mc = d->mc;
		d->had_session = 0;
		pthread_mutex_unlock(&d->mu);
		/* What the connection needs, copied: a connect that hangs
		 * past shutdown (mqtt_door_stop gives up on it) must not read
		 * a configuration freed meanwhile. */
		sf_strlcpy(host, mc->host, sizeof host);
		port = mc->port;
		keepalive = mc->keepalive_s;
		cap = mc->reconnect_max_s * 1000;

		/*
		 * A blocking TCP connect (the TLS handshake goes on in the
		 * loop): libmosquitto 2.0.11's asynchronous connect can stall
		 * until the keepalive when the connection does not complete
		 * at once.
		 */
		if (m == NULL) {
			if ((m = session_new(d, mc)) == NULL)
				goto wait;
			session_set(d, m);
			rc = mosquitto_connect(m, host, port, keepalive);
		} else
			rc = mosquitto_reconnect(m);
		err = errno;
		while (rc == MOSQ_ERR_SUCCESS && !interrupted(d)) {
			rc = mosquitto_loop(m, LOOP_MS, 1);
			err = errno;
		}
		if (interrupted(d))
			continue;
		pthread_mutex_lock(&d->mu);
		was = d->had_session;
		pthread_mutex_unlock(&d->mu);
		if (was)
			backoff = BACKOFF_MIN_MS;
		log_warnx("mqtt: %s broker %s:%d (%s); trying again in about"
		    " %d s", was ? "lost the connection to" :
		    "cannot connect to", host, port, why_lost(rc, err),
		    (backoff + 999) / 1000);
wait:
		backoff_wait(d, backoff);
		backoff = backoff * 2 > cap ? cap : backoff * 2;
	}
	if (m)
		session_end(d, m);
	pthread_mutex_lock(&d->mu);
	d->loop_done = 1;
	pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* ---- start and stop ---- */

int
mqtt_door_start(authz_ctx *ctx, const mqtt_conf *mc, mqtt_door **out,
    char *why, size_t whylen)
{
	mqtt_door *d;
	int rc;

	*out = NULL;
	if ((d = calloc(1, sizeof *d)) == NULL)
		return SF_ENOMEM;
	mosquitto_lib_init();
	d->ctx = ctx;
	d->mc = mc;
	d->queue_max = (size_t)mc->queue;
	d->rnd = (uint64_t)sf_mono_ms() * 2654435761u + 1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->pub_mu, NULL);
	pthread_cond_init(&d->work, NULL);
	pthread_cond_init(&d->wake, NULL);
	if ((d->workers = calloc((size_t)mc->workers,
	    sizeof *d->workers)) == NULL) {
		mqtt_door_stop(d);
		return SF_ENOMEM;
	}
	for (; d->nworkers < mc->workers; d->nworkers++)
		if ((rc = pthread_create(&d->workers[d->nworkers], NULL,
		    worker_main, d)) != 0) {
			sf_why(why, whylen, "mqtt: cannot start a worker: %s",
			    strerror(rc));
			mqtt_door_stop(d);
			return SF_EINTERNAL;
		}
	if ((rc = pthread_create(&d->loop, NULL, loop_main, d)) != 0) {
		sf_why(why, whylen, "mqtt: cannot start the connection"
		    " thread: %s", strerror(rc));
		mqtt_door_stop(d);
		return SF_EINTERNAL;
	}
	d->loop_started = 1;
	log_info("mqtt: door to broker %s:%d (TLS), topics %s/<device id>/"
	    "{csr,ack,cert}, %d workers", mc->host, mc->port, mc->topic_prefix,
	    mc->workers);
	*out = d;
	return 0;
}

void
mqtt_door_reload(mqtt_door *d, const mqtt_conf *mc)
{
	if (d == NULL || mc == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->next = mc;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->mu);
	log_info("mqtt: reconnecting to broker %s:%d with the new settings",
	    mc->host, mc->port);
}

/* Stop the loop thread: 1 when it ended within STOP_WAIT_MS. */
static int
loop_stop(mqtt_door *d)
{
	struct timespec ts;
	int done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += STOP_WAIT_MS / 1000;
	pthread_mutex_lock(&d->mu);
	d->stop_loop = 1;
	pthread_cond_broadcast(&d->wake);
	while (!d->loop_done && pthread_cond_timedwait(&d->wake, &d->mu,
	    &ts) == 0)
		;
	done = d->loop_done;
	pthread_mutex_unlock(&d->mu);
	if (done)
		pthread_join(d->loop, NULL);
	return done;
}

void
mqtt_door_stop(mqtt_door *d)
{
	struct job *j;
	size_t dropped = 0;

	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop_workers = 1;
	pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; i < d->nworkers; i++)
		pthread_join(d->workers[i], NULL);
	if (d->loop_started && !loop_stop(d)) {
		/* Still in a TCP connect to a broker that does not answer:
		 * authz is exiting, so leave the thread (and d) be. */
		log_warnx("mqtt: still connecting to the broker; not waiting");
		return;
	}
	while ((j = d->head) != NULL) {
		d->head = j->next;
		free(j->payload);
		free(j);
		dropped++;
	}
	if (dropped)
		log_info("mqtt: %zu queued requests dropped at shutdown",
		    dropped);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->pub_mu);
	pthread_cond_destroy(&d->work);
	pthread_cond_destroy(&d->wake);
	free(d->workers);
	free(d);
	mosquitto_lib_cleanup();
}
