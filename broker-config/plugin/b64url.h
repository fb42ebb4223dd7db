/* Strict base64url (RFC 4648 section 5) without padding, as JWS uses it. */
#ifndef HUB_AUTH_B64URL_H
#define HUB_AUTH_B64URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The number of bytes `len` base64url characters decode to (whole groups only). */
size_t b64url_decoded_len(size_t len);

bool b64url_is_char(unsigned char c);

/* Decodes `in[0..len)` into `out` (capacity `cap`); refuses padding, characters outside
 * the alphabet, a length of 1 mod 4 and non-zero unused trailing bits, so each byte
 * string has exactly one accepted encoding. */
bool b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Encodes into `out` (capacity `cap`, NUL-terminated); false if it does not fit. */
bool b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap);

#endif
