/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Pure mapping between Matrix client events (event schemas in ../shared/specs/matrix/data/
 * event-schemas/) and bus events: m.room.message msgtypes, m.replace edits, m.in_reply_to
 * replies, m.thread threads, m.annotation reactions, redactions, topic and membership; the
 * outgoing m.room.message content with the HTML subset and m.mentions; puppet names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"
#include "format.h"
#include "format_html.h"
#include "matrix.h"

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The pattern's literal prefix before its first placeholder ("_trestle_"). */
static size_t pattern_prefix_len(const char *pattern)
{
	const char *b = strchr(pattern, '{');
	return b ? (size_t)(b - pattern) : strlen(pattern);
}

bool matrix_is_own(const struct matrix_map_ctx *ctx, const char *user_id)
{
	if (!user_id || user_id[0] != '@')
		return false;
	if (ctx->bot_user && strcmp(user_id, ctx->bot_user) == 0)
		return true;
	size_t pl = pattern_prefix_len(ctx->puppet_pattern);
	const char *colon = strrchr(user_id, ':');
	if (!colon || strcmp(colon + 1, ctx->server_name) != 0)
		return false;
	return (size_t)(colon - user_id - 1) > pl &&
	       strncmp(user_id + 1, ctx->puppet_pattern, pl) == 0;
}

static int puppet_append_escaped(struct tr_buf *b, const char *s)
{
	int rc = TR_OK;
	for (const unsigned char *p = (const unsigned char *)s; *p && rc == TR_OK; p++) {
		unsigned char ch = *p;
		if (ch >= 'A' && ch <= 'Z') {
			/* Upper case is written as "_" + lower case, as the spec's mapping does. */
			char two[2] = {'_', (char)(ch - 'A' + 'a')};
			rc = tr_buf_append(b, two, 2);
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		           ch == '-') {
			rc = tr_buf_append(b, p, 1);
		} else if (ch == '_') {
			rc = tr_buf_appends(b, "__");
		} else {
			rc = tr_buf_printf(b, "=%02x", ch);
		}
	}
	return rc;
}

char *matrix_puppet_localpart(const char *pattern, const char *network, const char *id)
{
	struct tr_buf b;
	tr_buf_init(&b, 255);
	int rc = TR_OK;
	for (const char *p = pattern; *p && rc == TR_OK; p++) {
		if (strncmp(p, "{network}", 9) == 0) {
			rc = puppet_append_escaped(&b, network);
			p += 8;
		} else if (strncmp(p, "{id}", 4) == 0) {
			rc = puppet_append_escaped(&b, id);
			p += 3;
		} else {
			rc = tr_buf_append(&b, p, 1);
		}
	}
	/* A user id is at most 255 bytes; a longer one is refused by the caller. */
	if (rc != TR_OK) {
		tr_buf_cleanup(&b);
		return NULL;
	}
	return tr_buf_take(&b);
}

char *matrix_strip_reply_fallback(const char *body)
{
	const char *p = body;
	if (strncmp(p, "> <", 3) != 0)
		return tr_xstrdup(body);
	while (strncmp(p, "> ", 2) == 0 || strncmp(p, ">\n", 2) == 0) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			return tr_xstrdup(body);
		p = nl + 1;
	}
	if (*p == '\n')
		p++;
	return tr_xstrdup(p);
}

char *matrix_mxc_http(const char *hs_url, const char *mxc)
{
	if (!mxc || strncmp(mxc, "mxc://", 6) != 0 || strstr(mxc, ".."))
		return NULL;
	const char *rest = mxc + 6;
	if (!strchr(rest, '/') || strpbrk(rest, "?#\\ "))
		return NULL;
	return tr_xasprintf("%s/_matrix/media/v3/download/%s", hs_url, rest);
}

static char *ev_id(const struct matrix_map_ctx *ctx, const char *kind, const char *event_id)
{
	return tr_xasprintf("%s:%s:%s", ctx->connector, kind, event_id);
}

static void fill_author(const struct matrix_map_ctx *ctx, const char *room, const char *sender,
                        struct tr_event *out)
{
	out->author.id = tr_xstrdup(sender);
	out->author.name = tr_xstrdup(sender);
	const char *d = ctx->display ? ctx->display(ctx->arg, room, sender) : NULL;
	if (d && *d)
		out->author.display = tr_xstrdup(d);
}

/* The text of a message content (m.new_content for edits), as CommonMark. Matrix clients put
 * the markdown the user typed in body, so body is taken as CommonMark; emotes become italics. */
static char *content_text(const json_t *content, bool is_reply)
{
	const char *body = jstr(content, "body");
	const char *msgtype = jstr(content, "msgtype");
	if (!body)
		return NULL;
	char *text = is_reply ? matrix_strip_reply_fallback(body) : tr_xstrdup(body);
	if (msgtype && strcmp(msgtype, "m.emote") == 0 && *text) {
		char *e = tr_xasprintf("_%s_", text);
		free(text);
		text = e;
	}
	return text;
}

static void add_attachment(const struct matrix_map_ctx *ctx, const json_t *content,
                           struct tr_event *out)
{
	char *url = matrix_mxc_http(ctx->hs_url, jstr(content, "url"));
	if (!url)
		return;
	out->attachments = tr_xcalloc(1, sizeof(*out->attachments));
	out->n_attachments = 1;
	struct tr_attachment *a = &out->attachments[0];
	a->url = url;
	const char *name = jstr(content, "filename");
	a->name = tr_xstrdup(name ? name : jstr(content, "body"));
	const json_t *info = json_object_get(content, "info");
	a->mime = tr_xstrdup(jstr(info, "mimetype"));
	json_t *size = json_object_get(info, "size");
	a->size = json_is_integer(size) ? json_integer_value(size) : -1;
}

static int map_message(const json_t *ev, const char *event_id, const struct matrix_map_ctx *ctx,
                       struct tr_event *out)
{
	const json_t *content = json_object_get(ev, "content");
	const json_t *rel = json_object_get(content, "m.relates_to");
	const char *rel_type = jstr(rel, "rel_type");
	const char *in_reply = jstr(json_object_get(rel, "m.in_reply_to"), "event_id");
	const char *msgtype = jstr(content, "msgtype");
	if (!msgtype)
		return TR_E_NOTFOUND;
	if (rel_type && strcmp(rel_type, "m.replace") == 0) {
		const char *orig = jstr(rel, "event_id");
		const json_t *nc = json_object_get(content, "m.new_content");
		if (!orig || !json_is_object(nc))
			return TR_E_INVAL;
		out->type = TR_EV_EDIT;
		out->id = ev_id(ctx, "edit", event_id);
		out->msgid = tr_xstrdup(orig);
		out->target = tr_xstrdup(orig);
		out->text = content_text(nc, false);
		return out->text ? TR_OK : TR_E_INVAL;
	}
	out->type = TR_EV_MESSAGE;
	out->id = ev_id(ctx, "message", event_id);
	out->msgid = tr_xstrdup(event_id);
	bool falling_back = json_is_true(json_object_get(rel, "is_falling_back"));
	if (rel_type && strcmp(rel_type, "m.thread") == 0) {
		out->thread = tr_xstrdup(jstr(rel, "event_id"));
		/* In a thread, m.in_reply_to is only a fallback for clients without threads
		 * unless is_falling_back is false. */
		if (in_reply && !falling_back)
			out->reply_to = tr_xstrdup(in_reply);
	} else if (in_reply) {
		out->reply_to = tr_xstrdup(in_reply);
	}
	if (strcmp(msgtype, "m.image") == 0 || strcmp(msgtype, "m.file") == 0 ||
	    strcmp(msgtype, "m.video") == 0 || strcmp(msgtype, "m.audio") == 0) {
		add_attachment(ctx, content, out);
		/* The body of a file message is its file name or a caption. */
		const char *caption = jstr(content, "filename") ? jstr(content, "body") : NULL;
		if (caption && strcmp(caption, jstr(content, "filename")) != 0)
			out->text = tr_xstrdup(caption);
		return out->n_attachments ? TR_OK : TR_E_INVAL;
	}
	if (strcmp(msgtype, "m.text") != 0 && strcmp(msgtype, "m.notice") != 0 &&
	    strcmp(msgtype, "m.emote") != 0)
		return TR_E_NOTFOUND;
	out->text = content_text(content, in_reply != NULL);
	return out->text ? TR_OK : TR_E_INVAL;
}

int matrix_map_event(const json_t *ev, const char *room_id, const struct matrix_map_ctx *ctx,
                     struct tr_event *out)
{
	memset(out, 0, sizeof(*out));
	const char *type = jstr(ev, "type");
	const char *sender = jstr(ev, "sender");
	const char *event_id = jstr(ev, "event_id");
	const char *room = jstr(ev, "room_id");
	if (!room)
		room = room_id;
	if (!type || !sender || !event_id || !room)
		return TR_E_INVAL;
	if (matrix_is_own(ctx, sender))
		return TR_E_NOTFOUND;
	/* A redacted event arrives with its content pruned; nothing is left to bridge. */
	if (json_object_get(json_object_get(ev, "unsigned"), "redacted_because"))
		return TR_E_NOTFOUND;
	const json_t *content = json_object_get(ev, "content");
	if (!json_is_object(content))
		return TR_E_INVAL;
	json_t *ts = json_object_get(ev, "origin_server_ts");
	out->ts = json_is_integer(ts) ? json_integer_value(ts) : 0;
	int rc = TR_E_NOTFOUND;
	const char *state_key = jstr(ev, "state_key");
	if (strcmp(type, "m.room.message") == 0) {
		rc = map_message(ev, event_id, ctx, out);
	} else if (strcmp(type, "m.reaction") == 0) {
		const json_t *rel = json_object_get(content, "m.relates_to");
		const char *rt = jstr(rel, "rel_type");
		if (!rt || strcmp(rt, "m.annotation") != 0 || !jstr(rel, "event_id") ||
		    !jstr(rel, "key")) {
			rc = TR_E_INVAL;
		} else {
			out->type = TR_EV_REACTION;
			out->id = ev_id(ctx, "reaction", event_id);
			out->msgid = tr_xstrdup(event_id);
			out->target = tr_xstrdup(jstr(rel, "event_id"));
			out->reaction = tr_xstrdup(jstr(rel, "key"));
			rc = TR_OK;
		}
	} else if (strcmp(type, "m.room.redaction") == 0) {
		/* Room versions up to 10 carry redacts at the top level, 11 in content. */
		const char *redacts = jstr(ev, "redacts");
		if (!redacts)
			redacts = jstr(content, "redacts");
		if (!redacts) {
			rc = TR_E_INVAL;
		} else {
			out->type = TR_EV_DELETE;
			out->id = ev_id(ctx, "delete", event_id);
			out->target = tr_xstrdup(redacts);
			rc = TR_OK;
		}
	} else if (strcmp(type, "m.room.topic") == 0 && state_key && !*state_key) {
		const char *topic = jstr(content, "topic");
		out->type = TR_EV_TOPIC;
		out->id = ev_id(ctx, "topic", event_id);
		out->text = tr_xstrdup(topic ? topic : "");
		rc = TR_OK;
	} else if (strcmp(type, "m.room.member") == 0 && state_key &&
	           strcmp(state_key, sender) == 0) {
		const char *mem = jstr(content, "membership");
		const char *prev = jstr(
		    json_object_get(json_object_get(ev, "unsigned"), "prev_content"), "membership");
		/* A profile change is join -> join: not a join. */
		if (mem && strcmp(mem, "join") == 0 && !(prev && strcmp(prev, "join") == 0)) {
			out->type = TR_EV_JOIN;
			out->id = ev_id(ctx, "join", event_id);
			rc = TR_OK;
		} else if (mem && strcmp(mem, "leave") == 0) {
			out->type = TR_EV_LEAVE;
			out->id = ev_id(ctx, "leave", event_id);
			rc = TR_OK;
		}
	}
	if (rc != TR_OK) {
		tr_event_cleanup(out);
		return rc;
	}
	out->channel = tr_xstrdup(room);
	fill_author(ctx, room, sender, out);
	return TR_OK;
}

/* "{name}" in tpl replaced by name with CommonMark's special characters escaped. */
static char *prefix_md(const char *tpl, const char *name)
{
	struct tr_buf b;
	tr_buf_init(&b, 4096);
	int rc = TR_OK;
	for (const char *p = tpl; *p && rc == TR_OK; p++) {
		if (strncmp(p, "{name}", 6) == 0) {
			for (const char *n = name; *n && rc == TR_OK; n++) {
				if (strchr("\\`*_[]<>#!&~|", *n))
					rc = tr_buf_append(&b, "\\", 1);
				if (rc == TR_OK && *n != '\n' && *n != '\r')
					rc = tr_buf_append(&b, n, 1);
			}
			p += 5;
		} else {
			rc = tr_buf_append(&b, p, 1);
		}
	}
	return tr_buf_take(&b);
}

/* The text of HTML without tags (only what tr_format_html escapes is decoded). */
static char *html_unescape(const char *h)
{
	static const struct {
		const char *ent;
		char ch;
	} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}};
	struct tr_buf b;
	tr_buf_init(&b, strlen(h) + 1);
	int rc = TR_OK;
	for (const char *p = h; *p && rc == TR_OK;) {
		size_t k = 0;
		for (; k < TR_ARRAY_LEN(ents); k++)
			if (strncmp(p, ents[k].ent, strlen(ents[k].ent)) == 0)
				break;
		if (k < TR_ARRAY_LEN(ents)) {
			rc = tr_buf_append(&b, &ents[k].ch, 1);
			p += strlen(ents[k].ent);
		} else {
			rc = tr_buf_append(&b, p++, 1);
		}
	}
	return tr_buf_take(&b);
}

/* body + optional HTML for md text. A message without markup has the literal text as body
 * (CommonMark's backslash escapes resolved); one with markup keeps the CommonMark source as
 * body, as Matrix clients do. */
static json_t *text_content(const char *md, const char *msgtype)
{
	char *safe = tr_mentions_neutralise(md, strlen(md));
	char *html = NULL;
	bool plain = true;
	json_t *c = json_object();
	json_object_set_new(c, "msgtype", json_string(msgtype));
	int rc = tr_format_html(safe, strlen(safe), &html, &plain);
	if (rc == TR_OK && plain) {
		char *text = html_unescape(html);
		json_object_set_new(c, "body", json_string(text));
		free(text);
	} else {
		json_object_set_new(c, "body", json_string(safe));
	}
	if (rc == TR_OK && !plain) {
		json_object_set_new(c, "format", json_string("org.matrix.custom.html"));
		json_object_set_new(c, "formatted_body", json_string(html));
	}
	free(html);
	free(safe);
	return c;
}

json_t *matrix_message_content(const struct tr_event *ev, const char *prefix_tpl,
                               const char *prefix_name)
{
	if (ev->type != TR_EV_MESSAGE && ev->type != TR_EV_EDIT)
		return NULL;
	const char *text = ev->text ? ev->text : "";
	char *md = NULL;
	if (prefix_name && prefix_tpl) {
		char *p = prefix_md(prefix_tpl, prefix_name);
		md = tr_xasprintf("%s%s", p, text);
		free(p);
	} else {
		md = tr_xstrdup(text);
	}
	json_t *c = text_content(md, "m.text");
	free(md);
	if (!c)
		return NULL;
	/* Every event says whom it mentions: nobody, so a bridged @room never pings (v1.7+). */
	json_object_set_new(c, "m.mentions", json_object());
	if (ev->type == TR_EV_EDIT) {
		json_t *nc = json_deep_copy(c);
		json_t *outer = json_object();
		const char *body = json_string_value(json_object_get(c, "body"));
		char *star = tr_xasprintf("* %s", body ? body : "");
		json_object_set_new(outer, "msgtype", json_string("m.text"));
		json_object_set_new(outer, "body", json_string(star));
		free(star);
		const char *fb = json_string_value(json_object_get(c, "formatted_body"));
		if (fb) {
			char *fstar = tr_xasprintf("* %s", fb);
			json_object_set_new(outer, "format", json_string("org.matrix.custom.html"));
			json_object_set_new(outer, "formatted_body", json_string(fstar));
			free(fstar);
		}
		json_object_set_new(outer, "m.new_content", nc);
		json_object_set_new(outer, "m.mentions", json_object());
		json_object_set_new(outer, "m.relates_to",
		                    json_pack("{s:s, s:s}", "rel_type", "m.replace", "event_id",
		                              ev->dest.target ? ev->dest.target : ""));
		json_decref(c);
		return outer;
	}
	if (ev->dest.thread) {
		json_t *rel =
		    json_pack("{s:s, s:s}", "rel_type", "m.thread", "event_id", ev->dest.thread);
		const char *r = ev->dest.reply_to ? ev->dest.reply_to : ev->dest.thread;
		json_object_set_new(rel, "is_falling_back",
		                    json_boolean(ev->dest.reply_to == NULL));
		json_object_set_new(rel, "m.in_reply_to", json_pack("{s:s}", "event_id", r));
		json_object_set_new(c, "m.relates_to", rel);
	} else if (ev->dest.reply_to) {
		json_object_set_new(
		    c, "m.relates_to",
		    json_pack("{s:{s:s}}", "m.in_reply_to", "event_id", ev->dest.reply_to));
	}
	return c;
}

json_t *matrix_attachment_content(const struct tr_event *ev, const struct tr_attachment *a,
                                  const char *mxc)
{
	const char *mime = a->mime ? a->mime : "application/octet-stream";
	const char *msgtype = "m.file";
	if (strncmp(mime, "image/", 6) == 0)
		msgtype = "m.image";
	else if (strncmp(mime, "video/", 6) == 0)
		msgtype = "m.video";
	else if (strncmp(mime, "audio/", 6) == 0)
		msgtype = "m.audio";
	const char *name = a->name ? a->name : "file";
	json_t *c =
	    json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{}}", "msgtype", msgtype, "body", name,
	              "filename", name, "url", mxc, "info", "mimetype", mime, "m.mentions");
	if (a->size >= 0)
		json_object_set_new(json_object_get(c, "info"), "size", json_integer(a->size));
	if (ev->dest.thread)
		json_object_set_new(c, "m.relates_to",
		                    json_pack("{s:s, s:s, s:b, s:{s:s}}", "rel_type", "m.thread",
		                              "event_id", ev->dest.thread, "is_falling_back", 1,
		                              "m.in_reply_to", "event_id", ev->dest.thread));
	return c;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= 0x1f;
	h *= 1099511628211ULL;
	return h;
}

char *matrix_txn_id(const struct tr_event *ev, unsigned part)
{
	uint64_t h = 14695981039346656037ULL;
	h = fnv1a(h, ev->id);
	h = fnv1a(h, ev->dest.connector);
	h = fnv1a(h, ev->dest.channel);
	uint64_t h2 = fnv1a(h ^ 0x9e3779b97f4a7c15ULL, ev->id);
	return tr_xasprintf("tr%016llx%016llx.%u", (unsigned long long)h, (unsigned long long)h2,
	                    part);
}

char *matrix_registration_yaml(const struct matrix_cfg *cfg, const char *as_token,
                               const char *hs_token)
{
	/* The namespace regex: the pattern's literal prefix, escaped for a regex. */
	struct tr_buf re;
	tr_buf_init(&re, 1024);
	size_t pl = pattern_prefix_len(cfg->puppet_pattern);
	int rc = TR_OK;
	for (size_t i = 0; i < pl && rc == TR_OK; i++) {
		if (strchr(".\\+*?[^]$(){}=!<>|:-#/", cfg->puppet_pattern[i]))
			rc = tr_buf_append(&re, "\\", 1);
		if (rc == TR_OK)
			rc = tr_buf_append(&re, &cfg->puppet_pattern[i], 1);
	}
	struct tr_buf srv;
	tr_buf_init(&srv, 1024);
	for (const char *p = cfg->server_name; *p && rc == TR_OK; p++) {
		if (strchr(".\\+*?[^]$(){}=!<>|:-#/", *p))
			rc = tr_buf_append(&srv, "\\", 1);
		if (rc == TR_OK)
			rc = tr_buf_append(&srv, p, 1);
	}
	char *url = cfg->as_url ? tr_xstrdup(cfg->as_url)
	                        : tr_xasprintf("http://%s",
	                                       cfg->as_listen ? cfg->as_listen : "127.0.0.1:29330");
	char *yaml = tr_xasprintf("# trestle-matrix application service registration: give this "
	                          "file to the homeserver\n"
	                          "# (Synapse: app_service_config_files) and the same tokens to "
	                          "trestle-matrix\n"
	                          "# (MATRIX_AS_TOKEN, MATRIX_HS_TOKEN).\n"
	                          "id: \"%s\"\n"
	                          "url: \"%s\"\n"
	                          "as_token: \"%s\"\n"
	                          "hs_token: \"%s\"\n"
	                          "sender_localpart: \"%s\"\n"
	                          "rate_limited: false\n"
	                          "receive_ephemeral: false\n"
	                          "namespaces:\n"
	                          "  users:\n"
	                          "    - exclusive: true\n"
	                          "      regex: '@%s.*:%s'\n"
	                          "  aliases: []\n"
	                          "  rooms: []\n",
	                          cfg->as_id, url, as_token, hs_token, cfg->bot_localpart,
	                          tr_buf_str(&re), tr_buf_str(&srv));
	free(url);
	tr_buf_cleanup(&re);
	tr_buf_cleanup(&srv);
	return yaml;
}
