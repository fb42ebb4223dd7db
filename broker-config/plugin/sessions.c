#include "sessions.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64url.h"
#include "fileutil.h"
#include "hublog.h"

#define PREFIX "s1 "
#define PREFIX_LEN (sizeof(PREFIX) - 1)

static bool decode_field(const char *in, size_t len, char *out)
{
	size_t n;

	if(len == 0 || b64url_decoded_len(len) > TOKEN_MAX_CLAIM) return false;
	if(!b64url_decode(in, len, (uint8_t *)out, TOKEN_MAX_CLAIM, &n) || n == 0) return false;
	if(memchr(out, '\0', n)) return false;
	out[n] = '\0';
	return true;
}

bool sessions_parse_line(const char *line, size_t len, struct session_record *out)
{
	const char *p = line, *end = line + len, *sp;
	size_t token_len;

	out->token = NULL;
	if(len < PREFIX_LEN || memcmp(p, PREFIX, PREFIX_LEN) != 0) return false;
	p += PREFIX_LEN;
	sp = memchr(p, ' ', (size_t)(end - p));
	if(sp == NULL || !decode_field(p, (size_t)(sp - p), out->clientid)) return false;
	p = sp + 1;
	sp = memchr(p, ' ', (size_t)(end - p));
	if(sp == NULL || !decode_field(p, (size_t)(sp - p), out->username)) return false;
	p = sp + 1;
	token_len = (size_t)(end - p);
	if(token_len == 0 || token_len > TOKEN_MAX_LEN || memchr(p, '\0', token_len)) return false;
	out->token = malloc(token_len + 1);
	if(out->token == NULL) return false;
	memcpy(out->token, p, token_len);
	out->token[token_len] = '\0';
	if(token_shape(out->token) != TOKEN_JWS){
		free(out->token);
		out->token = NULL;
		return false;
	}
	return true;
}

bool sessions_format_line(const char *clientid, const char *username, const char *token,
		char *out, size_t cap, size_t *len)
{
	size_t c_len = strlen(clientid), u_len = strlen(username), t_len = strlen(token), n;

	if(c_len == 0 || c_len > TOKEN_MAX_CLAIM || u_len == 0 || u_len > TOKEN_MAX_CLAIM) return false;
	if(t_len > TOKEN_MAX_LEN || token_shape(token) != TOKEN_JWS) return false;
	if(cap < PREFIX_LEN + 1) return false;
	memcpy(out, PREFIX, PREFIX_LEN);
	n = PREFIX_LEN;
	if(!b64url_encode((const uint8_t *)clientid, c_len, out + n, cap - n)) return false;
	n += strlen(out + n);
	if(cap - n < 2) return false;
	out[n++] = ' ';
	if(!b64url_encode((const uint8_t *)username, u_len, out + n, cap - n)) return false;
	n += strlen(out + n);
	if(cap - n < t_len + 3) return false;
	out[n++] = ' ';
	memcpy(out + n, token, t_len);
	n += t_len;
	out[n++] = '\n';
	out[n] = '\0';
	*len = n;
	return true;
}

bool sessions_load(const char *path, void (*take)(struct session_record *record, void *arg),
		void *arg, size_t *bad)
{
	static char line[SESSIONS_LINE_MAX + 2];
	struct session_record record;
	size_t lines = 0;
	struct stat sb;
	FILE *f;

	*bad = 0;
	f = fopen(path, "re");
	if(f == NULL) return errno == ENOENT;
	if(fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)){
		fclose(f);
		return false;
	}
	while(lines < SESSIONS_MAX_ENTRIES && fgets(line, sizeof(line), f)){
		size_t len = strlen(line);
		lines++;
		if(len == 0 || line[len - 1] != '\n'){
			/* Over-long (or cut short): skip to the end of the line. */
			int c;
			while((c = fgetc(f)) != EOF && c != '\n'){}
			(*bad)++;
			continue;
		}
		if(sessions_parse_line(line, len - 1, &record)){
			take(&record, arg);
		}else{
			(*bad)++;
		}
	}
	if(lines == SESSIONS_MAX_ENTRIES && fgets(line, sizeof(line), f)){
		hub_log(HUB_LOG_WARNING, "hub-auth: sessions file %s: only the first %d entries read",
				path, SESSIONS_MAX_ENTRIES);
	}
	fclose(f);
	return true;
}

bool sessions_save(const char *path, sessions_next_fn next, void *arg, size_t *written)
{
	static char line[SESSIONS_LINE_MAX + 1];
	const char *clientid, *username, *token;
	size_t path_len = strlen(path), len;
	char *tmp_path = malloc(path_len + sizeof(".XXXXXX"));
	FILE *f = NULL;
	int fd = -1;
	bool ok = false, created = false;

	*written = 0;
	if(tmp_path == NULL) goto done;
	memcpy(tmp_path, path, path_len);
	memcpy(tmp_path + path_len, ".XXXXXX", sizeof(".XXXXXX"));
	fd = mkstemp(tmp_path); /* mode 0600 */
	if(fd < 0) goto done;
	created = true;
	if(fchmod(fd, S_IRUSR | S_IWUSR) != 0) goto done;
	f = fdopen(fd, "w");
	if(f == NULL) goto done;
	fd = -1;
	while(*written < SESSIONS_MAX_ENTRIES && next(arg, &clientid, &username, &token)){
		if(!sessions_format_line(clientid, username, token, line, sizeof(line), &len)) continue;
		if(fwrite(line, 1, len, f) != len) goto done;
		(*written)++;
	}
	if(fflush(f) != 0 || fsync(fileno(f)) != 0) goto done;
	if(fclose(f) != 0){
		f = NULL;
		goto done;
	}
	f = NULL;
	if(rename(tmp_path, path) != 0) goto done;
	ok = true;
	if(!fsync_folder_of(path)){
		hub_log(HUB_LOG_WARNING, "hub-auth: could not fsync the folder of %s", path);
	}
done:
	if(!ok){
		hub_log(HUB_LOG_ERR, "hub-auth: could not save sessions to %s: %s", path, strerror(errno));
		if(f) fclose(f);
		if(fd >= 0) close(fd);
		if(created) unlink(tmp_path);
	}
	free(tmp_path);
	return ok;
}
