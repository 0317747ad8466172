/*
 * http.h - authz's HTTP server (libmicrohttpd): the listeners behind the
 * CRL and OCSP endpoints and the REST and EST front doors. Only http.c
 * includes microhttpd.h (and GnuTLS's headers); everything else sees a
 * request and fills a response.
 *
 * Routes are (method, path prefix) -> handler. The longest prefix that
 * matches the path decides; among the routes with that prefix the first
 * added for the method wins. No route: 404; routes for the path but not
 * for the method: 405. A request body over max_body is refused with
 * 413 before any handler runs. A handler never sees a half-read body.
 *
 * Plain HTTP is for signed objects (CRLs, OCSP responses), which carry
 * their own integrity; the front doors that carry device requests use TLS
 * (tls_cert_file/tls_key_file), with client certificates verified up to
 * tls_trust_file when one is configured.
 */
#ifndef SF_HTTP_H
#define SF_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct http_server http_server;
typedef struct http_req http_req;

/* What a handler fills. body is malloc'd by the handler (freed by the
 * server) or NULL. */
typedef struct {
	int status;                 /* 200, 404, ...; 0 = 500 */
	const char *content_type;   /* static or owned by the route */
	uint8_t *body;
	size_t len;
	/* Extra headers (name, value), owned (http_resp_header copies). */
	char *headers[12][2];
	size_t nheaders;
	/* Cache-Control max-age in seconds for a 200 (0: no header). */
	int64_t max_age;
} http_resp;

/* A handler; returns 0 (rs filled) or an SF_E* code (a 500 is sent). */
typedef int (*http_handler)(const http_req *rq, http_resp *rs, void *arg);

/* The request, valid during the handler. */
const char *http_req_method(const http_req *rq);
const char *http_req_path(const http_req *rq);    /* percent-decoded */
const char *http_req_header(const http_req *rq, const char *name);
const uint8_t *http_req_body(const http_req *rq, size_t *len);
/* The peer as "ipv4:127.0.0.1:5555" style text, for logs. */
const char *http_req_peer(const http_req *rq);
/* 1 when the request came over TLS. */
int http_req_tls(const http_req *rq);

/* What the TLS peer presented (the server must have a tls_trust_file). */
enum {
	HTTP_PEER_NONE = 0,         /* plain HTTP, or no client certificate */
	HTTP_PEER_VERIFIED = 1,     /* verified up to tls_trust_file */
	HTTP_PEER_REJECTED = 2,     /* presented, but it does not verify */
};
int http_req_peer_state(const http_req *rq);
/* The verified client certificate as PEM (the certificate, then the
 * chain the peer sent), or NULL unless HTTP_PEER_VERIFIED. */
const char *http_req_peer_cert(const http_req *rq);
/* A client certificate (and chain) the peer presented that does not
 * verify up to tls_trust_file, as PEM; NULL unless HTTP_PEER_REJECTED.
 * The handshake proved the peer holds its key; nothing more: only a
 * check of its own (a birth certificate's, jitp.h) may trust it. */
const char *http_req_unverified_cert(const http_req *rq);

/* Set a header on a response (name and value copied); 0 or SF_ENOMEM
 * (also when the response has no room for another header). */
int http_resp_header(http_resp *rs, const char *name, const char *value);
/* Fill rs with status and a copy of text as text/plain; 0 or SF_ENOMEM. */
int http_resp_text(http_resp *rs, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The HTTP status of an SF_E* code, as DESIGN.md's errors table says:
 * EINVAL, EKEYTYPE 400; ETOOBIG 413; ENOTFOUND 404; EPERM, ECONFLICT 403;
 * ELIMIT 429; ESTATE 409; EUNAVAIL, ETIMEOUT 503; 0 200; else 500.
 */
int http_status_from_err(int err);

typedef struct {
	const char *name;           /* for logs: "status" */
	const char *address;        /* "host:port"; port 0 picks one */
	const char *tls_cert_file;  /* NULL: plain HTTP */
	const char *tls_key_file;
	/* PEM roots: ask for client certificates and verify them up to
	 * these; NULL: none asked for. Only with tls_cert_file. */
	const char *tls_trust_file;
	int threads;                /* default 4 */
	size_t max_body;            /* default 64 KiB */
	/* Per-connection memory for the request line and headers (MHD's
	 * CONNECTION_MEMORY_LIMIT); bigger headers get 431. Default 32 KiB. */
	size_t max_header;
	/* A request body must arrive within this (from its headers), else
	 * the connection is closed. Default 10000. */
	int body_timeout_ms;
	int timeout_s;              /* idle connection timeout, default 10 */
	int max_connections;        /* default 256 */
	int per_ip_connections;     /* default 32 */
} http_opts;

http_server *http_server_new(void);
/* Add a route; method NULL = any. Before http_server_start. */
int http_server_route(http_server *s, const char *method, const char *prefix,
    http_handler fn, void *arg);

/* A route's own limits and refusals (http_server_route_ex). */
typedef struct {
	size_t max_body;            /* 0: the server's max_body */
	/* Fills rs for what the server refuses on this route itself (a body
	 * over max_body: 413); NULL: text/plain. */
	int (*refuse)(http_resp *rs, int status, const char *msg);
} http_route_opts;
int http_server_route_ex(http_server *s, const char *method,
    const char *prefix, http_handler fn, void *arg, const http_route_opts *o);
/* Bind and serve. SF_EINVAL (address), SF_EIO (bind), SF_ECONFIG (TLS). */
int http_server_start(http_server *s, const http_opts *o, char *why,
    size_t whylen);
/* The bound TCP port (after start). */
int http_server_port(const http_server *s);
/* Stop serving and free; NULL-safe. */
void http_server_free(http_server *s);

#endif
