/*
 * libFuzzer target: the factory file readers (client/import.c) on raw
 * bytes. Byte 0 picks the format (even: CSV, odd: JSON Lines), the rest is
 * the file. The bytes go into a memory file (memfd) that the reader opens
 * by its /proc path, as it would open a factory's file, and every record
 * is read to the end: good, refused or malformed, the reader must neither
 * crash nor leak, and must end.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/err.h>

#include "import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	import_reader *r = NULL;
	import_record rec;
	char path[64], why[256];
	int fd, fmt, n = 0;

	if (len < 1)
		return 0;
	fmt = data[0] & 1 ? IMPORT_JSONL : IMPORT_CSV;
	if ((fd = memfd_create("fuzz-import", 0)) < 0)
		return 0;
	if (len > 1 && write(fd, data + 1, len - 1) != (ssize_t)(len - 1)) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if (import_open(path, fmt, "widgiot", "", &r, why, sizeof why) == 0) {
		/* A record per line at most: the loop must end. */
		while (import_next(r, &rec) == 1 && n++ <= (int)len + 1)
			;
		import_record_fini(&rec);
		import_close(r);
	}
	close(fd);
	ERR_clear_error();
	return 0;
}
