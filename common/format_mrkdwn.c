/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Slack mrkdwn <-> CommonMark. Outbound walks cmark's tree (one parser for every dialect, as
 * format.c does); inbound is a small scanner over Slack's text, which is not CommonMark: it has
 * only three entities, <…> tokens for mentions and links, and single-character emphasis runs
 * that must open at a word start and close on the same line
 * (https://api.slack.com/reference/surfaces/formatting). */
#include <cmark.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"
#include "format.h"
#include "format_mrkdwn.h"
#include "utf8.h"

#define MRKDWN_MAX_OUT   (1024 * 1024)
#define MRKDWN_MAX_DEPTH 8

/* ---------------------------------------------------------------- CommonMark -> mrkdwn */

struct mk_out {
	struct tr_buf b;
	int quote;
	bool line_start;
	bool just_bulleted;
	bool failed;
};

static void mk_raw(struct mk_out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (o->line_start && o->quote > 0 && s[i] != '\n') {
			for (int q = 0; q < o->quote; q++)
				o->failed |= tr_buf_append(&o->b, "> ", 2) != TR_OK;
		}
		o->line_start = s[i] == '\n';
		o->failed |= tr_buf_append(&o->b, &s[i], 1) != TR_OK;
	}
}

static void mk_str(struct mk_out *o, const char *s)
{
	mk_raw(o, s, strlen(s));
}

/* The three characters Slack wants escaped, and nothing else. */
static void mk_escaped(struct mk_out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&':
			mk_str(o, "&amp;");
			break;
		case '<':
			mk_str(o, "&lt;");
			break;
		case '>':
			mk_str(o, "&gt;");
			break;
		default:
			mk_raw(o, &s[i], 1);
		}
	}
}

/* Text: mass mentions made inert, GFM ~~strike~~ as Slack's ~strike~, then escaped. */
static void mk_text(struct mk_out *o, const char *s)
{
	char *safe = tr_mentions_neutralise(s, strlen(s));
	size_t n = strlen(safe);
	size_t start = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (safe[i] == '~' && safe[i + 1] == '~') {
			mk_escaped(o, safe + start, i - start);
			mk_raw(o, "~", 1);
			i++;
			start = i + 1;
		}
	}
	mk_escaped(o, safe + start, n - start);
	free(safe);
}

static void mk_plain_of(cmark_node *node, struct tr_buf *b)
{
	cmark_iter *it = cmark_iter_new(node);
	cmark_event_type ev;
	while ((ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
		cmark_node *n = cmark_iter_get_node(it);
		if (ev != CMARK_EVENT_ENTER)
			continue;
		cmark_node_type t = cmark_node_get_type(n);
		const char *lit = NULL;
		if (t == CMARK_NODE_TEXT || t == CMARK_NODE_CODE || t == CMARK_NODE_HTML_INLINE)
			lit = cmark_node_get_literal(n);
		else if (t == CMARK_NODE_SOFTBREAK || t == CMARK_NODE_LINEBREAK)
			lit = " ";
		if (lit && tr_buf_appends(b, lit) != TR_OK)
			break;
	}
	cmark_iter_free(it);
}

static bool mk_url_ok(const char *url)
{
	static const char *const schemes[] = {"http://", "https://", "mailto:", "ftp://"};
	for (size_t i = 0; i < TR_ARRAY_LEN(schemes); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			return !strpbrk(url, " \t\r\n");
	return false;
}

static void mk_url(struct mk_out *o, const char *url)
{
	for (const char *p = url; *p; p++) {
		if (*p == '|')
			mk_str(o, "%7C");
		else
			mk_escaped(o, p, 1);
	}
}

static void mk_link(struct mk_out *o, cmark_node *node)
{
	const char *url = cmark_node_get_url(node);
	struct tr_buf label;
	tr_buf_init(&label, 64 * 1024);
	mk_plain_of(node, &label);
	const char *text = tr_buf_str(&label);
	if (!url || !*url) {
		mk_text(o, text);
	} else if (!mk_url_ok(url)) {
		/* javascript: and friends stay visible text, never a link. */
		mk_text(o, text);
		if (strcmp(text, url) != 0) {
			mk_str(o, " (");
			mk_text(o, url);
			mk_str(o, ")");
		}
	} else if (!*text || strcmp(text, url) == 0) {
		mk_str(o, "<");
		mk_url(o, url);
		mk_str(o, ">");
	} else {
		mk_str(o, "<");
		mk_url(o, url);
		mk_str(o, "|");
		char *safe = tr_mentions_neutralise(text, strlen(text));
		mk_escaped(o, safe, strlen(safe));
		free(safe);
		mk_str(o, ">");
	}
	tr_buf_cleanup(&label);
}

static bool mk_in_list(cmark_node *n)
{
	for (cmark_node *p = cmark_node_parent(n); p; p = cmark_node_parent(p))
		if (cmark_node_get_type(p) == CMARK_NODE_LIST)
			return true;
	return false;
}

static void mk_block_sep(struct mk_out *o, cmark_node *n)
{
	if (o->just_bulleted) {
		o->just_bulleted = false;
		return;
	}
	if (o->b.len == 0)
		return;
	mk_str(o, mk_in_list(n) ? "\n" : "\n\n");
}

static void mk_item(struct mk_out *o, cmark_node *item)
{
	cmark_node *list = cmark_node_parent(item);
	int depth = 0;
	for (cmark_node *p = cmark_node_parent(list); p; p = cmark_node_parent(p))
		if (cmark_node_get_type(p) == CMARK_NODE_LIST)
			depth++;
	if (o->b.len)
		mk_str(o, "\n");
	for (int i = 0; i < depth; i++)
		mk_str(o, "    ");
	if (cmark_node_get_list_type(list) == CMARK_ORDERED_LIST) {
		int num = cmark_node_get_list_start(list);
		for (cmark_node *p = cmark_node_previous(item); p; p = cmark_node_previous(p))
			num++;
		char tmp[24];
		snprintf(tmp, sizeof(tmp), "%d. ", num);
		mk_str(o, tmp);
	} else {
		mk_str(o, "\xe2\x80\xa2 "); /* U+2022 BULLET, as Slack's own clients show lists */
	}
	o->just_bulleted = true;
}

int tr_mrkdwn_from_commonmark(const char *md, size_t len, char **out)
{
	*out = NULL;
	if (!tr_utf8_valid(md, len))
		return TR_E_INVAL;
	cmark_node *doc = cmark_parse_document(md, len, CMARK_OPT_DEFAULT);
	struct mk_out o = {.line_start = true};
	tr_buf_init(&o.b, MRKDWN_MAX_OUT);
	cmark_iter *it = cmark_iter_new(doc);
	cmark_event_type ev;
	while ((ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
		cmark_node *n = cmark_iter_get_node(it);
		bool enter = ev == CMARK_EVENT_ENTER;
		const char *lit = cmark_node_get_literal(n);
		switch (cmark_node_get_type(n)) {
		case CMARK_NODE_PARAGRAPH:
		case CMARK_NODE_HTML_BLOCK:
		case CMARK_NODE_THEMATIC_BREAK:
			if (enter)
				mk_block_sep(&o, n);
			if (enter && cmark_node_get_type(n) == CMARK_NODE_HTML_BLOCK) {
				size_t l = strlen(lit);
				while (l && lit[l - 1] == '\n')
					l--;
				mk_escaped(&o, lit, l);
			}
			if (enter && cmark_node_get_type(n) == CMARK_NODE_THEMATIC_BREAK)
				mk_str(&o, "\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80");
			break;
		case CMARK_NODE_HEADING:
			if (enter)
				mk_block_sep(&o, n);
			mk_str(&o, "*");
			break;
		case CMARK_NODE_CODE_BLOCK: {
			mk_block_sep(&o, n);
			size_t l = strlen(lit);
			while (l && lit[l - 1] == '\n')
				l--;
			mk_str(&o, "```\n");
			mk_escaped(&o, lit, l);
			mk_str(&o, "\n```");
			break;
		}
		case CMARK_NODE_BLOCK_QUOTE:
			if (enter) {
				mk_block_sep(&o, n);
				o.quote++;
			} else {
				o.quote--;
			}
			break;
		case CMARK_NODE_ITEM:
			if (enter)
				mk_item(&o, n);
			break;
		case CMARK_NODE_TEXT:
			mk_text(&o, lit);
			break;
		case CMARK_NODE_SOFTBREAK:
		case CMARK_NODE_LINEBREAK:
			mk_str(&o, "\n");
			break;
		case CMARK_NODE_CODE:
			mk_str(&o, "`");
			mk_escaped(&o, lit, strlen(lit));
			mk_str(&o, "`");
			break;
		case CMARK_NODE_HTML_INLINE:
			mk_escaped(&o, lit, strlen(lit));
			break;
		case CMARK_NODE_EMPH:
			mk_str(&o, "_");
			break;
		case CMARK_NODE_STRONG:
			mk_str(&o, "*");
			break;
		case CMARK_NODE_LINK:
		case CMARK_NODE_IMAGE:
			if (enter) {
				mk_link(&o, n);
				cmark_iter_reset(it, n, CMARK_EVENT_EXIT);
			}
			break;
		default:
			break;
		}
	}
	cmark_iter_free(it);
	cmark_node_free(doc);
	if (o.failed) {
		/* Past the cap: the caller truncates for Slack anyway; keep what fitted. */
	}
	*out = tr_buf_take(&o.b);
	return TR_OK;
}

/* ---------------------------------------------------------------- mrkdwn -> CommonMark */

/* Appends, dropping what would pass the cap (the result is truncated for Slack anyway). */
static void cm_app(struct tr_buf *b, const void *p, size_t n)
{
	if (tr_buf_append(b, p, n) != TR_OK)
		return;
}

struct cm_in {
	struct tr_buf b;
	tr_mrkdwn_name_fn *resolve;
	void *arg;
};

static bool cm_line_start(const struct cm_in *c)
{
	return c->b.len == 0 || c->b.data[c->b.len - 1] == '\n';
}

static void cm_put(struct cm_in *c, const char *s, size_t n)
{
	cm_app(&c->b, s, n);
}

static void cm_puts(struct cm_in *c, const char *s)
{
	cm_put(c, s, strlen(s));
}

/* A literal character CommonMark could read as markup is backslash-escaped. */
static void cm_literal(struct cm_in *c, char ch)
{
	static const char special[] = "\\`*_[]<>~&|!";
	bool esc = strchr(special, ch) != NULL;
	if (!esc && cm_line_start(c) && strchr("#-+=", ch))
		esc = true;
	if (esc)
		cm_put(c, "\\", 1);
	cm_put(c, &ch, 1);
}

static void cm_literal_str(struct cm_in *c, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cm_literal(c, s[i]);
}

/* Decodes Slack's three entities into dst (raw, for code). */
static void cm_decoded(struct tr_buf *dst, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '&' && n - i >= 4 && memcmp(s + i, "&lt;", 4) == 0) {
			cm_app(dst, "<", 1);
			i += 3;
		} else if (s[i] == '&' && n - i >= 4 && memcmp(s + i, "&gt;", 4) == 0) {
			cm_app(dst, ">", 1);
			i += 3;
		} else if (s[i] == '&' && n - i >= 5 && memcmp(s + i, "&amp;", 5) == 0) {
			cm_app(dst, "&", 1);
			i += 4;
		} else {
			cm_app(dst, &s[i], 1);
		}
	}
}

static void cm_decoded_literal(struct cm_in *c, const char *s, size_t n)
{
	struct tr_buf t;
	tr_buf_init(&t, n + 1);
	cm_decoded(&t, s, n);
	cm_literal_str(c, tr_buf_str(&t), t.len);
	tr_buf_cleanup(&t);
}

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static void cm_token(struct cm_in *c, const char *t, size_t n)
{
	const char *bar = memchr(t, '|', n);
	size_t tn = bar ? (size_t)(bar - t) : n;
	const char *label = bar ? bar + 1 : NULL;
	size_t ln = bar ? n - tn - 1 : 0;
	char *target = tr_xstrndup(t, tn);
	if ((target[0] == '@' || target[0] == '#') && tn > 1) {
		const char *name = c->resolve ? c->resolve(c->arg, target + 1) : NULL;
		cm_literal(c, target[0]);
		if (name && *name)
			cm_literal_str(c, name, strlen(name));
		else if (label && ln)
			cm_decoded_literal(c, label, ln);
		else
			cm_literal_str(c, target + 1, tn - 1);
	} else if (target[0] == '!') {
		const char *what = target + 1;
		if (!strcmp(what, "here") || !strcmp(what, "channel") ||
		    !strcmp(what, "everyone") || !strcmp(what, "group")) {
			cm_puts(c, "@");
			cm_puts(c, strcmp(what, "group") == 0 ? "channel" : what);
		} else if (label && ln) {
			/* <!subteam^S1|@team>, <!date^…|fallback> */
			cm_decoded_literal(c, label, ln);
		} else if (!strncmp(what, "subteam^", 8)) {
			const char *name = c->resolve ? c->resolve(c->arg, what + 8) : NULL;
			cm_puts(c, "@");
			cm_literal_str(c, name ? name : what + 8, strlen(name ? name : what + 8));
		} else {
			cm_literal_str(c, what, strlen(what));
		}
	} else {
		struct tr_buf url;
		tr_buf_init(&url, 8192);
		cm_decoded(&url, target, tn);
		const char *u = tr_buf_str(&url);
		bool safe_url = !strpbrk(u, " <>\n") && strchr(u, ':');
		if (!safe_url) {
			cm_literal(c, '<');
			cm_decoded_literal(c, t, n);
			cm_literal(c, '>');
		} else if (label && ln) {
			cm_puts(c, "[");
			cm_decoded_literal(c, label, ln);
			cm_puts(c, "](<");
			cm_puts(c, u);
			cm_puts(c, ">)");
		} else {
			cm_puts(c, "<");
			cm_puts(c, u);
			cm_puts(c, ">");
		}
		tr_buf_cleanup(&url);
	}
	free(target);
}

/* Closing marker for a run opened at s[i] on the same line, per Slack's rules; 0 if none. */
static size_t cm_closer(const char *s, size_t i, size_t end, char mark)
{
	if (i + 1 >= end || s[i + 1] == ' ' || s[i + 1] == '\n' || s[i + 1] == mark)
		return 0;
	if (i > 0 && (is_alnum(s[i - 1]) || s[i - 1] == mark))
		return 0;
	for (size_t j = i + 2; j < end; j++) {
		if (s[j] == '\n')
			return 0;
		if (s[j] == mark && s[j - 1] != ' ' && (j + 1 >= end || !is_alnum(s[j + 1])))
			return j;
	}
	return 0;
}

static void cm_inline(struct cm_in *c, const char *s, size_t start, size_t end, int depth)
{
	for (size_t i = start; i < end; i++) {
		char ch = s[i];
		if (ch == '`' && end - i >= 3 && !memcmp(s + i, "```", 3)) {
			const char *close = NULL;
			for (size_t j = i + 3; j + 3 <= end; j++)
				if (!memcmp(s + j, "```", 3)) {
					close = s + j;
					break;
				}
			if (close) {
				size_t a = i + 3, z = (size_t)(close - s);
				if (a < z && s[a] == '\n')
					a++;
				if (z > a && s[z - 1] == '\n')
					z--;
				if (!cm_line_start(c))
					cm_puts(c, "\n");
				cm_puts(c, "```\n");
				cm_decoded(&c->b, s + a, z - a);
				cm_puts(c, "\n```\n");
				i = (size_t)(close - s) + 2;
				if (i + 1 < end && s[i + 1] == '\n')
					i++;
				continue;
			}
		}
		if (ch == '`') {
			const char *close = memchr(s + i + 1, '`', end - i - 1);
			const char *nl = memchr(s + i + 1, '\n', end - i - 1);
			if (close && (!nl || close < nl) && close > s + i + 1) {
				cm_puts(c, "`` ");
				cm_decoded(&c->b, s + i + 1, (size_t)(close - s) - i - 1);
				cm_puts(c, " ``");
				i = (size_t)(close - s);
				continue;
			}
		}
		if ((ch == '*' || ch == '_' || ch == '~') && depth < MRKDWN_MAX_DEPTH) {
			size_t j = cm_closer(s, i, end, ch);
			if (j) {
				const char *mark = ch == '*' ? "**" : ch == '_' ? "_" : "~~";
				cm_puts(c, mark);
				cm_inline(c, s, i + 1, j, depth + 1);
				cm_puts(c, mark);
				i = j;
				continue;
			}
		}
		if (ch == '<') {
			const char *close = memchr(s + i + 1, '>', end - i - 1);
			const char *nl = memchr(s + i + 1, '\n', end - i - 1);
			if (close && (!nl || close < nl) && close > s + i + 1) {
				cm_token(c, s + i + 1, (size_t)(close - s) - i - 1);
				i = (size_t)(close - s);
				continue;
			}
		}
		if (ch == '>' && cm_line_start(c)) {
			/* A quote as posted through the API (raw '>' is markup at a line start). */
			cm_puts(c, "> ");
			if (i + 1 < end && s[i + 1] == ' ')
				i++;
			continue;
		}
		if (ch == '&' && cm_line_start(c) && end - i >= 4 && !memcmp(s + i, "&gt;", 4)) {
			/* Slack's clients send a quote as "&gt; text" at a line start. */
			cm_puts(c, "> ");
			i += 3;
			if (i + 1 < end && s[i + 1] == ' ')
				i++;
			continue;
		}
		if (ch == '&') {
			size_t k = end - i;
			if (k >= 4 && !memcmp(s + i, "&lt;", 4)) {
				cm_literal(c, '<');
				i += 3;
				continue;
			}
			if (k >= 4 && !memcmp(s + i, "&gt;", 4)) {
				cm_literal(c, '>');
				i += 3;
				continue;
			}
			if (k >= 5 && !memcmp(s + i, "&amp;", 5)) {
				cm_literal(c, '&');
				i += 4;
				continue;
			}
		}
		if (ch == '\n') {
			/* Slack keeps single line breaks: a hard break in CommonMark. */
			if (c->b.len && c->b.data[c->b.len - 1] != '\n' && i + 1 < end &&
			    s[i + 1] != '\n')
				cm_puts(c, "\\\n");
			else
				cm_puts(c, "\n");
			continue;
		}
		cm_literal(c, ch);
	}
}

int tr_mrkdwn_to_commonmark(const char *text, size_t len, tr_mrkdwn_name_fn *resolve, void *arg,
                            char **out)
{
	*out = NULL;
	if (!tr_utf8_valid(text, len))
		return TR_E_INVAL;
	struct cm_in c = {.resolve = resolve, .arg = arg};
	tr_buf_init(&c.b, MRKDWN_MAX_OUT);
	cm_inline(&c, text, 0, len, 0);
	/* Trailing line breaks mean nothing in CommonMark. */
	while (c.b.len && (c.b.data[c.b.len - 1] == '\n' || c.b.data[c.b.len - 1] == '\\')) {
		if (c.b.data[c.b.len - 1] == '\\' && c.b.len >= 2 && c.b.data[c.b.len - 2] == '\\')
			break;
		c.b.data[--c.b.len] = '\0';
	}
	*out = tr_buf_take(&c.b);
	return TR_OK;
}
