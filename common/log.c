/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* stderr logger. One write(2)-sized fprintf per line so concurrent processes do not interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "log.h"

static char tr_log_instance[64] = "trestle";
static enum tr_log_level tr_log_cur = TR_LOG_INFO;
static const char *const tr_log_names[] = {"error", "warn", "info", "debug"};

void tr_log_init(const char *instance, enum tr_log_level level)
{
	if (instance)
		snprintf(tr_log_instance, sizeof(tr_log_instance), "%s", instance);
	tr_log_cur = level;
}

void tr_log_set_level(enum tr_log_level level)
{
	tr_log_cur = level;
}

bool tr_log_enabled(enum tr_log_level level)
{
	return level <= tr_log_cur;
}

int tr_log_level_parse(const char *s, enum tr_log_level *out)
{
	for (size_t i = 0; s && i < TR_ARRAY_LEN(tr_log_names); i++) {
		if (strcmp(s, tr_log_names[i]) == 0) {
			*out = (enum tr_log_level)i;
			return TR_OK;
		}
	}
	return TR_E_INVAL;
}

void tr_log(enum tr_log_level level, const char *func, const char *fmt, ...)
{
	if (!tr_log_enabled(level))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000000, tr_log_names[level], tr_log_instance);
	if (func && n > 0 && (size_t)n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", func);
	if (n > 0 && (size_t)n < sizeof(line)) {
		va_list ap;
		va_start(ap, fmt);
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2;
	/* A log line is one line: fold any control character an id might carry. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	line[len] = '\n';
	fwrite(line, 1, len + 1, stderr);
}
