/*
 * libFuzzer target: PKCS#11 URIs (signer/token_uri.c), what the signer
 * reads from [token] uri.
 *
 * Input: the URI's bytes (a NUL cuts it, as it would a configuration
 * value). Whatever token_uri_parse accepts must format (token_uri_fmt)
 * into a URI no longer than the input that parses again to the same
 * attributes and formats to the same text; a difference aborts. A refusal must leave nothing behind
 * and say why. The matcher is run on each text attribute against a
 * blank-padded field.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int
same(const token_uri *a, const token_uri *b)
{
	return same_str(a->token, b->token) &&
	    same_str(a->manufacturer, b->manufacturer) &&
	    same_str(a->serial, b->serial) && same_str(a->model, b->model) &&
	    a->has_slot_id == b->has_slot_id && a->slot_id == b->slot_id &&
	    same_str(a->object, b->object) &&
	    (a->id == NULL) == (b->id == NULL) && a->id_len == b->id_len &&
	    (a->id_len == 0 || memcmp(a->id, b->id, a->id_len) == 0) &&
	    a->type == b->type && same_str(a->pin_source, b->pin_source) &&
	    same_str(a->pin_value, b->pin_value) &&
	    same_str(a->module_name, b->module_name) &&
	    same_str(a->module_path, b->module_path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *text = malloc(len + 1), *s1 = NULL, *s2 = NULL, why[300];
	unsigned char field[32];
	token_uri a, b;

	if (text == NULL)
		return 0;
	memcpy(text, data, len);
	text[len] = '\0';
	memset(field, ' ', sizeof field);
	memcpy(field, "secretfree", 10);
	why[0] = '\0';
	if (token_uri_parse(text, &a, why, sizeof why) != 0) {
		if (why[0] == '\0' || a.token || a.object || a.id ||
		    a.pin_source || a.module_path)
			abort();
		goto out;
	}
	(void)token_uri_match_field(a.token, field, sizeof field);
	(void)token_uri_match_field(a.serial, field, 16);
	if ((s1 = token_uri_fmt(&a)) == NULL)
		goto out_a;
	/* Formatting never lengthens what was parsed. */
	if (strlen(s1) > strlen(text)) {
		fprintf(stderr, "fuzz_p11uri: %s formats longer: %s\n", text,
		    s1);
		abort();
	}
	if (token_uri_parse(s1, &b, why, sizeof why) != 0) {
		fprintf(stderr, "fuzz_p11uri: %s formats as %s, which does not"
		    " parse: %s\n", text, s1, why);
		abort();
	}
	if (!same(&a, &b) || (s2 = token_uri_fmt(&b)) == NULL ||
	    strcmp(s1, s2) != 0) {
		fprintf(stderr, "fuzz_p11uri: %s -> %s -> %s\n", text, s1,
		    s2 ? s2 : "(null)");
		abort();
	}
	token_uri_fini(&b);
out_a:
	token_uri_fini(&a);
out:
	free(s1);
	free(s2);
	free(text);
	return 0;
}
