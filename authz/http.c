/*
 * http.c - authz's HTTP server on libmicrohttpd (see http.h). The only
 * file in the project that includes microhttpd.h: MHD parses every
 * request; this file collects the body (up to max_body), picks the route
 * and turns the handler's http_resp into an MHD response.
 *
 * MHD runs its own polling threads (a pool of opts->threads); a handler
 * runs in one of them and may block (a call to the signer), holding only
 * that thread's connections.
 *
 * Over TLS (GnuTLS, inside MHD) with a trust file, client certificates
 * are asked for; one that verifies up to the trust file is handed to the
 * handlers as PEM (converted from the DER GnuTLS holds with OpenSSL).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "err.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define MAX_ROUTES 32
#define DEFAULT_MAX_BODY (64 * 1024)
#define DEFAULT_MAX_HEADER (32 * 1024)
#define MAX_PEER_CERTS 8
/* TLS 1.2 and 1.3 only. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct route {
	char *method;           /* NULL: any */
	char *prefix;
	http_handler fn;
	void *arg;
	size_t max_body;        /* 0: the server's */
	int (*refuse)(http_resp *rs, int status, const char *msg);
};

struct http_server {
	struct MHD_Daemon *d;
	struct route routes[MAX_ROUTES];
	size_t nroutes;
	size_t max_body;
	int body_timeout_ms;
	int tls, trust;
	char name[32];
	char *cert_pem, *key_pem, *trust_pem;
	int port;
};

/* One request's state across MHD's calls. */
struct http_req {
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	const struct route *route;  /* NULL: refused (status) */
	int status;                 /* 404 / 405 when there is no route */
	size_t max_body;
	uint8_t *body;
	size_t len, cap;
	int too_big;
	int64_t deadline_ms;        /* the body must have arrived by then */
	int tls;
	int peer_state;             /* HTTP_PEER_* */
	char *peer_cert;            /* PEM: VERIFIED, or REJECTED */
	char peer[80];
};

const char *
http_req_method(const http_req *rq)
{
	return rq->method;
}

const char *
http_req_path(const http_req *rq)
{
	return rq->path;
}

const char *
http_req_header(const http_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const uint8_t *
http_req_body(const http_req *rq, size_t *len)
{
	*len = rq->len;
	return rq->body;
}

const char *
http_req_peer(const http_req *rq)
{
	return rq->peer;
}

int
http_req_tls(const http_req *rq)
{
	return rq->tls;
}

int
http_req_peer_state(const http_req *rq)
{
	return rq->peer_state;
}

const char *
http_req_peer_cert(const http_req *rq)
{
	return rq->peer_state == HTTP_PEER_VERIFIED ? rq->peer_cert : NULL;
}

const char *
http_req_unverified_cert(const http_req *rq)
{
	return rq->peer_state == HTTP_PEER_REJECTED ? rq->peer_cert : NULL;
}

int
http_resp_header(http_resp *rs, const char *name, const char *value)
{
	char *n, *v;

	if (rs->nheaders == sizeof rs->headers / sizeof rs->headers[0])
		return SF_ENOMEM;
	n = strdup(name);
	v = strdup(value);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return SF_ENOMEM;
	}
	rs->headers[rs->nheaders][0] = n;
	rs->headers[rs->nheaders][1] = v;
	rs->nheaders++;
	return 0;
}

/* Free what rs owns. */
static void
resp_fini(http_resp *rs)
{
	free(rs->body);
	rs->body = NULL;
	for (size_t i = 0; i < rs->nheaders; i++) {
		free(rs->headers[i][0]);
		free(rs->headers[i][1]);
	}
	rs->nheaders = 0;
}

int
http_status_from_err(int err)
{
	switch (err) {
	case 0: return 200;
	case SF_EINVAL:
	case SF_EKEYTYPE: return 400;
	case SF_ETOOBIG: return 413;
	case SF_ENOTFOUND: return 404;
	case SF_EPERM:
	case SF_ECONFLICT: return 403;
	case SF_ELIMIT: return 429;
	case SF_ESTATE: return 409;
	case SF_EUNAVAIL:
	case SF_ETIMEOUT: return 503;
	}
	return 500;
}

int
http_resp_text(http_resp *rs, int status, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return SF_ENOMEM;
	free(rs->body);
	rs->status = status;
	rs->content_type = "text/plain; charset=utf-8";
	rs->body = (uint8_t *)s;
	rs->len = (size_t)n;
	return 0;
}

http_server *
http_server_new(void)
{
	return calloc(1, sizeof(http_server));
}

int
http_server_route(http_server *s, const char *method, const char *prefix,
    http_handler fn, void *arg)
{
	return http_server_route_ex(s, method, prefix, fn, arg, NULL);
}

int
http_server_route_ex(http_server *s, const char *method, const char *prefix,
    http_handler fn, void *arg, const http_route_opts *o)
{
	struct route *r;

	if (s == NULL || s->d != NULL || prefix == NULL || fn == NULL)
		return SF_EINVAL;
	if (s->nroutes == MAX_ROUTES)
		return SF_ENOMEM;
	r = &s->routes[s->nroutes];
	r->method = method ? strdup(method) : NULL;
	r->prefix = strdup(prefix);
	if ((method && r->method == NULL) || r->prefix == NULL) {
		free(r->method);
		free(r->prefix);
		return SF_ENOMEM;
	}
	r->fn = fn;
	r->arg = arg;
	r->max_body = o ? o->max_body : 0;
	r->refuse = o ? o->refuse : NULL;
	s->nroutes++;
	return 0;
}

static void
peer_text(struct MHD_Connection *conn, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET) {
			const struct sockaddr_in *in = (const void *)sa;

			inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
			port = ntohs(in->sin_port);
		} else if (sa->sa_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const void *)sa;

			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
			port = ntohs(in6->sin6_port);
		}
	}
	snprintf(out, len, "%s:%d", host, port);
}

/* Queue rs on conn; MHD_NO if it cannot. */
static enum MHD_Result
send_resp(struct MHD_Connection *conn, http_resp *rs)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char cc[40];

	r = MHD_create_response_from_buffer(rs->len, rs->body,
	    MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		resp_fini(rs);
		return MHD_NO;
	}
	rs->body = NULL;  /* transferred */
	if (rs->content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		    rs->content_type);
	for (size_t i = 0; i < rs->nheaders; i++)
		MHD_add_response_header(r, rs->headers[i][0],
		    rs->headers[i][1]);
	if (rs->status == 200 && rs->max_age > 0) {
		snprintf(cc, sizeof cc, "max-age=%lld",
		    (long long)rs->max_age);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cc);
	}
	ret = MHD_queue_response(conn, (unsigned)rs->status, r);
	MHD_destroy_response(r);
	resp_fini(rs);
	return ret;
}

/* A refusal by the server itself (413, 404, 405), in the route's form. */
static enum MHD_Result
send_refusal(struct MHD_Connection *conn, const struct route *r, int status,
    const char *msg)
{
	http_resp rs;

	memset(&rs, 0, sizeof rs);
	if (r == NULL || r->refuse == NULL || r->refuse(&rs, status, msg) != 0) {
		resp_fini(&rs);
		memset(&rs, 0, sizeof rs);
		http_resp_text(&rs, status, "%s\n", msg);
	}
	if (status == 405)
		http_resp_header(&rs, "Allow", "GET, POST");
	return send_resp(conn, &rs);
}

/*
 * The TLS client certificate of conn: verified up to the trust file
 * (GnuTLS's own verification, which MHD's trust list feeds), then each
 * DER certificate the peer sent turned into PEM with OpenSSL. A chain
 * that does not verify is kept too (HTTP_PEER_REJECTED, PEM in
 * peer_cert): the handshake proved the peer holds its key, and a birth
 * certificate from a manufacturer's CA is checked by the enrollment
 * itself (jitp.h), not by this trust file.
 */
static void
peer_cert(http_server *s, http_req *rq)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *certs;
	unsigned int n = 0, status = 0;
	gnutls_session_t ss;
	BIO *b = NULL;
	BUF_MEM *bm;
	X509 *x;
	int verified;

	if (!s->tls || !s->trust || (ci = MHD_get_connection_info(rq->conn,
	    MHD_CONNECTION_INFO_GNUTLS_SESSION)) == NULL ||
	    (ss = ci->tls_session) == NULL ||
	    (certs = gnutls_certificate_get_peers(ss, &n)) == NULL || n == 0)
		return;
	verified = gnutls_certificate_verify_peers2(ss, &status) == 0 &&
	    status == 0;
	if (!verified)
		log_debug("http %s: client certificate from %s does not verify"
		    " (GnuTLS status %#x)", s->name, rq->peer, status);
	rq->peer_state = HTTP_PEER_REJECTED;
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return;
	for (unsigned int i = 0; i < n && i < MAX_PEER_CERTS; i++) {
		const unsigned char *p = certs[i].data;

		x = d2i_X509(NULL, &p, (long)certs[i].size);
		if (x == NULL || PEM_write_bio_X509(b, x) != 1) {
			X509_free(x);
			goto out;
		}
		X509_free(x);
	}
	BIO_get_mem_ptr(b, &bm);
	if ((rq->peer_cert = strndup(bm->data, bm->length)) != NULL &&
	    verified)
		rq->peer_state = HTTP_PEER_VERIFIED;
out:
	BIO_free(b);
}

/*
 * The route for rq: *r, or a 404 / 405 status. The longest prefix that
 * matches the path decides, so a catch-all "/" cannot take a method away
 * from a path that has routes of its own.
 */
static int
find_route(http_server *s, const http_req *rq, const struct route **r)
{
	size_t best = 0;
	int path_known = 0;

	*r = NULL;
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct route *x = &s->routes[i];
		size_t pl = strlen(x->prefix);

		if (strncmp(rq->path, x->prefix, pl) != 0 ||
		    (path_known && pl < best))
			continue;
		if (!path_known || pl > best)
			*r = NULL;
		path_known = 1;
		best = pl;
		if (*r == NULL && (x->method == NULL ||
		    strcmp(x->method, rq->method) == 0))
			*r = x;
	}
	if (*r)
		return 200;
	return path_known ? 405 : 404;
}

/* Append a chunk of the body, or mark the request too big. */
static void
take_body(http_req *rq, const char *data, size_t n)
{
	if (rq->too_big || n == 0)
		return;
	if (rq->len + n > rq->max_body) {
		rq->too_big = 1;
		free(rq->body);
		rq->body = NULL;
		rq->len = rq->cap = 0;
		return;
	}
	if (rq->len + n > rq->cap) {
		size_t cap = rq->cap ? rq->cap * 2 : 4096;
		uint8_t *nb;

		while (cap < rq->len + n)
			cap *= 2;
		if ((nb = realloc(rq->body, cap)) == NULL) {
			rq->too_big = 1;
			return;
		}
		rq->body = nb;
		rq->cap = cap;
	}
	memcpy(rq->body + rq->len, data, n);
	rq->len += n;
}

/* The first call for a request (its headers are in): the route, the
 * body's budget, the TLS peer. */
static http_req *
req_new(http_server *s, struct MHD_Connection *conn, const char *url,
    const char *method)
{
	http_req *rq;

	if ((rq = calloc(1, sizeof *rq)) == NULL)
		return NULL;
	rq->conn = conn;
	rq->method = method;
	rq->path = url;
	rq->tls = s->tls;
	peer_text(conn, rq->peer, sizeof rq->peer);
	rq->status = find_route(s, rq, &rq->route);
	rq->max_body = rq->route && rq->route->max_body ?
	    rq->route->max_body : s->max_body;
	rq->deadline_ms = sf_mono_ms() + s->body_timeout_ms;
	peer_cert(s, rq);
	return rq;
}

/* The request's Content-Length is over its route's budget. */
static int
announced_too_big(const http_req *rq)
{
	const char *cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	unsigned long long n;

	if (cl == NULL || *cl < '0' || *cl > '9')
		return 0;
	n = strtoull(cl, &end, 10);
	return n > rq->max_body;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	http_server *s = cls;
	http_req *rq = *con_cls;
	http_resp rs;
	char msg[80];
	int rc;

	(void)version;
	if (rq == NULL) {
		if ((rq = req_new(s, conn, url, method)) == NULL)
			return MHD_NO;
		*con_cls = rq;
		/* Refused before the body is read: MHD closes afterwards. */
		if (rq->route == NULL)
			return send_refusal(conn, NULL, rq->status,
			    rq->status == 404 ? "no such resource" :
			    "method not allowed");
		if (announced_too_big(rq)) {
			snprintf(msg, sizeof msg, "request body over %zu bytes",
			    rq->max_body);
			return send_refusal(conn, rq->route, 413, msg);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (sf_mono_ms() > rq->deadline_ms) {
			log_info("http %s: %s %s from %s: the body did not arrive"
			    " within %d ms; closing", s->name, method, url,
			    rq->peer, s->body_timeout_ms);
			return MHD_NO;
		}
		take_body(rq, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	memset(&rs, 0, sizeof rs);
	if (rq->too_big) {
		snprintf(msg, sizeof msg, "request body over %zu bytes",
		    rq->max_body);
		return send_refusal(conn, rq->route, 413, msg);
	}
	if ((rc = rq->route->fn(rq, &rs, rq->route->arg)) != 0 ||
	    rs.status == 0) {
		log_warnx("http %s: %s %s from %s: %s", s->name, method, url,
		    rq->peer, rc ? sf_strerror(rc) : "no status");
		resp_fini(&rs);
		return send_refusal(conn, rq->route, 500, "internal error");
	}
	log_debug("http %s: %s %s from %s: %d", s->name, method, url,
	    rq->peer, rs.status);
	return send_resp(conn, &rs);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	http_req *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq->peer_cert);
		free(rq);
		*con_cls = NULL;
	}
}

/* MHD's messages are printf formats of its own. */
static void __attribute__((format(printf, 2, 0)))
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warnx("http: %s", msg);
}

/* "host:port" into a socket address. */
static int
parse_address(const char *addr, struct sockaddr_storage *ss, int *v6)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints, *res = NULL;
	size_t hl;

	if (colon == NULL || colon == addr)
		return SF_EINVAL;
	hl = (size_t)(colon - addr);
	if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= sizeof host)
		return SF_EINVAL;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
		return SF_EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	return 0;
}

int
http_server_start(http_server *s, const http_opts *o, char *why,
    size_t whylen)
{
	struct sockaddr_storage ss;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG
	    | MHD_USE_AUTO;
	const union MHD_DaemonInfo *di;
	size_t len;
	int v6 = 0;

	if (s == NULL || o == NULL || o->address == NULL)
		return SF_EINVAL;
	sf_strlcpy(s->name, o->name ? o->name : "http", sizeof s->name);
	s->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
	s->body_timeout_ms = o->body_timeout_ms > 0 ? o->body_timeout_ms :
	    10000;
	if (parse_address(o->address, &ss, &v6) != 0) {
		sf_why(why, whylen, "%s: \"%s\" is not host:port", s->name,
		    o->address);
		return SF_EINVAL;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	if (o->tls_cert_file) {
		if (sf_read_file(o->tls_cert_file, 1 << 20,
		    (uint8_t **)&s->cert_pem, &len) != 0 ||
		    sf_read_file(o->tls_key_file, 1 << 20,
		    (uint8_t **)&s->key_pem, &len) != 0) {
			sf_why(why, whylen, "%s: cannot read %s or %s", s->name,
			    o->tls_cert_file, o->tls_key_file);
			return SF_ECONFIG;
		}
		flags |= MHD_USE_TLS;
		s->tls = 1;
		if (o->tls_trust_file && sf_read_file(o->tls_trust_file,
		    1 << 20, (uint8_t **)&s->trust_pem, &len) != 0) {
			sf_why(why, whylen, "%s: cannot read %s", s->name,
			    o->tls_trust_file);
			return SF_ECONFIG;
		}
		s->trust = s->trust_pem != NULL;
	}
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned int)(o->threads > 0 ? o->threads : 4),
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)(o->timeout_s > 0 ? o->timeout_s : 10),
	    MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)(o->max_connections > 0 ? o->max_connections : 256),
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned int)(o->per_ip_connections > 0 ?
	    o->per_ip_connections : 32),
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)(o->max_header ? o->max_header : DEFAULT_MAX_HEADER),
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    s->cert_pem ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
	    s->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, s->key_pem,
	    MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
	    s->trust_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END,
	    s->trust_pem, MHD_OPTION_END);
	if (s->d == NULL) {
		sf_why(why, whylen, "%s: cannot listen on %s", s->name,
		    o->address);
		return SF_EIO;
	}
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : 0;
	return 0;
}

int
http_server_port(const http_server *s)
{
	return s ? s->port : 0;
}

void
http_server_free(http_server *s)
{
	if (s == NULL)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	for (size_t i = 0; i < s->nroutes; i++) {
		free(s->routes[i].method);
		free(s->routes[i].prefix);
	}
	if (s->key_pem) {
		explicit_bzero(s->key_pem, strlen(s->key_pem));
		free(s->key_pem);
	}
	free(s->cert_pem);
	free(s->trust_pem);
	free(s);
}
