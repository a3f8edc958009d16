/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* libFuzzer harness for common/format.c: on any valid UTF-8 input, render and to_commonmark in
 * every dialect, then split and truncate, asserting the invariants connectors rely on: valid
 * UTF-8 out, no CR or NUL (and balanced runs) in IRC output, every piece within its limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "format.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, enum tr_dialect d)
{
	size_t l = strlen(s);
	if (!tr_utf8_valid(s, l))
		abort();
	if (d == TR_DIALECT_IRC && strchr(s, '\r'))
		abort();
}

static void check_pieces(char **p, size_t n, size_t max_bytes, size_t max_chars, enum tr_dialect d)
{
	if (!p || p[n])
		abort();
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(p[i]);
		if (l == 0 || l > max_bytes || !tr_utf8_valid(p[i], l) || strpbrk(p[i], "\r\n"))
			abort();
		if (max_chars && tr_utf8_count(p[i], l) > max_chars)
			abort();
		(void)d;
	}
}

static void check_irc_render(const char *s)
{
	/* Runs never cross a line; only our four codes, no other control but LF and TAB. */
	unsigned st = 0;
	for (const char *p = s;; p++) {
		if (*p == '\0' || *p == '\n') {
			if (st)
				abort();
			if (!*p)
				break;
			continue;
		}
		const char *k = strchr("\x02\x1d\x1e\x11", *p);
		if (k)
			st ^= 1u << (k - "\x02\x1d\x1e\x11");
		else if ((unsigned char)*p < 0x20 && *p != '\t')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max_bytes = 16 + data[0] * 2;
	size_t max_chars = data[1] & 1 ? 16 + (data[1] >> 1) : 0;
	const char *s = (const char *)data + 2;
	size_t len = size - 2;
	if (!tr_utf8_valid(s, len))
		return 0;
	for (int d = 0; d < TR_DIALECT__COUNT; d++) {
		char *out = NULL, *md = NULL, **p = NULL;
		size_t n = 0;
		if (tr_format_render(s, len, (enum tr_dialect)d, &out) != TR_OK)
			abort();
		check_text(out, (enum tr_dialect)d);
		if (d == TR_DIALECT_IRC)
			check_irc_render(out);
		if (tr_format_split_limits(out, strlen(out), max_bytes, max_chars,
		                           (enum tr_dialect)d, &p, &n) != TR_OK)
			abort();
		check_pieces(p, n, max_bytes, max_chars, (enum tr_dialect)d);
		tr_format_pieces_free(p);
		/* Arbitrary text (with raw codes, CR, NUL) split and truncated directly too. */
		if (tr_format_split(s, len, max_bytes, (enum tr_dialect)d, &p, &n) != TR_OK)
			abort();
		check_pieces(p, n, max_bytes, 0, (enum tr_dialect)d);
		tr_format_pieces_free(p);
		char *t = tr_format_truncate(s, len, max_bytes, max_chars, (enum tr_dialect)d);
		size_t tl = strlen(t);
		if (!tr_utf8_valid(t, tl) || tl > max_bytes ||
		    (max_chars && tr_utf8_count(t, tl) > max_chars))
			abort();
		free(t);
		if (tr_format_to_commonmark(s, len, (enum tr_dialect)d, &md) != TR_OK)
			abort();
		check_text(md, (enum tr_dialect)d);
		/* What we produce as CommonMark renders again. */
		char *again = NULL;
		if (tr_format_render(md, strlen(md), (enum tr_dialect)d, &again) != TR_OK)
			abort();
		check_text(again, (enum tr_dialect)d);
		free(again);
		free(md);
		char *m = tr_mentions_neutralise(s, len);
		if (!tr_utf8_valid(m, strlen(m)))
			abort();
		free(m);
		free(out);
	}
	return 0;
}
