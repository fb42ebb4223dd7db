/* A token's acl claim (EMQX 5 rule-list form) and MQTT topic matching. Pure: no
 * broker headers, no allocation on the matching path. */
#ifndef HUB_AUTH_ACL_H
#define HUB_AUTH_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define ACL_MAX_RULES 64
#define ACL_MAX_TOPIC 256

enum acl_action {
	ACL_ACTION_PUBLISH = 1,
	ACL_ACTION_SUBSCRIBE = 2,
	ACL_ACTION_ALL = 3,
};

/* What a client asks for, as Mosquitto's ACL check names it. */
enum acl_access {
	ACL_ACCESS_PUBLISH,   /* the client publishes to a topic name */
	ACL_ACCESS_SUBSCRIBE, /* the client subscribes with a topic filter */
	ACL_ACCESS_RECEIVE,   /* a message with this topic name is delivered to the client */
};

struct acl_rule {
	const char *topic; /* points into the same allocation */
	uint8_t allow;
	uint8_t actions; /* enum acl_action bits */
};

struct acl {
	size_t count;
	struct acl_rule rules[];
};

/* Parses and validates the claim: an array of 1..ACL_MAX_RULES objects with exactly the
 * keys permission, action and topic. On failure returns NULL and sets *why. The result
 * is one allocation: free it with free(). */
struct acl *acl_parse(const cJSON *claim, const char **why);

/* A valid MQTT topic filter of 1..ACL_MAX_TOPIC bytes: '+' and '#' occupy whole levels,
 * '#' only last. Not a shared subscription ("$share/..."). */
bool acl_filter_valid(const char *filter);

/* MQTT matching of a topic name against a filter (both valid); a filter that starts
 * with a wildcard never matches a topic that starts with '$'. */
bool acl_topic_matches(const char *filter, const char *topic);

/* Whether every topic name that `requested` matches is also matched by `rule`. */
bool acl_filter_covers(const char *rule, const char *requested);

/* First matching rule wins; no match is a refusal. `topic` is a topic name, or for
 * ACL_ACCESS_SUBSCRIBE a topic filter (a "$share/<group>/" prefix is looked through). */
bool acl_allows(const struct acl *acl, enum acl_access access, const char *topic);

#endif
