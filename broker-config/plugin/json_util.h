#ifndef HUB_AUTH_JSON_UTIL_H
#define HUB_AUTH_JSON_UTIL_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The string value of obj[name], or NULL when absent or not a string. */
static inline const char *json_string(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(item) ? item->valuestring : NULL;
}

#endif
