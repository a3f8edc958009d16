/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* CommonMark -> Matrix HTML subset by walking cmark's tree (never cmark's own HTML renderer, which
 * would pass raw HTML through when unsafe and drop it when safe: a bridge must show it as text).
 * Tags emitted: p br strong em del code pre blockquote ul ol li h1-h6 hr a img, every one of them
 * in the allowed list of the spec (../shared/specs/NETWORKS.md §4d). */
#include <cmark.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "alloc.h"
#include "buf.h"
#include "format.h"
#include "format_html.h"
#include "utf8.h"

#define HTML_MAX (4 * 1024 * 1024)

static int html_esc(struct tr_buf *b, const char *s, size_t len)
{
	int rc = TR_OK;
	for (size_t i = 0; i < len && rc == TR_OK; i++) {
		switch (s[i]) {
		case '&':
			rc = tr_buf_appends(b, "&amp;");
			break;
		case '<':
			rc = tr_buf_appends(b, "&lt;");
			break;
		case '>':
			rc = tr_buf_appends(b, "&gt;");
			break;
		case '"':
			rc = tr_buf_appends(b, "&quot;");
			break;
		case '\'':
			rc = tr_buf_appends(b, "&#39;");
			break;
		default:
			rc = tr_buf_append(b, &s[i], 1);
		}
	}
	return rc;
}

static int html_esc_str(struct tr_buf *b, const char *s)
{
	return s ? html_esc(b, s, strlen(s)) : TR_OK;
}

char *tr_html_escape(const char *s, size_t len)
{
	struct tr_buf b;
	tr_buf_init(&b, HTML_MAX);
	if (s && html_esc(&b, s, len) != TR_OK)
		tr_buf_reset(&b);
	return tr_buf_take(&b);
}

/* Allowed link schemes for <a href> (spec: http, https, ftp, mailto, magnet). */
static bool html_href_ok(const char *url)
{
	static const char *const schemes[] = {"http://", "https://", "ftp://",
	                                      "mailto:", "magnet:"};
	if (!url)
		return false;
	for (size_t i = 0; i < TR_ARRAY_LEN(schemes); i++) {
		size_t n = strlen(schemes[i]);
		if (strncasecmp(url, schemes[i], n) == 0)
			return true;
	}
	return false;
}

/* The code language as a class name, only [A-Za-z0-9_+-] kept. */
static int html_lang(struct tr_buf *b, const char *info)
{
	if (!info || !*info)
		return TR_OK;
	size_t n = strcspn(info, " \t");
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		char c = info[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '+' || c == '-') {
			any = true;
			break;
		}
	}
	if (!any)
		return TR_OK;
	int rc = tr_buf_appends(b, " class=\"language-");
	for (size_t i = 0; i < n && rc == TR_OK; i++) {
		char c = info[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '+' || c == '-')
			rc = tr_buf_append(b, &c, 1);
	}
	if (rc == TR_OK)
		rc = tr_buf_appends(b, "\"");
	return rc;
}

static int html_node(struct tr_buf *b, cmark_node *n, cmark_event_type ev, bool *markup)
{
	bool enter = ev == CMARK_EVENT_ENTER;
	const char *lit = cmark_node_get_literal(n);
	int rc = TR_OK;
	switch (cmark_node_get_type(n)) {
	case CMARK_NODE_DOCUMENT:
		break;
	case CMARK_NODE_PARAGRAPH: {
		/* Tight list items hold bare paragraphs; cmark's own renderer omits <p> there too.
		 */
		cmark_node *item = cmark_node_parent(n);
		cmark_node *list = item ? cmark_node_parent(item) : NULL;
		if (list && cmark_node_get_type(list) == CMARK_NODE_LIST &&
		    cmark_node_get_list_tight(list))
			break;
		*markup = true;
		rc = tr_buf_appends(b, enter ? "<p>" : "</p>");
		break;
	}
	case CMARK_NODE_BLOCK_QUOTE:
		*markup = true;
		rc = tr_buf_appends(b, enter ? "<blockquote>" : "</blockquote>");
		break;
	case CMARK_NODE_LIST:
		*markup = true;
		if (cmark_node_get_list_type(n) == CMARK_ORDERED_LIST) {
			int start = cmark_node_get_list_start(n);
			if (!enter)
				rc = tr_buf_appends(b, "</ol>");
			else if (start != 1)
				rc = tr_buf_printf(b, "<ol start=\"%d\">", start);
			else
				rc = tr_buf_appends(b, "<ol>");
		} else {
			rc = tr_buf_appends(b, enter ? "<ul>" : "</ul>");
		}
		break;
	case CMARK_NODE_ITEM:
		*markup = true;
		rc = tr_buf_appends(b, enter ? "<li>" : "</li>");
		break;
	case CMARK_NODE_HEADING:
		*markup = true;
		rc = tr_buf_printf(b, enter ? "<h%d>" : "</h%d>", cmark_node_get_heading_level(n));
		break;
	case CMARK_NODE_THEMATIC_BREAK:
		*markup = true;
		rc = tr_buf_appends(b, "<hr>");
		break;
	case CMARK_NODE_CODE_BLOCK:
		*markup = true;
		rc = tr_buf_appends(b, "<pre><code");
		if (rc == TR_OK)
			rc = html_lang(b, cmark_node_get_fence_info(n));
		if (rc == TR_OK)
			rc = tr_buf_appends(b, ">");
		if (rc == TR_OK)
			rc = html_esc_str(b, lit);
		if (rc == TR_OK)
			rc = tr_buf_appends(b, "</code></pre>");
		break;
	case CMARK_NODE_HTML_BLOCK:
	case CMARK_NODE_HTML_INLINE:
		/* Raw HTML from another network is text here, never markup (DESIGN §7). */
		*markup = true;
		rc = html_esc_str(b, lit);
		break;
	case CMARK_NODE_TEXT:
		rc = html_esc_str(b, lit);
		break;
	case CMARK_NODE_SOFTBREAK:
		rc = tr_buf_appends(b, "\n");
		break;
	case CMARK_NODE_LINEBREAK:
		*markup = true;
		rc = tr_buf_appends(b, "<br>");
		break;
	case CMARK_NODE_CODE:
		*markup = true;
		rc = tr_buf_appends(b, "<code>");
		if (rc == TR_OK)
			rc = html_esc_str(b, lit);
		if (rc == TR_OK)
			rc = tr_buf_appends(b, "</code>");
		break;
	case CMARK_NODE_EMPH:
		*markup = true;
		rc = tr_buf_appends(b, enter ? "<em>" : "</em>");
		break;
	case CMARK_NODE_STRONG:
		*markup = true;
		rc = tr_buf_appends(b, enter ? "<strong>" : "</strong>");
		break;
	case CMARK_NODE_LINK:
	case CMARK_NODE_IMAGE: {
		/* An image is only allowed from mxc://; any other image is shown as a link to it.
		 */
		const char *url = cmark_node_get_url(n);
		bool ok = html_href_ok(url);
		*markup = true;
		if (cmark_node_get_type(n) == CMARK_NODE_IMAGE && url &&
		    strncmp(url, "mxc://", 6) == 0) {
			if (enter) {
				rc = tr_buf_appends(b, "<img src=\"");
				if (rc == TR_OK)
					rc = html_esc_str(b, url);
				if (rc == TR_OK)
					rc = tr_buf_appends(b, "\" alt=\"");
			} else {
				rc = tr_buf_appends(b, "\">");
			}
			break;
		}
		if (!ok)
			break;
		if (enter) {
			rc = tr_buf_appends(b, "<a href=\"");
			if (rc == TR_OK)
				rc = html_esc_str(b, url);
			if (rc == TR_OK)
				rc = tr_buf_appends(b, "\">");
		} else {
			rc = tr_buf_appends(b, "</a>");
		}
		break;
	}
	default:
		break;
	}
	return rc;
}

int tr_format_html(const char *md, size_t len, char **out, bool *plain_only)
{
	*out = NULL;
	if (plain_only)
		*plain_only = true;
	if (!md || !tr_utf8_valid(md, len))
		return TR_E_INVAL;
	char *safe = tr_mentions_neutralise(md, len);
	cmark_node *doc = cmark_parse_document(safe, strlen(safe), CMARK_OPT_DEFAULT);
	free(safe);
	if (!doc)
		return TR_E_NOMEM;
	struct tr_buf b;
	tr_buf_init(&b, HTML_MAX);
	bool markup = false;
	/* One paragraph alone: no <p> wrapper (what Matrix clients send for one line). */
	cmark_node *first = cmark_node_first_child(doc);
	bool single =
	    first && !cmark_node_next(first) && cmark_node_get_type(first) == CMARK_NODE_PARAGRAPH;
	int rc = TR_OK;
	cmark_iter *it = cmark_iter_new(doc);
	cmark_event_type ev;
	/* Inside an image, only the alt text is written, as attribute-escaped text. */
	int in_image = 0;
	while (rc == TR_OK && (ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
		cmark_node *n = cmark_iter_get_node(it);
		cmark_node_type t = cmark_node_get_type(n);
		if (single && n == first)
			continue;
		if (in_image && !(t == CMARK_NODE_IMAGE && ev == CMARK_EVENT_EXIT)) {
			if (t == CMARK_NODE_TEXT || t == CMARK_NODE_CODE ||
			    t == CMARK_NODE_HTML_INLINE)
				rc = html_esc_str(&b, cmark_node_get_literal(n));
			continue;
		}
		rc = html_node(&b, n, ev, &markup);
		if (t == CMARK_NODE_IMAGE) {
			const char *url = cmark_node_get_url(n);
			bool mxc = url && strncmp(url, "mxc://", 6) == 0;
			if (mxc)
				in_image = ev == CMARK_EVENT_ENTER;
		}
	}
	cmark_iter_free(it);
	cmark_node_free(doc);
	if (rc != TR_OK) {
		tr_buf_cleanup(&b);
		return rc;
	}
	/* A bare trailing newline from the last block is noise in formatted_body. */
	while (b.len && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	if (plain_only)
		*plain_only = !markup;
	*out = tr_buf_take(&b);
	return TR_OK;
}
