/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Message formatting (docs/formatting.md): CommonMark parsed once with cmark and rendered per
 * dialect (IRC control codes, XEP-0393 styling, plain text); IRC and XEP-0393 back to
 * CommonMark; mass-mention neutralising; UTF-8, word and formatting-run aware splitting and
 * truncation. Every walk is iterative or depth-capped, so hostile nesting cannot exhaust the
 * stack, and container prefixes are capped so output stays proportional to input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmark.h>
#include "alloc.h"
#include "buf.h"
#include "format.h"
#include "utf8.h"

#define FMT_OUT_MAX  (256u * 1024 * 1024) /* never reached: output is O(input) */
#define FMT_NEST_MAX 8                    /* quotes/list items shown as a prefix; deeper add none */
#define WJ           "\xe2\x81\xa0"       /* U+2060 WORD JOINER */
#define WJ_LEN       3
#define NONCHAR      "\xef\xb7\x90" /* U+FDD0, a noncharacter: internal strike marker */
#define STRIKE_MARK  "~" NONCHAR "~"
#define STRIKE_LEN   5
#define DEL_MARK     '\x01' /* an XEP-0393 marker withdrawn after the fact; removed at the end */

enum { ST_BOLD, ST_ITALIC, ST_STRIKE, ST_MONO, ST_UNDERLINE, ST_REVERSE, ST__COUNT };
static const char irc_code[ST__COUNT] = {'\x02', '\x1d', '\x1e', '\x11', '\x1f', '\x16'};
static const char xmpp_mark[ST__COUNT] = {'*', '_', '~', '`', 0, 0};
static const char *const md_mark[ST__COUNT] = {"**", "*", "~~", "`", "", ""};

/* ---- code points ---------------------------------------------------------------------- */

/* Decodes the code point at s; invalid bytes decode as themselves with length 1. */
static uint32_t cp_at(const char *s, size_t len, size_t *n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t l = tr_utf8_seq_len(s, len);
	if (l <= 1) {
		*n = 1;
		return u[0];
	}
	*n = l;
	if (l == 2)
		return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
	if (l == 3)
		return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) |
		       (u[2] & 0x3F);
	return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
	       ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
}

/* The code point ending at s[end - 1], skipping withdrawn markers; 0 at the start. */
static uint32_t cp_before(const char *s, size_t start, size_t end)
{
	while (end > start && s[end - 1] == DEL_MARK)
		end--;
	if (end == start)
		return 0;
	size_t i = end - 1;
	while (i > start && end - i < 4 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	size_t n;
	uint32_t c = cp_at(s + i, end - i, &n);
	return i + n == end ? c : (unsigned char)s[end - 1];
}

/* Unicode White_Space and category Z, the XEP-0393 definition of whitespace. */
static bool is_ws(uint32_t c)
{
	switch (c) {
	case ' ':
	case '\t':
	case '\n':
	case '\v':
	case '\f':
	case '\r':
	case 0x85:
	case 0xA0:
	case 0x1680:
	case 0x2028:
	case 0x2029:
	case 0x202F:
	case 0x205F:
	case 0x3000:
		return true;
	default:
		return c >= 0x2000 && c <= 0x200A;
	}
}

/* Code points that attach to the previous one: a split never goes just before them. */
static bool is_attaching(uint32_t c)
{
	return (c >= 0x0300 && c <= 0x036F) || (c >= 0x1AB0 && c <= 0x1AFF) ||
	       (c >= 0x1DC0 && c <= 0x1DFF) || (c >= 0x20D0 && c <= 0x20FF) ||
	       (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xFE20 && c <= 0xFE2F) || c == 0x200D ||
	       (c >= 0x1F3FB && c <= 0x1F3FF) || (c >= 0xE0020 && c <= 0xE007F) ||
	       (c >= 0xE0100 && c <= 0xE01EF);
}

static bool is_ascii_word(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '_';
}

/* ---- mass mentions -------------------------------------------------------------------- */

static const char *const at_words[] = {"everyone", "here", "channel", "room", "all"};
static const char *const slack_words[] = {"channel", "here", "everyone", "group", "subteam^"};

/* '@' starts a word unless it follows a character of an address or word (a@here.org). */
static bool at_word_start(const char *s, size_t i)
{
	if (i == 0)
		return true;
	unsigned char p = (unsigned char)s[i - 1];
	return !is_ascii_word(p) && p != '.' && p != '+' && p != '-';
}

static size_t match_word(const char *s, size_t len, const char *const *words, size_t n, bool whole)
{
	for (size_t k = 0; k < n; k++) {
		size_t wl = strlen(words[k]);
		if (wl > len || strncasecmp(s, words[k], wl) != 0)
			continue;
		if (whole && words[k][wl - 1] != '^' && wl < len &&
		    is_ascii_word((unsigned char)s[wl]))
			continue;
		return wl;
	}
	return 0;
}

char *tr_mentions_neutralise(const char *s, size_t len)
{
	struct tr_buf b;
	tr_buf_init(&b, FMT_OUT_MAX);
	if (!s)
		len = 0;
	size_t done = 0;
	for (size_t i = 0; i < len; i++) {
		size_t at = SIZE_MAX;
		if (s[i] == '@' && at_word_start(s, i) &&
		    match_word(s + i + 1, len - i - 1, at_words, TR_ARRAY_LEN(at_words), true))
			at = i + 1;
		else if (s[i] == '<' && i + 1 < len && s[i + 1] == '!' &&
		         match_word(s + i + 2, len - i - 2, slack_words, TR_ARRAY_LEN(slack_words),
		                    true))
			at = i + 1;
		else if (s[i] == '<' && i + 2 < len && s[i + 1] == '@' && s[i + 2] == '&')
			at = i + 1;
		if (at == SIZE_MAX)
			continue;
		if (tr_buf_append(&b, s + done, at - done) != TR_OK ||
		    tr_buf_append(&b, WJ, WJ_LEN) != TR_OK)
			abort(); /* FMT_OUT_MAX is far above any message */
		done = at;
	}
	if (tr_buf_append(&b, s ? s + done : "", len - done) != TR_OK)
		abort();
	return tr_buf_take(&b);
}

/* ---- CommonMark -> dialect ------------------------------------------------------------ */

struct container {
	bool quote;
	bool used; /* an item's marker was written */
	size_t mark_len;
	char mark[24];
};

struct render {
	enum tr_dialect d;
	struct tr_buf b;
	int rc;
	bool bol;          /* the current line's prefix is not written yet */
	size_t line_begin; /* b.len just after the current line's prefix */
	struct container stack[FMT_NEST_MAX];
	size_t depth;              /* may exceed FMT_NEST_MAX */
	unsigned style[ST__COUNT]; /* open spans per style */
	size_t image;              /* > 0 inside an image's alt text: plain text only */
	size_t last_open;          /* b.len just after our last XEP-0393 opening marker */
};

static void put(struct render *r, const void *p, size_t n)
{
	if (r->rc == TR_OK && n)
		r->rc = tr_buf_append(&r->b, p, n);
}

static void putc_(struct render *r, char c)
{
	put(r, &c, 1);
}

static void trim_trailing_spaces(struct render *r, size_t floor)
{
	while (r->b.len > floor && r->b.data[r->b.len - 1] == ' ')
		r->b.len--;
	if (r->b.data)
		r->b.data[r->b.len] = '\0';
}

/* The quote and list-item prefix of a line; a blank line (trim) gets no item marker. */
static void write_prefix(struct render *r, bool trim)
{
	size_t n = r->depth < FMT_NEST_MAX ? r->depth : FMT_NEST_MAX;
	size_t start = r->b.len;
	for (size_t i = 0; i < n; i++) {
		struct container *c = &r->stack[i];
		if (c->quote) {
			put(r, "> ", 2);
		} else if (!c->used && !trim) {
			put(r, c->mark, c->mark_len);
			c->used = true;
		} else {
			put(r, "                        ", c->mark_len);
		}
	}
	if (trim)
		trim_trailing_spaces(r, start);
}

/* Starts the current line if needed: prefix, then (IRC) the runs still open. */
static void begin_line(struct render *r)
{
	if (!r->bol)
		return;
	write_prefix(r, false);
	r->bol = false;
	if (r->d == TR_DIALECT_IRC)
		for (int st = 0; st < ST__COUNT; st++)
			if (r->style[st])
				putc_(r, irc_code[st]);
	r->line_begin = r->b.len;
}

/* IRC runs never cross a line: each line is a message of its own on the wire. */
static void newline(struct render *r)
{
	if (r->d == TR_DIALECT_IRC && !r->bol)
		for (int st = ST__COUNT - 1; st >= 0; st--)
			if (r->style[st])
				putc_(r, irc_code[st]);
	putc_(r, '\n');
	r->bol = true;
}

static bool list_is_tight(cmark_node *node)
{
	cmark_node *parent = cmark_node_parent(node);
	cmark_node *list = NULL;
	if (cmark_node_get_type(node) == CMARK_NODE_ITEM)
		list = parent;
	else if (parent && cmark_node_get_type(parent) == CMARK_NODE_ITEM)
		list = cmark_node_parent(parent);
	return list && cmark_node_get_list_tight(list);
}

/* Blocks start on a new line; outside tight lists XMPP and plain text keep a blank line
 * between them as CommonMark does (IRC cannot send an empty line). */
static void block_sep(struct render *r, cmark_node *node)
{
	if (!cmark_node_previous(node))
		return;
	if (!r->bol)
		newline(r);
	if (r->d != TR_DIALECT_IRC && !list_is_tight(node)) {
		write_prefix(r, true);
		putc_(r, '\n');
	}
}

static bool is_open_pos(struct render *r)
{
	if (r->b.len == r->line_begin)
		return true;
	/* An opener may also follow another opener; a literal directive character never opens
	 * (it got a WORD JOINER first), so it does not count. */
	if (r->b.len == r->last_open)
		return true;
	uint32_t p = cp_before(r->b.data, r->line_begin, r->b.len);
	return p == 0 || is_ws(p);
}

/* Appends text: control characters dropped (IRC codes, CR, NUL never come from content), the
 * internal strike marker dropped, and for XMPP a WORD JOINER before a literal character that
 * XEP-0393 could read as a directive (a span opener, or '>' starting a line). */
static void emit_raw(struct render *r, const char *s, size_t n, bool neutral)
{
	begin_line(r);
	size_t i = 0;
	while (i < n) {
		size_t l;
		uint32_t c = cp_at(s + i, n - i, &l);
		if ((c < 0x20 && c != '\t') || c == 0xFDD0) {
			i += l;
			continue;
		}
		if (neutral && r->d == TR_DIALECT_XMPP) {
			bool wj = false;
			if (c == '>' && r->b.len == r->line_begin)
				wj = true;
			if (c < 0x80 && strchr("*_~`", (int)c) && c != 0 && is_open_pos(r)) {
				size_t nl;
				wj = i + 1 >= n || !is_ws(cp_at(s + i + 1, n - i - 1, &nl));
			}
			if (wj)
				put(r, WJ, WJ_LEN);
		}
		put(r, s + i, l);
		i += l;
	}
}

static bool content_ok(const char *s, size_t n, char mark)
{
	size_t a = 0, z = n;
	while (a < z && s[a] == DEL_MARK)
		a++;
	if (a == z || memchr(s + a, '\n', z - a) || (mark && memchr(s + a, mark, z - a)))
		return false;
	size_t l;
	return !is_ws(cp_at(s + a, z - a, &l)) && !is_ws(cp_before(s, a, z));
}

static void strike_span(struct render *r, const char *s, size_t n)
{
	if (r->d == TR_DIALECT_IRC) {
		if (r->style[ST_STRIKE]++ == 0)
			putc_(r, irc_code[ST_STRIKE]);
		emit_raw(r, s, n, true);
		if (--r->style[ST_STRIKE] == 0)
			putc_(r, irc_code[ST_STRIKE]);
	} else if (r->d == TR_DIALECT_XMPP && !r->style[ST_STRIKE] && is_open_pos(r) &&
	           !memchr(s, '~', n) && content_ok(s, n, 0)) {
		putc_(r, '~');
		r->last_open = r->b.len;
		emit_raw(r, s, n, true);
		putc_(r, '~');
	} else {
		emit_raw(r, s, n, true);
	}
}

static const char *find_mark(const char *s, size_t n)
{
	for (size_t i = 0; i + STRIKE_LEN <= n; i++) {
		const char *p = memchr(s + i, '~', n - i - STRIKE_LEN + 1);
		if (!p)
			return NULL;
		if (memcmp(p, STRIKE_MARK, STRIKE_LEN) == 0)
			return p;
		i = (size_t)(p - s);
	}
	return NULL;
}

/* Text node: "~~x~~" (marked by the pre-pass, see mark_strikes) is strikethrough when both
 * markers are in the same text node and hug their content; else the tildes stay literal. */
static void emit_text(struct render *r, const char *s, size_t n)
{
	bool strikes = !r->image;
	size_t i = 0, done = 0;
	while (strikes && i + STRIKE_LEN <= n) {
		const char *m = find_mark(s + i, n - i);
		if (!m)
			break;
		size_t a = (size_t)(m - s) + STRIKE_LEN, l;
		if (a >= n || is_ws(cp_at(s + a, n - a, &l))) {
			i = a;
			continue;
		}
		size_t j = a;
		const char *z = NULL;
		while (j < n) {
			z = find_mark(s + j, n - j);
			if (!z || !is_ws(cp_before(s, a, (size_t)(z - s))))
				break;
			j = (size_t)(z - s) + STRIKE_LEN;
			z = NULL;
		}
		if (!z || (size_t)(z - s) == a) {
			/* No closer after a: none after any later opener either. */
			break;
		}
		emit_raw(r, s + done, (size_t)(m - s) - done, true);
		strike_span(r, s + a, (size_t)(z - s) - a);
		i = done = (size_t)(z - s) + STRIKE_LEN;
	}
	emit_raw(r, s + done, n - done, true);
}

/* Literal lines (HTML blocks), one output line each. */
static void emit_lines(struct render *r, const char *s, size_t n, bool neutral)
{
	if (n && s[n - 1] == '\n')
		n--;
	size_t i = 0;
	for (;;) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - s) : n;
		emit_raw(r, s + i, end - i, neutral);
		if (!nl)
			break;
		newline(r);
		i = end + 1;
	}
}

static void render_code_block(struct render *r, cmark_node *node)
{
	const char *lit = cmark_node_get_literal(node);
	size_t n = lit ? strlen(lit) : 0;
	bool fence = r->d == TR_DIALECT_XMPP;
	if (n && lit[n - 1] == '\n')
		n--;
	if (fence) {
		begin_line(r);
		put(r, "```", 3);
		newline(r);
	} else if (n == 0) {
		return;
	}
	size_t i = 0;
	for (;;) {
		const char *nl = n ? memchr(lit + i, '\n', n - i) : NULL;
		size_t end = nl ? (size_t)(nl - lit) : n;
		if (end > i) {
			begin_line(r);
			if (r->d == TR_DIALECT_IRC)
				putc_(r, irc_code[ST_MONO]);
			/* A content line reading "```" would end the XEP-0393 block early. */
			if (fence && end - i >= 3 && memcmp(lit + i, "```", 3) == 0)
				put(r, WJ, WJ_LEN);
			emit_raw(r, lit + i, end - i, false);
			if (r->d == TR_DIALECT_IRC)
				putc_(r, irc_code[ST_MONO]);
		} else {
			write_prefix(r, true);
			r->bol = false;
		}
		if (!nl)
			break;
		newline(r);
		i = end + 1;
	}
	if (fence) {
		newline(r);
		begin_line(r);
		put(r, "```", 3);
	}
}

static void span_enter(struct render *r, cmark_node *node, int st)
{
	begin_line(r);
	if (r->image)
		return;
	cmark_node_set_user_data(node, NULL);
	if (r->style[st]++)
		return;
	if (r->d == TR_DIALECT_IRC) {
		putc_(r, irc_code[st]);
	} else if (r->d == TR_DIALECT_XMPP && is_open_pos(r) && r->rc == TR_OK) {
		cmark_node_set_user_data(node, (void *)(uintptr_t)(r->b.len + 1));
		putc_(r, xmpp_mark[st]);
		r->last_open = r->b.len;
	}
}

/* An XEP-0393 span is kept only if it will parse back as one: content non-empty, on one
 * line, not starting or ending with whitespace, without its own directive character. */
static void span_exit(struct render *r, cmark_node *node, int st)
{
	if (r->image)
		return;
	if (--r->style[st])
		return;
	if (r->d == TR_DIALECT_IRC) {
		if (!r->bol)
			putc_(r, irc_code[st]);
		return;
	}
	uintptr_t u = (uintptr_t)cmark_node_get_user_data(node);
	if (!u || r->rc != TR_OK)
		return;
	size_t at = (size_t)u - 1;
	if (content_ok(r->b.data + at + 1, r->b.len - at - 1, xmpp_mark[st]))
		putc_(r, xmpp_mark[st]);
	else
		r->b.data[at] = DEL_MARK;
}

static void render_code_span(struct render *r, cmark_node *node)
{
	const char *lit = cmark_node_get_literal(node);
	size_t n = lit ? strlen(lit) : 0;
	if (n == 0)
		return;
	begin_line(r);
	if (r->image || r->d == TR_DIALECT_PLAIN) {
		emit_raw(r, lit, n, true);
	} else if (r->d == TR_DIALECT_IRC) {
		putc_(r, irc_code[ST_MONO]);
		emit_raw(r, lit, n, false);
		putc_(r, irc_code[ST_MONO]);
	} else if (is_open_pos(r) && content_ok(lit, n, '`')) {
		putc_(r, '`');
		emit_raw(r, lit, n, false);
		putc_(r, '`');
	} else {
		emit_raw(r, lit, n, true);
	}
}

/* The URL with the strike pre-pass marker and control characters removed. */
static char *clean_url(const char *url)
{
	struct tr_buf b;
	tr_buf_init(&b, FMT_OUT_MAX);
	size_t n = url ? strlen(url) : 0;
	for (size_t i = 0; i < n;) {
		size_t l;
		uint32_t c = cp_at(url + i, n - i, &l);
		if (c >= 0x20 && c != 0x7F && c != 0xFDD0 && tr_buf_append(&b, url + i, l) != TR_OK)
			abort();
		i += l;
	}
	return tr_buf_take(&b);
}

static void link_exit(struct render *r, cmark_node *node)
{
	char *url = clean_url(cmark_node_get_url(node));
	size_t start = (size_t)(uintptr_t)cmark_node_get_user_data(node);
	size_t ul = strlen(url);
	if (ul == 0 || r->rc != TR_OK || start > r->b.len)
		goto out;
	const char *text = r->b.data ? r->b.data + start : "";
	size_t tl = r->b.len - start;
	if ((tl == ul && memcmp(text, url, ul) == 0) ||
	    (ul == tl + 7 && strncmp(url, "mailto:", 7) == 0 && memcmp(text, url + 7, tl) == 0))
		goto out;
	begin_line(r);
	if (tl == 0) {
		put(r, url, ul);
	} else {
		put(r, r->d == TR_DIALECT_PLAIN ? " (" : " <", 2);
		put(r, url, ul);
		putc_(r, r->d == TR_DIALECT_PLAIN ? ')' : '>');
	}
out:
	free(url);
}

static void image_exit(struct render *r, cmark_node *node)
{
	size_t start = (size_t)(uintptr_t)cmark_node_get_user_data(node);
	if (r->rc != TR_OK)
		return;
	if (r->b.len == start) {
		r->b.len -= 2; /* "[image: " without alt text becomes "[image]" */
		r->b.data[r->b.len] = '\0';
	}
	putc_(r, ']');
	char *url = clean_url(cmark_node_get_url(node));
	if (*url) {
		putc_(r, ' ');
		put(r, url, strlen(url));
	}
	free(url);
}

static void container_push(struct render *r, cmark_node *node, bool quote)
{
	if (r->depth++ >= FMT_NEST_MAX)
		return;
	struct container *c = &r->stack[r->depth - 1];
	memset(c, 0, sizeof(*c));
	c->quote = quote;
	if (quote)
		return;
	cmark_node *list = cmark_node_parent(node);
	if (cmark_node_get_list_type(list) != CMARK_ORDERED_LIST) {
		c->mark_len = 2;
		memcpy(c->mark, "- ", 3);
		return;
	}
	uintptr_t num = (uintptr_t)cmark_node_get_user_data(list);
	if (!cmark_node_previous(node))
		num = (uintptr_t)cmark_node_get_list_start(list);
	else
		num++;
	cmark_node_set_user_data(list, (void *)num);
	int w = snprintf(c->mark, sizeof(c->mark), "%lu%c ", (unsigned long)num,
	                 cmark_node_get_list_delim(list) == CMARK_PAREN_DELIM ? ')' : '.');
	c->mark_len = w > 0 && (size_t)w < sizeof(c->mark) ? (size_t)w : 0;
}

static void render_node(struct render *r, cmark_node *node, bool enter)
{
	switch (cmark_node_get_type(node)) {
	case CMARK_NODE_BLOCK_QUOTE:
	case CMARK_NODE_ITEM:
		if (enter) {
			block_sep(r, node);
			container_push(r, node,
			               cmark_node_get_type(node) == CMARK_NODE_BLOCK_QUOTE);
		} else {
			r->depth--;
		}
		break;
	case CMARK_NODE_LIST:
	case CMARK_NODE_PARAGRAPH:
	case CMARK_NODE_CUSTOM_BLOCK:
		if (enter)
			block_sep(r, node);
		break;
	case CMARK_NODE_HEADING:
		if (enter) {
			block_sep(r, node);
			span_enter(r, node, ST_BOLD);
		} else {
			span_exit(r, node, ST_BOLD);
		}
		break;
	case CMARK_NODE_CODE_BLOCK:
		block_sep(r, node);
		render_code_block(r, node);
		break;
	case CMARK_NODE_HTML_BLOCK: {
		const char *lit = cmark_node_get_literal(node);
		block_sep(r, node);
		emit_lines(r, lit ? lit : "", lit ? strlen(lit) : 0, true);
		break;
	}
	case CMARK_NODE_THEMATIC_BREAK:
		block_sep(r, node);
		emit_raw(r, "---", 3, false);
		break;
	case CMARK_NODE_TEXT:
	case CMARK_NODE_HTML_INLINE: {
		const char *lit = cmark_node_get_literal(node);
		emit_text(r, lit ? lit : "", lit ? strlen(lit) : 0);
		break;
	}
	case CMARK_NODE_SOFTBREAK:
	case CMARK_NODE_LINEBREAK:
		if (r->image)
			emit_raw(r, " ", 1, false);
		else
			newline(r);
		break;
	case CMARK_NODE_CODE:
		render_code_span(r, node);
		break;
	case CMARK_NODE_EMPH:
		if (enter)
			span_enter(r, node, ST_ITALIC);
		else
			span_exit(r, node, ST_ITALIC);
		break;
	case CMARK_NODE_STRONG:
		if (enter)
			span_enter(r, node, ST_BOLD);
		else
			span_exit(r, node, ST_BOLD);
		break;
	case CMARK_NODE_LINK:
		if (r->image)
			break;
		if (enter) {
			begin_line(r);
			cmark_node_set_user_data(node, (void *)(uintptr_t)r->b.len);
		} else {
			link_exit(r, node);
		}
		break;
	case CMARK_NODE_IMAGE:
		if (enter) {
			if (r->image++)
				break;
			begin_line(r);
			put(r, "[image: ", 8);
			cmark_node_set_user_data(node, (void *)(uintptr_t)r->b.len);
		} else if (--r->image == 0) {
			image_exit(r, node);
		}
		break;
	default:
		break;
	}
}

/* cmark has no strikethrough. Before parsing, every unescaped run of exactly two tildes
 * becomes "~" U+FDD0 "~": the tildes keep CommonMark's flanking rules unchanged, and the
 * noncharacter (removed from all output) tells a text node's "~~" from an escaped "\~\~" or
 * an entity, which cmark would otherwise merge into the same text. */
static char *mark_strikes(const char *md, size_t len, size_t *out_len)
{
	struct tr_buf b;
	tr_buf_init(&b, FMT_OUT_MAX);
	size_t done = 0;
	for (size_t i = 0; i < len; i++) {
		if (md[i] != '~')
			continue;
		size_t run = 1;
		while (i + run < len && md[i + run] == '~')
			run++;
		size_t bs = 0;
		while (bs < i && md[i - bs - 1] == '\\')
			bs++;
		if (run == 2 && bs % 2 == 0) {
			if (tr_buf_append(&b, md + done, i + 1 - done) != TR_OK ||
			    tr_buf_append(&b, NONCHAR, 3) != TR_OK)
				abort();
			done = i + 1;
		}
		i += run - 1;
	}
	if (tr_buf_append(&b, md + done, len - done) != TR_OK)
		abort();
	*out_len = b.len;
	return tr_buf_take(&b);
}

int tr_format_render(const char *md, size_t len, enum tr_dialect d, char **out)
{
	int rc = TR_E_INVAL;
	char *src = NULL;
	cmark_node *doc = NULL;
	cmark_iter *it = NULL;
	struct render r = {.d = d, .bol = true, .last_open = SIZE_MAX};
	tr_buf_init(&r.b, FMT_OUT_MAX);
	if (out)
		*out = NULL;
	if (!md || !out || (unsigned)d >= TR_DIALECT__COUNT || !tr_utf8_valid(md, len))
		goto out;
	size_t slen;
	src = mark_strikes(md, len, &slen);
	rc = TR_E_NOMEM;
	doc = cmark_parse_document(src, slen, CMARK_OPT_DEFAULT);
	it = doc ? cmark_iter_new(doc) : NULL;
	if (!it)
		goto out;
	for (;;) {
		cmark_event_type ev = cmark_iter_next(it);
		if (ev == CMARK_EVENT_DONE)
			break;
		render_node(&r, cmark_iter_get_node(it), ev == CMARK_EVENT_ENTER);
		if (r.rc != TR_OK)
			break;
	}
	rc = r.rc;
	if (rc != TR_OK)
		goto out;
	/* Drop the XEP-0393 markers withdrawn after the fact. */
	size_t w = 0;
	for (size_t i = 0; i < r.b.len; i++)
		if (r.b.data[i] != DEL_MARK)
			r.b.data[w++] = r.b.data[i];
	r.b.len = w;
	*out = tr_mentions_neutralise(r.b.data ? r.b.data : "", w);
out:
	if (it)
		cmark_iter_free(it);
	if (doc)
		cmark_node_free(doc);
	free(src);
	tr_buf_cleanup(&r.b);
	return rc;
}

/* ---- dialect -> CommonMark ------------------------------------------------------------ */

struct cm {
	struct tr_buf *o;
	bool line_start;  /* nothing but the line's prefix written yet */
	struct tr_buf ws; /* whitespace held back until we know it is not just inside a closer */
	struct tr_buf code;
	int stack[ST__COUNT]; /* open spans, outermost first; ST_MONO always on top */
	size_t n;
};

static void cm_put(struct cm *c, const char *s, size_t n)
{
	if (tr_buf_append(c->o, s, n) != TR_OK)
		abort();
}

/* Escapes what CommonMark would read as markup: inline punctuation anywhere, block markers
 * at the start of a line. Leading whitespace is dropped (CommonMark would anyway, or read four
 * spaces as a code block). */
static void cm_escaped(struct cm *c, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7F)
			continue;
		if (c->line_start) {
			if (ch == ' ' || ch == '\t')
				continue;
			c->line_start = false;
			if (strchr("#>-+=", ch)) {
				cm_put(c, "\\", 1);
				cm_put(c, s + i, 1);
				continue;
			}
			size_t k = i;
			while (k < n && k - i < 10 && s[k] >= '0' && s[k] <= '9')
				k++;
			if (k > i && k < n && (s[k] == '.' || s[k] == ')')) {
				cm_put(c, s + i, k - i);
				cm_put(c, "\\", 1);
				cm_put(c, s + k, 1);
				i = k;
				continue;
			}
		}
		bool esc = strchr("\\`*_[]<~", ch) != NULL && ch != 0;
		if (ch == '&' && i + 1 < n &&
		    (is_ascii_word((unsigned char)s[i + 1]) || s[i + 1] == '#'))
			esc = true;
		if (esc)
			cm_put(c, "\\", 1);
		cm_put(c, s + i, 1);
	}
}

static void cm_code_flush(struct cm *c)
{
	const char *s = c->code.data ? c->code.data : "";
	size_t n = c->code.len, run = 0, longest = 0;
	for (size_t i = 0; i < n; i++) {
		run = s[i] == '`' ? run + 1 : 0;
		if (run > longest)
			longest = run;
	}
	char fence[16];
	size_t fl = longest + 1 < sizeof(fence) ? longest + 1 : sizeof(fence) - 1;
	memset(fence, '`', fl);
	bool pad = n && (s[0] == '`' || s[n - 1] == '`' || (s[0] == ' ' && s[n - 1] == ' '));
	if (longest + 1 >= sizeof(fence)) {
		/* A backtick run too long to fence: the text stays, escaped, without monospace. */
		cm_escaped(c, s, n);
	} else {
		cm_put(c, fence, fl);
		if (pad)
			cm_put(c, " ", 1);
		cm_put(c, s, n);
		if (pad)
			cm_put(c, " ", 1);
		cm_put(c, fence, fl);
	}
	tr_buf_reset(&c->code);
}

static void cm_pop(struct cm *c)
{
	int st = c->stack[--c->n];
	if (st == ST_MONO)
		cm_code_flush(c);
	else
		cm_put(c, md_mark[st], strlen(md_mark[st]));
}

/* Text with the style set `want` (bit per ST_*): closes what is no longer wanted (and what
 * sits above it), emits held whitespace outside the markers, opens what is new, then the
 * text; its trailing whitespace is held back so it never sits just inside a closer. */
static void cm_chunk(struct cm *c, const char *s, size_t n, unsigned want)
{
	want &= (1u << ST_BOLD) | (1u << ST_ITALIC) | (1u << ST_STRIKE) | (1u << ST_MONO);
	size_t a = 0, z = n;
	while (a < z && (s[a] == ' ' || s[a] == '\t'))
		a++;
	if (a == z) {
		if (tr_buf_append(&c->ws, s, n) != TR_OK)
			abort();
		return;
	}
	while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t'))
		z--;
	size_t keep = 0;
	while (keep < c->n && (want & (1u << c->stack[keep])) &&
	       !(c->stack[keep] == ST_MONO && keep + 1 < c->n))
		keep++;
	/* Opening a style under an open code span closes the span first. */
	bool new_style = false;
	for (int st = 0; st < ST__COUNT; st++) {
		bool open = false;
		for (size_t k = 0; k < keep; k++)
			open |= c->stack[k] == st;
		if ((want & (1u << st)) && !open && st != ST_MONO)
			new_style = true;
	}
	if (new_style && keep && c->stack[keep - 1] == ST_MONO)
		keep--;
	while (c->n > keep)
		cm_pop(c);
	struct tr_buf *dst = c->n && c->stack[c->n - 1] == ST_MONO ? &c->code : NULL;
	if (!c->line_start) {
		if (dst) {
			if (tr_buf_append(dst, c->ws.data ? c->ws.data : "", c->ws.len) != TR_OK)
				abort();
		} else {
			cm_put(c, c->ws.data ? c->ws.data : "", c->ws.len);
		}
	}
	tr_buf_reset(&c->ws);
	if (!c->line_start || dst) {
		if (dst) {
			if (tr_buf_append(dst, s, a) != TR_OK)
				abort();
		} else {
			cm_put(c, s, a);
		}
	}
	for (int st = 0; st < ST__COUNT; st++) {
		bool open = false;
		for (size_t k = 0; k < c->n; k++)
			open |= c->stack[k] == st;
		if (!(want & (1u << st)) || open || st == ST_MONO)
			continue;
		c->stack[c->n++] = st;
		cm_put(c, md_mark[st], strlen(md_mark[st]));
		c->line_start = false;
	}
	if ((want & (1u << ST_MONO)) && !(c->n && c->stack[c->n - 1] == ST_MONO)) {
		c->stack[c->n++] = ST_MONO;
		c->line_start = false;
	}
	if (c->n && c->stack[c->n - 1] == ST_MONO) {
		for (size_t i = a; i < z; i++) {
			unsigned char ch = (unsigned char)s[i];
			if (ch >= 0x20 || ch == '\t')
				if (tr_buf_append(&c->code, s + i, 1) != TR_OK)
					abort();
		}
	} else {
		cm_escaped(c, s + a, z - a);
	}
	if (tr_buf_append(&c->ws, s + z, n - z) != TR_OK)
		abort();
}

static void cm_end_line(struct cm *c)
{
	while (c->n)
		cm_pop(c);
	tr_buf_reset(&c->ws);
	c->line_start = true;
}

static void cm_init(struct cm *c, struct tr_buf *o)
{
	memset(c, 0, sizeof(*c));
	c->o = o;
	c->line_start = true;
	tr_buf_init(&c->ws, FMT_OUT_MAX);
	tr_buf_init(&c->code, FMT_OUT_MAX);
}

static void cm_cleanup(struct cm *c)
{
	tr_buf_cleanup(&c->ws);
	tr_buf_cleanup(&c->code);
}

/* IRC: \x02 bold, \x1d italic, \x1e strike, \x11 monospace toggle; \x1f underline and \x16
 * reverse are tracked but have no CommonMark form; \x03 colours and \x04 hex colours are
 * dropped with their parameters; \x0f resets. Runs end with their line. */
static size_t irc_colour_len(const char *s, size_t n, size_t i)
{
	size_t j = i + 1;
	bool hex = s[i] == '\x04';
	size_t max = hex ? 6 : 2;
	size_t k = 0;
	while (j < n && k < max &&
	       (hex ? strchr("0123456789abcdefABCDEF", s[j]) != NULL && s[j]
	            : (s[j] >= '0' && s[j] <= '9'))) {
		j++;
		k++;
	}
	if (k && j + 1 < n && s[j] == ',' &&
	    (hex ? strchr("0123456789abcdefABCDEF", s[j + 1]) != NULL && s[j + 1]
	         : (s[j + 1] >= '0' && s[j + 1] <= '9'))) {
		j++;
		k = 0;
		while (j < n && k < max &&
		       (hex ? strchr("0123456789abcdefABCDEF", s[j]) != NULL && s[j]
		            : (s[j] >= '0' && s[j] <= '9'))) {
			j++;
			k++;
		}
	}
	return j - i;
}

static void irc_to_cm(struct cm *c, const char *s, size_t n)
{
	unsigned want = 0;
	size_t i = 0, run = 0;
	while (i < n) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 || ch == '\t') {
			i++;
			continue;
		}
		cm_chunk(c, s + run, i - run, want);
		size_t skip = 1;
		switch (ch) {
		case '\x02':
			want ^= 1u << ST_BOLD;
			break;
		case '\x1d':
			want ^= 1u << ST_ITALIC;
			break;
		case '\x1e':
			want ^= 1u << ST_STRIKE;
			break;
		case '\x11':
			want ^= 1u << ST_MONO;
			break;
		case '\x0f':
			want = 0;
			break;
		case '\x03':
		case '\x04':
			skip = irc_colour_len(s, n, i);
			break;
		case '\n':
			cm_end_line(c);
			cm_put(c, "\n", 1);
			want = 0;
			break;
		default:
			break; /* \x1f, \x16, CR, NUL and other controls: dropped */
		}
		i += skip;
		run = i;
	}
	cm_chunk(c, s + run, n - run, want);
	cm_end_line(c);
}

/* XEP-0393 spans in line[a, b): parsed per the XEP's span rules (lazy; an opener at the block
 * start, after whitespace or right after another opener, i.e. at the start of a parent span;
 * closers not after whitespace) and emitted as CommonMark. `mask` holds the span types already
 * open: a span never nests in its own type, so the recursion is at most 4 deep. */
static void xmpp_spans(struct cm *c, const char *s, size_t a, size_t b, unsigned mask)
{
	size_t done = a, i = a;
	unsigned no_closer = 0; /* types whose closer search failed: none further on either */
	while (i < b) {
		const char *m = s[i] ? strchr(xmpp_mark, s[i]) : NULL;
		if (!m || m - xmpp_mark >= ST_UNDERLINE) {
			i++;
			continue;
		}
		int st = (int)(m - xmpp_mark);
		size_t l;
		if ((mask | no_closer) & (1u << st) || (i > a && !is_ws(cp_before(s, a, i))) ||
		    i + 1 >= b || is_ws(cp_at(s + i + 1, b - i - 1, &l))) {
			i++;
			continue;
		}
		size_t j = i + 2;
		while (j < b && !(s[j] == s[i] && !is_ws(cp_before(s, i + 1, j))))
			j++;
		if (j >= b) {
			no_closer |= 1u << st;
			i++;
			continue;
		}
		bool text = false;
		for (size_t k = i + 1; k < j && !text; k++)
			text = s[k] != s[i];
		if (!text) {
			i++;
			continue;
		}
		cm_escaped(c, s + done, i - done);
		c->line_start = false;
		if (st == ST_MONO) {
			if (tr_buf_append(&c->code, s + i + 1, j - i - 1) != TR_OK)
				abort();
			cm_code_flush(c);
		} else {
			cm_put(c, md_mark[st], strlen(md_mark[st]));
			xmpp_spans(c, s, i + 1, j, mask | (1u << st));
			cm_put(c, md_mark[st], strlen(md_mark[st]));
		}
		done = i = j + 1;
	}
	cm_escaped(c, s + done, b - done);
}

static size_t quote_strip(const char *s, size_t n, size_t *depth, size_t max)
{
	size_t i = 0;
	*depth = 0;
	while (i < n && s[i] == '>' && *depth < max) {
		i++;
		(*depth)++;
		if (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
	}
	return i;
}

static void cm_prefix(struct cm *c, size_t depth, bool trim)
{
	for (size_t k = 0; k < depth; k++)
		cm_put(c, trim && k + 1 == depth ? ">" : "> ", trim && k + 1 == depth ? 1 : 2);
}

/* XEP-0393 blocks, line by line (iterative, so 10,000 nested quotes cost nothing extra): quote
 * depth by leading '>' (one following whitespace trimmed per level), ``` blocks up to a line
 * of exactly ``` or the end of their quote. */
static void xmpp_to_cm(struct cm *c, const char *s, size_t n)
{
	size_t i = 0, prev_depth = 0, pre_depth = 0;
	bool in_pre = false;
	char fence[16] = "```";
	size_t fl = 3;
	while (i <= n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - s) : n;
		size_t depth, off = 0;
		if (in_pre) {
			off = quote_strip(s + i, end - i, &depth, pre_depth);
			if (depth < pre_depth) {
				cm_prefix(c, pre_depth, false);
				cm_put(c, fence, fl);
				cm_put(c, "\n", 1);
				in_pre = false;
				prev_depth = pre_depth;
			} else if (end - i - off == 3 && memcmp(s + i + off, "```", 3) == 0) {
				cm_prefix(c, pre_depth, false);
				cm_put(c, fence, fl);
				in_pre = false;
				prev_depth = pre_depth;
				goto next;
			} else {
				cm_prefix(c, pre_depth, false);
				for (size_t k = i + off; k < end; k++)
					if ((unsigned char)s[k] >= 0x20 || s[k] == '\t')
						cm_put(c, s + k, 1);
				goto next;
			}
		}
		off = quote_strip(s + i, end - i, &depth, SIZE_MAX);
		if (depth < prev_depth && end > i) {
			/* Stops CommonMark's lazy continuation from pulling this line into the
			 * quote. */
			cm_prefix(c, depth, true);
			cm_put(c, "\n", 1);
		}
		prev_depth = depth;
		if (end - i - off >= 3 && memcmp(s + i + off, "```", 3) == 0) {
			/* The fence must outlast any backtick run starting a content line. */
			size_t longest = 0;
			for (const char *p = nl; p && p < s + n;) {
				const char *q = p + 1;
				size_t d2, rest = (size_t)(s + n - q);
				size_t eol = memchr(q, '\n', rest)
				                 ? (size_t)((const char *)memchr(q, '\n', rest) - q)
				                 : rest;
				size_t o2 = quote_strip(q, eol, &d2, depth);
				if (d2 < depth || (eol - o2 == 3 && memcmp(q + o2, "```", 3) == 0))
					break;
				size_t run = 0;
				while (o2 + run < eol && q[o2 + run] == '`')
					run++;
				if (run > longest)
					longest = run;
				p = q + eol < s + n ? q + eol : NULL;
			}
			fl = longest + 1 > 3 ? (longest + 1 < sizeof(fence) ? longest + 1 : 15) : 3;
			memset(fence, '`', fl);
			cm_prefix(c, depth, false);
			cm_put(c, fence, fl);
			in_pre = true;
			pre_depth = depth;
			goto next;
		}
		if (end - i - off == 0) {
			cm_prefix(c, depth, true);
		} else {
			cm_prefix(c, depth, false);
			c->line_start = true;
			xmpp_spans(c, s, i + off, end, 0);
		}
	next:
		if (!nl)
			break;
		cm_put(c, "\n", 1);
		i = end + 1;
	}
	if (in_pre) {
		cm_put(c, "\n", 1);
		cm_prefix(c, pre_depth, false);
		cm_put(c, fence, fl);
	}
}

int tr_format_to_commonmark(const char *text, size_t len, enum tr_dialect d, char **out)
{
	if (out)
		*out = NULL;
	if (!text || !out || (unsigned)d >= TR_DIALECT__COUNT || !tr_utf8_valid(text, len))
		return TR_E_INVAL;
	struct tr_buf o;
	struct cm c;
	tr_buf_init(&o, FMT_OUT_MAX);
	cm_init(&c, &o);
	if (d == TR_DIALECT_IRC) {
		irc_to_cm(&c, text, len);
	} else if (d == TR_DIALECT_XMPP) {
		xmpp_to_cm(&c, text, len);
	} else {
		size_t i = 0;
		for (;;) {
			const char *nl = memchr(text + i, '\n', len - i);
			size_t end = nl ? (size_t)(nl - text) : len;
			c.line_start = true;
			cm_escaped(&c, text + i, end - i);
			if (!nl)
				break;
			cm_put(&c, "\n", 1);
			i = end + 1;
		}
	}
	cm_cleanup(&c);
	*out = tr_buf_take(&o);
	return TR_OK;
}

/* ---- splitting and truncating --------------------------------------------------------- */

/* Length of the unit at s[i]: an IRC formatting code (colour parameters included) or a code
 * point; sets *code for formatting codes. */
static size_t unit_len(const char *s, size_t n, size_t i, enum tr_dialect d, bool *code)
{
	*code = false;
	if (d == TR_DIALECT_IRC) {
		if (s[i] == '\x03' || s[i] == '\x04') {
			*code = true;
			return irc_colour_len(s, n, i);
		}
		if (strchr("\x02\x1d\x1e\x11\x1f\x16\x0f", s[i]) && s[i]) {
			*code = true;
			return 1;
		}
	}
	size_t l = tr_utf8_seq_len(s + i, n - i);
	return l ? l : 1;
}

static unsigned irc_state(const char *s, size_t a, size_t b, unsigned st)
{
	for (size_t i = a; i < b; i++) {
		if (s[i] == '\x0f')
			st = 0;
		for (int k = 0; k < ST__COUNT; k++)
			if (s[i] == irc_code[k])
				st ^= 1u << k;
	}
	return st;
}

static size_t irc_codes(unsigned st, char *out)
{
	size_t n = 0;
	for (int k = 0; k < ST__COUNT; k++)
		if (st & (1u << k))
			out[n++] = irc_code[k];
	return n;
}

struct pieces {
	char **v;
	size_t n, cap;
};

static void pieces_add(struct pieces *p, const char *pre, size_t pl, const char *s, size_t n,
                       const char *post, size_t ql)
{
	if (p->n + 2 > p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->v = tr_xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	char *x = tr_xmalloc(pl + n + ql + 1);
	memcpy(x, pre, pl);
	/* A piece is a C string: a NUL in the text would cut it short, so it goes. */
	size_t w = pl;
	for (size_t i = 0; i < n; i++)
		if (s[i])
			x[w++] = s[i];
	if (w == pl) {
		free(x);
		return;
	}
	memcpy(x + w, post, ql);
	x[w + ql] = '\0';
	p->v[p->n++] = x;
	p->v[p->n] = NULL;
}

struct cut {
	size_t fit;   /* end of the longest prefix of whole units within the limits (n: all) */
	size_t hard;  /* fit moved back off attaching code points (never to a) */
	size_t space; /* a space at or before fit with text before it (the cut drops it), or 0 */
};

/* Where s[a, n) can be cut under max_b bytes and max_c code points (formatting codes count). */
static struct cut find_cut(const char *s, size_t n, size_t a, size_t max_b, size_t max_c,
                           enum tr_dialect d)
{
	struct cut c = {0};
	size_t i = a, bytes = 0, chars = 0;
	bool text = false;
	while (i < n) {
		bool code;
		size_t l = unit_len(s, n, i, d, &code);
		size_t cl = tr_utf8_count(s + i, l);
		if (bytes + l > max_b || chars + cl > max_c)
			break;
		if (s[i] == ' ' && text)
			c.space = i;
		else if (s[i] != ' ' && !code)
			text = true;
		bytes += l;
		chars += cl;
		i += l;
	}
	c.fit = c.hard = i;
	if (i >= n)
		return c;
	if (s[i] == ' ' && text)
		c.space = i;
	/* Keep a base character with its combining marks, joiners and modifiers. */
	size_t cut = i, l;
	while (cut > a && is_attaching(cp_at(s + cut, n - cut, &l))) {
		cut--;
		while (cut > a && ((unsigned char)s[cut] & 0xC0) == 0x80)
			cut--;
	}
	if (cut > a)
		c.hard = cut;
	return c;
}

static void split_line(struct pieces *p, const char *s, size_t n, size_t max_b, size_t max_c,
                       enum tr_dialect d)
{
	size_t pos = 0;
	unsigned st = 0;
	bool first = true;
	while (pos < n) {
		if (!first)
			while (pos < n && s[pos] == ' ')
				pos++;
		if (pos >= n)
			break;
		char pre[ST__COUNT];
		size_t pl = first || d != TR_DIALECT_IRC ? 0 : irc_codes(st, pre);
		struct cut c = find_cut(s, n, pos, max_b - pl, max_c - pl, d);
		if (c.fit == n) {
			pieces_add(p, pre, pl, s + pos, n - pos, "", 0);
			break;
		}
		/* IRC: room for the \x0f that closes runs cut by this split. */
		size_t reserve = d == TR_DIALECT_IRC ? 1 : 0;
		c = find_cut(s, n, pos, max_b - pl - reserve, max_c - pl - reserve, d);
		size_t cut = c.space ? c.space : c.hard;
		if (cut == pos) {
			/* One unit longer than the room (a long colour code, ASCII): cut as bytes.
			 */
			bool code;
			size_t room = max_b - pl - reserve < max_c - pl - reserve
			                  ? max_b - pl - reserve
			                  : max_c - pl - reserve;
			size_t l = unit_len(s, n, pos, d, &code);
			cut = pos + (l < room ? l : room);
		}
		unsigned end_st = d == TR_DIALECT_IRC ? irc_state(s, pos, cut, st) : 0;
		size_t piece_end = cut;
		while (c.space && piece_end > pos && s[piece_end - 1] == ' ')
			piece_end--;
		pieces_add(p, pre, pl, s + pos, piece_end - pos, "\x0f", end_st ? 1 : 0);
		st = end_st;
		pos = cut;
		first = false;
	}
}

int tr_format_split_limits(const char *s, size_t len, size_t max_bytes, size_t max_chars,
                           enum tr_dialect d, char ***pieces, size_t *n)
{
	if (pieces)
		*pieces = NULL;
	if (n)
		*n = 0;
	if (!s || !pieces || !n || max_bytes < 16 || (max_chars && max_chars < 16) ||
	    (unsigned)d >= TR_DIALECT__COUNT || !tr_utf8_valid(s, len))
		return TR_E_INVAL;
	struct pieces p = {0};
	p.cap = 8;
	p.v = tr_xcalloc(p.cap, sizeof(*p.v));
	size_t i = 0;
	/* CR alone or in CRLF ends a line too: no piece ever carries one. */
	while (i < len) {
		size_t end = i;
		while (end < len && s[end] != '\n' && s[end] != '\r')
			end++;
		if (end > i)
			split_line(&p, s + i, end - i, max_bytes, max_chars ? max_chars : SIZE_MAX,
			           d);
		i = end + 1;
	}
	*pieces = p.v;
	*n = p.n;
	return TR_OK;
}

int tr_format_split(const char *s, size_t len, size_t max_bytes, enum tr_dialect d, char ***pieces,
                    size_t *n)
{
	return tr_format_split_limits(s, len, max_bytes, 0, d, pieces, n);
}

void tr_format_pieces_free(char **pieces)
{
	if (!pieces)
		return;
	for (size_t i = 0; pieces[i]; i++)
		free(pieces[i]);
	free(pieces);
}

char *tr_format_truncate(const char *s, size_t len, size_t max_bytes, size_t max_chars,
                         enum tr_dialect d)
{
	if (!s)
		return tr_xstrdup("");
	size_t mb = max_bytes ? max_bytes : SIZE_MAX, mc = max_chars ? max_chars : SIZE_MAX;
	if (len <= mb && tr_utf8_count(s, len) <= mc)
		return tr_xstrndup(s, len);
	bool irc = d == TR_DIALECT_IRC;
	size_t eb = irc ? 4 : 3, ec = irc ? 2 : 1; /* "…" and, for IRC, \x0f */
	if (mb < eb || mc < ec) {
		/* No room for the ellipsis: the longest whole-code-point prefix. */
		size_t k = tr_utf8_prefix_chars(s, tr_utf8_truncate(s, len, mb), mc);
		return tr_xstrndup(s, k);
	}
	struct cut c = find_cut(s, len, 0, mb - eb, mc - ec, d);
	size_t cut = c.hard;
	if (c.fit == 0)
		cut = 0;
	/* A word boundary, when it keeps at least half the room. */
	else if (c.space && c.space >= c.hard / 2)
		cut = c.space;
	while (cut > 0 && s[cut - 1] == ' ')
		cut--;
	unsigned st = irc ? irc_state(s, 0, cut, 0) : 0;
	return tr_xasprintf("%.*s%s\xe2\x80\xa6", (int)cut, s, st ? "\x0f" : "");
}
