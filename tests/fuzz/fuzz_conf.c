/* libFuzzer target: the configuration parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *text = malloc(len + 1), err[256];
	conf *c = NULL;

	if (text == NULL)
		return 0;
	memcpy(text, data, len);
	text[len] = '\0';
	if (conf_parse("fuzz", text, &c, err, sizeof err) == 0) {
		const char **secs = NULL;
		size_t n = conf_sections(c, "", &secs);
		char *x;

		for (size_t i = 0; i < n; i++)
			(void)conf_get(c, secs[i], "key");
		free(secs);
		static const char *const vars[] = { "a", "b", NULL };
		if ((x = conf_expand(text, vars, err, sizeof err)) != NULL)
			free(x);
		conf_free(c);
	}
	free(text);
	return 0;
}
