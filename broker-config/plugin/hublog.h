/* Logging seam: the plugin sends these lines to Mosquitto's log, the fuzzer drops them,
 * so the pure modules need no broker headers. */
#ifndef HUB_AUTH_HUBLOG_H
#define HUB_AUTH_HUBLOG_H

enum hub_log_level {
	HUB_LOG_ERR,
	HUB_LOG_WARNING,
	HUB_LOG_NOTICE,
	HUB_LOG_INFO,
	HUB_LOG_DEBUG,
};

void hub_log(enum hub_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
