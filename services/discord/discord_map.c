/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Pure mapping between Discord's payloads and bus events: gateway dispatches to events (our own
 * and our webhooks' messages dropped), out events to webhook bodies (escaped markdown, reply
 * quote line, attachments as links, allowed_mentions none), webhook usernames, gateway URLs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "alloc.h"
#include "buf.h"
#include "discord.h"
#include "format.h"
#include "format_discord.h"
#include "utf8.h"

#define DC_CDN "https://cdn.discordapp.com"

static const char *dc_str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s && *s ? s : NULL;
}

static char *dc_dup(const char *s)
{
	return s ? tr_xstrdup(s) : NULL;
}

static const char *dc_name_cb(void *arg, char kind, const char *id)
{
	const struct dc_map_ctx *ctx = arg;
	return ctx->name ? ctx->name(ctx->arg, kind, id) : NULL;
}

/* Names of the users a message mentions, from its mentions array, before the context's. */
struct dc_names {
	const json_t *mentions;
	const struct dc_map_ctx *ctx;
};

static const char *dc_msg_name(void *arg, char kind, const char *id)
{
	const struct dc_names *n = arg;
	if (kind == '@') {
		size_t i;
		const json_t *u;
		json_array_foreach(n->mentions, i, u)
		{
			const char *uid = dc_str(u, "id");
			if (uid && strcmp(uid, id) == 0) {
				const json_t *mem = json_object_get(u, "member");
				const char *nick = dc_str(mem, "nick");
				const char *g = dc_str(u, "global_name");
				return nick ? nick : g ? g : dc_str(u, "username");
			}
		}
	}
	return dc_name_cb((void *)n->ctx, kind, id);
}

static int dc_common(const json_t *d, const struct dc_map_ctx *ctx, struct tr_event *out,
                     const char **msgid)
{
	const char *cid = dc_str(d, "channel_id");
	*msgid = dc_str(d, "id");
	if (!cid || !*msgid)
		return TR_E_INVAL;
	const char *parent = ctx->thread_parent ? ctx->thread_parent(ctx->arg, cid) : NULL;
	out->channel = tr_xstrdup(parent ? parent : cid);
	if (parent)
		out->thread = tr_xstrdup(cid);
	return TR_OK;
}

static void dc_author(const json_t *d, struct tr_author *a)
{
	const json_t *u = json_object_get(d, "author");
	const char *id = dc_str(u, "id");
	a->id = tr_xstrdup(id ? id : "unknown");
	a->name = dc_dup(dc_str(u, "username"));
	const char *nick = dc_str(json_object_get(d, "member"), "nick");
	const char *g = dc_str(u, "global_name");
	a->display = dc_dup(nick ? nick : g);
	const char *av = dc_str(u, "avatar");
	if (id && av && strlen(av) < 64)
		a->avatar = tr_xasprintf(DC_CDN "/avatars/%s/%s.png", id, av);
}

/* The text of a message: content with tokens resolved, then stickers as names. */
static char *dc_text(const json_t *d, const struct dc_map_ctx *ctx)
{
	const char *content = json_string_value(json_object_get(d, "content"));
	struct dc_names names = {json_object_get(d, "mentions"), ctx};
	char *text = NULL;
	if (content &&
	    tr_discord_to_commonmark(content, strlen(content), dc_msg_name, &names, &text) != TR_OK)
		return NULL;
	struct tr_buf b;
	tr_buf_init(&b, TR_EVENT_MAX_TEXT);
	int rc = tr_buf_appends(&b, text ? text : "");
	free(text);
	size_t i;
	const json_t *s;
	json_array_foreach(json_object_get(d, "sticker_items"), i, s)
	{
		const char *name = dc_str(s, "name");
		if (!name || !tr_utf8_valid(name, strlen(name)))
			continue;
		char *esc = tr_discord_escape(name, strlen(name));
		if (rc == TR_OK)
			rc = tr_buf_printf(&b, "%s[sticker: %s]", b.len ? "\n" : "", esc);
		free(esc);
	}
	if (rc != TR_OK) {
		tr_buf_cleanup(&b);
		return NULL;
	}
	return tr_buf_take(&b);
}

static void dc_attachments(const json_t *d, struct tr_event *out)
{
	const json_t *arr = json_object_get(d, "attachments");
	size_t n = json_array_size(arr);
	if (n > TR_EVENT_MAX_ATTACHMENTS)
		n = TR_EVENT_MAX_ATTACHMENTS;
	if (!n)
		return;
	out->attachments = tr_xcalloc(n, sizeof(*out->attachments));
	for (size_t i = 0; i < n; i++) {
		const json_t *a = json_array_get(arr, i);
		const char *url = dc_str(a, "url");
		if (!url || strlen(url) >= TR_EVENT_MAX_NAME)
			continue;
		struct tr_attachment *t = &out->attachments[out->n_attachments++];
		t->url = tr_xstrdup(url);
		const char *fn = dc_str(a, "filename");
		t->name = fn && strlen(fn) < TR_EVENT_MAX_NAME ? tr_xstrdup(fn) : NULL;
		const char *ct = dc_str(a, "content_type");
		t->mime = ct && strlen(ct) < 256 ? tr_xstrdup(ct) : NULL;
		const json_t *sz = json_object_get(a, "size");
		t->size = json_is_integer(sz) ? json_integer_value(sz) : -1;
	}
}

int dc_map_message(const json_t *d, bool update, const struct dc_map_ctx *ctx, struct tr_event *out)
{
	memset(out, 0, sizeof(*out));
	const json_t *author = json_object_get(d, "author");
	const char *wh = dc_str(d, "webhook_id");
	const char *aid = dc_str(author, "id");
	if ((wh && ctx->own_webhook && ctx->own_webhook(ctx->arg, wh)) ||
	    (aid && ctx->self_id && strcmp(aid, ctx->self_id) == 0))
		return TR_E_NOTFOUND;
	/* An update without content or edit time is an embed unfurl, not an edit. */
	const char *edited = dc_str(d, "edited_timestamp");
	if (update && (!edited || !json_is_string(json_object_get(d, "content"))))
		return TR_E_NOTFOUND;
	const json_t *type = json_object_get(d, "type");
	json_int_t t = json_is_integer(type) ? json_integer_value(type) : 0;
	if (t != 0 && t != 19 && t != 21)
		return TR_E_NOTFOUND; /* joins, pins, boosts...: system messages */
	if (!author || !aid)
		return TR_E_INVAL;
	const char *mid;
	int rc = dc_common(d, ctx, out, &mid);
	if (rc != TR_OK)
		goto out;
	out->type = update ? TR_EV_EDIT : TR_EV_MESSAGE;
	out->msgid = tr_xstrdup(mid);
	dc_author(d, &out->author);
	out->text = dc_text(d, ctx);
	if (!out->text) {
		rc = TR_E_INVAL;
		goto out;
	}
	dc_attachments(d, out);
	if (update) {
		out->target = tr_xstrdup(mid);
		out->id = tr_xasprintf("%s:edit:%s:%s", ctx->connector, mid, edited);
	} else {
		out->id = tr_xasprintf("%s:message:%s", ctx->connector, mid);
		const char *ref = dc_str(json_object_get(d, "message_reference"), "message_id");
		if (t == 19 && ref)
			out->reply_to = tr_xstrdup(ref);
	}
out:
	if (rc != TR_OK)
		tr_event_cleanup(out);
	return rc;
}

int dc_map_delete(const json_t *d, const struct dc_map_ctx *ctx, struct tr_event *out)
{
	memset(out, 0, sizeof(*out));
	const char *mid;
	int rc = dc_common(d, ctx, out, &mid);
	if (rc != TR_OK) {
		tr_event_cleanup(out);
		return rc;
	}
	out->type = TR_EV_DELETE;
	out->target = tr_xstrdup(mid);
	out->author.id = tr_xstrdup("unknown");
	out->id = tr_xasprintf("%s:delete:%s", ctx->connector, mid);
	return TR_OK;
}

int dc_map_reaction(const json_t *d, bool removed, const char *tag, const struct dc_map_ctx *ctx,
                    struct tr_event *out)
{
	memset(out, 0, sizeof(*out));
	const char *uid = dc_str(d, "user_id");
	const char *cid = dc_str(d, "channel_id");
	const char *mid = dc_str(d, "message_id");
	const json_t *emoji = json_object_get(d, "emoji");
	const char *ename = dc_str(emoji, "name");
	if (!uid || !cid || !mid || !ename)
		return TR_E_INVAL;
	if (ctx->self_id && strcmp(uid, ctx->self_id) == 0)
		return TR_E_NOTFOUND;
	const char *parent = ctx->thread_parent ? ctx->thread_parent(ctx->arg, cid) : NULL;
	out->channel = tr_xstrdup(parent ? parent : cid);
	if (parent)
		out->thread = tr_xstrdup(cid);
	out->type = TR_EV_REACTION;
	out->target = tr_xstrdup(mid);
	/* A custom emoji has no meaning elsewhere: its name as a shortcode. */
	out->reaction = dc_str(emoji, "id") ? tr_xasprintf(":%s:", ename) : tr_xstrdup(ename);
	out->removed = removed;
	out->author.id = tr_xstrdup(uid);
	const json_t *mem = json_object_get(d, "member");
	const json_t *u = json_object_get(mem, "user");
	out->author.name = dc_dup(dc_str(u, "username"));
	const char *nick = dc_str(mem, "nick");
	out->author.display = dc_dup(nick ? nick : dc_str(u, "global_name"));
	if (!out->author.name && ctx->name)
		out->author.name = dc_dup(ctx->name(ctx->arg, '@', uid));
	out->id = tr_xasprintf("%s:reaction:%s:%s:%s", ctx->connector, mid, uid, tag);
	return TR_OK;
}

char *dc_username(const struct tr_author *a)
{
	const char *src = a->display ? a->display : a->name ? a->name : a->id;
	struct tr_buf b;
	tr_buf_init(&b, 1024);
	size_t chars = 0;
	int rc = TR_OK;
	for (const char *p = src ? src : ""; *p && chars < 80 && rc == TR_OK;) {
		if (*p == '@' || *p == '#' || *p == ':' || *p == '`' || (unsigned char)*p < 0x20) {
			p++;
			continue;
		}
		/* "discord" and "clyde" are refused anywhere in the name: break them up. */
		if (strncasecmp(p, "discord", 7) == 0 || strncasecmp(p, "clyde", 5) == 0) {
			rc = tr_buf_append(&b, p, 1);
			if (rc == TR_OK)
				rc = tr_buf_appends(&b, "\xe2\x80\x8b"); /* ZERO WIDTH SPACE */
			p++;
			chars += 2;
			continue;
		}
		size_t n = 1;
		while ((p[n] & 0xc0) == 0x80)
			n++;
		rc = tr_buf_append(&b, p, n);
		p += n;
		chars++;
	}
	char *s = tr_buf_take(&b);
	/* Leading/trailing spaces are trimmed by Discord and an empty name is refused. */
	size_t len = strlen(s);
	while (len && s[len - 1] == ' ')
		s[--len] = '\0';
	size_t lead = strspn(s, " ");
	if (lead)
		memmove(s, s + lead, len - lead + 1);
	if (!*s || strcasecmp(s, "everyone") == 0 || strcasecmp(s, "here") == 0) {
		char *n = tr_xasprintf("%s (bridge)", *s ? s : "someone");
		free(s);
		s = n;
	}
	return s;
}

char *dc_content(const struct tr_event *ev, const char *reply_name, const char *reply_excerpt,
                 const char *reply_url)
{
	char *md = NULL;
	const char *text = ev->text ? ev->text : "";
	if (tr_format_discord(text, strlen(text), &md) != TR_OK)
		return NULL;
	struct tr_buf b;
	tr_buf_init(&b, TR_EVENT_MAX_TEXT * 2);
	int rc = TR_OK;
	if (reply_url) {
		rc = tr_buf_appends(&b, "> \xe2\x86\xaa ");
		if (rc == TR_OK && reply_name) {
			char *n = tr_discord_escape(reply_name, strlen(reply_name));
			rc = tr_buf_printf(&b, "**%s**: ", n);
			free(n);
		}
		if (rc == TR_OK && reply_excerpt) {
			/* One line of at most 80 characters, escaped. */
			size_t l = strcspn(reply_excerpt, "\n");
			char *cut = tr_format_truncate(reply_excerpt, l, 0, 80, TR_DIALECT_PLAIN);
			char *e = tr_discord_escape(cut, strlen(cut));
			rc = tr_buf_printf(&b, "%s ", e);
			free(e);
			free(cut);
		}
		if (rc == TR_OK)
			rc = tr_buf_printf(&b, "[\xe2\x86\x97](<%s>)\n", reply_url);
	}
	if (rc == TR_OK)
		rc = tr_buf_appends(&b, md);
	free(md);
	for (size_t i = 0; i < ev->n_attachments && rc == TR_OK; i++) {
		const struct tr_attachment *a = &ev->attachments[i];
		if (strncasecmp(a->url, "https://", 8) != 0 &&
		    strncasecmp(a->url, "http://", 7) != 0)
			continue;
		char *name = a->name ? tr_discord_escape(a->name, strlen(a->name)) : NULL;
		rc = tr_buf_printf(&b, "%s\xf0\x9f\x93\x8e [%s](<%s>)", b.len ? "\n" : "",
		                   name && *name ? name : "attachment", a->url);
		free(name);
	}
	if (rc != TR_OK) {
		tr_buf_cleanup(&b);
		return NULL;
	}
	return tr_buf_take(&b);
}

json_t *dc_webhook_body(const char *content, const struct tr_event *ev, bool execute)
{
	json_t *body = json_object();
	json_object_set_new(body, "content", json_string(content));
	json_t *am = json_object();
	json_object_set_new(am, "parse", json_array());
	json_object_set_new(body, "allowed_mentions", am);
	if (execute) {
		char *u = dc_username(&ev->author);
		json_object_set_new(body, "username", json_string(u));
		free(u);
		const char *av = ev->author.avatar;
		if (av && strlen(av) <= 2048 &&
		    (strncasecmp(av, "https://", 8) == 0 || strncasecmp(av, "http://", 7) == 0))
			json_object_set_new(body, "avatar_url", json_string(av));
	}
	return body;
}

char *dc_upload_name(const char *name, const char *url)
{
	const char *src = name && *name ? name : NULL;
	size_t n = src ? strlen(src) : 0;
	if (!src && url) {
		size_t end = strcspn(url, "?#");
		size_t start = end;
		while (start && url[start - 1] != '/')
			start--;
		if (end > start && memchr(url, ':', start)) {
			src = url + start;
			n = end - start;
		}
	}
	if (!src || !n) {
		src = "file";
		n = 4;
	}
	if (n > 200) {
		n = 200;
		while (n && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--; /* keep whole UTF-8 sequences */
	}
	char *s = tr_xstrndup(src, n);
	for (char *p = s; *p; p++)
		if (*p == '"' || *p == '\\' || *p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
	return s;
}

/* A MIME type safe in a part header, else application/octet-stream. */
static const char *dc_mime(const char *mime)
{
	if (!mime || !*mime || strlen(mime) > 100 || !strchr(mime, '/'))
		return "application/octet-stream";
	for (const char *p = mime; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == '"' || *p == 0x7f)
			return "application/octet-stream";
	return mime;
}

/* memmem is not POSIX. */
static bool dc_contains(const char *hay, size_t n, const char *needle, size_t k)
{
	for (size_t i = 0; k && i + k <= n; i++) {
		const char *p = memchr(hay + i, needle[0], n - i - k + 1);
		if (!p)
			return false;
		i = (size_t)(p - hay);
		if (memcmp(p, needle, k) == 0)
			return true;
	}
	return false;
}

int dc_multipart(json_t *payload, const struct dc_upload *up, size_t n, const char *boundary,
                 struct tr_buf *out)
{
	size_t bl = strlen(boundary);
	for (size_t i = 0; i < n; i++)
		if (dc_contains(up[i].data, up[i].len, boundary, bl))
			return TR_E_INVAL;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(
		    arr, json_pack("{s:I,s:s}", "id", (json_int_t)i, "filename", up[i].name));
	json_object_set_new(payload, "attachments", arr);
	char *js = json_dumps(payload, JSON_COMPACT);
	if (!js)
		return TR_E_NOMEM;
	int rc = tr_buf_printf(out,
	                       "--%s\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n"
	                       "Content-Type: application/json\r\n\r\n%s\r\n",
	                       boundary, js);
	free(js);
	for (size_t i = 0; i < n && rc == TR_OK; i++) {
		rc = tr_buf_printf(out,
		                   "--%s\r\nContent-Disposition: form-data; name=\"files[%zu]\"; "
		                   "filename=\"%s\"\r\nContent-Type: %s\r\n\r\n",
		                   boundary, i, up[i].name, dc_mime(up[i].mime));
		if (rc == TR_OK)
			rc = tr_buf_append(out, up[i].data, up[i].len);
		if (rc == TR_OK)
			rc = tr_buf_appends(out, "\r\n");
	}
	if (rc == TR_OK)
		rc = tr_buf_printf(out, "--%s--\r\n", boundary);
	return rc;
}

char *dc_gateway_url(const char *base)
{
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	const char *auth = strstr(base, "://");
	bool has_path = auth && memchr(auth + 3, '/', n - (size_t)(auth + 3 - base)) != NULL;
	return tr_xasprintf("%.*s%s?v=10&encoding=json", (int)n, base, has_path ? "" : "/");
}

uint64_t dc_first_heartbeat_ms(uint64_t interval, uint32_t rnd)
{
	return (uint64_t)((double)interval * ((double)rnd / 4294967296.0));
}

int dc_snowflake_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	return strcmp(a, b);
}

const char *dc_close_words(int code, bool *fatal)
{
	*fatal = true;
	switch (code) {
	case 4004:
		return "authentication failed (4004): DISCORD_BOT_TOKEN is wrong or was reset; "
		       "copy the bot token again from the Developer Portal (Bot > Reset Token)";
	case 4010:
		return "invalid shard (4010)";
	case 4011:
		return "sharding required (4011): the bot is in too many guilds for one connection";
	case 4012:
		return "invalid API version (4012)";
	case 4013:
		return "invalid intents (4013)";
	case 4014:
		return "disallowed intents (4014): turn on \"Message Content Intent\" under Bot > "
		       "Privileged Gateway Intents in the Discord Developer Portal";
	default:
		*fatal = false;
		return "connection closed";
	}
}
