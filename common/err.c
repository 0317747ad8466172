/*
 * err.c - names of the SF_E* codes and the one helper that fills a
 * caller's message buffer (see err.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

const char *
sf_strerror(int err)
{
	switch (err) {
	case SF_OK: return "success";
	case SF_EINVAL: return "invalid input";
	case SF_ENOMEM: return "out of memory";
	case SF_EIO: return "I/O error";
	case SF_ENOTFOUND: return "not found";
	case SF_EPERM: return "permission denied";
	case SF_EEXIST: return "already exists";
	case SF_ELIMIT: return "rate limit exceeded";
	case SF_EUNAVAIL: return "unavailable";
	case SF_EINTERNAL: return "internal error";
	case SF_ECRYPTO: return "cryptographic operation failed";
	case SF_EDB: return "database error";
	case SF_ETOOBIG: return "input too large";
	case SF_ECONFIG: return "configuration error";
	case SF_ESTATE: return "wrong state for this operation";
	case SF_EKEYTYPE: return "key type not allowed";
	case SF_ECONFLICT: return "conflicts with an existing record";
	case SF_ETIMEOUT: return "timed out";
	}
	return "unknown error";
}

void
sf_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}
