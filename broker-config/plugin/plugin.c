/* hub-auth: Mosquitto 2.0 plugin (API v5) that accepts the api's signed broker
 * credentials beside Dynamic Security. This file holds the options, the registration
 * and the broker callbacks; the checks live in token.c, acl.c, keys.c and revoke.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "broker_compat.h"
#include "clients.h"
#include "hublog.h"
#include "json_util.h"
#include "keys.h"
#include "revoke.h"
#include "sessions.h"
#include "token.h"

#define CONTROL_TOPIC "$CONTROL/hub-auth/v1"
#define CONTROL_RESPONSE_TOPIC "$CONTROL/hub-auth/v1/response"
#define CONTROL_MAX_PAYLOAD (64 * 1024)
#define PRUNE_INTERVAL_S 60
#define LEEWAY_MAX_S 300
#define SESSIONS_SAVE_INTERVAL_S 2

/* Built with -fvisibility=hidden: only the plugin entry points are exported. */
#define EXPORT __attribute__((visibility("default")))

struct hub_auth {
	mosquitto_plugin_id_t *id;
	char *keys_file;
	char *revocations_file;
	char *sessions_file; /* NULL: sessions are not kept across restarts */
	char *issuer;
	char *audience;
	int64_t leeway;

	struct keyset *keys;
	struct stat keys_stat; /* of the file last read (or tried) */
	bool keys_stat_known;

	struct client_table clients;
	struct revoke_list revocations;

	time_t last_second; /* of the last TICK that looked at expiries */
	time_t last_prune;
	/* Between a RELOAD and the next TICK, Mosquitto re-checks every known client's
	 * credentials, offline sessions included: verify, but create no entries. */
	bool reauth;

	/* Sessions file: records read at start that wait for keys, and whether the table
	 * changed since the last save. */
	struct session_record *pending;
	size_t pending_count;
	bool sessions_dirty;
	time_t last_sessions_save;
};

void hub_log(enum hub_log_level level, const char *fmt, ...)
{
	static const int levels[] = {
		[HUB_LOG_ERR] = MOSQ_LOG_ERR,
		[HUB_LOG_WARNING] = MOSQ_LOG_WARNING,
		[HUB_LOG_NOTICE] = MOSQ_LOG_NOTICE,
		[HUB_LOG_INFO] = MOSQ_LOG_INFO,
		[HUB_LOG_DEBUG] = MOSQ_LOG_DEBUG,
	};
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	mosquitto_log_printf(levels[level], "%s", line);
}

/* ---- keys ---- */

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size
		&& a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Reads the keys file when it changed (or always, if forced); a failed read keeps the
 * keys we have. */
static void reload_keys(struct hub_auth *st, bool force)
{
	struct stat now_stat;
	struct keyset *fresh;

	if(stat(st->keys_file, &now_stat) != 0){
		if(st->keys_stat_known || force){
			hub_log(HUB_LOG_WARNING, "hub-auth: keys file %s: %s; keeping %zu key(s)",
					st->keys_file, strerror(errno), st->keys ? st->keys->count : 0);
		}
		st->keys_stat_known = false;
		return;
	}
	if(!force && st->keys_stat_known && same_file(&now_stat, &st->keys_stat)) return;
	st->keys_stat = now_stat;
	st->keys_stat_known = true;
	fresh = keys_load_file(st->keys_file);
	if(fresh == NULL){
		hub_log(HUB_LOG_ERR, "hub-auth: keys file %s not loaded; keeping %zu key(s)",
				st->keys_file, st->keys ? st->keys->count : 0);
		return;
	}
	keys_free(st->keys);
	st->keys = fresh;
	hub_log(HUB_LOG_NOTICE, "hub-auth: loaded %zu key(s) from %s", fresh->count, st->keys_file);
}

/* ---- sessions file ---- */

/* Verifies a record as a login would be (keys, signature, claims, expiry, revocation)
 * and, if good, enters it as an offline entry not yet bound to a context. Takes the
 * record's token. */
static void restore_record(struct hub_auth *st, struct session_record *rec, int64_t now)
{
	struct token_claims claims;
	struct token_expect expect = {
		.issuer = st->issuer,
		.audience = st->audience,
		.username = rec->username,
		.clientid = rec->clientid,
		.now = now,
		.leeway = st->leeway,
	};
	struct client_entry *entry;
	const char *why = NULL;

	if(!token_verify(rec->token, st->keys, &expect, &claims, &why)){
		why = why ? why : "invalid";
	}else if(revoke_matches(&st->revocations, claims.clientid, claims.jti, claims.iat, now)){
		why = "revoked";
		free(claims.acl);
	}else if(clients_find(&st->clients, claims.clientid)){
		why = "logged in again since";
		free(claims.acl);
	}
	if(why){
		hub_log(HUB_LOG_NOTICE, "hub-auth: session of %s not restored: %s", rec->clientid, why);
		st->sessions_dirty = true;
	}else if(!clients_put(&st->clients, NULL, &claims)
			|| (entry = clients_find(&st->clients, rec->clientid)) == NULL){
		hub_log(HUB_LOG_ERR, "hub-auth: session of %s not restored: out of memory", rec->clientid);
		st->sessions_dirty = true;
	}else{
		entry->offline = true;
		entry->token = rec->token;
		rec->token = NULL;
	}
	free(rec->token);
	rec->token = NULL;
}

static void verify_pending(struct hub_auth *st, int64_t now)
{
	size_t before = HASH_COUNT(st->clients.table);

	for(size_t i = 0; i < st->pending_count; i++) restore_record(st, &st->pending[i], now);
	hub_log(HUB_LOG_NOTICE, "hub-auth: restored %zu of %zu session(s) once keys were loaded",
			(size_t)HASH_COUNT(st->clients.table) - before, st->pending_count);
	free(st->pending);
	st->pending = NULL;
	st->pending_count = 0;
}

struct load_ctx {
	struct hub_auth *st;
	int64_t now;
	size_t cap;
	bool oom;
};

static void take_record(struct session_record *rec, void *arg)
{
	struct load_ctx *ctx = arg;
	struct hub_auth *st = ctx->st;

	if(st->keys){
		restore_record(st, rec, ctx->now);
		return;
	}
	/* No keys yet (the keys file appears later): keep it, verify it once they load. */
	if(st->pending_count == ctx->cap){
		size_t cap = ctx->cap ? ctx->cap * 2 : 64;
		struct session_record *grown = realloc(st->pending, cap * sizeof(*grown));
		if(grown == NULL){
			ctx->oom = true;
			free(rec->token);
			return;
		}
		st->pending = grown;
		ctx->cap = cap;
	}
	st->pending[st->pending_count++] = *rec;
	rec->token = NULL;
}

static void load_sessions(struct hub_auth *st, int64_t now)
{
	struct load_ctx ctx = {.st = st, .now = now};
	size_t bad = 0;

	if(!sessions_load(st->sessions_file, take_record, &ctx, &bad)){
		hub_log(HUB_LOG_WARNING, "hub-auth: sessions file %s not readable: %s; no sessions restored",
				st->sessions_file, strerror(errno));
		return;
	}
	if(bad || ctx.oom){
		hub_log(HUB_LOG_WARNING, "hub-auth: sessions file %s: %zu malformed line(s) skipped%s",
				st->sessions_file, bad, ctx.oom ? ", some entries dropped (out of memory)" : "");
		st->sessions_dirty = true;
	}
	hub_log(HUB_LOG_NOTICE, "hub-auth: %zu session(s) restored from %s, %zu waiting for keys",
			(size_t)HASH_COUNT(st->clients.table), st->sessions_file, st->pending_count);
}

struct save_iter {
	struct hub_auth *st;
	struct client_entry *next;
	size_t pending;
	int64_t now;
};

static bool next_session(void *arg, const char **clientid, const char **username, const char **token)
{
	struct save_iter *it = arg;

	while(it->next){
		struct client_entry *entry = it->next;
		it->next = entry->hh.next;
		if(entry->token && !entry->kick && entry->claims.exp > it->now){
			*clientid = entry->claims.clientid;
			*username = entry->claims.username;
			*token = entry->token;
			return true;
		}
	}
	while(it->pending < it->st->pending_count){
		struct session_record *rec = &it->st->pending[it->pending++];
		if(rec->token){
			*clientid = rec->clientid;
			*username = rec->username;
			*token = rec->token;
			return true;
		}
	}
	return false;
}

static void save_sessions(struct hub_auth *st, int64_t now)
{
	struct save_iter it = {.st = st, .next = st->clients.table, .now = now};
	size_t written;

	st->last_sessions_save = (time_t)now;
	if(sessions_save(st->sessions_file, next_session, &it, &written)) st->sessions_dirty = false;
}

/* ---- callbacks ---- */

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct hub_auth *st = userdata;
	struct token_claims claims;
	struct token_expect expect;
	const char *clientid, *why = NULL;
	enum token_shape shape;
	bool verified;

	(void)event;
	clientid = mosquitto_client_id(ed->client);
	shape = ed->password ? token_shape(ed->password) : TOKEN_NOT_JWS;
	if(shape == TOKEN_NOT_JWS){
		/* Another plugin's to judge, and it may well refuse: a token client's entry for
		 * this client id stays as it is (its offline session keeps queueing what its acl
		 * allows). Should the login succeed, the new connection does not match the
		 * entry anyway: not its context, or (a reused address) not its username. */
		return MOSQ_ERR_PLUGIN_DEFER;
	}

	/* From here on the password is a token: this plugin decides alone. */
	if(shape == TOKEN_TOO_LONG){
		hub_log(HUB_LOG_NOTICE, "hub-auth: refused %s: token over %d bytes",
				clientid ? clientid : "?", TOKEN_MAX_LEN);
		return MOSQ_ERR_AUTH;
	}
	expect = (struct token_expect){
		.issuer = st->issuer,
		.audience = st->audience,
		.username = ed->username,
		.clientid = clientid,
		.now = (int64_t)time(NULL),
		.leeway = st->leeway,
	};
	verified = token_verify(ed->password, st->keys, &expect, &claims, &why);
	if(!verified && why != NULL && strcmp(why, "unknown kid") == 0 && !st->reauth){
		/* The api may have just written a new key (at its start, or a rotation) that
		 * the once-a-second check has not read yet: look at the file now (a stat; it
		 * is read only if it changed) and try once more. */
		reload_keys(st, false);
		why = NULL;
		verified = token_verify(ed->password, st->keys, &expect, &claims, &why);
	}
	if(!verified){
		why = why ? why : "invalid";
	}else if(revoke_matches(&st->revocations, claims.clientid, claims.jti, claims.iat, expect.now)){
		why = "revoked";
		free(claims.acl);
	}
	if(why){
		hub_log(HUB_LOG_NOTICE, "hub-auth: refused %s: %s", clientid ? clientid : "?", why);
		/* A re-check after a reload that fails: the connection is closed; its session
		 * gets nothing more. */
		if(st->reauth && clientid){
			clients_remove(&st->clients, clientid, ed->client);
			st->sessions_dirty = true;
		}
		return MOSQ_ERR_AUTH;
	}
	if(st->reauth){
		/* Mosquitto re-checks every known context, offline sessions included: the
		 * entries stay as they are. */
		free(claims.acl);
		return MOSQ_ERR_SUCCESS;
	}
	{
		struct client_entry *old = clients_find(&st->clients, claims.clientid), *entry;
		bool had_token = old && old->token;
		if(!clients_put(&st->clients, ed->client, &claims)){
			hub_log(HUB_LOG_ERR, "hub-auth: refused %s: out of memory", clientid ? clientid : "?");
			if(had_token) st->sessions_dirty = true;
			return MOSQ_ERR_AUTH;
		}
		/* A session that may outlive a restart: keep the token for the sessions file. */
		if(st->sessions_file && !mosquitto_client_clean_session(ed->client)){
			entry = clients_find(&st->clients, claims.clientid);
			if(entry) entry->token = strdup(ed->password);
			if(entry && entry->token == NULL){
				hub_log(HUB_LOG_WARNING, "hub-auth: %s: out of memory; its session is not kept "
						"across a restart", claims.clientid);
			}
			if(entry && entry->token) st->sessions_dirty = true;
		}
		if(had_token) st->sessions_dirty = true;
	}
	return MOSQ_ERR_SUCCESS;
}

/* The hot path: once per subscriber for every delivery, also to offline persistent
 * sessions (whether to queue). No allocation. */
static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct hub_auth *st = userdata;
	const char *clientid = mosquitto_client_id(ed->client);
	const char *username;
	struct client_entry *entry;
	enum acl_access access;

	(void)event;
	if(clientid == NULL) return MOSQ_ERR_PLUGIN_DEFER;
	entry = clients_find(&st->clients, clientid);
	/* Not a token client of ours (Dynamic Security's, or another connection that
	 * uses the same client id): not ours to judge. The context is the one the token
	 * logged in on (an offline persistent session keeps it, and its username), unless
	 * that one was freed and its address reused by a later connection on the same
	 * client id whose login this plugin never saw (Dynamic Security loaded first):
	 * that one's username is not the token's (token usernames hold a ':', the hub's
	 * accounts do not). */
	if(entry == NULL || (entry->connection != ed->client && entry->connection != NULL)){
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	username = mosquitto_client_username(ed->client);
	if(username == NULL || strcmp(username, entry->claims.username) != 0) return MOSQ_ERR_PLUGIN_DEFER;
	/* An entry restored from the sessions file: the session Mosquitto restored for this
	 * client id, with the token's username (a Dynamic Security account never has a
	 * ':', so never matches), is the token's. Bind it; from here it is an offline
	 * entry like any other, until the client logs in again. */
	if(entry->connection == NULL) entry->connection = ed->client;

	switch(ed->access){
		case MOSQ_ACL_UNSUBSCRIBE:
			return MOSQ_ERR_SUCCESS;
		case MOSQ_ACL_SUBSCRIBE:
			access = ACL_ACCESS_SUBSCRIBE;
			break;
		case MOSQ_ACL_WRITE:
			access = ACL_ACCESS_PUBLISH;
			break;
		case MOSQ_ACL_READ:
			access = ACL_ACCESS_RECEIVE;
			break;
		default:
			return MOSQ_ERR_ACL_DENIED;
	}
	if(entry->kick || (int64_t)time(NULL) >= entry->claims.exp) return MOSQ_ERR_ACL_DENIED;
	return acl_allows(entry->claims.acl, access, ed->topic) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	struct hub_auth *st = userdata;
	const char *clientid = mosquitto_client_id(ed->client);

	(void)event;
	if(clientid) clients_mark_offline(&st->clients, clientid, ed->client);
	return MOSQ_ERR_SUCCESS;
}

/* Runs once per pass of the broker's main loop. Work is done once a second (expiries,
 * keys file, pruning) or when a revocation queued a kick. */
static int on_tick(int event, void *event_data, void *userdata)
{
	struct hub_auth *st = userdata;
	time_t now = time(NULL);
	bool new_second = now != st->last_second;
	struct client_entry *due;

	(void)event;
	(void)event_data;
	st->reauth = false;
	if(!new_second && st->clients.kicks_queued == 0) return MOSQ_ERR_SUCCESS;
	if(new_second){
		st->last_second = now;
		reload_keys(st, false);
		if(st->pending_count > 0 && st->keys) verify_pending(st, (int64_t)now);
		if(now - st->last_prune >= PRUNE_INTERVAL_S){
			revoke_prune(&st->revocations, (int64_t)now);
			st->last_prune = now;
		}
	}
	/* Out of the table first: the kick's own DISCONNECT event then finds nothing. */
	due = clients_take_due(&st->clients, (int64_t)now, new_second);
	while(due){
		struct client_entry *next = due->next_kick;
		if(!due->offline){
			hub_log(HUB_LOG_NOTICE, "hub-auth: disconnecting %s: %s", due->claims.clientid,
					due->kick ? "revoked" : "token expired");
			mosquitto_kick_client_by_clientid(due->claims.clientid, false);
		}
		if(due->token) st->sessions_dirty = true;
		clients_entry_free(due);
		due = next;
	}
	if(new_second && st->sessions_dirty && now - st->last_sessions_save >= SESSIONS_SAVE_INTERVAL_S){
		save_sessions(st, (int64_t)now);
	}
	return MOSQ_ERR_SUCCESS;
}

static int on_reload(int event, void *event_data, void *userdata)
{
	struct hub_auth *st = userdata;

	(void)event;
	(void)event_data;
	reload_keys(st, true);
	st->reauth = true;
	/* Not SUCCESS: that would stop the broker from asking the other plugins. */
	return MOSQ_ERR_PLUGIN_DEFER;
}

/* ---- $CONTROL/hub-auth/v1 ---- */

static cJSON *answer(cJSON *responses, const char *command, const cJSON *request, const char *error)
{
	cJSON *item = cJSON_CreateObject();
	const char *correlation = request ? json_string(request, "correlationData") : NULL;

	if(item == NULL || !cJSON_AddItemToArray(responses, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	cJSON_AddStringToObject(item, "command", command);
	if(error) cJSON_AddStringToObject(item, "error", error);
	if(correlation) cJSON_AddStringToObject(item, "correlationData", correlation);
	return item;
}

/* Applies one revoke; *changed when the list changed (and needs saving). A well-formed
 * request closes the live connections it names even when the list cannot record it
 * (full, out of memory): fail closed, then report. */
static const char *revoke_command(struct hub_auth *st, const cJSON *request, int64_t now, bool *changed)
{
	const char *clientid = json_string(request, "clientid");
	const char *jti = json_string(request, "jti");
	const cJSON *until = cJSON_GetObjectItemCaseSensitive(request, "until");
	const cJSON *before = cJSON_GetObjectItemCaseSensitive(request, "issuedBefore");
	int64_t issued_before = REVOKE_EVERY_TOKEN;
	enum revoke_outcome outcome;
	size_t kicked;

	*changed = false;
	if((clientid == NULL) == (jti == NULL)) return "Give exactly one of clientid and jti.";
	if(!cJSON_IsNumber(until) || !(until->valuedouble >= 1 && until->valuedouble <= 1e11)){
		return "until must be unix seconds.";
	}
	if(before){
		if(jti) return "issuedBefore applies to a clientid revocation only.";
		if(!revoke_time_value(before, &issued_before)) return "issuedBefore must be whole unix seconds.";
	}
	outcome = revoke_add(&st->revocations, clientid ? REVOKE_CLIENTID : REVOKE_JTI,
			clientid ? clientid : jti, (int64_t)until->valuedouble, issued_before, now);
	if(outcome == REVOKE_INVALID) return "clientid and jti must be 1..128 bytes.";
	*changed = outcome == REVOKE_CHANGED;
	kicked = clients_queue_kick(&st->clients, clientid, issued_before, jti);
	if(outcome != REVOKE_CHANGED && outcome != REVOKE_UNCHANGED){
		hub_log(HUB_LOG_ERR, "hub-auth: revocation of %s %s not recorded (%s); %zu connection(s) closed",
				clientid ? "clientid" : "jti", clientid ? clientid : jti, revoke_outcome_error(outcome),
				kicked);
		return outcome == REVOKE_FULL
			? "Revocation list is full: the live connection is closed, but new logins are not refused."
			: "Out of memory: the live connection is closed, but new logins are not refused.";
	}
	if(issued_before != REVOKE_EVERY_TOKEN){
		hub_log(HUB_LOG_NOTICE, "hub-auth: revoked clientid %s tokens issued before %lld until %lld%s",
				clientid, (long long)issued_before, (long long)until->valuedouble,
				*changed ? "" : " (already recorded)");
	}else{
		hub_log(HUB_LOG_NOTICE, "hub-auth: revoked %s %s until %lld%s", clientid ? "clientid" : "jti",
				clientid ? clientid : jti, (long long)until->valuedouble, *changed ? "" : " (already recorded)");
	}
	return NULL;
}

static void handle_commands(struct hub_auth *st, const cJSON *commands, cJSON *responses)
{
	int64_t now = (int64_t)time(NULL);
	int count = cJSON_GetArraySize(commands);
	/* The answers of the revokes that changed the list: they learn if saving fails. */
	cJSON **changed_answers = count > 0 ? calloc((size_t)count, sizeof(*changed_answers)) : NULL;
	size_t changed_count = 0;
	const cJSON *request;
	cJSON *item;

	if(count > 0 && changed_answers == NULL){
		answer(responses, "unknown", NULL, "Out of memory.");
		return;
	}
	cJSON_ArrayForEach(request, commands){
		const char *command = json_string(request, "command");
		if(command == NULL){
			answer(responses, "unknown", request, "Missing command.");
		}else if(strcmp(command, "revoke") == 0){
			bool changed;
			const char *error = revoke_command(st, request, now, &changed);
			item = answer(responses, "revoke", request, error);
			/* changed_count < count: one answer per command at most */
			if(changed) changed_answers[changed_count++] = item;
		}else if(strcmp(command, "listRevocations") == 0){
			cJSON *list = revoke_to_json(&st->revocations, now);
			item = answer(responses, "listRevocations", request, list ? NULL : "Out of memory.");
			if(list && (item == NULL || !cJSON_AddItemToObject(item, "revocations", list))){
				cJSON_Delete(list);
			}
		}else{
			answer(responses, command, request, "Unknown command.");
		}
	}
	/* One save per message, and only when something changed. */
	if(changed_count > 0 && !revoke_save(&st->revocations, st->revocations_file, now)){
		/* Applied (and the connections closed), but it would not survive a restart. */
		for(size_t i = 0; i < changed_count; i++){
			if(changed_answers[i]) cJSON_AddStringToObject(changed_answers[i], "error", "Applied, but not saved to disk.");
		}
	}
	free(changed_answers);
}

static int on_control(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_control *ed = event_data;
	struct hub_auth *st = userdata;
	cJSON *doc = NULL, *reply = cJSON_CreateObject();
	cJSON *responses = cJSON_AddArrayToObject(reply, "responses");
	const cJSON *commands;
	char *text;

	(void)event;
	if(reply == NULL || responses == NULL){
		cJSON_Delete(reply);
		return MOSQ_ERR_NOMEM;
	}
	if(ed->payloadlen > CONTROL_MAX_PAYLOAD){
		answer(responses, "unknown", NULL, "Payload too large.");
	}else{
		doc = cJSON_ParseWithLength(ed->payload, ed->payloadlen);
		commands = cJSON_GetObjectItemCaseSensitive(doc, "commands");
		if(cJSON_IsArray(commands)){
			handle_commands(st, commands, responses);
		}else{
			answer(responses, "unknown", NULL, "Payload is not {\"commands\": [...]}.");
		}
	}
	text = cJSON_PrintUnformatted(reply);
	if(text){
		mosquitto_broker_publish_copy(NULL, CONTROL_RESPONSE_TOPIC, (int)strlen(text), text, 0, false, NULL);
	}
	free(text);
	cJSON_Delete(reply);
	cJSON_Delete(doc);
	return MOSQ_ERR_SUCCESS;
}

/* ---- life cycle ---- */

static int set_string(char **slot, const char *value)
{
	free(*slot);
	*slot = strdup(value);
	return *slot ? MOSQ_ERR_SUCCESS : MOSQ_ERR_NOMEM;
}

static int read_options(struct hub_auth *st, const struct mosquitto_opt *options, int count)
{
	int rc = MOSQ_ERR_SUCCESS;

	st->leeway = 5;
	for(int i = 0; i < count && rc == MOSQ_ERR_SUCCESS; i++){
		const char *key = options[i].key, *value = options[i].value;
		if(strcasecmp(key, "keys_file") == 0){
			rc = set_string(&st->keys_file, value);
		}else if(strcasecmp(key, "revocations_file") == 0){
			rc = set_string(&st->revocations_file, value);
		}else if(strcasecmp(key, "sessions_file") == 0){
			rc = set_string(&st->sessions_file, value);
		}else if(strcasecmp(key, "issuer") == 0){
			rc = set_string(&st->issuer, value);
		}else if(strcasecmp(key, "audience") == 0){
			rc = set_string(&st->audience, value);
		}else if(strcasecmp(key, "leeway") == 0){
			char *end;
			long v;
			errno = 0;
			v = strtol(value, &end, 10);
			if(errno || end == value || *end != '\0' || v < 0 || v > LEEWAY_MAX_S){
				hub_log(HUB_LOG_ERR, "hub-auth: plugin_opt_leeway must be 0..%d seconds", LEEWAY_MAX_S);
				return MOSQ_ERR_INVAL;
			}
			st->leeway = v;
		}else{
			hub_log(HUB_LOG_WARNING, "hub-auth: unknown option plugin_opt_%s ignored", key);
		}
	}
	if(rc == MOSQ_ERR_SUCCESS && st->audience == NULL) rc = set_string(&st->audience, "mqtt");
	if(rc != MOSQ_ERR_SUCCESS) return rc;
	if(st->keys_file == NULL || st->revocations_file == NULL || st->issuer == NULL
			|| st->issuer[0] == '\0'){
		hub_log(HUB_LOG_ERR, "hub-auth: plugin_opt_keys_file, plugin_opt_revocations_file and "
				"plugin_opt_issuer are required");
		return MOSQ_ERR_INVAL;
	}
	return MOSQ_ERR_SUCCESS;
}

static void free_state(struct hub_auth *st)
{
	clients_free(&st->clients);
	revoke_free(&st->revocations);
	keys_free(st->keys);
	free(st->keys_file);
	free(st->revocations_file);
	free(st->sessions_file);
	for(size_t i = 0; i < st->pending_count; i++) free(st->pending[i].token);
	free(st->pending);
	free(st->issuer);
	free(st->audience);
	free(st);
}

static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
	const char *data;
} callbacks[] = {
	{MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL},
	{MOSQ_EVT_ACL_CHECK, on_acl_check, NULL},
	{MOSQ_EVT_DISCONNECT, on_disconnect, NULL},
	{MOSQ_EVT_TICK, on_tick, NULL},
	{MOSQ_EVT_RELOAD, on_reload, NULL},
	{MOSQ_EVT_CONTROL, on_control, CONTROL_TOPIC},
};
#define CALLBACK_COUNT (sizeof(callbacks) / sizeof(callbacks[0]))

static void unregister(struct hub_auth *st, size_t count)
{
	for(size_t i = 0; i < count; i++){
		mosquitto_callback_unregister(st->id, callbacks[i].event, callbacks[i].cb, callbacks[i].data);
	}
}

EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	struct hub_auth *st = calloc(1, sizeof(*st));
	time_t now = time(NULL);
	int rc;

	if(st == NULL) return MOSQ_ERR_NOMEM;
	st->id = identifier;
	rc = read_options(st, options, option_count);
	if(rc != MOSQ_ERR_SUCCESS){
		free_state(st);
		return rc;
	}
	/* A revocation must survive restarts: a file we cannot read stops the broker
	 * rather than forgetting what was revoked. */
	if(!revoke_load(&st->revocations, st->revocations_file, (int64_t)now)){
		hub_log(HUB_LOG_ERR, "hub-auth: refusing to start; fix or remove %s", st->revocations_file);
		free_state(st);
		return MOSQ_ERR_INVAL;
	}
	reload_keys(st, true);
	if(st->sessions_file){
		load_sessions(st, (int64_t)now);
	}else{
		hub_log(HUB_LOG_WARNING, "hub-auth: no plugin_opt_sessions_file: after a restart, offline "
				"token sessions get no messages until their clients log in again");
	}
	st->last_sessions_save = now;
	st->last_second = now;
	st->last_prune = now;
	for(size_t i = 0; i < CALLBACK_COUNT; i++){
		rc = mosquitto_callback_register(identifier, callbacks[i].event, callbacks[i].cb,
				callbacks[i].data, st);
		if(rc != MOSQ_ERR_SUCCESS){
			hub_log(HUB_LOG_ERR, "hub-auth: cannot register callback for event %d", callbacks[i].event);
			unregister(st, i);
			free_state(st);
			return rc;
		}
	}
	*userdata = st;
	hub_log(HUB_LOG_NOTICE, "hub-auth: issuer %s, audience %s, leeway %llds, %zu revocation(s)",
			st->issuer, st->audience, (long long)st->leeway, st->revocations.count);
	return MOSQ_ERR_SUCCESS;
}

EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct hub_auth *st = userdata;

	(void)options;
	(void)option_count;
	if(st == NULL) return MOSQ_ERR_SUCCESS;
	unregister(st, CALLBACK_COUNT);
	if(st->sessions_file) save_sessions(st, (int64_t)time(NULL));
	free_state(st);
	return MOSQ_ERR_SUCCESS;
}
