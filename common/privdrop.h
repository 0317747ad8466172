/*
 * privdrop.h - give up root for a configured user.
 */
#ifndef SF_PRIVDROP_H
#define SF_PRIVDROP_H

#include <stddef.h>

/*
 * If running as root and user is set: switch to user's uid, gid and
 * supplementary groups for good (and check that root cannot be regained).
 * Not root and no user: nothing to do. Not root and a user: SF_EPERM unless
 * it is already that user. why says what failed.
 */
int privdrop(const char *user, char *why, size_t whylen);

#endif
