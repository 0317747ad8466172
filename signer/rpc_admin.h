/*
 * rpc_admin.h - what the CaAdmin handlers share across files (private to
 * signer/rpc_*.c). The CaAdmin method table, the one place that says which
 * listener may call which method, is in rpc_admin.c; handlers that live in
 * other files (rpc_revoke.c, ...) are declared here so the table can name
 * them.
 */
#ifndef SF_RPC_ADMIN_H
#define SF_RPC_ADMIN_H

#include <stdint.h>

#include "secretfree/v1/ca_admin.pb-c.h"
#include "signer.h"

/* A CA as CaInfo, into ci / a new message (NULL if out of memory), read
 * under the store's read lock (an import may change the CA meanwhile). */
void rpc_admin_fill_ca(rpc_call *call, signer_ctx *ctx, const ca *c,
    Secretfree__V1__CaInfo *ci);
Secretfree__V1__CaInfo *rpc_admin_ca_info(rpc_call *call, signer_ctx *ctx,
    const ca *c);
/* A journal row as CertificateInfo (with its PEM). */
void rpc_admin_fill_cert(rpc_call *call, const journal_cert_row *row,
    Secretfree__V1__CertificateInfo *ci);
/* The id of the CA called name ("" = 0, any CA); NOT_FOUND fails the
 * call (its status is returned). */
int rpc_admin_ca_id(rpc_call *call, signer_ctx *ctx, const char *name,
    int64_t *id);

/* rpc_revoke.c */
int rpc_admin_revoke_cert(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);

/* rpc_claim.c */
int rpc_claim_issue(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_claim_revoke_batch(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);

/* rpc_rotate.c */
int rpc_admin_rotate_ca(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_admin_retire_ca(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_admin_revoke_ca(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);

/* rpc_crl.c: Signer.GetCrl, Signer.GetCrlIndex, CaAdmin.GetCrl */
int rpc_crl_get(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_crl_index(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_crl_admin_get(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);

/* rpc_device.c */
int rpc_admin_get_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_admin_list_devices(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_admin_disable_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_admin_enable_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_admin_revoke_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);

/* rpc_mfr.c: just-in-time provisioning */
int rpc_mfr_register(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_mfr_list(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_mfr_set_crl(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_mfr_allow_birth(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);

/* rpc_audit.c: the audit trail */
int rpc_audit_verify(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_audit_export(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);
int rpc_audit_checkpoint(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg);

#endif
