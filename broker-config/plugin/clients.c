#include "clients.h"

#include <stdlib.h>
#include <string.h>

void clients_entry_free(struct client_entry *entry)
{
	if(entry == NULL) return;
	free(entry->claims.acl);
	free(entry->token);
	free(entry);
}

bool clients_put(struct client_table *t, const void *connection, struct token_claims *claims)
{
	struct client_entry *entry = calloc(1, sizeof(*entry)), *old = NULL;

	if(entry == NULL){
		free(claims->acl);
		claims->acl = NULL;
		return false;
	}
	entry->connection = connection;
	entry->claims = *claims;
	claims->acl = NULL;
	HASH_REPLACE_STR(t->table, claims.clientid, entry, old);
	if(old){
		if(old->kick) t->kicks_queued--;
		clients_entry_free(old);
	}
	return true;
}

struct client_entry *clients_find(const struct client_table *t, const char *clientid)
{
	struct client_entry *entry = NULL;

	HASH_FIND_STR(t->table, clientid, entry);
	return entry;
}

static void remove_entry(struct client_table *t, struct client_entry *entry)
{
	HASH_DEL(t->table, entry);
	if(entry->kick) t->kicks_queued--;
}

void clients_mark_offline(struct client_table *t, const char *clientid, const void *connection)
{
	struct client_entry *entry = clients_find(t, clientid);

	if(entry && entry->connection == connection) entry->offline = true;
}

void clients_remove(struct client_table *t, const char *clientid, const void *connection)
{
	struct client_entry *entry = clients_find(t, clientid);

	if(entry == NULL || (connection && entry->connection != connection)) return;
	remove_entry(t, entry);
	clients_entry_free(entry);
}

static void queue(struct client_table *t, struct client_entry *entry)
{
	if(!entry->kick){
		entry->kick = true;
		t->kicks_queued++;
	}
}

size_t clients_queue_kick(struct client_table *t, const char *clientid, int64_t issued_before,
		const char *jti)
{
	struct client_entry *entry, *tmp;
	size_t queued = 0;

	if(clientid){
		entry = clients_find(t, clientid);
		if(entry && entry->claims.iat < issued_before){
			queue(t, entry);
			queued++;
		}
	}
	if(jti){
		/* A jti revocation is rare: a walk over the table is fine. */
		HASH_ITER(hh, t->table, entry, tmp){
			if(strcmp(entry->claims.jti, jti) == 0){
				queue(t, entry);
				queued++;
			}
		}
	}
	return queued;
}

struct client_entry *clients_take_due(struct client_table *t, int64_t now, bool check_expiry)
{
	struct client_entry *entry, *tmp, *due = NULL;

	HASH_ITER(hh, t->table, entry, tmp){
		if(entry->kick || (check_expiry && entry->claims.exp <= now)){
			remove_entry(t, entry);
			entry->next_kick = due;
			due = entry;
		}
	}
	return due;
}

void clients_free(struct client_table *t)
{
	struct client_entry *entry, *tmp;

	HASH_ITER(hh, t->table, entry, tmp){
		HASH_DEL(t->table, entry);
		clients_entry_free(entry);
	}
	t->kicks_queued = 0;
}
