/*
 * conf.h - the configuration file format shared by the daemons and the CLI.
 *
 * INI style:
 *
 *     # comment            ; comment
 *     [section]            [section.with.dots]   (names: [A-Za-z0-9._-]+)
 *     key = value          (keys: [A-Za-z0-9_-]+; value runs to end of line,
 *                           surrounding blanks trimmed; "quotes" optional and
 *                           removed; no escapes)
 *
 * Keys before any [section] belong to the section "" (empty name).
 * A repeated key in one section, a repeated section header, a line that is
 * none of the above: load error with the line number. Values are not
 * interpreted here; getters below parse them with range checks.
 */
#ifndef SF_CONF_H
#define SF_CONF_H

#include <stddef.h>
#include <sys/types.h>

typedef struct conf conf;

/* Parse the file at path. On error returns SF_ECONFIG (SF_EIO if the file
 * cannot be read) and writes "path:line: what" into why. */
int conf_load(const char *path, conf **out, char *why, size_t whylen);
/* The same from a string in memory (name is used in messages). */
int conf_parse(const char *name, const char *text, conf **out, char *why,
    size_t whylen);
void conf_free(conf *c);

/* The value, or NULL when the key (or the section) is absent. Borrowed. */
const char *conf_get(const conf *c, const char *section, const char *key);
/* The value, or def when absent. */
const char *conf_get_str(const conf *c, const char *section, const char *key,
    const char *def);
/*
 * Integer in [min, max]; def when absent. SF_ECONFIG with a message naming
 * section, key and the accepted range when present but not such an integer.
 */
int conf_get_int(const conf *c, const char *section, const char *key,
    long long def, long long min, long long max, long long *out, char *why,
    size_t whylen);
/* yes/no/true/false/on/off/1/0; def when absent; SF_ECONFIG otherwise. */
int conf_get_bool(const conf *c, const char *section, const char *key,
    int def, int *out, char *why, size_t whylen);
/*
 * A list of users or uids ("1001, pki-admin"; names looked up with
 * getpwnam) into uids[0..max-1], *n of them; none when absent. SF_ECONFIG
 * with a message naming file, section and key for an unknown user or more
 * than max entries.
 */
int conf_get_uids(const conf *c, const char *section, const char *key,
    uid_t *uids, size_t max, size_t *n, char *why, size_t whylen);
/* A group name or number; (gid_t)-1 when absent or empty. SF_ECONFIG for
 * an unknown group. */
int conf_get_gid(const conf *c, const char *section, const char *key,
    gid_t *gid, char *why, size_t whylen);
/* warning, info or debug as LOG_LEVEL_* (log.h); def when absent;
 * SF_ECONFIG otherwise. */
int conf_get_log_level(const conf *c, const char *section, const char *key,
    int def, int *out, char *why, size_t whylen);
/* 1 if the section exists (even empty). */
int conf_has_section(const conf *c, const char *section);
/*
 * Section names starting with prefix (e.g. "product."), in file order.
 * *names is a malloc'd array of borrowed strings; returns the count.
 */
size_t conf_sections(const conf *c, const char *prefix, const char ***names);
/*
 * Refuse keys that are not in allowed (NULL-terminated) for section:
 * SF_ECONFIG naming the first unknown key and its line. Typos in a CA's
 * configuration must not pass silently.
 */
int conf_check_keys(const conf *c, const char *section,
    const char *const *allowed, char *why, size_t whylen);

/*
 * Expand ${name} references in tmpl from vars, a NULL-terminated list of
 * name, value pairs. An unknown name is an error (NULL and a message in
 * why). Returns a malloc'd string.
 */
char *conf_expand(const char *tmpl, const char *const *vars, char *why,
    size_t whylen);

/* Split a comma-separated list (blanks around items trimmed, empty items
 * dropped). *items is malloc'd with its strings; free with conf_list_free. */
size_t conf_split_list(const char *value, char ***items);
void conf_list_free(char **items, size_t n);

#endif
