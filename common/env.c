/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Environment getters with NAME_FILE support and all-at-once error reporting. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "alloc.h"
#include "env.h"
#include "log.h"

static const char *tr_env_getenv(const char *name)
{
	return getenv(name);
}

void tr_env_init(struct tr_env *e, tr_env_lookup_fn *lookup)
{
	e->lookup = lookup ? lookup : tr_env_getenv;
	e->n_errors = 0;
	tr_buf_init(&e->errors, 64 * 1024);
}

void tr_env_cleanup(struct tr_env *e)
{
	tr_buf_cleanup(&e->errors);
}

void tr_env_fail(struct tr_env *e, const char *name, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->n_errors++;
	/* A full error buffer still counts the error; the first lines say enough. (A (void) cast
	 * does not silence gcc's warn_unused_result.) */
	if (tr_buf_printf(&e->errors, "%s: %s\n", name, msg) != TR_OK)
		return;
}

static char *tr_env_read_file(struct tr_env *e, const char *name, const char *path)
{
	char *out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		tr_env_fail(e, name, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct tr_buf b;
	tr_buf_init(&b, TR_ENV_FILE_MAX);
	char chunk[4096];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			tr_env_fail(e, name, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (tr_buf_append(&b, chunk, (size_t)n) != TR_OK) {
			tr_env_fail(e, name, "%s is larger than %d bytes", path, TR_ENV_FILE_MAX);
			goto out;
		}
	}
	if (b.len && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	if (b.len && b.data[b.len - 1] == '\r')
		b.data[--b.len] = '\0';
	if (memchr(tr_buf_str(&b), '\0', b.len)) {
		tr_env_fail(e, name, "%s holds a NUL byte", path);
		goto out;
	}
	out = tr_buf_take(&b);
out:
	tr_buf_cleanup(&b);
	close(fd);
	return out;
}

char *tr_env_str(struct tr_env *e, const char *name, const char *def)
{
	char file_name[256];
	snprintf(file_name, sizeof(file_name), "%s_FILE", name);
	const char *v = e->lookup(name);
	const char *f = e->lookup(file_name);
	if (v && f) {
		tr_env_fail(e, name, "set both %s and %s; keep one", name, file_name);
		return tr_xstrdup(def);
	}
	if (f) {
		char *s = tr_env_read_file(e, name, f);
		/* The problem is recorded; the caller still gets the default, as documented. */
		return s ? s : tr_xstrdup(def);
	}
	if (v)
		return tr_xstrdup(v);
	return tr_xstrdup(def);
}

char *tr_env_required(struct tr_env *e, const char *name)
{
	int before = e->n_errors;
	char *v = tr_env_str(e, name, NULL);
	if (!v || !*v) {
		free(v);
		/* An unreadable NAME_FILE was reported already: one problem, one line. */
		if (e->n_errors == before)
			tr_env_fail(e, name, "required (set %s or %s_FILE)", name, name);
		return NULL;
	}
	return v;
}

int tr_parse_long(const char *s, long min, long max, long *out)
{
	if (!s || !*s)
		return TR_E_INVAL;
	/* strtol would skip leading white space and accept '+'. */
	if (!(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return TR_E_INVAL;
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || !end || *end || v < min || v > max)
		return TR_E_INVAL;
	*out = v;
	return TR_OK;
}

int tr_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; s && i < TR_ARRAY_LEN(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return TR_OK;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return TR_OK;
		}
	}
	return TR_E_INVAL;
}

long tr_env_int(struct tr_env *e, const char *name, long def, long min, long max)
{
	char *s = tr_env_str(e, name, NULL);
	long v = def;
	if (s && tr_parse_long(s, min, max, &v) != TR_OK) {
		tr_env_fail(e, name, "must be a whole number from %ld to %ld", min, max);
		v = def;
	}
	free(s);
	return v;
}

bool tr_env_bool(struct tr_env *e, const char *name, bool def)
{
	char *s = tr_env_str(e, name, NULL);
	bool v = def;
	if (s && tr_parse_bool(s, &v) != TR_OK) {
		tr_env_fail(e, name, "must be 1 or 0 (true/false, yes/no, on/off)");
		v = def;
	}
	free(s);
	return v;
}

int tr_env_finish(struct tr_env *e)
{
	if (!e->n_errors)
		return TR_OK;
	const char *p = tr_buf_str(&e->errors);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		tr_error("config: %.*s", (int)n, p);
		p += n + (nl ? 1 : 0);
	}
	return TR_E_CONFIG;
}
