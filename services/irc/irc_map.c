/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Pure mapping between IRC and the bus: a channel line (PRIVMSG, NOTICE, CTCP ACTION, TOPIC,
 * JOIN/PART/KICK/QUIT) to a struct tr_event, and an out event to the PRIVMSG lines that carry
 * it (dialect rendering, author prefix with a zero-width joiner, replies, correction lines,
 * splitting within the 512-byte line limit). */
#include <stdio.h>
#include <string.h>
#include "alloc.h"
#include "format.h"
#include "irc.h"

/* FNV-1a: a short stable digest for ids derived from server-time. */
static uint32_t irc_fnv(uint32_t h, const char *s)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static char *irc_to_md(const char *text)
{
	char *md = NULL;
	if (tr_format_to_commonmark(text, strlen(text), TR_DIALECT_IRC, &md) != TR_OK)
		return NULL;
	return md;
}

int irc_map_in(const struct irc_msg *m, const struct irc_in_ctx *ctx, struct tr_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	char nick[IRC_NICK_MAX];
	if (!ctx->channel || !irc_prefix_nick(m->prefix, nick, sizeof(nick)))
		return TR_E_NOTFOUND;
	const char *cmd = m->command;
	const char *subject = nick; /* whom the event is about */
	char *text = NULL;
	enum tr_event_type type;
	if (strcmp(cmd, "PRIVMSG") == 0 || strcmp(cmd, "NOTICE") == 0) {
		const char *body = irc_msg_param(m, 1);
		type = TR_EV_MESSAGE;
		if (body[0] == '\x01') {
			/* CTCP: only ACTION (/me) is conversation; VERSION, PING... are not. */
			size_t n = strlen(body + 1);
			if (n && body[n] == '\x01')
				n--;
			if (cmd[0] != 'P' || n < 7 || strncmp(body + 1, "ACTION ", 7) != 0)
				return TR_E_NOTFOUND;
			char *act = tr_xstrndup(body + 8, n - 7);
			char *md = irc_to_md(act);
			free(act);
			if (!md)
				return TR_E_INVAL;
			text = tr_xasprintf("/me %s", md);
			free(md);
		} else {
			text = irc_to_md(body);
			if (!text)
				return TR_E_INVAL;
		}
	} else if (strcmp(cmd, "TOPIC") == 0) {
		type = TR_EV_TOPIC;
		text = irc_to_md(irc_msg_param(m, 1));
		if (!text)
			return TR_E_INVAL;
	} else if (strcmp(cmd, "JOIN") == 0 && ctx->joins) {
		type = TR_EV_JOIN;
	} else if ((strcmp(cmd, "PART") == 0 || strcmp(cmd, "QUIT") == 0) && ctx->joins) {
		type = TR_EV_LEAVE;
	} else if (strcmp(cmd, "KICK") == 0 && ctx->joins && m->n_params >= 2) {
		type = TR_EV_LEAVE;
		subject = irc_msg_param(m, 1);
	} else {
		return TR_E_NOTFOUND;
	}
	/* Our own lines (echo-message, or our nick seen otherwise) are never bridged back. */
	if (irc_caseeq(subject, ctx->nick) || irc_caseeq(nick, ctx->nick)) {
		free(text);
		return TR_E_NOTFOUND;
	}
	const char *msgid = irc_msg_tag(m, "msgid");
	const char *stime = irc_msg_tag(m, "time");
	int64_t ts = 0;
	if (stime && !irc_parse_time(stime, &ts))
		ts = 0;
	char *key;
	if (msgid && *msgid) {
		key = tr_xstrdup(msgid);
	} else if (ts) {
		/* No msgid: server-time plus a digest of who/what is deterministic for one line. */
		uint32_t h = irc_fnv(2166136261u, tr_event_type_name(type));
		h = irc_fnv(h, subject);
		h = irc_fnv(h, text);
		key = tr_xasprintf("t%lld-%08x", (long long)ts, h);
	} else {
		key = tr_xasprintf("l%llu-%llu", (unsigned long long)ctx->boot_ms,
		                   (unsigned long long)++*ctx->counter);
	}
	ev->id = tr_xasprintf("%s:%s:%s", ctx->connector, ctx->channel, key);
	ev->type = type;
	ev->channel = tr_xstrdup(ctx->channel);
	if (type == TR_EV_MESSAGE)
		ev->msgid = key;
	else
		free(key);
	ev->ts = ts;
	ev->author.id = tr_xstrdup(subject);
	ev->author.name = tr_xstrdup(subject);
	ev->text = text;
	return TR_OK;
}

void irc_out_cleanup(struct irc_out *out)
{
	if (out->lines) {
		for (size_t i = 0; i < out->n; i++)
			free(out->lines[i]);
		free(out->lines);
	}
	memset(out, 0, sizeof(*out));
}

/* Drops what must never reach IRC from rendered text: CR (line injection is also refused by
 * the builder, this keeps the message), NUL cannot occur, \x01 would start a CTCP. */
static void irc_scrub(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++)
		if (*r != '\r' && *r != '\x01')
			*w++ = *r;
	*w = '\0';
}

static const char *irc_author_name(const struct tr_event *ev)
{
	if (ev->author.display && *ev->author.display)
		return ev->author.display;
	if (ev->author.name && *ev->author.name)
		return ev->author.name;
	return ev->author.id ? ev->author.id : "?";
}

/* Splits body into PRIVMSG lines, each "head + piece" (+ \x01 around actions). */
static int irc_emit(const char *body, const char *head, bool action, const char *reply_tag,
                    const struct irc_out_ctx *ctx, struct irc_out *out)
{
	size_t chan_len = strlen(ctx->channel);
	size_t fixed = ctx->self_prefix_len + strlen("PRIVMSG ") + chan_len + strlen(" :") +
	               strlen(head) + 2 +
	               (action ? strlen("\x01"
	                                "ACTION \x01")
	                       : 0);
	if (fixed + 16 > IRC_LINE_MAX)
		return TR_E_TOOBIG;
	size_t budget = IRC_LINE_MAX - fixed;
	char **pieces = NULL;
	size_t n = 0;
	int rc = tr_format_split(body, strlen(body), budget, TR_DIALECT_IRC, &pieces, &n);
	if (rc != TR_OK)
		return rc;
	out->lines = tr_xcalloc(n + 1, sizeof(char *));
	struct tr_buf line;
	tr_buf_init(&line, IRC_TAGS_MAX + IRC_LINE_MAX);
	for (size_t i = 0; i < n && rc == TR_OK; i++) {
		char *content = tr_xasprintf("%s%s%s%s",
		                             action ? "\x01"
		                                      "ACTION "
		                                    : "",
		                             head, pieces[i], action ? "\x01" : "");
		const char *params[2] = {ctx->channel, content};
		struct irc_tag tag = {"+draft/reply", reply_tag};
		tr_buf_reset(&line);
		rc = irc_line_build(&line, &tag, i == 0 && reply_tag ? 1 : 0, "PRIVMSG", 2, params,
		                    NULL);
		free(content);
		if (rc == TR_OK)
			out->lines[out->n++] = tr_xstrndup(line.data, line.len);
	}
	tr_buf_cleanup(&line);
	tr_format_pieces_free(pieces);
	if (rc != TR_OK)
		irc_out_cleanup(out);
	return rc;
}

static char *irc_render(const char *md)
{
	char *r = NULL;
	if (tr_format_render(md, strlen(md), TR_DIALECT_IRC, &r) != TR_OK)
		return NULL;
	irc_scrub(r);
	return r;
}

int irc_map_out(const struct tr_event *ev, const struct irc_out_ctx *ctx, struct irc_out *out)
{
	memset(out, 0, sizeof(*out));
	const struct irc_config *cfg = ctx->cfg;
	if (!irc_is_channel(ctx->channel))
		return TR_E_INVAL;
	char *guarded = irc_name_guard(irc_author_name(ev));
	/* A bridged name is at most 64 bytes on IRC: longer ones would eat every line's budget. */
	if (strlen(guarded) > 64) {
		char *t = tr_format_truncate(guarded, strlen(guarded), 64, 0, TR_DIALECT_PLAIN);
		free(guarded);
		guarded = t;
	}
	char *body = NULL, *head = NULL;
	bool action = false;
	const char *reply_tag = NULL;
	int rc = TR_OK;
	switch (ev->type) {
	case TR_EV_MESSAGE: {
		struct tr_buf md;
		tr_buf_init(&md, 2 * TR_EVENT_MAX_TEXT);
		const char *text = ev->text ? ev->text : "";
		if (strncmp(text, "/me ", 4) == 0) {
			action = true;
			text += 4;
		}
		rc = tr_buf_appends(&md, text);
		/* IRC has no files: each attachment becomes a line with its URL. */
		for (size_t i = 0; i < ev->n_attachments && rc == TR_OK; i++)
			rc = tr_buf_printf(&md, "%s<%s>", md.len ? "\n\n" : "",
			                   ev->attachments[i].url);
		body = rc == TR_OK && md.len ? irc_render(tr_buf_str(&md)) : NULL;
		tr_buf_cleanup(&md);
		if (!body) {
			rc = TR_E_INVAL;
			break;
		}
		if (action) {
			head = tr_xasprintf("%s ", guarded);
		} else {
			head = irc_template(cfg->author_tpl, guarded, NULL, NULL);
			irc_scrub(head);
			head[strcspn(head, "\n")] = '\0';
		}
		if (ctx->tags && ev->dest.reply_to) {
			reply_tag = ev->dest.reply_to;
		} else if (ctx->reply_nick && !action) {
			char *b = tr_xasprintf("%s: %s", ctx->reply_nick, body);
			free(body);
			body = b;
		}
		break;
	}
	case TR_EV_EDIT: {
		if (!cfg->edit_tpl)
			break;
		char *r = irc_render(ev->text ? ev->text : "");
		if (!r) {
			rc = TR_E_INVAL;
			break;
		}
		body = irc_template(cfg->edit_tpl, guarded, r, NULL);
		irc_scrub(body);
		free(r);
		head = tr_xstrdup("");
		break;
	}
	case TR_EV_DELETE:
		if (cfg->deletes) {
			body = tr_xasprintf("%s deleted a message", guarded);
			head = tr_xstrdup("");
		}
		break;
	case TR_EV_REACTION:
		if (cfg->reactions && ev->reaction) {
			body = tr_xasprintf("%s %s %s", guarded,
			                    ev->removed ? "withdrew the reaction" : "reacted",
			                    ev->reaction);
			irc_scrub(body);
			head = tr_xstrdup("");
		}
		break;
	default:
		/* join, leave, topic from elsewhere: nothing is said on IRC. */
		break;
	}
	if (rc == TR_OK && body && *body)
		rc = irc_emit(body, head, action, reply_tag, ctx, out);
	free(guarded);
	free(body);
	free(head);
	return rc;
}
