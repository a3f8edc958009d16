/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Allocation that aborts on OOM (as Redis and GLib do): callers never NULL-check these. */
#ifndef TRESTLE_COMMON_ALLOC_H
#define TRESTLE_COMMON_ALLOC_H

#include <stddef.h>
#include "err.h"

void *tr_xmalloc(size_t n);
void *tr_xcalloc(size_t nmemb, size_t size);
void *tr_xrealloc(void *p, size_t n);
/* tr_xstrdup(NULL) returns NULL. */
char *tr_xstrdup(const char *s);
char *tr_xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *tr_xasprintf(const char *fmt, ...) TR_PRINTF(1, 2);

#endif
