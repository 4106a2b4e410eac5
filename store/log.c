#include "store/log.h"

#include <stdarg.h>
#include <stdio.h>

static enum ds_log_level max_level = DS_LOG_INFO;
static ds_log_sink log_sink;
static void *log_userdata;
static const char *log_ident = "dsfs";

void ds_log_set_level(enum ds_log_level level)
{
	max_level = level;
}

void ds_log_set_sink(ds_log_sink sink, void *userdata)
{
	log_sink = sink;
	log_userdata = userdata;
}

void ds_log_set_ident(const char *ident)
{
	log_ident = ident ? ident : "dsfs";
}

const char *ds_log_level_name(enum ds_log_level level)
{
	switch (level) {
	case DS_LOG_ERR:
		return "error";
	case DS_LOG_WARN:
		return "warning";
	case DS_LOG_INFO:
		return "info";
	case DS_LOG_DEBUG:
		return "debug";
	}
	return "log";
}

void ds_log(enum ds_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_sink) {
		log_sink(level, msg, log_userdata);
		return;
	}
	/* One fprintf call: stdio locks the stream, so lines never interleave. */
	fprintf(stderr, "%s: %s: %s\n", log_ident, ds_log_level_name(level), msg);
}
