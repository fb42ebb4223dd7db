#include "b64url.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The value of a base64url character, or -1. */
static int value_of(unsigned char c)
{
	if(c >= 'A' && c <= 'Z') return c - 'A';
	if(c >= 'a' && c <= 'z') return c - 'a' + 26;
	if(c >= '0' && c <= '9') return c - '0' + 52;
	if(c == '-') return 62;
	if(c == '_') return 63;
	return -1;
}

bool b64url_is_char(unsigned char c)
{
	return value_of(c) >= 0;
}

size_t b64url_decoded_len(size_t len)
{
	return len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
}

bool b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0;

	if(len % 4 == 1 || b64url_decoded_len(len) > cap) return false;
	for(size_t i = 0; i < len; i++){
		int v = value_of((unsigned char)in[i]);
		if(v < 0) return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if(bits >= 8){
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1U << bits) - 1U;
		}
	}
	/* Leftover bits must be zero: otherwise two strings would decode alike. */
	if(acc != 0) return false;
	*out_len = n;
	return true;
}

bool b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	size_t need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0;

	if(need + 1 > cap) return false;
	for(size_t i = 0; i < len; i++){
		acc = (acc << 8) | in[i];
		bits += 8;
		while(bits >= 6){
			bits -= 6;
			out[n++] = alphabet[(acc >> bits) & 0x3FU];
		}
		acc &= (1U << bits) - 1U;
	}
	if(bits > 0){
		out[n++] = alphabet[(acc << (6 - bits)) & 0x3FU];
	}
	out[n] = '\0';
	return true;
}
