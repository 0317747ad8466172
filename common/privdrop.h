/*
 * privdrop.h - give up root for a configured service user.
 *
 * A daemon resolves its user first (privdrop_resolve), before it opens
 * anything, so that a configuration that would leave it running as root
 * by accident is refused at once and so that what it opens as root (the
 * signer's PIN file) can be checked against the user it will become. It
 * switches (privdrop_apply) after opening what needs root and before
 * serving any call.
 */
#ifndef SF_PRIVDROP_H
#define SF_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
	char name[64];   /* the user's name ("" when none is configured) */
	uid_t uid;       /* the uid the daemon runs as after privdrop_apply */
	gid_t gid;
	int change;      /* started as root: privdrop_apply switches */
} privdrop_user;

/*
 * Resolve the configured user into out. key names the setting in messages
 * ("[signer] user").
 *  - Started as root (euid 0): user is required. Unset, it is SF_ECONFIG
 *    naming key: running as root must be asked for (user = root).
 *  - Not root: user unset means "as we are"; a user other than the euid's
 *    is SF_EPERM (we cannot become it).
 * SF_ECONFIG for a user the system does not know (or a name longer than
 * 63 bytes). why says which.
 */
int privdrop_resolve(const char *key, const char *user, privdrop_user *out,
    char *why, size_t whylen);

/*
 * If u->change: switch to u's uid, gid and supplementary groups for good,
 * real, effective and saved ids alike, and check that root cannot be
 * regained (unless u is root). Nothing to do otherwise. SF_EPERM with why.
 */
int privdrop_apply(const privdrop_user *u, char *why, size_t whylen);

#endif
