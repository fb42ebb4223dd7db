/* The sessions file: the raw tokens of the token clients whose sessions may outlive a
 * broker restart, so that their restored offline sessions keep being ACL-checked
 * against their tokens. One line per entry:
 *   s1 <base64url(clientid)> <base64url(username)> <token>\n
 * The token is a bearer credential: the file is written with mode 0600. Nothing here
 * is trusted: every token is verified again on load. Pure: no broker headers. */
#ifndef HUB_AUTH_SESSIONS_H
#define HUB_AUTH_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "token.h"

#define SESSIONS_MAX_ENTRIES 200000
/* "s1 " + two encoded claims (at most 172 characters each) + 2 spaces + token + '\n' */
#define SESSIONS_LINE_MAX (3 + 2 * 172 + 2 + TOKEN_MAX_LEN + 1)

struct session_record {
	char clientid[TOKEN_MAX_CLAIM + 1];
	char username[TOKEN_MAX_CLAIM + 1];
	char *token; /* owned; free() */
};

/* Parses one line (without its '\n'); false on anything malformed (out->token NULL). */
bool sessions_parse_line(const char *line, size_t len, struct session_record *out);

/* Formats one line, '\n' included, NUL-terminated; false if a value is empty, too long
 * or the token is not shaped like one. */
bool sessions_format_line(const char *clientid, const char *username, const char *token,
		char *out, size_t cap, size_t *len);

/* Reads the file, at most SESSIONS_MAX_ENTRIES lines of at most SESSIONS_LINE_MAX bytes;
 * calls `take` with every good record (it takes ownership of record->token). *bad
 * counts the malformed or over-long lines. A missing file is empty (true); false when
 * it cannot be read. */
bool sessions_load(const char *path, void (*take)(struct session_record *record, void *arg),
		void *arg, size_t *bad);

/* Yields the next record to save (fields borrowed); false when there are no more. */
typedef bool (*sessions_next_fn)(void *arg, const char **clientid, const char **username,
		const char **token);

/* Writes atomically (temp file, mode 0600, in the same folder; fsync; rename; fsync of
 * the folder). At most SESSIONS_MAX_ENTRIES records. false (logged) on failure; the
 * file is then unchanged. */
bool sessions_save(const char *path, sessions_next_fn next, void *arg, size_t *written);

#endif
