/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Configuration from the environment (STYLE B7). The only module that reads the process
 * environment. Every NAME may instead be given as NAME_FILE (a Docker secret); one trailing newline
 * is trimmed. Getters never fail the caller on bad input: they record the problem in the struct
 * tr_env and return the default, so that tr_env_finish() reports every problem at once. */
#ifndef TRESTLE_COMMON_ENV_H
#define TRESTLE_COMMON_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "err.h"

/* Returns the raw value of an environment variable or NULL; borrowed. */
typedef const char *tr_env_lookup_fn(const char *name);

#define TR_ENV_FILE_MAX (64 * 1024)

struct tr_env {
	tr_env_lookup_fn *lookup; /* getenv unless a test supplies another */
	int n_errors;
	struct tr_buf errors; /* one "NAME: reason" per line */
};

/* lookup NULL means the process environment. */
void tr_env_init(struct tr_env *e, tr_env_lookup_fn *lookup);
void tr_env_cleanup(struct tr_env *e);

/* Records a problem found by the caller's own validation ("NAME: reason"). */
void tr_env_fail(struct tr_env *e, const char *name, const char *fmt, ...) TR_PRINTF(3, 4);

/* The value of NAME or of the file NAME_FILE names, newly allocated; a copy of def (which may
 * be NULL) when neither is set. Setting both is an error. */
char *tr_env_str(struct tr_env *e, const char *name, const char *def);
/* As tr_env_str, and records "NAME: required" when unset. */
char *tr_env_required(struct tr_env *e, const char *name);
long tr_env_int(struct tr_env *e, const char *name, long def, long min, long max);
/* Accepts 1/0, true/false, yes/no, on/off. */
bool tr_env_bool(struct tr_env *e, const char *name, bool def);

/* Logs every recorded problem (one error line each) and returns TR_E_CONFIG if there was any. */
int tr_env_finish(struct tr_env *e) TR_MUST_CHECK;

/* Pure helpers, also used by trestle-ctl's argument parsing. */
int tr_parse_long(const char *s, long min, long max, long *out) TR_MUST_CHECK;
int tr_parse_bool(const char *s, bool *out) TR_MUST_CHECK;

#endif
