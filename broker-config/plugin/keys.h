/* The api's public ES256 keys, from a JWKS document. Pure: no broker headers. */
#ifndef HUB_AUTH_KEYS_H
#define HUB_AUTH_KEYS_H

#include <stddef.h>

#include <openssl/evp.h>

#define KEYS_MAX 16
#define KEYS_KID_MAX 64
#define KEYS_FILE_MAX (64 * 1024)

struct key {
	char kid[KEYS_KID_MAX + 1];
	EVP_PKEY *pkey;
};

struct keyset {
	size_t count;
	struct key keys[KEYS_MAX];
};

/* Parses {"keys":[...]}; keeps the EC P-256 ES256 public keys (up to KEYS_MAX), logs
 * and skips the others, and skips (with an error line) any key holding a private part.
 * NULL when the document itself is malformed. A document with no usable key is a
 * keyset with count 0. */
struct keyset *keys_parse(const char *json, size_t len);

/* Reads and parses a file of at most KEYS_FILE_MAX bytes. NULL on any failure, with
 * errno-like detail logged. */
struct keyset *keys_load_file(const char *path);

/* The key with this kid, or NULL. */
EVP_PKEY *keys_find(const struct keyset *set, const char *kid);

void keys_free(struct keyset *set);

#endif
