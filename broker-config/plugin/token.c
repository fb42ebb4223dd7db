#include "token.h"

#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "b64url.h"
#include "json_util.h"

/* 0..this is a plausible NumericDate (year 5138): keeps the int64 conversion exact. */
#define TOKEN_MAX_TIME 1e11

#define SIG_B64_LEN 86 /* 64 bytes */
#define HEADER_B64_MAX 342 /* TOKEN_MAX_HEADER bytes */

enum token_shape token_shape(const char *password)
{
	size_t len = 0, dots = 0, part = 0;

	for(const char *p = password; *p; p++, len++){
		if(len >= 65536) return TOKEN_NOT_JWS;
		if(*p == '.'){
			if(part == 0) return TOKEN_NOT_JWS;
			dots++;
			part = 0;
		}else if(b64url_is_char((unsigned char)*p)){
			part++;
		}else{
			return TOKEN_NOT_JWS;
		}
	}
	if(dots != 2 || part == 0) return TOKEN_NOT_JWS;
	return len > TOKEN_MAX_LEN ? TOKEN_TOO_LONG : TOKEN_JWS;
}

/* Checks the header and returns the key it names, or NULL with *why. */
static EVP_PKEY *header_key(const char *b64, size_t len, const struct keyset *keys,
		const char **why)
{
	uint8_t raw[TOKEN_MAX_HEADER];
	size_t raw_len;
	cJSON *header;
	const char *alg, *kid, *typ;
	EVP_PKEY *pkey = NULL;

	if(len > HEADER_B64_MAX || !b64url_decode(b64, len, raw, sizeof(raw), &raw_len)){
		*why = "header is not base64url of at most 256 bytes";
		return NULL;
	}
	header = cJSON_ParseWithLength((const char *)raw, raw_len);
	if(!cJSON_IsObject(header)){
		*why = "header is not a JSON object";
		cJSON_Delete(header);
		return NULL;
	}
	alg = json_string(header, "alg");
	kid = json_string(header, "kid");
	typ = json_string(header, "typ");
	if(alg == NULL || strcmp(alg, "ES256") != 0){
		*why = "alg is not ES256";
	}else if(cJSON_HasObjectItem(header, "typ") && (typ == NULL || strcmp(typ, "JWT") != 0)){
		*why = "typ is not JWT";
	}else if(cJSON_HasObjectItem(header, "crit")){
		*why = "header has crit";
	}else if(kid == NULL || (pkey = keys_find(keys, kid)) == NULL){
		*why = "unknown kid";
	}
	cJSON_Delete(header);
	return pkey;
}

/* ES256: the JWS signature is r||s (32 bytes each); OpenSSL verifies DER. */
static bool es256_verify(EVP_PKEY *pkey, const char *signed_part, size_t signed_len,
		const uint8_t raw_sig[64])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw_sig, 32, NULL);
	BIGNUM *s = BN_bin2bn(raw_sig + 32, 32, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80], *cursor = der;
	int der_len;
	bool ok = false;

	if(sig == NULL || r == NULL || s == NULL || md == NULL || ECDSA_SIG_set0(sig, r, s) != 1){
		BN_free(r);
		BN_free(s);
		goto done;
	}
	/* sig owns r and s now */
	der_len = i2d_ECDSA_SIG(sig, NULL);
	if(der_len <= 0 || (size_t)der_len > sizeof(der) || i2d_ECDSA_SIG(sig, &cursor) != der_len){
		goto done;
	}
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1
		&& EVP_DigestVerify(md, der, (size_t)der_len, (const unsigned char *)signed_part, signed_len) == 1;
done:
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(sig);
	return ok;
}

static bool copy_claim(const cJSON *claims, const char *name, char out[TOKEN_MAX_CLAIM + 1])
{
	const char *value = json_string(claims, name);
	size_t len;

	if(value == NULL) return false;
	len = strnlen(value, TOKEN_MAX_CLAIM + 1);
	if(len == 0 || len > TOKEN_MAX_CLAIM) return false;
	memcpy(out, value, len + 1);
	return true;
}

static bool time_claim(const cJSON *claims, const char *name, bool round_up, int64_t *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
	double v;

	if(!cJSON_IsNumber(item)) return false;
	v = item->valuedouble;
	if(!isfinite(v) || v < 0 || v > TOKEN_MAX_TIME) return false;
	*out = (int64_t)(round_up ? ceil(v) : floor(v));
	return true;
}

static bool audience_ok(const cJSON *aud, const char *audience)
{
	const cJSON *item;
	bool found = false;

	if(cJSON_IsString(aud)) return strcmp(aud->valuestring, audience) == 0;
	if(!cJSON_IsArray(aud)) return false;
	cJSON_ArrayForEach(item, aud){
		if(!cJSON_IsString(item)) return false;
		if(strcmp(item->valuestring, audience) == 0) found = true;
	}
	return found;
}

static const char *check_claims(const cJSON *claims, const struct token_expect *expect,
		struct token_claims *out)
{
	const char *iss;

	if(!cJSON_IsObject(claims)) return "payload is not a JSON object";
	iss = json_string(claims, "iss");
	if(iss == NULL || strcmp(iss, expect->issuer) != 0) return "wrong iss";
	if(!audience_ok(cJSON_GetObjectItemCaseSensitive(claims, "aud"), expect->audience)){
		return "wrong aud";
	}
	if(!copy_claim(claims, "sub", out->sub) || !copy_claim(claims, "tenant", out->tenant)
			|| !copy_claim(claims, "kind", out->kind) || !copy_claim(claims, "clientid", out->clientid)
			|| !copy_claim(claims, "username", out->username) || !copy_claim(claims, "jti", out->jti)){
		return "a string claim is missing, empty or over 128 bytes";
	}
	if(strcmp(out->kind, "session") != 0 && strcmp(out->kind, "kiosk") != 0
			&& strcmp(out->kind, "partner") != 0){
		return "unknown kind";
	}
	if(!time_claim(claims, "iat", false, &out->iat) || !time_claim(claims, "nbf", true, &out->nbf)
			|| !time_claim(claims, "exp", false, &out->exp)){
		return "iat, nbf or exp missing or not a time";
	}
	if(expect->username == NULL || strcmp(out->username, expect->username) != 0){
		return "username does not match the CONNECT";
	}
	if(expect->clientid == NULL || strcmp(out->clientid, expect->clientid) != 0){
		return "clientid does not match the CONNECT";
	}
	if(expect->now < out->nbf - expect->leeway) return "not yet valid (nbf)";
	if(expect->now >= out->exp) return "expired";
	return NULL;
}

bool token_verify(const char *token, const struct keyset *keys, const struct token_expect *expect,
		struct token_claims *out, const char **why)
{
	const char *dot1, *dot2, *sig_b64;
	uint8_t sig[64], payload[TOKEN_MAX_LEN];
	size_t sig_len, payload_len;
	EVP_PKEY *pkey;
	cJSON *claims;

	memset(out, 0, sizeof(*out));
	if(token_shape(token) != TOKEN_JWS){
		*why = "not a compact JWS of at most 4096 bytes";
		return false;
	}
	dot1 = strchr(token, '.');
	dot2 = strchr(dot1 + 1, '.');
	sig_b64 = dot2 + 1;

	pkey = header_key(token, (size_t)(dot1 - token), keys, why);
	if(pkey == NULL) return false;
	if(strlen(sig_b64) != SIG_B64_LEN || !b64url_decode(sig_b64, SIG_B64_LEN, sig, sizeof(sig), &sig_len)
			|| sig_len != sizeof(sig)){
		*why = "signature is not 64 bytes of base64url";
		return false;
	}
	if(!es256_verify(pkey, token, (size_t)(dot2 - token), sig)){
		*why = "bad signature";
		return false;
	}

	/* Signed by the api: only now is the payload decoded and parsed. */
	if(!b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof(payload), &payload_len)){
		*why = "payload is not base64url";
		return false;
	}
	claims = cJSON_ParseWithLength((const char *)payload, payload_len);
	*why = check_claims(claims, expect, out);
	if(*why == NULL){
		out->acl = acl_parse(cJSON_GetObjectItemCaseSensitive(claims, "acl"), why);
	}
	cJSON_Delete(claims);
	return out->acl != NULL;
}
