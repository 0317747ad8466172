/*
 * util.h - small helpers shared by every process: formatted and
 * NULL-safe string copies, whole-file reads and atomic writes, hex, clocks.
 */
#ifndef SF_UTIL_H
#define SF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* malloc'd printf; NULL on failure. */
char *sf_aprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Read a whole file of at most max bytes into a malloc'd buffer with a NUL
 * after the data (not counted in *len). SF_ETOOBIG past max, SF_EIO else.
 */
int sf_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/* Write data to path atomically (temp file, fsync, rename) with mode. */
int sf_write_file(const char *path, const void *data, size_t len, int mode);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void sf_hex(const uint8_t *in, size_t len, char *out);
/* Uppercase hex, as `openssl x509 -serial` prints serials. */
void sf_hex_upper(const uint8_t *in, size_t len, char *out);

/* Seconds since the epoch. */
int64_t sf_now(void);
/* Monotonic milliseconds. */
int64_t sf_mono_ms(void);

/* The n strings of v joined by sep, malloc'd ("" for n = 0); NULL when out
 * of memory. */
char *sf_join(char *const *v, size_t n, const char *sep);

/* strdup that passes NULL through (NULL in, NULL out). */
char *sf_strdup(const char *s);

/* strlcpy-alike: always NUL-terminates; returns strlen(src). */
size_t sf_strlcpy(char *dst, const char *src, size_t size);

#endif
