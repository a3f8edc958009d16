/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Leveled logging: one line per event on stderr, "UTC-time level instance message key=value".
 * Never log message text, tokens, passwords or URLs with credentials: log ids and sizes. */
#ifndef TRESTLE_COMMON_LOG_H
#define TRESTLE_COMMON_LOG_H

#include <stdbool.h>
#include "err.h"

enum tr_log_level { TR_LOG_ERROR = 0, TR_LOG_WARN, TR_LOG_INFO, TR_LOG_DEBUG };

/* Sets the instance tag (copied, at most 63 bytes) and the level. Safe to call again. */
void tr_log_init(const char *instance, enum tr_log_level level);
void tr_log_set_level(enum tr_log_level level);
bool tr_log_enabled(enum tr_log_level level);
/* Parses "error", "warn", "info", "debug"; TR_E_INVAL otherwise. */
int tr_log_level_parse(const char *s, enum tr_log_level *out) TR_MUST_CHECK;

void tr_log(enum tr_log_level level, const char *func, const char *fmt, ...) TR_PRINTF(3, 4);

#define tr_error(...) tr_log(TR_LOG_ERROR, NULL, __VA_ARGS__)
#define tr_warn(...)  tr_log(TR_LOG_WARN, NULL, __VA_ARGS__)
#define tr_info(...)  tr_log(TR_LOG_INFO, NULL, __VA_ARGS__)
#define tr_debug(...)                                                                              \
	do {                                                                                       \
		if (tr_log_enabled(TR_LOG_DEBUG))                                                  \
			tr_log(TR_LOG_DEBUG, __func__, __VA_ARGS__);                               \
	} while (0)

/* "(null)" for NULL, as Mosquitto's SAFE_PRINT. */
#define tr_str(p) ((p) ? (p) : "(null)")

#endif
