/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* CommonMark -> Discord markdown by walking cmark's tree, escaping every text node so that
 * bridged text never reformats or pings (Discord's parser treats a backslash before any ASCII
 * punctuation as an escape); and Discord's tokens (<@id>, <#id>, <:e:id>) back to text. */
#include <cmark.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "alloc.h"
#include "buf.h"
#include "format.h"
#include "format_discord.h"
#include "utf8.h"

#define DC_FMT_MAX (1024 * 1024)

/* Read as markup anywhere in a line. */
static bool dc_is_punct(char c)
{
	return c != '\0' && strchr("\\*_~`|[]<", c) != NULL;
}

/* Read as markup only where a line starts (lists, headings, quotes, "-#" subtext). */
static bool dc_is_bol_punct(char c)
{
	return c != '\0' && strchr("-#>+", c) != NULL;
}

static size_t dc_url_len(const char *s, size_t len)
{
	size_t p = 0;
	if (len >= 8 && strncasecmp(s, "https://", 8) == 0)
		p = 8;
	else if (len >= 7 && strncasecmp(s, "http://", 7) == 0)
		p = 7;
	else
		return 0;
	while (p < len && s[p] != ' ' && s[p] != '\n' && s[p] != '\t' && s[p] != '<' && s[p] != '>')
		p++;
	return p;
}

/* bol: s starts a line (leading spaces still count as the line start). */
static int dc_esc(struct tr_buf *b, const char *s, size_t len, bool bol)
{
	int rc = TR_OK;
	bool word_start = true;
	bool digits = false;
	for (size_t i = 0; i < len && rc == TR_OK; i++) {
		size_t u = word_start ? dc_url_len(s + i, len - i) : 0;
		if (u) {
			rc = tr_buf_append(b, s + i, u);
			i += u - 1;
			word_start = bol = false;
			continue;
		}
		char c = s[i];
		if (dc_is_punct(c) || (bol && dc_is_bol_punct(c)) || (digits && c == '.'))
			rc = tr_buf_append(b, "\\", 1);
		if (rc == TR_OK)
			rc = tr_buf_append(b, &c, 1);
		digits = (bol || digits) && c >= '0' && c <= '9';
		bol = bol && (c == ' ' || c == '\t');
		word_start = c == ' ' || c == '\n' || c == '\t' || c == '(';
	}
	return rc;
}

char *tr_discord_escape(const char *s, size_t len)
{
	char *safe = tr_mentions_neutralise(s ? s : "", s ? len : 0);
	struct tr_buf b;
	tr_buf_init(&b, DC_FMT_MAX);
	if (dc_esc(&b, safe, strlen(safe), true) != TR_OK)
		tr_buf_reset(&b);
	free(safe);
	return tr_buf_take(&b);
}

struct dc_r {
	struct tr_buf *b;
	int quote;  /* block quote depth */
	int indent; /* list nesting */
	bool bol;   /* at the beginning of a line */
};

static int dc_put(struct dc_r *r, const char *s, size_t n)
{
	int rc = TR_OK;
	if (r->bol && n) {
		for (int i = 0; i < r->quote && rc == TR_OK; i++)
			rc = tr_buf_appends(r->b, "> ");
		for (int i = 1; i < r->indent && rc == TR_OK; i++)
			rc = tr_buf_appends(r->b, "  ");
		r->bol = false;
	}
	if (rc == TR_OK)
		rc = tr_buf_append(r->b, s, n);
	return rc;
}

static int dc_nl(struct dc_r *r)
{
	/* Inside a quote an empty line needs its "> " too, or the quote ends. */
	if (r->bol && r->quote) {
		int rc = dc_put(r, ">", 1);
		if (rc != TR_OK)
			return rc;
	}
	r->bol = true;
	return tr_buf_append(r->b, "\n", 1);
}

static int dc_text(struct dc_r *r, const char *s)
{
	int rc = TR_OK;
	if (!s)
		return TR_OK;
	while (rc == TR_OK && *s) {
		size_t n = strcspn(s, "\n");
		if (n) {
			struct tr_buf t;
			tr_buf_init(&t, DC_FMT_MAX);
			rc = dc_esc(&t, s, n, r->bol);
			if (rc == TR_OK)
				rc = dc_put(r, t.data ? t.data : "", t.len);
			tr_buf_cleanup(&t);
		}
		s += n;
		if (*s == '\n' && rc == TR_OK) {
			rc = dc_nl(r);
			s++;
		}
	}
	return rc;
}

/* Code spans and blocks: Discord shows their content literally; only the fence may not occur
 * inside (a zero-width space breaks it). */
static int dc_code(struct dc_r *r, const char *lit, const char *fence)
{
	int rc = TR_OK;
	size_t fl = strlen(fence);
	for (const char *p = lit ? lit : ""; rc == TR_OK && *p;) {
		if (strncmp(p, fence, fl) == 0) {
			rc = dc_put(r, "`\xe2\x80\x8b", 4);
			p++;
			continue;
		}
		if (*p == '\n') {
			rc = dc_nl(r);
		} else {
			rc = dc_put(r, p, 1);
		}
		p++;
	}
	return rc;
}

static bool dc_link_ok(const char *url)
{
	return url && (strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "http://", 7) == 0);
}

static bool dc_tight(cmark_node *n)
{
	cmark_node *item = cmark_node_parent(n);
	cmark_node *list = item ? cmark_node_parent(item) : NULL;
	return list && cmark_node_get_type(list) == CMARK_NODE_LIST &&
	       cmark_node_get_list_tight(list);
}

static int dc_node(struct dc_r *r, cmark_node *n, cmark_event_type ev)
{
	bool enter = ev == CMARK_EVENT_ENTER;
	const char *lit = cmark_node_get_literal(n);
	int rc = TR_OK;
	switch (cmark_node_get_type(n)) {
	case CMARK_NODE_PARAGRAPH:
	case CMARK_NODE_HEADING:
		if (enter && cmark_node_get_type(n) == CMARK_NODE_HEADING) {
			static const char *const marks[] = {"# ", "## ", "### "};
			int lv = cmark_node_get_heading_level(n);
			const char *mk = marks[lv < 1 ? 0 : lv > 3 ? 2 : lv - 1];
			rc = dc_put(r, mk, strlen(mk));
		}
		if (!enter) {
			rc = dc_nl(r);
			if (rc == TR_OK && cmark_node_next(n) && !dc_tight(n))
				rc = dc_nl(r);
		}
		break;
	case CMARK_NODE_BLOCK_QUOTE:
		r->quote += enter ? 1 : -1;
		break;
	case CMARK_NODE_LIST:
		r->indent += enter ? 1 : -1;
		if (!enter && cmark_node_next(n))
			rc = dc_nl(r);
		break;
	case CMARK_NODE_ITEM:
		if (enter) {
			cmark_node *list = cmark_node_parent(n);
			if (list && cmark_node_get_list_type(list) == CMARK_ORDERED_LIST) {
				int k = cmark_node_get_list_start(list);
				for (cmark_node *p = cmark_node_previous(n); p;
				     p = cmark_node_previous(p))
					k++;
				char num[24];
				int w = snprintf(num, sizeof(num), "%d. ", k);
				rc = dc_put(r, num, (size_t)w);
			} else {
				rc = dc_put(r, "- ", 2);
			}
		}
		break;
	case CMARK_NODE_THEMATIC_BREAK:
		rc = dc_put(r, "\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80", 9);
		if (rc == TR_OK)
			rc = dc_nl(r);
		break;
	case CMARK_NODE_CODE_BLOCK:
		rc = dc_put(r, "```", 3);
		if (rc == TR_OK)
			rc = dc_nl(r);
		if (rc == TR_OK)
			rc = dc_code(r, lit, "```");
		if (rc == TR_OK && !r->bol)
			rc = dc_nl(r);
		if (rc == TR_OK)
			rc = dc_put(r, "```", 3);
		if (rc == TR_OK)
			rc = dc_nl(r);
		break;
	case CMARK_NODE_HTML_BLOCK:
	case CMARK_NODE_HTML_INLINE:
	case CMARK_NODE_TEXT:
		rc = dc_text(r, lit);
		break;
	case CMARK_NODE_SOFTBREAK:
	case CMARK_NODE_LINEBREAK:
		rc = dc_nl(r);
		break;
	case CMARK_NODE_CODE:
		rc = dc_put(r, lit && strchr(lit, '`') ? "`` " : "`",
		            lit && strchr(lit, '`') ? 3 : 1);
		if (rc == TR_OK)
			rc = dc_code(r, lit, "``");
		if (rc == TR_OK)
			rc = dc_put(r, lit && strchr(lit, '`') ? " ``" : "`",
			            lit && strchr(lit, '`') ? 3 : 1);
		break;
	case CMARK_NODE_EMPH:
		rc = dc_put(r, "*", 1);
		break;
	case CMARK_NODE_STRONG:
		rc = dc_put(r, "**", 2);
		break;
	case CMARK_NODE_LINK:
	case CMARK_NODE_IMAGE: {
		const char *url = cmark_node_get_url(n);
		if (!dc_link_ok(url))
			break;
		if (enter) {
			rc = dc_put(r, "[", 1);
		} else {
			rc = dc_put(r, "](<", 3);
			if (rc == TR_OK)
				rc = dc_put(r, url, strcspn(url, " <>\n"));
			if (rc == TR_OK)
				rc = dc_put(r, ">)", 2);
		}
		break;
	}
	default:
		break;
	}
	return rc;
}

int tr_format_discord(const char *md, size_t len, char **out)
{
	*out = NULL;
	if (!md || !tr_utf8_valid(md, len))
		return TR_E_INVAL;
	char *safe = tr_mentions_neutralise(md, len);
	cmark_node *doc = cmark_parse_document(safe, strlen(safe), CMARK_OPT_DEFAULT);
	free(safe);
	if (!doc)
		return TR_E_NOMEM;
	struct tr_buf b;
	tr_buf_init(&b, DC_FMT_MAX);
	struct dc_r r = {.b = &b, .bol = true};
	int rc = TR_OK;
	cmark_iter *it = cmark_iter_new(doc);
	cmark_event_type ev;
	while (rc == TR_OK && (ev = cmark_iter_next(it)) != CMARK_EVENT_DONE)
		rc = dc_node(&r, cmark_iter_get_node(it), ev);
	cmark_iter_free(it);
	cmark_node_free(doc);
	if (rc != TR_OK) {
		tr_buf_cleanup(&b);
		return rc;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '>')) {
		/* A trailing newline, or the ">" of an empty quoted line, is noise at the end. */
		if (b.data[b.len - 1] == '>' && b.len >= 2 && b.data[b.len - 2] != '\n')
			break;
		b.data[--b.len] = '\0';
	}
	*out = tr_buf_take(&b);
	return TR_OK;
}

static bool dc_digits(const char *s, size_t n)
{
	if (n == 0 || n > 24)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* One token at s ("<...>", tlen bytes including the brackets): appended as text, or false. */
static int dc_token(struct tr_buf *b, const char *s, size_t tlen, tr_discord_name_fn *fn, void *arg,
                    bool *done)
{
	const char *in = s + 1;
	size_t n = tlen - 2;
	char kind = 0;
	size_t skip = 0;
	*done = false;
	if (n > 2 && in[0] == '@' && in[1] == '&') {
		kind = '&';
		skip = 2;
	} else if (n > 2 && in[0] == '@' && in[1] == '!') {
		kind = '@';
		skip = 2;
	} else if (n > 1 && in[0] == '@') {
		kind = '@';
		skip = 1;
	} else if (n > 1 && in[0] == '#') {
		kind = '#';
		skip = 1;
	} else if (n > 3 && (in[0] == ':' || (in[0] == 'a' && in[1] == ':'))) {
		const char *name = in + (in[0] == 'a' ? 2 : 1);
		const char *colon = memchr(name, ':', n - (size_t)(name - in));
		if (!colon || !dc_digits(colon + 1, n - (size_t)(colon + 1 - in)))
			return TR_OK;
		*done = true;
		int rc = tr_buf_append(b, ":", 1);
		if (rc == TR_OK)
			rc = tr_buf_append(b, name, (size_t)(colon - name));
		return rc == TR_OK ? tr_buf_append(b, ":", 1) : rc;
	} else {
		return TR_OK;
	}
	if (!dc_digits(in + skip, n - skip))
		return TR_OK;
	*done = true;
	char id[32];
	memcpy(id, in + skip, n - skip);
	id[n - skip] = '\0';
	const char *name = fn ? fn(arg, kind, id) : NULL;
	int rc = tr_buf_append(b, kind == '#' ? "#" : "@", 1);
	if (rc == TR_OK)
		rc = tr_buf_appends(b, name ? name : id);
	return rc;
}

int tr_discord_to_commonmark(const char *s, size_t len, tr_discord_name_fn *fn, void *arg,
                             char **out)
{
	*out = NULL;
	if (!s || !tr_utf8_valid(s, len))
		return TR_E_INVAL;
	struct tr_buf b;
	tr_buf_init(&b, DC_FMT_MAX);
	int rc = TR_OK;
	for (size_t i = 0; i < len && rc == TR_OK;) {
		if (s[i] == '<') {
			const char *end = memchr(s + i, '>', len - i);
			if (end && end - (s + i) < 64) {
				bool done = false;
				size_t tlen = (size_t)(end - (s + i)) + 1;
				rc = dc_token(&b, s + i, tlen, fn, arg, &done);
				if (done) {
					i += tlen;
					continue;
				}
			}
		}
		if (rc == TR_OK)
			rc = tr_buf_append(&b, s + i, 1);
		i++;
	}
	if (rc != TR_OK) {
		tr_buf_cleanup(&b);
		return rc;
	}
	char *text = tr_buf_take(&b);
	/* A name can itself say "@everyone": the bus text never carries a live mass mention. */
	*out = tr_mentions_neutralise(text, strlen(text));
	free(text);
	return TR_OK;
}
