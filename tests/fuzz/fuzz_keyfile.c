/* Fuzz target for store/crypt's key-file parser, without a passphrase and
 * with "test12345". A key that loads must format and load back to the same
 * fingerprint. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/crypt.h"
#include "store/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* scrypt and PBKDF2 cost whatever the file asks for (up to 1 GiB and 2^31
 * iterations); only cheap parameters get a passphrase, so a fuzzer does not
 * stall on inputs that are slow by design. The parser itself is reached
 * either way. */
static bool kdf_cheap(const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, 0, NULL);
	json_t *kdf = json_object_get(root, "kdf");
	json_t *s = json_object_get(kdf, "Scrypt"), *p = json_object_get(kdf, "PBKDF2");
	bool cheap = true;

	if (s)
		cheap = json_integer_value(json_object_get(s, "n")) <= 16384 &&
			json_integer_value(json_object_get(s, "r")) <= 8 &&
			json_integer_value(json_object_get(s, "p")) <= 1;
	if (p)
		cheap = cheap && json_integer_value(json_object_get(p, "iter")) <= 2000;
	json_decref(root);
	return cheap;
}

static void check(struct ds_crypt *c)
{
	struct ds_digest fp, fp2;
	struct ds_crypt *back;
	char *json;

	ds_crypt_fingerprint(c, &fp);
	if (ds_keyfile_format(c, DS_KDF_NONE, NULL, &json) < 0)
		abort();
	if (ds_keyfile_parse(json, strlen(json), NULL, &back) < 0)
		abort();
	ds_crypt_fingerprint(back, &fp2);
	if (!ds_digest_eq(&fp, &fp2))
		abort();
	ds_crypt_free(back);
	free(json);
	ds_crypt_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ds_crypt *c;

	if (ds_keyfile_parse((const char *)data, size, NULL, &c) == 0)
		check(c);
	if (kdf_cheap(data, size) &&
	    ds_keyfile_parse((const char *)data, size, "test12345", &c) == 0)
		check(c);
	return 0;
}
