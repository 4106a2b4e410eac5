/* Fuzz target for store/config: datastore.cfg and property strings.
 *
 * Whatever parses must format, and the formatted text must parse again and
 * format to the same bytes; the one allowed formatting failure is a control
 * character, which PBS's writer refuses as well. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/config.h"
#include "store/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

/* C0, DEL or C1 (UTF-8 C2 80..C2 9F): what the writer refuses. */
static int has_control(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; s && *p; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return 1;
	return 0;
}

static int config_has_control(const struct ds_config *cfg)
{
	for (size_t i = 0; i < cfg->n_stores; i++) {
		const struct ds_datastore_cfg *ds = &cfg->stores[i];

		if (has_control(ds->maintenance_message))
			return 1;
		for (size_t k = 0; k < ds->n_props; k++)
			if (has_control(ds->props[k].value))
				return 1;
	}
	return 0;
}

static void roundtrip(const uint8_t *data, size_t size)
{
	struct ds_config *cfg = NULL, *again = NULL;
	char *text = NULL, *text2 = NULL;
	size_t len = 0, len2 = 0;
	int r;

	if (ds_config_parse((const char *)data, size, "fuzz", &cfg) < 0)
		return;
	r = ds_config_format(cfg, &text, &len);
	if (r < 0) {
		if (r != -EINVAL || !config_has_control(cfg))
			abort();
		goto out;
	}
	if (ds_config_parse(text, len, "fuzz-again", &again) < 0)
		abort();
	if (again->n_stores != cfg->n_stores)
		abort();
	for (size_t i = 0; i < cfg->n_stores; i++)
		if (strcmp(cfg->stores[i].name, again->stores[i].name) != 0 ||
		    cfg->stores[i].maintenance != again->stores[i].maintenance)
			abort();
	if (ds_config_format(again, &text2, &len2) < 0)
		abort();
	if (len2 != len || memcmp(text, text2, len) != 0)
		abort();
out:
	free(text);
	free(text2);
	ds_config_free(again);
	ds_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ds_config_prop *props = NULL;
	const char *why = NULL;
	char *s;
	size_t n = 0;

	ds_log_set_sink(quiet, NULL);
	roundtrip(data, size);

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (ds_property_string_parse(s, "type", &props, &n, &why) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!props[i].key || !props[i].value)
				abort();
		ds_config_props_free(props, n);
	} else if (!why) {
		abort();
	}
	free(s);
	return 0;
}
