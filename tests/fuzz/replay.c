/*
 * Replays a fuzz target's corpus as an ordinary test (built with gcc,
 * without libFuzzer): every file in the corpus directory goes through
 * LLVMFuzzerTestOneInput once. A crash fails the test; each file is one
 * TAP line. scripts/fuzz runs the real fuzzers. `replay --seeds DIR`
 * asks a target that can to write its seed corpus into DIR.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "../tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
/* A target may write its own seed corpus (`replay --seeds DIR`). */
int fuzz_write_seeds(const char *dir) __attribute__((weak));

int
main(int argc, char **argv)
{
	DIR *d;
	struct dirent *e;
	int n = 0;

	if (argc == 3 && strcmp(argv[1], "--seeds") == 0) {
		if (fuzz_write_seeds == NULL) {
			fprintf(stderr, "this target writes no seeds\n");
			return 2;
		}
		return fuzz_write_seeds(argv[2]) == 0 ? 0 : 1;
	}
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
