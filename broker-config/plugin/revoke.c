#include "revoke.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "hublog.h"
#include "json_util.h"

/* Plausible unix seconds for an until (up to year 5138). */
#define REVOKE_MAX_TIME 100000000000LL

static struct revocation *find(const struct revoke_list *list, enum revoke_kind kind,
		const char *value)
{
	char key[REVOKE_MAX_VALUE + 2];
	size_t len = strnlen(value, REVOKE_MAX_VALUE + 1);
	struct revocation *found = NULL;

	if(len > REVOKE_MAX_VALUE) return NULL;
	key[0] = (char)kind;
	memcpy(key + 1, value, len + 1);
	HASH_FIND_STR(list->table, key, found);
	return found;
}

enum revoke_outcome revoke_add(struct revoke_list *list, enum revoke_kind kind, const char *value,
		int64_t until, int64_t issued_before, int64_t now)
{
	size_t len = strnlen(value, REVOKE_MAX_VALUE + 1);
	struct revocation *entry;
	bool changed = false;

	if(len == 0 || len > REVOKE_MAX_VALUE) return REVOKE_INVALID;
	if(until <= 0 || until > REVOKE_MAX_TIME) return REVOKE_INVALID;
	if(issued_before != REVOKE_EVERY_TOKEN
			&& (kind != REVOKE_CLIENTID || issued_before <= 0 || issued_before > REVOKE_MAX_TIME)){
		return REVOKE_INVALID;
	}
	entry = find(list, kind, value);
	if(entry && entry->until <= now){
		/* Over, not yet pruned: what it said no longer holds. */
		if(until <= now) return REVOKE_UNCHANGED;
		entry->until = until;
		entry->issued_before = issued_before;
		return REVOKE_CHANGED;
	}
	if(entry){
		if(until > entry->until){
			entry->until = until;
			changed = true;
		}
		if(issued_before > entry->issued_before){
			entry->issued_before = issued_before;
			changed = true;
		}
		return changed ? REVOKE_CHANGED : REVOKE_UNCHANGED;
	}
	if(until <= now) return REVOKE_UNCHANGED; /* already over: nothing to remember */
	if(list->count >= REVOKE_MAX_ENTRIES) revoke_prune(list, now);
	if(list->count >= REVOKE_MAX_ENTRIES) return REVOKE_FULL;
	entry = malloc(sizeof(*entry) + len + 2);
	if(entry == NULL) return REVOKE_NO_MEMORY;
	memset(entry, 0, sizeof(*entry));
	entry->until = until;
	entry->issued_before = issued_before;
	entry->key[0] = (char)kind;
	memcpy(entry->key + 1, value, len + 1);
	HASH_ADD_STR(list->table, key, entry);
	list->count++;
	return REVOKE_CHANGED;
}

const char *revoke_outcome_error(enum revoke_outcome outcome)
{
	switch(outcome){
		case REVOKE_CHANGED:
		case REVOKE_UNCHANGED:
			return NULL;
		case REVOKE_INVALID:
			return "clientid or jti must be 1..128 bytes, until and issuedBefore plausible times";
		case REVOKE_FULL:
			return "revocation list is full";
		case REVOKE_NO_MEMORY:
			return "out of memory";
	}
	return "unknown outcome";
}

bool revoke_matches(const struct revoke_list *list, const char *clientid, const char *jti,
		int64_t iat, int64_t now)
{
	const struct revocation *entry;

	entry = find(list, REVOKE_CLIENTID, clientid);
	if(entry && entry->until > now && iat < entry->issued_before) return true;
	entry = find(list, REVOKE_JTI, jti);
	return entry && entry->until > now;
}

size_t revoke_prune(struct revoke_list *list, int64_t now)
{
	struct revocation *entry, *tmp;
	size_t pruned = 0;

	HASH_ITER(hh, list->table, entry, tmp){
		if(entry->until <= now){
			HASH_DEL(list->table, entry);
			free(entry);
			pruned++;
		}
	}
	list->count -= pruned;
	return pruned;
}

cJSON *revoke_to_json(const struct revoke_list *list, int64_t now)
{
	const struct revocation *entry, *tmp;
	cJSON *array = cJSON_CreateArray();

	if(array == NULL) return NULL;
	HASH_ITER(hh, list->table, entry, tmp){
		cJSON *item;
		if(entry->until <= now) continue;
		item = cJSON_CreateObject();
		if(item == NULL || !cJSON_AddItemToArray(array, item)
				|| cJSON_AddStringToObject(item, entry->key[0] == REVOKE_CLIENTID ? "clientid" : "jti",
					entry->key + 1) == NULL
				|| cJSON_AddNumberToObject(item, "until", (double)entry->until) == NULL
				|| (entry->issued_before != REVOKE_EVERY_TOKEN
					&& cJSON_AddNumberToObject(item, "issuedBefore", (double)entry->issued_before) == NULL)){
			cJSON_Delete(array);
			return NULL;
		}
	}
	return array;
}

bool revoke_time_value(const cJSON *item, int64_t *out)
{
	double v;

	if(!cJSON_IsNumber(item)) return false;
	v = item->valuedouble;
	/* the range check also refuses NaN */
	if(!(v >= 1 && v <= (double)REVOKE_MAX_TIME) || v != floor(v)) return false;
	*out = (int64_t)v;
	return true;
}

bool revoke_parse(struct revoke_list *list, const char *json, size_t len, int64_t now)
{
	cJSON *doc = cJSON_ParseWithLength(json, len);
	const cJSON *entries = cJSON_GetObjectItemCaseSensitive(doc, "revocations");
	const cJSON *item;
	bool ok = cJSON_IsArray(entries);

	if(!ok) entries = NULL;
	cJSON_ArrayForEach(item, entries){
		const char *clientid = json_string(item, "clientid");
		const char *jti = json_string(item, "jti");
		const cJSON *until = cJSON_GetObjectItemCaseSensitive(item, "until");
		const cJSON *before = cJSON_GetObjectItemCaseSensitive(item, "issuedBefore");
		int64_t issued_before = REVOKE_EVERY_TOKEN;
		if(before){
			if(!revoke_time_value(before, &issued_before)){
				ok = false;
				break;
			}
		}
		if((clientid == NULL) == (jti == NULL) || !cJSON_IsNumber(until)
				|| !(until->valuedouble >= 0 && until->valuedouble <= (double)REVOKE_MAX_TIME)
				|| revoke_outcome_error(revoke_add(list, clientid ? REVOKE_CLIENTID : REVOKE_JTI,
					clientid ? clientid : jti, (int64_t)until->valuedouble, issued_before, now)) != NULL){
			ok = false;
			break;
		}
	}
	cJSON_Delete(doc);
	if(!ok) revoke_free(list);
	return ok;
}

bool revoke_load(struct revoke_list *list, const char *path, int64_t now)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;
	char *buf;
	size_t len;
	bool ok;

	if(fp == NULL){
		if(errno == ENOENT) return true;
		hub_log(HUB_LOG_ERR, "hub-auth: cannot open revocations file %s: %s", path, strerror(errno));
		return false;
	}
	if(fstat(fileno(fp), &st) != 0 || st.st_size < 0 || st.st_size > REVOKE_FILE_MAX){
		hub_log(HUB_LOG_ERR, "hub-auth: revocations file %s is unreadable or over %d bytes",
				path, REVOKE_FILE_MAX);
		fclose(fp);
		return false;
	}
	buf = malloc((size_t)st.st_size + 1);
	if(buf == NULL){
		fclose(fp);
		return false;
	}
	len = fread(buf, 1, (size_t)st.st_size, fp);
	ok = !ferror(fp) && len == (size_t)st.st_size;
	fclose(fp);
	ok = ok && revoke_parse(list, buf, len, now);
	free(buf);
	if(!ok) hub_log(HUB_LOG_ERR, "hub-auth: revocations file %s is corrupt", path);
	return ok;
}

static bool write_all(int fd, const char *data, size_t len)
{
	while(len > 0){
		ssize_t n = write(fd, data, len);
		if(n < 0){
			if(errno == EINTR) continue;
			return false;
		}
		data += n;
		len -= (size_t)n;
	}
	return true;
}

bool revoke_save(struct revoke_list *list, const char *path, int64_t now)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *entries;
	char *text = NULL, *tmp_path = NULL;
	size_t path_len = strlen(path);
	int fd = -1;
	bool created = false, ok = false;

	revoke_prune(list, now);
	entries = revoke_to_json(list, now);
	if(doc == NULL || entries == NULL || !cJSON_AddItemToObject(doc, "revocations", entries)){
		cJSON_Delete(entries);
		goto done;
	}
	text = cJSON_PrintUnformatted(doc);
	tmp_path = malloc(path_len + sizeof(".XXXXXX"));
	if(text == NULL || tmp_path == NULL) goto done;
	memcpy(tmp_path, path, path_len);
	memcpy(tmp_path + path_len, ".XXXXXX", sizeof(".XXXXXX"));
	fd = mkstemp(tmp_path);
	if(fd < 0) goto done;
	created = true;
	if(!write_all(fd, text, strlen(text)) || !write_all(fd, "\n", 1) || fsync(fd) != 0){
		goto done;
	}
	if(close(fd) != 0){
		fd = -1;
		goto done;
	}
	fd = -1;
	if(rename(tmp_path, path) != 0) goto done;
	ok = true;
	if(!fsync_folder_of(path)){
		hub_log(HUB_LOG_WARNING, "hub-auth: could not fsync the folder of %s", path);
	}
done:
	if(!ok){
		hub_log(HUB_LOG_ERR, "hub-auth: could not save revocations to %s: %s", path, strerror(errno));
		if(fd >= 0) close(fd);
		if(created) unlink(tmp_path);
	}
	free(tmp_path);
	free(text);
	cJSON_Delete(doc);
	return ok;
}

void revoke_free(struct revoke_list *list)
{
	struct revocation *entry, *tmp;

	HASH_ITER(hh, list->table, entry, tmp){
		HASH_DEL(list->table, entry);
		free(entry);
	}
	list->count = 0;
}
