/* Fuzz harness for the pure parts of hub-auth (token, acl, keys, revocations), built
 * with AddressSanitizer and UBSan. It makes its own P-256 key, signs valid tokens, and
 * checks invariants on valid, mutated and random inputs:
 *   - every valid token verifies, with its claims and acl intact;
 *   - any byte change to a valid token, any other alg/kid/key, and any malformed claim
 *     or acl is refused;
 *   - acl.c's matcher agrees with libmosquitto's, and a filter it says "covers"
 *     another never lets through a topic the covered one would not;
 *   - revocations (until, issuedBefore) agree with a model, also after save and load;
 *   - a sessions-file line survives format and parse unchanged, and a mutated or
 *     random one parses into well-formed fields or not at all.
 * Usage: fuzz SEED INPUTS SECONDS. Exit 0 only when every invariant held. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "acl.h"
#include "b64url.h"
#include "hublog.h"
#include "keys.h"
#include "revoke.h"
#include "sessions.h"
#include "token.h"

/* libmosquitto's reference implementations (libmosquitto1; no header installed). */
int mosquitto_topic_matches_sub(const char *sub, const char *topic, bool *result);
int mosquitto_sub_topic_check(const char *sub);

void hub_log(enum hub_log_level level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

#define ISSUER "ehr-hub"
#define AUDIENCE "mqtt"
#define LEEWAY 5
#define BUF 70000

static uint64_t rng_state;
static const char *last_why;
static size_t failures;
static int64_t now_s;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void fail(const char *what, const char *input)
{
	failures++;
	fprintf(stderr, "INVARIANT FAILED: %s (last reason: %s)\n  input: %.300s\n", what,
			last_why ? last_why : "-", input ? input : "");
}

/* ---- keys and signing ---- */

static EVP_PKEY *good_key, *rogue_key;
static struct keyset *keyset;

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	if(k == NULL){
		fprintf(stderr, "cannot generate a P-256 key\n");
		exit(2);
	}
	return k;
}

static char *jwk_of(EVP_PKEY *k, const char *kid, bool with_d)
{
	uint8_t point[65];
	size_t len = 0;
	char x[64], y[64], *out = malloc(512);

	if(out == NULL || EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, point,
				sizeof(point), &len) != 1 || len != 65
			|| !b64url_encode(point + 1, 32, x, sizeof(x)) || !b64url_encode(point + 33, 32, y, sizeof(y))){
		fprintf(stderr, "cannot export the public key\n");
		exit(2);
	}
	snprintf(out, 512, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\","
			"\"alg\":\"ES256\",\"use\":\"sig\"%s}", kid, x, y, with_d ? ",\"d\":\"AAAA\"" : "");
	return out;
}

/* ES256 over `data` as a JWS signature (r||s, base64url) into out. */
static void sign(EVP_PKEY *k, const char *data, size_t len, char *out, size_t cap)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t der[80], raw[64];
	const uint8_t *cursor = der;
	size_t der_len = sizeof(der);
	ECDSA_SIG *sig;
	const BIGNUM *r, *s;

	if(md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) != 1
			|| EVP_DigestSign(md, der, &der_len, (const uint8_t *)data, len) != 1
			|| (sig = d2i_ECDSA_SIG(NULL, &cursor, (long)der_len)) == NULL){
		fprintf(stderr, "signing failed\n");
		exit(2);
	}
	ECDSA_SIG_get0(sig, &r, &s);
	BN_bn2binpad(r, raw, 32);
	BN_bn2binpad(s, raw + 32, 32);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	if(!b64url_encode(raw, sizeof(raw), out, cap)) exit(2);
}

/* header.payload.signature from two JSON texts; signed with k unless k is NULL (then
 * the signature is `sig` verbatim). */
static void compact(const char *header, const char *payload, EVP_PKEY *k, const char *sig,
		char *out, size_t cap)
{
	size_t hl = strlen(header), pl = strlen(payload), n;

	if(!b64url_encode((const uint8_t *)header, hl, out, cap)) exit(2);
	n = strlen(out);
	out[n++] = '.';
	if(!b64url_encode((const uint8_t *)payload, pl, out + n, cap - n)) exit(2);
	n += strlen(out + n);
	if(k){
		out[n] = '\0';
		out[n++] = '.';
		sign(k, out, n - 1, out + n, cap - n);
	}else{
		snprintf(out + n, cap - n, ".%s", sig);
	}
}

/* ---- generated claims ---- */

static const char *const levels[] = {"a", "b", "tenants", "p-1", "", "$x", "claim"};
#define LEVELS (sizeof(levels) / sizeof(levels[0]))

/* A random valid topic name (wildcards=false) or filter (wildcards=true). */
static void random_topic(char *out, size_t cap, bool wildcards)
{
	size_t n = 1 + below(5), len = 0;

	out[0] = '\0';
	for(size_t i = 0; i < n; i++){
		const char *level = levels[below(LEVELS)];
		if(wildcards){
			size_t pick = below(8);
			if(pick == 0) level = "+";
			if(pick == 1){
				level = "#";
				n = i + 1;
			}
		}
		if(i > 0 && level[0] == '$') level = "c";
		if(n == 1 && level[0] == '\0') level = "b"; /* "" is no topic */
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "/" : "", level);
	}
}

static void random_id(char *out, size_t max)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789.-_";
	size_t n = 1 + below(max);
	for(size_t i = 0; i < n; i++) out[i] = chars[below(sizeof(chars) - 1)];
	out[n] = '\0';
}

struct expected {
	char clientid[40], username[40], jti[40];
	size_t rules;
};

static cJSON *random_acl(size_t count)
{
	static const char *const perms[] = {"allow", "deny"};
	static const char *const actions[] = {"publish", "subscribe", "all"};
	cJSON *acl = cJSON_CreateArray();
	char topic[128];

	for(size_t i = 0; i < count; i++){
		cJSON *r = cJSON_CreateObject();
		random_topic(topic, sizeof(topic), true);
		cJSON_AddStringToObject(r, "permission", perms[below(2)]);
		cJSON_AddStringToObject(r, "action", actions[below(3)]);
		cJSON_AddStringToObject(r, "topic", topic);
		cJSON_AddItemToArray(acl, r);
	}
	return acl;
}

static cJSON *valid_claims(struct expected *e)
{
	static const char *const kinds[] = {"session", "kiosk", "partner"};
	cJSON *c = cJSON_CreateObject();

	random_id(e->clientid, 30);
	random_id(e->username, 30);
	random_id(e->jti, 30);
	/* A token is at most 4096 bytes: about 20 of these rules fit. */
	e->rules = 1 + below(20);
	cJSON_AddStringToObject(c, "iss", ISSUER);
	if(below(4) == 0){
		cJSON *aud = cJSON_CreateArray();
		cJSON_AddItemToArray(aud, cJSON_CreateString("other"));
		cJSON_AddItemToArray(aud, cJSON_CreateString(AUDIENCE));
		cJSON_AddItemToObject(c, "aud", aud);
	}else{
		cJSON_AddStringToObject(c, "aud", AUDIENCE);
	}
	cJSON_AddStringToObject(c, "sub", e->username);
	cJSON_AddStringToObject(c, "tenant", "acme");
	cJSON_AddStringToObject(c, "kind", kinds[below(3)]);
	cJSON_AddStringToObject(c, "clientid", e->clientid);
	cJSON_AddStringToObject(c, "username", e->username);
	cJSON_AddStringToObject(c, "jti", e->jti);
	cJSON_AddNumberToObject(c, "iat", (double)(now_s - 10));
	cJSON_AddNumberToObject(c, "nbf", (double)(now_s + (int64_t)below(LEEWAY + 1)));
	cJSON_AddNumberToObject(c, "exp", (double)(now_s + 1 + (int64_t)below(3600)));
	cJSON_AddItemToObject(c, "acl", random_acl(e->rules));
	return c;
}

static bool run(const char *token, const struct expected *e, struct token_claims *out)
{
	struct token_expect expect = {
		.issuer = ISSUER, .audience = AUDIENCE, .username = e->username,
		.clientid = e->clientid, .now = now_s, .leeway = LEEWAY,
	};
	const char *why = NULL;
	bool ok = token_verify(token, keyset, &expect, out, &why);
	last_why = why;
	if(ok == (why != NULL) && ok) fail("accepted with a reason", token);
	return ok;
}

static void expect_refused(const char *token, const struct expected *e, const char *what)
{
	struct token_claims out;
	if(run(token, e, &out)){
		fail(what, token);
		free(out.acl);
	}
}

static void expect_accepted(const char *token, const struct expected *e, const char *what)
{
	struct token_claims out;
	if(!run(token, e, &out)){
		fail(what, token);
		return;
	}
	if(strcmp(out.clientid, e->clientid) || strcmp(out.jti, e->jti) || out.acl->count != e->rules){
		fail("claims not carried through", token);
	}
	free(out.acl);
}

static const char *good_header = "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";

static void sign_claims(cJSON *claims, const char *header, EVP_PKEY *k, char *out)
{
	char *text = cJSON_PrintUnformatted(claims);
	if(text == NULL) exit(2);
	compact(header, text, k, "", out, BUF);
	free(text);
}

/* ---- the cases ---- */

static char token[BUF], mutated[BUF];

static void case_valid_and_byte_mutations(void)
{
	struct expected e;
	cJSON *c = valid_claims(&e);
	size_t len, pos;

	sign_claims(c, below(2) ? good_header : "{\"kid\":\"k1\",\"alg\":\"ES256\"}", good_key, token);
	cJSON_Delete(c);
	expect_accepted(token, &e, "valid token refused");
	len = strlen(token);
	memcpy(mutated, token, len + 1);
	switch(below(6)){
		case 0: /* bit flip */
			pos = below(len);
			mutated[pos] = (char)(mutated[pos] ^ (1 << below(8)));
			if(mutated[pos] == '\0') mutated[pos] = '!';
			break;
		case 1: /* truncation */
			mutated[below(len)] = '\0';
			break;
		case 2: /* a character replaced by another base64url one */
			pos = below(len);
			if(mutated[pos] != '.') mutated[pos] = mutated[pos] == 'A' ? 'B' : 'A';
			break;
		case 3: { /* a segment dropped or duplicated */
			char *d1 = strchr(mutated, '.'), *d2 = strrchr(mutated, '.');
			if(below(2)){
				memmove(d1, d2, strlen(d2) + 1); /* header.signature */
			}else{
				const char *sig = strrchr(token, '.'); /* an extra .signature */
				memcpy(mutated + len, sig, strlen(sig) + 1);
			}
			break;
		}
		case 4: { /* header and payload swapped */
			const char *d1 = strchr(token, '.'), *d2 = strrchr(token, '.');
			size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1);
			memcpy(mutated, d1 + 1, pl);
			mutated[pl] = '.';
			memcpy(mutated + pl + 1, token, hl);
			memcpy(mutated + pl + 1 + hl, d2, strlen(d2) + 1);
			break;
		}
		default: /* padding or a non-alphabet character inserted */
			pos = below(len);
			memmove(mutated + pos + 1, mutated + pos, len - pos + 1);
			mutated[pos] = "=+/ \n"[below(5)];
			break;
	}
	if(strcmp(mutated, token) != 0) expect_refused(mutated, &e, "mutated token accepted");
}

static void case_headers(void)
{
	static const char *const bad[] = {
		"{\"alg\":\"none\",\"kid\":\"k1\"}", "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
		"{\"alg\":\"RS256\",\"kid\":\"k1\"}", "{\"alg\":\"ES384\",\"kid\":\"k1\"}",
		"{\"alg\":\"es256\",\"kid\":\"k1\"}", "{\"kid\":\"k1\"}", "{\"alg\":\"ES256\"}",
		"{\"alg\":\"ES256\",\"kid\":\"k2\"}", "{\"alg\":\"ES256\",\"kid\":1}",
		"{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JWS\"}",
		"{\"alg\":\"ES256\",\"kid\":\"k1\",\"crit\":[\"exp\"]}", "[\"ES256\",\"k1\"]",
		"{\"alg\":[\"ES256\"],\"kid\":\"k1\"}", "{\"alg\":\"ES256\",\"kid\":\"k1\"",
	};
	struct expected e;
	cJSON *c = valid_claims(&e);
	size_t pick = below(sizeof(bad) / sizeof(bad[0]) + 3);

	if(pick < sizeof(bad) / sizeof(bad[0])){
		sign_claims(c, bad[pick], good_key, token);
		expect_refused(token, &e, "bad header accepted");
	}else if(pick == sizeof(bad) / sizeof(bad[0])){
		sign_claims(c, good_header, rogue_key, token); /* right kid, wrong key */
		expect_refused(token, &e, "token of another key accepted");
	}else if(pick == sizeof(bad) / sizeof(bad[0]) + 1){ /* alg none, with and without a signature */
		char *text = cJSON_PrintUnformatted(c), sig[100];
		sign_claims(c, good_header, good_key, mutated);
		snprintf(sig, sizeof(sig), "%s", strrchr(mutated, '.') + 1);
		compact("{\"alg\":\"none\",\"kid\":\"k1\"}", text, NULL, below(2) ? sig : "", token, BUF);
		free(text);
		expect_refused(token, &e, "alg none accepted");
	}else{ /* a header over 256 bytes */
		char big[600];
		snprintf(big, sizeof(big), "{\"alg\":\"ES256\",\"kid\":\"k1\",\"x\":\"%0*d\"}", 230 + (int)below(300), 0);
		sign_claims(c, big, good_key, token);
		expect_refused(token, &e, "oversize header accepted");
	}
	cJSON_Delete(c);
}

static void case_claims(void)
{
	static const char *const required[] = {"iss", "aud", "sub", "tenant", "kind", "clientid",
		"username", "jti", "iat", "nbf", "exp", "acl"};
	struct expected e;
	cJSON *c = valid_claims(&e);
	char longer[200];
	size_t pick = below(14);
	bool should_pass = false;

	memset(longer, 'x', 129);
	longer[129] = '\0';
	switch(pick){
		case 0: cJSON_DeleteItemFromObject(c, required[below(12)]); break;
		case 1: { /* the wrong type */
			const char *name = required[below(12)];
			bool is_time = !strcmp(name, "iat") || !strcmp(name, "nbf") || !strcmp(name, "exp");
			cJSON_ReplaceItemInObject(c, name, is_time ? cJSON_CreateString("7") : cJSON_CreateNumber(7));
			break;
		}
		case 2: cJSON_ReplaceItemInObject(c, "iss", cJSON_CreateString("ehr-hub2")); break;
		case 3: cJSON_ReplaceItemInObject(c, "aud", cJSON_CreateString("mqtt2")); break;
		case 4: cJSON_ReplaceItemInObject(c, "kind", cJSON_CreateString("admin")); break;
		case 5: cJSON_ReplaceItemInObject(c, "exp", cJSON_CreateNumber((double)now_s)); break;
		case 6: cJSON_ReplaceItemInObject(c, "nbf", cJSON_CreateNumber((double)(now_s + LEEWAY + 1))); break;
		case 7: cJSON_ReplaceItemInObject(c, "username", cJSON_CreateString("someone-else")); break;
		case 8: cJSON_ReplaceItemInObject(c, "clientid", cJSON_CreateString("other.id")); break;
		case 9: cJSON_ReplaceItemInObject(c, below(2) ? "jti" : "tenant", cJSON_CreateString(below(2) ? "" : longer)); break;
		case 10: cJSON_ReplaceItemInObject(c, "exp", cJSON_CreateNumber(1e300)); break;
		case 11: { /* aud array holding a non-string */
			cJSON *aud = cJSON_CreateArray();
			cJSON_AddItemToArray(aud, cJSON_CreateString(AUDIENCE));
			cJSON_AddItemToArray(aud, cJSON_CreateNumber(1));
			cJSON_ReplaceItemInObject(c, "aud", aud);
			break;
		}
		case 12: /* extra claims are fine */
			cJSON_AddStringToObject(c, "extra", "x");
			should_pass = true;
			break;
		default: /* nbf inside the leeway is fine */
			cJSON_ReplaceItemInObject(c, "nbf", cJSON_CreateNumber((double)(now_s + LEEWAY)));
			should_pass = true;
			break;
	}
	sign_claims(c, good_header, good_key, token);
	cJSON_Delete(c);
	if(should_pass){
		expect_accepted(token, &e, "acceptable claims refused");
	}else{
		expect_refused(token, &e, "bad claims accepted");
	}
}

static void case_acl(void)
{
	static const char *const bad_topics[] = {"a/#/b", "a+", "#a", "a/b#", "+a/b", "",
		"$share/g/a", "a/++"};
	struct expected e;
	cJSON *c = valid_claims(&e), *acl, *r;
	size_t pick = below(8);

	switch(pick){
		case 0: acl = random_acl(ACL_MAX_RULES + 1 + below(300)); break;
		case 1: acl = cJSON_CreateArray(); break;
		case 2:
			acl = random_acl(1 + below(5));
			cJSON_AddStringToObject(cJSON_GetArrayItem(acl, 0), "qos", "1");
			break;
		case 3:
			acl = random_acl(1 + below(5));
			cJSON_ReplaceItemInObject(cJSON_GetArrayItem(acl, 0), "topic",
					cJSON_CreateString(bad_topics[below(sizeof(bad_topics) / sizeof(bad_topics[0]))]));
			break;
		case 4: {
			char longer[300];
			memset(longer, 'a', 257);
			longer[257] = '\0';
			acl = random_acl(1);
			cJSON_ReplaceItemInObject(cJSON_GetArrayItem(acl, 0), "topic", cJSON_CreateString(longer));
			break;
		}
		case 5:
			acl = random_acl(1 + below(5));
			cJSON_ReplaceItemInObject(cJSON_GetArrayItem(acl, 0), below(2) ? "permission" : "action",
					cJSON_CreateString("maybe"));
			break;
		case 6:
			acl = random_acl(1 + below(5));
			cJSON_AddItemToArray(acl, cJSON_CreateString("#"));
			break;
		default:
			acl = cJSON_CreateObject();
			r = random_acl(1);
			cJSON_AddItemToObject(acl, "rules", r);
			break;
	}
	cJSON_ReplaceItemInObject(c, "acl", acl);
	sign_claims(c, good_header, good_key, token);
	cJSON_Delete(c);
	expect_refused(token, &e, "bad acl accepted");
}

/* Signed, but not the JSON the claims need: deep nesting, random bytes, huge values. */
static void case_odd_payloads(void)
{
	static char payload[4000];
	struct expected e = {.clientid = "c", .username = "u", .jti = "j", .rules = 1};
	size_t n = 1 + below(2900), pick = below(3);

	for(size_t i = 0; i < n; i++){
		if(pick == 0) payload[i] = i < n / 2 ? '[' : ']';
		else if(pick == 1) payload[i] = "{}[]\":,0123456789.eE-+ tfnalsru\\x"[below(34)];
		else payload[i] = (char)(1 + below(255));
	}
	payload[n] = '\0';
	compact(good_header, payload, good_key, "", token, BUF);
	expect_refused(token, &e, "odd payload accepted");
}

static void case_random_bytes(void)
{
	static const char chars[] = "ABCabc012-_.=+/ {}\"";
	struct expected e = {.clientid = "c", .username = "u", .jti = "j", .rules = 1};
	size_t n = below(5000);

	for(size_t i = 0; i < n; i++){
		token[i] = below(4) ? chars[below(sizeof(chars) - 1)] : (char)(1 + below(255));
	}
	token[n] = '\0';
	(void)token_shape(token);
	expect_refused(token, &e, "random bytes accepted");
}

/* Builds a topic name that `filter` matches, choosing the wildcards' levels. */
static void instantiate(const char *filter, char *out, size_t cap)
{
	size_t len = 0;
	const char *p = filter;

	out[0] = '\0';
	while(*p && len + 40 < cap){
		const char *end = strchr(p, '/');
		size_t level_len = end ? (size_t)(end - p) : strlen(p);
		if(level_len == 1 && p[0] == '#'){
			size_t extra = below(3);
			if(extra == 0 && len > 0) len--; /* "a/#" matches "a" */
			for(size_t i = 0; i < extra; i++){
				len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "/" : "", levels[below(LEVELS - 1)]);
			}
			if(extra == 0 && len == 0) len += (size_t)snprintf(out, cap, "a");
			out[len] = '\0';
			return;
		}
		if(level_len == 1 && p[0] == '+'){
			const char *level = levels[below(LEVELS)];
			if(len == 0 && level[0] == '$') level = "a";
			len += (size_t)snprintf(out + len, cap - len, "%s", level);
		}else{
			memcpy(out + len, p, level_len);
			len += level_len;
		}
		if(!end) break;
		out[len++] = '/';
		p = end + 1;
	}
	out[len] = '\0';
}

static void case_matching(void)
{
	char filter[128], other[128], topic[256];
	bool reference = false;

	random_topic(filter, sizeof(filter), true);
	random_topic(topic, sizeof(topic), false);
	if(mosquitto_topic_matches_sub(filter, topic, &reference) != 0){
		fail("reference refused its input", filter);
	}else if(acl_topic_matches(filter, topic) != reference){
		char both[1024];
		snprintf(both, sizeof(both), "filter %s topic %s reference %d", filter, topic, reference);
		fail("matcher disagrees with libmosquitto", both);
	}
	if(acl_filter_valid(filter) != (mosquitto_sub_topic_check(filter) == 0)){
		fail("filter validity disagrees with libmosquitto", filter);
	}
	/* Soundness of covers: a topic of the covered filter is always matched by the rule. */
	random_topic(other, sizeof(other), true);
	if(acl_filter_covers(filter, other)){
		for(int i = 0; i < 4; i++){
			instantiate(other, topic, sizeof(topic));
			if(mosquitto_topic_matches_sub(other, topic, &reference) == 0 && reference
					&& !acl_topic_matches(filter, topic)){
				char both[1024];
				snprintf(both, sizeof(both), "rule %s covers %s but not topic %s", filter, other, topic);
				fail("covers is unsound", both);
			}
		}
	}
	/* Every filter covers itself; '#' covers all but $-filters. */
	if(!acl_filter_covers(filter, filter)) fail("a filter does not cover itself", filter);
	if(acl_filter_covers("#", filter) == (filter[0] == '$')) fail("# coverage wrong", filter);
}

static void case_acl_decisions(void)
{
	struct acl *acl;
	cJSON *rules = random_acl(1 + below(8));
	const char *why = NULL;
	char topic[256];

	acl = acl_parse(rules, &why);
	if(acl == NULL){
		fail("generated acl refused", why);
		cJSON_Delete(rules);
		return;
	}
	/* The rule count bound, apart from the token's length bound. */
	{
		size_t n = ACL_MAX_RULES + below(2);
		cJSON *many = random_acl(n);
		struct acl *parsed = acl_parse(many, &why);
		if((parsed != NULL) != (n <= ACL_MAX_RULES)) fail("acl rule count bound", why);
		free(parsed);
		cJSON_Delete(many);
	}
	random_topic(topic, sizeof(topic), false);
	/* Reference: first rule whose action fits and whose filter matches (libmosquitto). */
	for(int access = ACL_ACCESS_PUBLISH; access <= ACL_ACCESS_RECEIVE; access += 2){
		bool expected = false;
		uint8_t want = access == ACL_ACCESS_PUBLISH ? ACL_ACTION_PUBLISH : ACL_ACTION_SUBSCRIBE;
		for(size_t i = 0; i < acl->count; i++){
			bool m = false;
			if(!(acl->rules[i].actions & want)) continue;
			mosquitto_topic_matches_sub(acl->rules[i].topic, topic, &m);
			if(m){
				expected = acl->rules[i].allow;
				break;
			}
		}
		if(acl_allows(acl, (enum acl_access)access, topic) != expected) fail("acl decision differs", topic);
	}
	free(acl);
	cJSON_Delete(rules);
}

static void case_files(void)
{
	char doc[2048], *jwk = jwk_of(good_key, below(2) ? "k1" : "k9", below(4) == 0);
	size_t len;
	struct keyset *set;
	struct revoke_list list = {0};

	len = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk);
	free(jwk);
	if(below(2)){
		for(size_t i = below(4); i > 0; i--) doc[below(len)] = (char)(1 + below(255));
		len = below(2) ? below(len + 1) : len;
	}
	set = keys_parse(doc, len);
	if(set && set->count > 1) fail("more keys than given", doc);
	if(set && strstr(doc, "\"d\"") && set->count && strstr(doc, "\"d\":\"AAAA\"")) {
		fail("a private key was loaded", doc);
	}
	keys_free(set);

	len = (size_t)snprintf(doc, sizeof(doc),
			"{\"revocations\":[{\"clientid\":\"a.b\",\"until\":%lld},{\"jti\":\"x\",\"until\":%lld},"
			"{\"clientid\":\"k.1\",\"until\":%lld,\"issuedBefore\":%lld}]}",
			(long long)(now_s + 100), (long long)(now_s - 1), (long long)(now_s + 50), (long long)now_s);
	if(below(2)){
		for(size_t i = 1 + below(4); i > 0; i--) doc[below(len)] = (char)(1 + below(255));
	}
	if(revoke_parse(&list, doc, len, now_s)){
		if(list.count > 3) fail("more revocations than given", doc);
	}else if(list.count != 0){
		fail("a failed parse left entries", doc);
	}
	revoke_free(&list);
}

/* revoke_add against a model: a few values, random until and issued_before; the
 * outcome says whether the list changed; a token is refused exactly when the model
 * says so; the list survives its own JSON (save and load) unchanged. */
#define MODEL_VALUES 4
struct model_entry {
	int64_t until, before;
	bool live;
};

static void case_revocations(void)
{
	static const char *const values[MODEL_VALUES] = {"a.1", "a.2", "j-1", "j-2"};
	struct model_entry model[MODEL_VALUES];
	struct revoke_list list = {0}, reloaded = {0};
	size_t steps = 1 + below(12);
	cJSON *json, *doc;
	char *text;

	memset(model, 0, sizeof(model));
	for(size_t step = 0; step < steps; step++){
		size_t v = below(MODEL_VALUES);
		enum revoke_kind kind = v < 2 ? REVOKE_CLIENTID : REVOKE_JTI;
		int64_t until = now_s - 5 + (int64_t)below(20);
		int64_t before = kind == REVOKE_CLIENTID && below(2) ? now_s - 10 + (int64_t)below(20) : REVOKE_EVERY_TOKEN;
		enum revoke_outcome got = revoke_add(&list, kind, values[v], until, before, now_s);
		bool changed;
		if(below(16) == 0){ /* an issued_before for a jti is refused */
			if(revoke_add(&list, REVOKE_JTI, values[2], now_s + 5, now_s, now_s) != REVOKE_INVALID){
				fail("issued_before accepted for a jti", values[2]);
			}
		}
		if(!model[v].live || model[v].until <= now_s){
			changed = until > now_s;
			if(changed) model[v] = (struct model_entry){until, before, true};
		}else{
			changed = until > model[v].until || before > model[v].before;
			if(until > model[v].until) model[v].until = until;
			if(before > model[v].before) model[v].before = before;
		}
		if(got != (changed ? REVOKE_CHANGED : REVOKE_UNCHANGED)) fail("revoke_add outcome differs from the model", values[v]);
	}
	for(int64_t iat = now_s - 12; iat <= now_s + 12; iat += 3){
		for(size_t v = 0; v < MODEL_VALUES; v++){
			bool live = model[v].live && model[v].until > now_s;
			bool expected = live && (v >= 2 || iat < model[v].before);
			bool got = v < 2 ? revoke_matches(&list, values[v], "none", iat, now_s)
				: revoke_matches(&list, "none", values[v], iat, now_s);
			if(got != expected) fail("revoke_matches differs from the model", values[v]);
		}
	}
	json = revoke_to_json(&list, now_s);
	doc = cJSON_CreateObject();
	if(json == NULL || doc == NULL || !cJSON_AddItemToObject(doc, "revocations", json)){
		cJSON_Delete(json);
		cJSON_Delete(doc);
		fail("revoke_to_json failed", NULL);
		revoke_free(&list);
		return;
	}
	text = cJSON_PrintUnformatted(doc);
	if(text == NULL || !revoke_parse(&reloaded, text, strlen(text), now_s)){
		fail("the list's own JSON does not load", text);
	}else{
		for(int64_t iat = now_s - 12; iat <= now_s + 12; iat += 3){
			for(size_t v = 0; v < MODEL_VALUES; v++){
				const char *c = v < 2 ? values[v] : "none", *j = v < 2 ? "none" : values[v];
				if(revoke_matches(&list, c, j, iat, now_s) != revoke_matches(&reloaded, c, j, iat, now_s)){
					fail("a reloaded list decides otherwise", text);
				}
			}
		}
	}
	free(text);
	cJSON_Delete(doc);
	revoke_free(&list);
	revoke_free(&reloaded);
}

/* Sessions-file lines: format/parse round trip with arbitrary bytes in the client id
 * and username; then byte mutations and random lines. */
static void case_sessions(void)
{
	static char line[SESSIONS_LINE_MAX + 1];
	char clientid[TOKEN_MAX_CLAIM + 1], username[TOKEN_MAX_CLAIM + 1];
	struct expected e;
	struct session_record rec;
	size_t len, c_len = 1 + below(TOKEN_MAX_CLAIM), u_len = 1 + below(TOKEN_MAX_CLAIM);
	cJSON *c = valid_claims(&e);

	sign_claims(c, good_header, good_key, token);
	cJSON_Delete(c);
	for(size_t i = 0; i < c_len; i++) clientid[i] = (char)(1 + below(255));
	for(size_t i = 0; i < u_len; i++) username[i] = (char)(1 + below(255));
	clientid[c_len] = username[u_len] = '\0';
	if(!sessions_format_line(clientid, username, token, line, sizeof(line), &len)){
		fail("a valid session line not formatted", token);
		return;
	}
	if(len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1)) fail("not one line", line);
	if(!sessions_parse_line(line, len - 1, &rec)){
		fail("a formatted session line does not parse", line);
	}else{
		if(strcmp(rec.clientid, clientid) || strcmp(rec.username, username) || strcmp(rec.token, token)){
			fail("a session line changed in a round trip", line);
		}
		free(rec.token);
	}
	if(below(2)){
		for(size_t i = 1 + below(4); i > 0; i--) line[below(len)] = (char)(1 + below(255));
	}else{
		len = 1 + below(64);
		for(size_t i = 0; i < len; i++) line[i] = (char)(below(3) ? (size_t)(unsigned char)"s1 aZ-_.9 "[below(10)] : 1 + below(255));
	}
	if(sessions_parse_line(line, len, &rec)){
		if(rec.clientid[0] == '\0' || rec.username[0] == '\0' || token_shape(rec.token) != TOKEN_JWS){
			fail("a malformed session line parsed", line);
		}
		free(rec.token);
	}else if(rec.token != NULL){
		fail("a refused session line left a token", line);
	}
}

int main(int argc, char **argv)
{
	uint64_t seed;
	unsigned long inputs, seconds, done = 0;
	time_t start = time(NULL);
	char doc[1024], *jwk;
	void (*const cases[])(void) = {
		case_valid_and_byte_mutations, case_valid_and_byte_mutations, case_headers, case_claims,
		case_acl, case_odd_payloads, case_random_bytes, case_matching, case_matching,
		case_acl_decisions, case_files, case_revocations, case_sessions,
	};

	if(argc != 4){
		fprintf(stderr, "usage: %s SEED INPUTS SECONDS\n", argv[0]);
		return 2;
	}
	seed = strtoull(argv[1], NULL, 10);
	inputs = strtoul(argv[2], NULL, 10);
	seconds = strtoul(argv[3], NULL, 10);
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	now_s = (int64_t)time(NULL);

	good_key = new_key();
	rogue_key = new_key();
	jwk = jwk_of(good_key, "k1", false);
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,{\"kty\":\"RSA\",\"kid\":\"r1\"}]}", jwk);
	free(jwk);
	keyset = keys_parse(doc, strlen(doc));
	if(keyset == NULL || keyset->count != 1){
		fprintf(stderr, "the harness's own JWKS did not load\n");
		return 2;
	}

	while(done < inputs && (unsigned long)(time(NULL) - start) < seconds && failures < 20){
		cases[below(sizeof(cases) / sizeof(cases[0]))]();
		done++;
	}
	keys_free(keyset);
	EVP_PKEY_free(good_key);
	EVP_PKEY_free(rogue_key);
	printf("fuzz: seed %llu, %lu inputs in %lds, %zu failed invariant(s)\n",
			(unsigned long long)seed, done, (long)(time(NULL) - start), failures);
	if(done < inputs){
		fprintf(stderr, "fuzz: stopped before %lu inputs\n", inputs);
		return 1;
	}
	return failures ? 1 : 0;
}
