/*
 * err.h - the project's error codes.
 *
 * Functions return 0 on success or one of the negative SF_E* codes below;
 * sf_strerror() names them. The codes are chosen so that each maps onto one
 * gRPC status (rpc_status_from_err() in rpc.h), which is how a failure deep
 * in a module reaches a caller as a typed error.
 */
#ifndef SF_ERR_H
#define SF_ERR_H

#include <stddef.h>

enum {
	SF_OK = 0,
	SF_EINVAL = -1,      /* malformed input: INVALID_ARGUMENT */
	SF_ENOMEM = -2,      /* out of memory: INTERNAL */
	SF_EIO = -3,         /* file or socket I/O failed: INTERNAL */
	SF_ENOTFOUND = -4,   /* no such object: NOT_FOUND */
	SF_EPERM = -5,       /* refused by policy: PERMISSION_DENIED */
	SF_EEXIST = -6,      /* already exists: ALREADY_EXISTS */
	SF_ELIMIT = -7,      /* rate or quota exceeded: RESOURCE_EXHAUSTED */
	SF_EUNAVAIL = -8,    /* token / peer unavailable: UNAVAILABLE */
	SF_EINTERNAL = -9,   /* a bug or an impossible state: INTERNAL */
	SF_ECRYPTO = -10,    /* an OpenSSL operation failed: INTERNAL */
	SF_EDB = -11,        /* a database operation failed: INTERNAL */
	SF_ETOOBIG = -12,    /* input over a size limit: INVALID_ARGUMENT */
	SF_ECONFIG = -13,    /* configuration error: start-up only */
	SF_ESTATE = -14,     /* wrong state for this operation: FAILED_PRECONDITION */
	SF_EKEYTYPE = -15,   /* key type or size not allowed: INVALID_ARGUMENT */
	SF_ECONFLICT = -16,  /* conflicts with an existing record: PERMISSION_DENIED */
	SF_ETIMEOUT = -17,   /* deadline passed: DEADLINE_EXCEEDED */
};

/* A static string naming the error; never NULL. */
const char *sf_strerror(int err);

/*
 * Write a sentence into a caller's message buffer. Every function that
 * explains a refusal takes the pair (char *why, size_t whylen); why may be
 * NULL or whylen 0, in which case nothing is written.
 */
void sf_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
