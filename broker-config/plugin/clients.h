/* The token clients, by client id: their claims and acl, and the connection (the
 * broker's client context) they belong to. After a disconnect the entry stays, marked
 * offline, until the token expires: Mosquitto keeps the same context for a persistent
 * session, and queues messages for it only if its acl allows them. Pure: the
 * connection is an opaque pointer, compared, never dereferenced. */
#ifndef HUB_AUTH_CLIENTS_H
#define HUB_AUTH_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>

#include <uthash.h>

#include "token.h"

struct client_entry {
	UT_hash_handle hh;
	const void *connection; /* the broker's struct mosquitto; NULL: restored from the
	                         * sessions file and not yet bound to the restored context */
	struct client_entry *next_kick; /* while being kicked */
	bool kick; /* queued by a revocation */
	bool offline; /* disconnected; its session may live on */
	char *token; /* owned, or NULL: the raw token, kept for the sessions file when the
	              * session may outlive a restart */
	struct token_claims claims; /* claims.clientid is the key */
};

struct client_table {
	struct client_entry *table;
	size_t kicks_queued;
};

/* Stores the claims for this connection, replacing any entry for the same client id;
 * takes ownership of claims->acl (also on failure). false when out of memory. */
bool clients_put(struct client_table *t, const void *connection, struct token_claims *claims);

struct client_entry *clients_find(const struct client_table *t, const char *clientid);

/* Marks the entry of this client id offline, only if it belongs to this connection. */
void clients_mark_offline(struct client_table *t, const char *clientid, const void *connection);

/* Removes the entry of this client id if it belongs to this connection (any, when
 * connection is NULL). */
void clients_remove(struct client_table *t, const char *clientid, const void *connection);

/* Queues a kick of the entry with this client id whose token was issued (iat) before
 * issued_before (INT64_MAX: any), and of the entries with this jti (either may be
 * NULL). Returns how many were queued. */
size_t clients_queue_kick(struct client_table *t, const char *clientid, int64_t issued_before,
		const char *jti);

/* Takes out of the table every entry queued for a kick or whose exp <= now, and
 * returns them as a list (next_kick); free each with clients_entry_free after use.
 * Only the entries that are not offline have a connection to close. */
struct client_entry *clients_take_due(struct client_table *t, int64_t now, bool check_expiry);

void clients_entry_free(struct client_entry *entry);

void clients_free(struct client_table *t);

#endif
