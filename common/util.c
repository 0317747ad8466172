/*
 * util.c - small helpers shared by every process (see util.h): formatted
 * and NULL-safe string copies, whole-file reads, atomic file writes
 * (temporary file, fsync, rename), hex encodings and clocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "util.h"

char *
sf_aprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

int
sf_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	uint8_t *buf = NULL, *nb;
	size_t cap = 0, n = 0;
	ssize_t r;
	int fd, rc = SF_EIO;

	*out = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return SF_EIO;
	for (;;) {
		if (n + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 4096;

			if (cap > max + 1) {
				rc = SF_ETOOBIG;
				goto out;
			}
			if ((nb = realloc(buf, ncap)) == NULL) {
				rc = SF_ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			rc = SF_ETOOBIG;
			goto out;
		}
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;  /* transferred */
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int
sf_write_file(const char *path, const void *data, size_t len, int mode)
{
	char *tmp = sf_aprintf("%s.tmp.%d", path, (int)getpid());
	const uint8_t *p = data;
	int fd, rc = SF_EIO;

	if (tmp == NULL)
		return SF_ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		goto out;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			unlink(tmp);
			goto out;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(tmp, path) != 0) {
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	return rc;
}

static void
hex(const uint8_t *in, size_t len, char *out, const char *digits)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

void
sf_hex(const uint8_t *in, size_t len, char *out)
{
	hex(in, len, out, "0123456789abcdef");
}

void
sf_hex_upper(const uint8_t *in, size_t len, char *out)
{
	hex(in, len, out, "0123456789ABCDEF");
}

int64_t
sf_now(void)
{
	return (int64_t)time(NULL);
}

int64_t
sf_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t
sf_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size) {
		size_t k = n < size - 1 ? n : size - 1;

		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}

char *
sf_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *
sf_join(char *const *v, size_t n, const char *sep)
{
	size_t len = 1, seplen = strlen(sep), off = 0;
	char *out;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + seplen;
	if ((out = malloc(len)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(v[i]);

		if (i) {
			memcpy(out + off, sep, seplen);
			off += seplen;
		}
		memcpy(out + off, v[i], l);
		off += l;
	}
	out[off] = '\0';
	return out;
}
