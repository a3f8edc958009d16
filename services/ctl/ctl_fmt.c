/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl's output helpers. What it prints comes from the bus and Redis, so from anyone who
 * can publish: every field is escaped to one line of printable text before it reaches a
 * terminal (no escape sequences, no line breaks). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "alloc.h"
#include "backoff.h"
#include "buf.h"
#include "ctl.h"
#include "utf8.h"

void ctl_fmt_time(char out[64], int64_t ms, bool iso)
{
	struct tm tm;
	time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)s * 1000);
	if (!gmtime_r(&s, &tm)) {
		snprintf(out, 64, "?");
		return;
	}
	if (iso)
		snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	else
		snprintf(out, 64, "%04d-%02d-%02d %02d:%02d:%02dZ", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

char *ctl_fmt_field(const char *s, size_t len, size_t max, bool quote)
{
	struct tr_buf b;
	/* Each input byte becomes at most 4 output bytes; the cut bounds the whole. */
	tr_buf_init(&b, (max < len ? max : len) * 4 + 16);
	bool cut = len > max;
	size_t n = cut ? max : len;
	bool q = quote && (n == 0 || memchr(s, ' ', n) || memchr(s, '"', n));
	int rc = TR_OK;
	if (q)
		rc = tr_buf_append(&b, "\"", 1);
	for (size_t i = 0; i < n && rc == TR_OK;) {
		unsigned char ch = (unsigned char)s[i];
		size_t sl = tr_utf8_seq_len(s + i, n - i);
		if (ch == '\n') {
			rc = tr_buf_append(&b, "\\n", 2);
		} else if (ch == '\t') {
			rc = tr_buf_append(&b, "\\t", 2);
		} else if (ch == '\r') {
			rc = tr_buf_append(&b, "\\r", 2);
		} else if (q && (ch == '"' || ch == '\\')) {
			char e[2] = {'\\', (char)ch};
			rc = tr_buf_append(&b, e, 2);
		} else if (ch < 0x20 || ch == 0x7f || sl == 0) {
			rc = tr_buf_printf(&b, "\\x%02x", ch);
		} else if (sl == 2 && ch == 0xc2 && (unsigned char)s[i + 1] < 0xa0) {
			/* C1 controls (U+0080-U+009F) include the 8-bit CSI. */
			rc = tr_buf_printf(&b, "\\u%04x", (unsigned char)s[i + 1]);
			i += 2;
			continue;
		} else {
			rc = tr_buf_append(&b, s + i, sl);
			i += sl;
			continue;
		}
		i++;
	}
	if (rc == TR_OK && cut)
		rc = tr_buf_append(&b, "...", 3);
	if (rc == TR_OK && q)
		rc = tr_buf_append(&b, "\"", 1);
	/* The maximum is sized for the worst case, so rc is always TR_OK here. */
	(void)rc;
	return tr_buf_take(&b);
}

char *ctl_network_of(const char *connector)
{
	const char *dash = strchr(connector, '-');
	return tr_xstrndup(connector, dash ? (size_t)(dash - connector) : strlen(connector));
}

void ctl_random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[32];
	if (n > sizeof(raw))
		n = sizeof(raw);
	/* The kernel's randomness keeps ids apart across hosts and runs; the seeded PRNG is the
	 * fallback. */
	size_t got = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t r = read(fd, raw, n);
		got = r > 0 ? (size_t)r : 0;
		close(fd);
	}
	for (size_t i = got; i < n; i++)
		raw[i] = (unsigned char)tr_random();
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * n] = '\0';
}

void ctl_table_init(struct ctl_table *t, size_t ncols)
{
	t->ncols = ncols;
	t->nrows = 0;
	t->cells = NULL;
}

void ctl_table_add(struct ctl_table *t, const char *const *cols)
{
	t->cells = tr_xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
	for (size_t i = 0; i < t->ncols; i++) {
		const char *v = cols[i] ? cols[i] : "-";
		t->cells[t->nrows * t->ncols + i] = ctl_fmt_field(v, strlen(v), 1024, false);
	}
	t->nrows++;
}

/* Cells are valid UTF-8 after ctl_fmt_field; one code point is taken as one column. */
static size_t ctl_width(const char *s)
{
	return tr_utf8_count(s, strlen(s));
}

void ctl_table_print(const struct ctl_table *t, FILE *out)
{
	size_t *w = tr_xcalloc(t->ncols, sizeof(*w));
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t cw = ctl_width(t->cells[r * t->ncols + i]);
			if (cw > w[i])
				w[i] = cw;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * t->ncols + i];
			fputs(cell, out);
			if (i + 1 == t->ncols)
				break;
			for (size_t pad = ctl_width(cell); pad < w[i] + 2; pad++)
				fputc(' ', out);
		}
		fputc('\n', out);
	}
	free(w);
}

void ctl_table_cleanup(struct ctl_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}
