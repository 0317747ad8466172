/*
 * http_routes.c - what authz serves over HTTP ([http] listen), in one
 * list: each module that answers on HTTP adds its routes here, with the
 * handler in a file of its own.
 */
#include <string.h>

#include "authz.h"
#include "err.h"

/* GET /health: 200 "ok" while authz serves; for load balancers. */
static int
h_health(const http_req *rq, http_resp *rs, void *arg)
{
	(void)rq;
	(void)arg;
	return http_resp_text(rs, 200, "ok\n");
}

int
authz_http_front_doors(http_server *srv, authz_ctx *ctx, int serve)
{
	http_route_opts rest, est;
	int rc;

	memset(&rest, 0, sizeof rest);
	/* The parsers bound the CSR itself (413); this bounds the read. */
	rest.max_body = ctx->conf->csr_max * 2;
	rest.refuse = http_rest_refuse;
	est = rest;
	est.refuse = NULL;
	if (!serve) {
		if ((rc = http_server_route_ex(srv, NULL, "/new", http_rest_plain,
		    ctx, &rest)) != 0 ||
		    (rc = http_server_route_ex(srv, NULL, "/enrollments/",
		    http_rest_plain, ctx, &rest)) != 0 ||
		    (rc = http_server_route_ex(srv, NULL, "/.well-known/est/",
		    http_rest_plain, ctx, &rest)) != 0)
			return rc;
		return 0;
	}
	if ((rc = http_server_route_ex(srv, "POST", "/new", http_rest_new, ctx,
	    &rest)) != 0 ||
	    (rc = http_server_route_ex(srv, "GET", "/enrollments/",
	    http_rest_enrollment, ctx, &rest)) != 0 ||
	    (rc = http_server_route_ex(srv, NULL, "/.well-known/est/", http_est,
	    ctx, &est)) != 0)
		return rc;
	return 0;
}

int
authz_http_routes(http_server *srv, authz_ctx *ctx)
{
	int rc;

	if ((rc = http_server_route(srv, "GET", "/health", h_health,
	    NULL)) != 0)
		return rc;
	if (ctx->crls && (rc = http_server_route(srv, "GET", "/crl/",
	    crl_pub_http, ctx->crls)) != 0)
		return rc;
	/*
	 * OCSP answers at every path, since the AIA names one per CA at the
	 * root (http://ocsp.${domain}/${name}): these two routes stay last,
	 * so that every route above them, with its longer prefix, wins.
	 */
	if (ctx->ocsp == NULL && (ctx->ocsp = ocsp_cache_new((size_t)
	    ctx->conf->ocsp_cache_entries)) == NULL)
		return SF_ENOMEM;
	if ((rc = http_server_route(srv, "POST", "/", http_ocsp, ctx)) != 0 ||
	    (rc = http_server_route(srv, "GET", "/", http_ocsp, ctx)) != 0)
		return rc;
	return 0;
}
