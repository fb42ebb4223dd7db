/* Debian 12's mosquitto-dev ships mosquitto_broker.h and mosquitto_plugin.h but not
 * mosquitto.h (that is libmosquitto-dev), which holds the error and log constants.
 * Use it when present; otherwise define the few this plugin needs, with the values of
 * Mosquitto 2.0's ABI. */
#ifndef HUB_AUTH_BROKER_COMPAT_H
#define HUB_AUTH_BROKER_COMPAT_H

#if __has_include(<mosquitto.h>)
#  include <mosquitto.h>
#else
#  define MOSQ_LOG_INFO (1 << 0)
#  define MOSQ_LOG_NOTICE (1 << 1)
#  define MOSQ_LOG_WARNING (1 << 2)
#  define MOSQ_LOG_ERR (1 << 3)
#  define MOSQ_LOG_DEBUG (1 << 4)
enum mosq_err_t {
	MOSQ_ERR_SUCCESS = 0,
	MOSQ_ERR_NOMEM = 1,
	MOSQ_ERR_INVAL = 3,
	MOSQ_ERR_AUTH = 11,
	MOSQ_ERR_ACL_DENIED = 12,
	MOSQ_ERR_PLUGIN_DEFER = 17,
};
#endif

#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#endif
