/* Revoked client ids and token ids, each until a moment after which it may be
 * forgotten; a client id's revocation may cover only the tokens issued before a given
 * moment. Persisted as JSON. Pure: no broker headers. */
#ifndef HUB_AUTH_REVOKE_H
#define HUB_AUTH_REVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uthash.h>

#define REVOKE_MAX_ENTRIES 100000
#define REVOKE_MAX_VALUE 128
#define REVOKE_FILE_MAX (32 * 1024 * 1024)
/* The issued_before of a revocation that covers every token (a jti's always does). */
#define REVOKE_EVERY_TOKEN INT64_MAX

enum revoke_kind {
	REVOKE_CLIENTID = 'c',
	REVOKE_JTI = 'j',
};

struct revocation {
	UT_hash_handle hh;
	int64_t until;
	int64_t issued_before; /* tokens whose iat < this; REVOKE_EVERY_TOKEN: all */
	char key[]; /* kind letter then the value, NUL-terminated */
};

struct revoke_list {
	struct revocation *table;
	size_t count;
};

enum revoke_outcome {
	REVOKE_CHANGED,   /* a new entry, or an entry's until or issued_before raised */
	REVOKE_UNCHANGED, /* already recorded as much (or until already over): nothing to save */
	REVOKE_INVALID,   /* value not 1..REVOKE_MAX_VALUE bytes, until or issued_before not a
	                   * plausible time, or an issued_before for a jti */
	REVOKE_FULL,      /* REVOKE_MAX_ENTRIES live entries: not recorded */
	REVOKE_NO_MEMORY, /* not recorded */
};

/* Records a revocation and says whether the list changed. issued_before is
 * REVOKE_EVERY_TOKEN, or (client ids only) unix seconds: the tokens whose iat is
 * earlier. Repeating one keeps the later until and the later issued_before (every token
 * being the latest); an entry whose until has passed is replaced as a whole. */
enum revoke_outcome revoke_add(struct revoke_list *list, enum revoke_kind kind, const char *value,
		int64_t until, int64_t issued_before, int64_t now);

/* A short reason for an outcome that did not record the revocation; NULL otherwise. */
const char *revoke_outcome_error(enum revoke_outcome outcome);

/* Whether a token (its client id, jti and iat) is revoked at `now`. */
bool revoke_matches(const struct revoke_list *list, const char *clientid, const char *jti,
		int64_t iat, int64_t now);

/* Forgets entries whose until has passed; returns how many. */
size_t revoke_prune(struct revoke_list *list, int64_t now);

/* [{"clientid"|"jti": ..., "until": ..., ["issuedBefore": ...]}, ...] of the entries live
 * at `now` (issuedBefore only when it is not every token). */
cJSON *revoke_to_json(const struct revoke_list *list, int64_t now);

/* An issuedBefore: a whole number of unix seconds, 1..1e11. */
bool revoke_time_value(const cJSON *item, int64_t *out);

/* Loads {"revocations": [...]} into an empty list; entries already past are dropped.
 * false (the list left empty) on anything malformed. */
bool revoke_parse(struct revoke_list *list, const char *json, size_t len, int64_t now);

/* A missing file is an empty list (true); an unreadable or malformed one is false. */
bool revoke_load(struct revoke_list *list, const char *path, int64_t now);

/* Writes the live entries atomically: temp file in the same folder, fsync, rename,
 * fsync of the folder. false (logged) on failure; the file is then unchanged. */
bool revoke_save(struct revoke_list *list, const char *path, int64_t now);

void revoke_free(struct revoke_list *list);

#endif
