#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "b64url.h"
#include "hublog.h"
#include "json_util.h"

/* A P-256 public key from its 32-byte coordinates; NULL unless the point is valid. */
static EVP_PKEY *p256_public_key(const uint8_t x[32], const uint8_t y[32])
{
	uint8_t point[65];
	char group[] = "prime256v1";
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL, *check = NULL;
	EVP_PKEY *pkey = NULL;

	point[0] = 0x04;
	memcpy(point + 1, x, 32);
	memcpy(point + 33, y, 32);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
	params[2] = OSSL_PARAM_construct_end();

	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if(ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1
			|| EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1){
		goto fail;
	}
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if(check == NULL || EVP_PKEY_public_check(check) != 1) goto fail;
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	return pkey;

fail:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return NULL;
}

static bool coordinate(const cJSON *jwk, const char *name, uint8_t out[32])
{
	const char *text = json_string(jwk, name);
	size_t len;

	if(text == NULL || strlen(text) != 43) return false;
	return b64url_decode(text, 43, out, 32, &len) && len == 32;
}

/* Adds one JWK to the set, or says in the log why it is skipped. */
static void add_key(struct keyset *set, const cJSON *jwk, size_t index)
{
	const char *kty, *crv, *alg, *use, *kid;
	uint8_t x[32], y[32];
	EVP_PKEY *pkey;

	if(!cJSON_IsObject(jwk)){
		hub_log(HUB_LOG_WARNING, "hub-auth: keys[%zu] is not an object; ignored", index);
		return;
	}
	kid = json_string(jwk, "kid");
	if(kid == NULL || kid[0] == '\0' || strlen(kid) > KEYS_KID_MAX){
		hub_log(HUB_LOG_WARNING, "hub-auth: keys[%zu] has no usable kid; ignored", index);
		return;
	}
	if(cJSON_GetObjectItemCaseSensitive(jwk, "d") != NULL){
		hub_log(HUB_LOG_ERR, "hub-auth: key %s holds a private key (\"d\"); refused. "
				"The broker must only ever see public keys.", kid);
		return;
	}
	kty = json_string(jwk, "kty");
	crv = json_string(jwk, "crv");
	alg = json_string(jwk, "alg");
	use = json_string(jwk, "use");
	if(kty == NULL || strcmp(kty, "EC") != 0 || crv == NULL || strcmp(crv, "P-256") != 0
			|| (cJSON_HasObjectItem(jwk, "alg") && (alg == NULL || strcmp(alg, "ES256") != 0))
			|| (cJSON_HasObjectItem(jwk, "use") && (use == NULL || strcmp(use, "sig") != 0))){
		hub_log(HUB_LOG_WARNING, "hub-auth: key %s is not an EC P-256 ES256 signing key; ignored", kid);
		return;
	}
	if(keys_find(set, kid) != NULL){
		hub_log(HUB_LOG_WARNING, "hub-auth: key %s appears twice; the later one is ignored", kid);
		return;
	}
	if(set->count == KEYS_MAX){
		hub_log(HUB_LOG_WARNING, "hub-auth: more than %d keys; key %s ignored", KEYS_MAX, kid);
		return;
	}
	if(!coordinate(jwk, "x", x) || !coordinate(jwk, "y", y)
			|| (pkey = p256_public_key(x, y)) == NULL){
		hub_log(HUB_LOG_WARNING, "hub-auth: key %s is not a valid P-256 point; ignored", kid);
		return;
	}
	memcpy(set->keys[set->count].kid, kid, strlen(kid) + 1);
	set->keys[set->count].pkey = pkey;
	set->count++;
}

struct keyset *keys_parse(const char *json, size_t len)
{
	cJSON *doc, *keys, *jwk;
	struct keyset *set;
	size_t index = 0;

	if(len > KEYS_FILE_MAX) return NULL;
	doc = cJSON_ParseWithLength(json, len);
	keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
	if(!cJSON_IsArray(keys)){
		cJSON_Delete(doc);
		return NULL;
	}
	set = calloc(1, sizeof(*set));
	if(set == NULL){
		cJSON_Delete(doc);
		return NULL;
	}
	cJSON_ArrayForEach(jwk, keys){
		add_key(set, jwk, index++);
	}
	cJSON_Delete(doc);
	return set;
}

struct keyset *keys_load_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	size_t len;
	struct keyset *set;

	if(fp == NULL){
		hub_log(HUB_LOG_WARNING, "hub-auth: cannot open keys file %s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(KEYS_FILE_MAX + 1);
	if(buf == NULL){
		fclose(fp);
		return NULL;
	}
	len = fread(buf, 1, KEYS_FILE_MAX + 1, fp);
	if(ferror(fp) || len > KEYS_FILE_MAX){
		hub_log(HUB_LOG_ERR, "hub-auth: keys file %s is unreadable or over %d bytes", path, KEYS_FILE_MAX);
		fclose(fp);
		free(buf);
		return NULL;
	}
	fclose(fp);
	set = keys_parse(buf, len);
	free(buf);
	if(set == NULL){
		hub_log(HUB_LOG_ERR, "hub-auth: keys file %s is not a JWKS document", path);
	}
	return set;
}

EVP_PKEY *keys_find(const struct keyset *set, const char *kid)
{
	if(set == NULL) return NULL;
	for(size_t i = 0; i < set->count; i++){
		if(strcmp(set->keys[i].kid, kid) == 0) return set->keys[i].pkey;
	}
	return NULL;
}

void keys_free(struct keyset *set)
{
	if(set == NULL) return;
	for(size_t i = 0; i < set->count; i++){
		EVP_PKEY_free(set->keys[i].pkey);
	}
	free(set);
}
