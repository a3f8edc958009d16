/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* A growable byte buffer that always has a maximum (curl's dynbuf). Always NUL-terminated. */
#ifndef TRESTLE_COMMON_BUF_H
#define TRESTLE_COMMON_BUF_H

#include <stddef.h>
#include "err.h"

struct tr_buf {
	char *data; /* NULL until the first append; NUL-terminated after */
	size_t len;
	size_t cap;
	size_t max; /* appends that would exceed it fail with TR_E_TOOBIG and change nothing */
};

void tr_buf_init(struct tr_buf *b, size_t max);
void tr_buf_cleanup(struct tr_buf *b);
/* Empties the buffer, keeping its memory. */
void tr_buf_reset(struct tr_buf *b);
/* TR_OK or TR_E_TOOBIG. */
int tr_buf_append(struct tr_buf *b, const void *p, size_t n) TR_MUST_CHECK;
int tr_buf_appends(struct tr_buf *b, const char *s) TR_MUST_CHECK;
int tr_buf_printf(struct tr_buf *b, const char *fmt, ...) TR_PRINTF(2, 3) TR_MUST_CHECK;
/* Returns the data ("" when empty); borrowed. */
const char *tr_buf_str(const struct tr_buf *b);
/* Hands the data over to the caller (never NULL) and resets the buffer. */
char *tr_buf_take(struct tr_buf *b);

#endif
