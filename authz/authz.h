/*
 * authz.h - the authz process's shared state and its services.
 *
 * Listeners (DESIGN.md "Conventions"): the device listener (TCP + TLS)
 * serves Provisioning only; the local admin socket serves Registry and
 * Provisioning (for local tools). authz never touches a CA key and reaches
 * the signer only through sclient.c.
 */
#ifndef SF_AUTHZ_H
#define SF_AUTHZ_H

#include "config.h"
#include "crl_pub.h"
#include "enroll.h"
#include "http.h"
#include "ocsp_cache.h"
#include "rate.h"
#include "registry.h"
#include "rpc.h"
#include "sclient.h"

/* authz's listeners (rpc_listener_opts.id, rpc_method.listeners). */
enum {
	AUTHZ_DEVICE = 1 << 0,      /* devices, TCP + TLS */
	AUTHZ_ADMIN = 1 << 1,       /* the CLI and local tools, Unix socket */
};

typedef struct {
	authz_conf *conf;
	registry *reg;
	sclient *signer;
	rate *rl;
	enroll_ctx en;
	http_server *http;         /* [http] listen; NULL = none */
	http_server *https;        /* [http] tls_listen; NULL = none */
	struct latent *latent;     /* the front doors' enrollments (latent.h) */
	ocsp_cache *ocsp;          /* OCSP responses served over HTTP */
	crl_pub *crls;             /* [http] listen or crl_dir; NULL = none */
	struct renewal_sweeper *sweep;  /* renewal.h; NULL = not started */
	struct mqtt_door *mqtt;    /* [mqtt] (mqtt.h); NULL = none */
} authz_ctx;

/* The configuration now: SIGHUP publishes a new one while calls read it;
 * the old one stays until exit. */
static inline const authz_conf *
authz_conf_now(authz_ctx *ctx)
{
	return __atomic_load_n(&ctx->conf, __ATOMIC_ACQUIRE);
}

int rpc_provisioning_register(rpc_server *srv, authz_ctx *ctx);
int rpc_registry_register(rpc_server *srv, authz_ctx *ctx);
/* Registry.AdoptCertificate (rpc_adopt.c), named by rpc_registry.c's
 * table. */
int rpc_registry_adopt(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
/* The renewal methods (rpc_renew.c), named by rpc_provisioning.c's and
 * rpc_registry.c's tables: Provisioning.Renew, Acknowledge,
 * GetRenewalInfo; Registry.SetRenewalWindow. */
int rpc_provisioning_renew(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_provisioning_ack(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_provisioning_renewal_info(rpc_call *call,
    const ProtobufCMessage *reqm, ProtobufCMessage *respm, void *arg);
int rpc_registry_renewal_window(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
/* Registry's manufacturer methods (rpc_registry_mfr.c). */
int rpc_registry_mfr_register(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_registry_mfr_set_crl(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_registry_mfr_list(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
/* An enrollment as EnrollResponse (rpc_provisioning.c), for Enroll and
 * Renew. */
void rpc_provisioning_fill(rpc_call *call, const registry_enrollment *en,
    int replayed, ProtobufCMessage *respm);
/* Add every HTTP route (http_routes.c) to srv. */
int authz_http_routes(http_server *srv, authz_ctx *ctx);
/* OCSP over HTTP, GET and POST at any path (http_ocsp.c); arg: the ctx. */
int http_ocsp(const http_req *rq, http_resp *rs, void *arg);
/*
 * The device front doors (http_routes.c): REST and EST on srv when serve,
 * else routes that refuse them (403: plain HTTP off loopback). Before
 * authz_http_routes.
 */
int authz_http_front_doors(http_server *srv, authz_ctx *ctx, int serve);
/* REST (http_rest.c): POST /new, GET /enrollments/{id}; arg: the ctx. */
int http_rest_new(const http_req *rq, http_resp *rs, void *arg);
int http_rest_enrollment(const http_req *rq, http_resp *rs, void *arg);
/* The refusal of a front door on plain HTTP. */
int http_rest_plain(const http_req *rq, http_resp *rs, void *arg);
/* rs = a JSON error {"error", "message"} with status. */
int http_rest_refuse(http_resp *rs, int status, const char *msg);
/* EST (http_est.c): /.well-known/est/[<label>/]<op>; arg: the ctx. */
int http_est(const http_req *rq, http_resp *rs, void *arg);

#endif
