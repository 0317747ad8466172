/*
 * Replays a fuzz target's corpus as an ordinary test (built with gcc,
 * without libFuzzer): every file in the corpus directory goes through
 * LLVMFuzzerTestOneInput once. A crash fails the test; each file is one
 * TAP line. scripts/fuzz runs the real fuzzers.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "../tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
main(int argc, char **argv)
{
	DIR *d;
	struct dirent *e;
	int n = 0;

	if (argc != 2 || (d = opendir(argv[1])) == NULL) {
		fprintf(stderr, "usage: replay CORPUS_DIR\n");
		return 2;
	}
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		uint8_t *buf;
		size_t len;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
		if (sf_read_file(path, 1 << 20, &buf, &len) != 0)
			continue;
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		ok(1, "%s", e->d_name);
		n++;
	}
	closedir(d);
	ok(n > 0, "corpus %s is not empty (%d inputs)", argv[1], n);
	return tap_done();
}
