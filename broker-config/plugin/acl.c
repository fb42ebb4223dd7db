#include "acl.h"

#include <stdlib.h>
#include <string.h>

#include "json_util.h"

bool acl_filter_valid(const char *filter)
{
	size_t len = strnlen(filter, ACL_MAX_TOPIC + 1);

	if(len == 0 || len > ACL_MAX_TOPIC) return false;
	if(strncmp(filter, "$share/", 7) == 0) return false;
	for(size_t i = 0; i < len; i++){
		char c = filter[i];
		if(c == '+' || c == '#'){
			bool starts_level = i == 0 || filter[i - 1] == '/';
			bool ends_level = i + 1 == len || filter[i + 1] == '/';
			if(!starts_level || !ends_level) return false;
			if(c == '#' && i + 1 != len) return false;
		}
	}
	return true;
}

bool acl_topic_matches(const char *f, const char *t)
{
	if(t[0] == '$' && (f[0] == '+' || f[0] == '#')) return false;
	for(;;){
		if(f[0] == '#') return true;
		if(f[0] == '+'){
			f++;
			while(*t && *t != '/') t++;
		}else{
			while(*f && *f != '/'){
				if(*f != *t) return false;
				f++;
				t++;
			}
			if(*t && *t != '/') return false;
		}
		/* Both at a level separator or at their end. */
		if(*f == '\0') return *t == '\0';
		if(*t == '\0') return f[1] == '#' && f[2] == '\0';
		f++;
		t++;
	}
}

bool acl_filter_covers(const char *r, const char *q)
{
	if(q[0] == '$' && (r[0] == '+' || r[0] == '#')) return false;
	for(;;){
		if(r[0] == '#') return true;
		if(r[0] == '+'){
			if(q[0] == '#') return false;
			r++;
			while(*q && *q != '/') q++;
		}else{
			/* A literal level covers only the same literal (not '+' or '#'). */
			while(*r && *r != '/'){
				if(*r != *q) return false;
				r++;
				q++;
			}
			if(*q && *q != '/') return false;
		}
		if(*r == '\0') return *q == '\0';
		if(*q == '\0') return r[1] == '#' && r[2] == '\0';
		r++;
		q++;
	}
}

bool acl_allows(const struct acl *acl, enum acl_access access, const char *topic)
{
	uint8_t wanted = access == ACL_ACCESS_PUBLISH ? ACL_ACTION_PUBLISH : ACL_ACTION_SUBSCRIBE;

	if(access == ACL_ACCESS_SUBSCRIBE && strncmp(topic, "$share/", 7) == 0){
		const char *slash = strchr(topic + 7, '/');
		if(slash == NULL || slash == topic + 7 || slash[1] == '\0') return false;
		topic = slash + 1;
	}
	for(size_t i = 0; i < acl->count; i++){
		const struct acl_rule *rule = &acl->rules[i];
		bool hit;
		if((rule->actions & wanted) == 0) continue;
		if(access == ACL_ACCESS_SUBSCRIBE){
			hit = acl_filter_covers(rule->topic, topic);
		}else{
			hit = acl_topic_matches(rule->topic, topic);
		}
		if(hit) return rule->allow != 0;
	}
	return false;
}

/* Validates one rule; on success fills the permission, actions and topic. */
static const char *check_rule(const cJSON *rule, uint8_t *allow, uint8_t *actions,
		const char **topic)
{
	const char *permission, *action;
	const cJSON *member;
	int members = 0;

	if(!cJSON_IsObject(rule)) return "acl rule is not an object";
	cJSON_ArrayForEach(member, rule){
		members++;
	}
	permission = json_string(rule, "permission");
	action = json_string(rule, "action");
	*topic = json_string(rule, "topic");
	/* An unknown key could be a restriction (EMQX's qos, retain) that we would not
	 * apply, widening access: refuse it instead. */
	if(permission == NULL || action == NULL || *topic == NULL || members != 3){
		return "acl rule needs exactly permission, action and topic";
	}
	if(strcmp(permission, "allow") == 0){
		*allow = 1;
	}else if(strcmp(permission, "deny") == 0){
		*allow = 0;
	}else{
		return "acl rule has an unknown permission";
	}
	if(strcmp(action, "publish") == 0){
		*actions = ACL_ACTION_PUBLISH;
	}else if(strcmp(action, "subscribe") == 0){
		*actions = ACL_ACTION_SUBSCRIBE;
	}else if(strcmp(action, "all") == 0){
		*actions = ACL_ACTION_ALL;
	}else{
		return "acl rule has an unknown action";
	}
	if(!acl_filter_valid(*topic)) return "acl rule has an invalid topic filter";
	return NULL;
}

struct acl *acl_parse(const cJSON *claim, const char **why)
{
	const cJSON *rule;
	size_t count = 0, text = 0, i = 0;
	struct acl *acl;
	char *cursor;

	if(!cJSON_IsArray(claim)){
		*why = "acl is not an array";
		return NULL;
	}
	cJSON_ArrayForEach(rule, claim){
		uint8_t allow, actions;
		const char *topic;
		if(++count > ACL_MAX_RULES){
			*why = "acl has too many rules";
			return NULL;
		}
		*why = check_rule(rule, &allow, &actions, &topic);
		if(*why) return NULL;
		text += strlen(topic) + 1;
	}
	if(count == 0){
		*why = "acl is empty";
		return NULL;
	}
	acl = malloc(sizeof(*acl) + count * sizeof(acl->rules[0]) + text);
	if(acl == NULL){
		*why = "out of memory";
		return NULL;
	}
	acl->count = count;
	cursor = (char *)&acl->rules[count];
	cJSON_ArrayForEach(rule, claim){
		const char *topic;
		size_t len;
		(void)check_rule(rule, &acl->rules[i].allow, &acl->rules[i].actions, &topic);
		len = strlen(topic) + 1;
		memcpy(cursor, topic, len);
		acl->rules[i].topic = cursor;
		cursor += len;
		i++;
	}
	return acl;
}
