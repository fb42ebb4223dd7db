/* The broker credential: a compact JWS (ES256) whose claims name the client and carry
 * its acl. Verified before anything but the small header is parsed. Pure: no broker
 * headers, so the fuzzer links it. */
#ifndef HUB_AUTH_TOKEN_H
#define HUB_AUTH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "keys.h"

#define TOKEN_MAX_LEN 4096
#define TOKEN_MAX_HEADER 256
#define TOKEN_MAX_CLAIM 128

enum token_shape {
	TOKEN_NOT_JWS,  /* not three non-empty base64url parts: not ours to judge */
	TOKEN_TOO_LONG, /* shaped like one, but over TOKEN_MAX_LEN */
	TOKEN_JWS,
};

struct token_claims {
	char sub[TOKEN_MAX_CLAIM + 1];
	char tenant[TOKEN_MAX_CLAIM + 1];
	char kind[TOKEN_MAX_CLAIM + 1];
	char clientid[TOKEN_MAX_CLAIM + 1];
	char username[TOKEN_MAX_CLAIM + 1];
	char jti[TOKEN_MAX_CLAIM + 1];
	int64_t iat, nbf, exp;
	struct acl *acl; /* owned; free() */
};

/* What the claims must agree with. */
struct token_expect {
	const char *issuer;
	const char *audience;
	const char *username; /* the CONNECT's; NULL never matches */
	const char *clientid;
	int64_t now;
	int64_t leeway; /* applies to nbf only */
};

/* Classifies a password; `password` is NUL-terminated (MQTT bounds it to 65535 bytes). */
enum token_shape token_shape(const char *password);

/* Verifies signature then claims. true with *out filled (out->acl allocated) when the
 * token is good; false with a short static reason in *why otherwise. */
bool token_verify(const char *token, const struct keyset *keys, const struct token_expect *expect,
		struct token_claims *out, const char **why);

#endif
