/* log — the one place store/, cache/ and fs/ report why something failed.
 *
 * "Log the reason once, where it is known": a function that turns a condition
 * into an errno logs the reason with ds_log at that point; callers only pass
 * the errno on. Messages go to stderr by default; front ends may redirect them
 * (syslog for a daemonised mount). Thread-safe: each message is written whole.
 */
#ifndef DSFS_STORE_LOG_H
#define DSFS_STORE_LOG_H

enum ds_log_level {
	DS_LOG_ERR = 3,
	DS_LOG_WARN = 4,
	DS_LOG_INFO = 6,
	DS_LOG_DEBUG = 7,
};

typedef void (*ds_log_sink)(enum ds_log_level level, const char *msg, void *userdata);

/* Messages above max_level are dropped. Default DS_LOG_INFO. */
void ds_log_set_level(enum ds_log_level max_level);
/* NULL restores the stderr sink ("dsfs: <level>: <msg>\n"). */
void ds_log_set_sink(ds_log_sink sink, void *userdata);
/* Program name printed by the stderr sink; borrowed, must outlive logging. */
void ds_log_set_ident(const char *ident);
/* "error", "warning", "info", "debug": as the stderr sink prints levels. */
const char *ds_log_level_name(enum ds_log_level level);

void ds_log(enum ds_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define ds_err(...) ds_log(DS_LOG_ERR, __VA_ARGS__)
#define ds_warn(...) ds_log(DS_LOG_WARN, __VA_ARGS__)
#define ds_info(...) ds_log(DS_LOG_INFO, __VA_ARGS__)
#define ds_debug(...) ds_log(DS_LOG_DEBUG, __VA_ARGS__)

#endif
