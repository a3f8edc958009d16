/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Bounded growable buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"

void tr_buf_init(struct tr_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void tr_buf_cleanup(struct tr_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void tr_buf_reset(struct tr_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static void tr_buf_grow(struct tr_buf *b, size_t need)
{
	if (need + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need + 1)
		cap *= 2;
	b->data = tr_xrealloc(b->data, cap);
	b->cap = cap;
}

int tr_buf_append(struct tr_buf *b, const void *p, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return TR_E_TOOBIG;
	tr_buf_grow(b, b->len + n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return TR_OK;
}

int tr_buf_appends(struct tr_buf *b, const char *s)
{
	return tr_buf_append(b, s, strlen(s));
}

int tr_buf_printf(struct tr_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return TR_E_INVAL;
	if ((size_t)n > b->max || b->len > b->max - (size_t)n)
		return TR_E_TOOBIG;
	tr_buf_grow(b, b->len + (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return TR_OK;
}

const char *tr_buf_str(const struct tr_buf *b)
{
	return b->data ? b->data : "";
}

char *tr_buf_take(struct tr_buf *b)
{
	char *p = b->data ? b->data : tr_xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
