/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Aborting allocators: input is size-capped everywhere, so only a real OOM reaches abort(). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"

static void tr_oom(size_t n)
{
	fprintf(stderr, "trestle: out of memory allocating %zu bytes\n", n);
	abort();
}

void *tr_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		tr_oom(n);
	return p;
}

void *tr_xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		tr_oom(nmemb * size);
	return p;
}

void *tr_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		tr_oom(n);
	return q;
}

char *tr_xstrdup(const char *s)
{
	if (!s)
		return NULL;
	return tr_xstrndup(s, strlen(s));
}

char *tr_xstrndup(const char *s, size_t n)
{
	char *p = tr_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *tr_xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	char *p = tr_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}
