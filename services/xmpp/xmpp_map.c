/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-xmpp pure parts: settings, groupchat stanza -> struct xm_in -> struct tr_event, out
 * event -> body and stanza, id choice and own-message detection. No I/O; unit-tested. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"
#include "env.h"
#include "format.h"
#include "log.h"
#include "utf8.h"
#include "xmpp.h"

#define XM_BODY_MAX (256 * 1024)

static bool xm_is_loopback(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0 ||
	       strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0;
}

static void xm_split_server(struct xm_config *cfg, struct tr_env *env, const char *server)
{
	const char *colon = strrchr(server, ':');
	const char *host_end = colon;
	long port = 5222;
	if (server[0] == '[') {
		/* [v6]:port */
		const char *close = strchr(server, ']');
		if (!close || (close[1] != ':' && close[1] != '\0')) {
			tr_env_fail(env, "XMPP_SERVER", "expected host:port or [v6]:port");
			return;
		}
		cfg->host = tr_xstrndup(server + 1, (size_t)(close - server - 1));
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		if (colon && strchr(server, ':') != colon) {
			tr_env_fail(env, "XMPP_SERVER",
			            "IPv6 addresses go in brackets: [::1]:5222");
			return;
		}
		cfg->host =
		    tr_xstrndup(server, colon ? (size_t)(host_end - server) : strlen(server));
	}
	if (colon && tr_parse_long(colon + 1, 1, 65535, &port) != TR_OK)
		tr_env_fail(env, "XMPP_SERVER", "bad port");
	if (!cfg->host[0])
		tr_env_fail(env, "XMPP_SERVER", "empty host");
	cfg->port = (unsigned)port;
}

void xm_config_read(struct xm_config *cfg, struct tr_env *env)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->jid = tr_env_required(env, "XMPP_JID");
	cfg->password = tr_env_required(env, "XMPP_PASSWORD");
	char *server = tr_env_str(env, "XMPP_SERVER", NULL);
	char *nick = tr_env_str(env, "XMPP_NICK", NULL);
	char *tls = tr_env_str(env, "XMPP_TLS", "required");
	cfg->ca_file = tr_env_str(env, "XMPP_CA_FILE", NULL);
	if (cfg->ca_file && !cfg->ca_file[0]) {
		free(cfg->ca_file);
		cfg->ca_file = NULL;
	}
	cfg->author_template = tr_env_str(env, "XMPP_AUTHOR_TEMPLATE", "<{name}> ");
	cfg->ping_s = tr_env_int(env, "XMPP_PING_INTERVAL", 60, 5, 3600);
	cfg->timeout_s = tr_env_int(env, "XMPP_TIMEOUT", 30, 2, 600);
	cfg->max_body = tr_env_int(env, "XMPP_MAX_BODY", 65536, 256, 200000);

	const char *at = cfg->jid ? strchr(cfg->jid, '@') : NULL;
	const char *slash = cfg->jid ? strchr(cfg->jid, '/') : NULL;
	if (cfg->jid && (!at || at == cfg->jid || !at[1] || (slash && slash < at)))
		tr_env_fail(env, "XMPP_JID", "expected user@domain[/resource]");
	if (server) {
		xm_split_server(cfg, env, server);
	} else if (at) {
		size_t dl = slash ? (size_t)(slash - at - 1) : strlen(at + 1);
		cfg->host = tr_xstrndup(at + 1, dl);
		cfg->port = 5222;
	}
	if (nick && nick[0]) {
		cfg->nick = nick;
		nick = NULL;
	} else if (at) {
		cfg->nick = tr_xstrndup(cfg->jid, (size_t)(at - cfg->jid));
	}
	if (cfg->nick && (strchr(cfg->nick, '/') || strchr(cfg->nick, '\n')))
		tr_env_fail(env, "XMPP_NICK", "must not contain '/' or line breaks");
	if (strcmp(tls, "required") == 0)
		cfg->tls = XM_TLS_REQUIRED;
	else if (strcmp(tls, "direct") == 0)
		cfg->tls = XM_TLS_DIRECT;
	else if (strcmp(tls, "trust") == 0)
		cfg->tls = XM_TLS_TRUST;
	else if (strcmp(tls, "off") == 0)
		cfg->tls = XM_TLS_OFF;
	else
		tr_env_fail(env, "XMPP_TLS", "expected required, direct, trust or off");
	/* Passwords never cross a network in clear: plaintext only to this machine. */
	if (cfg->tls == XM_TLS_OFF && cfg->host && !xm_is_loopback(cfg->host))
		tr_env_fail(env, "XMPP_TLS", "off is allowed only for a loopback XMPP_SERVER");
	if (!strstr(cfg->author_template, "{name}"))
		tr_env_fail(env, "XMPP_AUTHOR_TEMPLATE", "must contain {name}");
	free(server);
	free(nick);
	free(tls);
}

void xm_config_cleanup(struct xm_config *cfg)
{
	free(cfg->jid);
	free(cfg->password);
	free(cfg->host);
	free(cfg->nick);
	free(cfg->ca_file);
	free(cfg->author_template);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- inbound ---- */

static char *xm_text_of(xmpp_stanza_t *el)
{
	char *t = xmpp_stanza_get_text(el);
	char *copy = tr_xstrdup(t ? t : "");
	if (t)
		xmpp_free(xmpp_stanza_get_context(el), t);
	return copy;
}

static long xm_attr_long(xmpp_stanza_t *el, const char *name)
{
	const char *v = xmpp_stanza_get_attribute(el, name);
	long n = -1;
	if (!v || tr_parse_long(v, 0, 1000000, &n) != TR_OK)
		return -1;
	return n;
}

int xm_in_parse(xmpp_stanza_t *st, struct xm_in *in)
{
	memset(in, 0, sizeof(*in));
	in->reply_fb_start = in->reply_fb_end = -1;
	in->from = xmpp_stanza_get_from(st);
	if (!in->from || !in->from[0])
		return TR_E_INVAL;
	in->type = xmpp_stanza_get_type(st);
	in->id = xmpp_stanza_get_id(st);
	const char *slash = strchr(in->from, '/');
	in->room = slash ? tr_xstrndup(in->from, (size_t)(slash - in->from)) : tr_xstrdup(in->from);
	in->nick = tr_xstrdup(slash ? slash + 1 : "");

	for (xmpp_stanza_t *c = xmpp_stanza_get_children(st); c; c = xmpp_stanza_get_next(c)) {
		if (!xmpp_stanza_is_tag(c))
			continue;
		const char *name = xmpp_stanza_get_name(c);
		const char *ns = xmpp_stanza_get_ns(c);
		if (!name)
			continue;
		if (!ns)
			ns = "";
		if (strcmp(name, "body") == 0 && !in->body &&
		    (!ns[0] || strcmp(ns, "jabber:client") == 0)) {
			in->body = xm_text_of(c);
		} else if (strcmp(name, "subject") == 0 && !in->subject &&
		           (!ns[0] || strcmp(ns, "jabber:client") == 0)) {
			in->subject = xm_text_of(c);
		} else if (strcmp(name, "stanza-id") == 0 && strcmp(ns, XM_NS_SID) == 0) {
			/* Only the room's own stanza-id: anyone else's could be forged by the
			 * sender (XEP-0359 §Security). */
			const char *by = xmpp_stanza_get_attribute(c, "by");
			if (by && strcmp(by, in->room) == 0 && !in->stanza_id)
				in->stanza_id = xmpp_stanza_get_attribute(c, "id");
		} else if (strcmp(name, "origin-id") == 0 && strcmp(ns, XM_NS_SID) == 0) {
			in->origin_id = xmpp_stanza_get_attribute(c, "id");
		} else if (strcmp(name, "occupant-id") == 0 && strcmp(ns, XM_NS_OCCUPANT) == 0) {
			in->occupant_id = xmpp_stanza_get_attribute(c, "id");
		} else if (strcmp(name, "replace") == 0 && strcmp(ns, XM_NS_CORRECT) == 0) {
			in->replace_id = xmpp_stanza_get_attribute(c, "id");
		} else if (strcmp(name, "retract") == 0 && strcmp(ns, XM_NS_RETRACT) == 0) {
			in->retract_id = xmpp_stanza_get_attribute(c, "id");
		} else if (strcmp(name, "reactions") == 0 && strcmp(ns, XM_NS_REACTIONS) == 0) {
			in->has_reactions = true;
			in->reactions_id = xmpp_stanza_get_attribute(c, "id");
			for (xmpp_stanza_t *r = xmpp_stanza_get_children(c); r;
			     r = xmpp_stanza_get_next(r)) {
				const char *rn = xmpp_stanza_get_name(r);
				if (!xmpp_stanza_is_tag(r) || !rn || strcmp(rn, "reaction") != 0 ||
				    in->n_reactions >= XM_MAX_REACTIONS)
					continue;
				char *e = xm_text_of(r);
				if (!e[0] || strlen(e) > 64) {
					free(e);
					continue;
				}
				in->reactions[in->n_reactions++] = e;
			}
		} else if (strcmp(name, "reply") == 0 && strcmp(ns, XM_NS_REPLY) == 0) {
			in->reply_id = xmpp_stanza_get_attribute(c, "id");
			in->reply_to = xmpp_stanza_get_attribute(c, "to");
		} else if (strcmp(name, "fallback") == 0 && strcmp(ns, XM_NS_FALLBACK) == 0) {
			const char *for_ = xmpp_stanza_get_attribute(c, "for");
			xmpp_stanza_t *b = xmpp_stanza_get_child_by_name(c, "body");
			if (for_ && strcmp(for_, XM_NS_REPLY) == 0 && b) {
				in->reply_fb_start = xm_attr_long(b, "start");
				in->reply_fb_end = xm_attr_long(b, "end");
			}
		} else if (strcmp(name, "x") == 0 && strcmp(ns, XM_NS_OOB) == 0 &&
		           in->n_oob < XM_MAX_OOB) {
			xmpp_stanza_t *u = xmpp_stanza_get_child_by_name(c, "url");
			char *url = u ? xm_text_of(u) : NULL;
			if (url &&
			    (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) &&
			    strlen(url) < TR_EVENT_MAX_NAME)
				in->oob[in->n_oob++] = url;
			else
				free(url);
		} else if (strcmp(name, "delay") == 0 && strcmp(ns, XM_NS_DELAY) == 0) {
			in->delayed = true;
		} else if (strcmp(name, "error") == 0) {
			in->error_type = xmpp_stanza_get_attribute(c, "type");
			for (xmpp_stanza_t *e = xmpp_stanza_get_children(c); e;
			     e = xmpp_stanza_get_next(e)) {
				const char *en = xmpp_stanza_get_ns(e);
				if (xmpp_stanza_is_tag(e) && en && strcmp(en, XM_NS_STANZAS) == 0 &&
				    strcmp(xmpp_stanza_get_name(e), "text") != 0) {
					in->error_cond = xmpp_stanza_get_name(e);
					break;
				}
			}
			if (!in->error_cond)
				in->error_cond = "undefined-condition";
		}
	}
	return TR_OK;
}

void xm_in_cleanup(struct xm_in *in)
{
	free(in->room);
	free(in->nick);
	free(in->body);
	free(in->subject);
	for (size_t i = 0; i < in->n_reactions; i++)
		free(in->reactions[i]);
	for (size_t i = 0; i < in->n_oob; i++)
		free(in->oob[i]);
	memset(in, 0, sizeof(*in));
}

const char *xm_in_ref(const struct xm_in *in)
{
	if (in->stanza_id && in->stanza_id[0])
		return in->stanza_id;
	if (in->origin_id && in->origin_id[0])
		return in->origin_id;
	if (in->id && in->id[0])
		return in->id;
	return NULL;
}

char *xm_in_author_id(const struct xm_in *in)
{
	if (in->occupant_id && in->occupant_id[0])
		return tr_xasprintf("occupant:%s", in->occupant_id);
	return tr_xasprintf("%s/%s", in->room, in->nick);
}

bool xm_in_is_own(const struct xm_in *in, const char *our_nick, bool origin_known)
{
	if (origin_known)
		return true;
	return our_nick && in->nick[0] && strcmp(in->nick, our_nick) == 0;
}

char *xm_strip_range(const char *body, long start, long end)
{
	size_t len = strlen(body);
	if (start < 0 || end <= start || !tr_utf8_valid(body, len))
		return tr_xstrdup(body);
	size_t total = tr_utf8_count(body, len);
	if ((size_t)end > total)
		return tr_xstrdup(body);
	size_t a = tr_utf8_prefix_chars(body, len, (size_t)start);
	size_t b = tr_utf8_prefix_chars(body, len, (size_t)end);
	char *out = tr_xmalloc(len - (b - a) + 1);
	memcpy(out, body, a);
	memcpy(out + a, body + b, len - b);
	out[len - (b - a)] = '\0';
	return out;
}

/* Ids contain the room and the network's own id; control characters would fail validation,
 * so they are replaced (ids from the network are untrusted). */
static char *xm_id(const char *fmt_kind, const char *connector, const char *room, const char *a,
                   const char *b)
{
	char *s = b ? tr_xasprintf("%s:%s:%s:%s:%s", connector, fmt_kind, room, a, b)
	            : tr_xasprintf("%s:%s:%s:%s", connector, fmt_kind, room, a);
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (strlen(s) > TR_EVENT_MAX_ID)
		s[tr_utf8_truncate(s, strlen(s), TR_EVENT_MAX_ID)] = '\0';
	return s;
}

static char *xm_md(const char *text)
{
	char *md = NULL;
	if (tr_format_to_commonmark(text, strlen(text), TR_DIALECT_XMPP, &md) != TR_OK) {
		free(md);
		return NULL;
	}
	return md;
}

int xm_in_to_event(const struct xm_in *in, const char *connector, const char *target,
                   struct tr_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	const char *ref = xm_in_ref(in);
	char ts[32];
	snprintf(ts, sizeof(ts), "t%lld", (long long)tr_now_ms());
	if (in->retract_id) {
		if (!target)
			return TR_E_INVAL;
		ev->type = TR_EV_DELETE;
		ev->id = xm_id("delete", connector, in->room, target, NULL);
		ev->target = tr_xstrdup(target);
	} else if (in->replace_id && in->body) {
		if (!target)
			return TR_E_INVAL;
		ev->type = TR_EV_EDIT;
		ev->id = xm_id("edit", connector, in->room, target, ref ? ref : ts);
		ev->target = tr_xstrdup(target);
		ev->msgid = tr_xstrdup(target);
		ev->text = xm_md(in->body);
	} else if (in->body && (in->body[0] || in->n_oob)) {
		if (!ref)
			return TR_E_INVAL;
		ev->type = TR_EV_MESSAGE;
		ev->id = xm_id("message", connector, in->room, ref, NULL);
		ev->msgid = tr_xstrdup(ref);
		char *body = in->reply_id
		                 ? xm_strip_range(in->body, in->reply_fb_start, in->reply_fb_end)
		                 : tr_xstrdup(in->body);
		/* A client sending a file puts the URL in the body too: do not show it twice. */
		for (size_t i = 0; i < in->n_oob; i++) {
			char *hit = strstr(body, in->oob[i]);
			if (hit) {
				size_t ul = strlen(in->oob[i]);
				memmove(hit, hit + ul, strlen(hit + ul) + 1);
			}
		}
		size_t bl = strlen(body);
		while (bl && (body[bl - 1] == '\n' || body[bl - 1] == ' '))
			body[--bl] = '\0';
		if (body[0])
			ev->text = xm_md(body);
		free(body);
		if (in->reply_id && in->reply_id[0])
			ev->reply_to = tr_xstrdup(in->reply_id);
		if (in->n_oob) {
			ev->attachments = tr_xcalloc(in->n_oob, sizeof(*ev->attachments));
			ev->n_attachments = in->n_oob;
			for (size_t i = 0; i < in->n_oob; i++) {
				ev->attachments[i].url = tr_xstrdup(in->oob[i]);
				ev->attachments[i].size = -1;
				const char *name = strrchr(in->oob[i], '/');
				if (name && name[1])
					ev->attachments[i].name = tr_xstrdup(name + 1);
			}
		}
	} else if (in->subject) {
		ev->type = TR_EV_TOPIC;
		ev->id = xm_id("topic", connector, in->room, ref ? ref : ts, NULL);
		ev->text = xm_md(in->subject);
		if (!ev->text)
			ev->text = tr_xstrdup("");
	} else {
		return TR_E_INVAL;
	}
	ev->channel = tr_xstrdup(in->room);
	ev->author.id = xm_in_author_id(in);
	ev->author.name = tr_xstrdup(in->nick[0] ? in->nick : in->room);
	ev->author.display = tr_xstrdup(ev->author.name);
	return TR_OK;
}

char *xm_reaction_event_id(const char *connector, const struct xm_in *in, const char *target,
                           const char *author, const char *emoji, bool removed)
{
	const char *ref = xm_in_ref(in);
	char *tail = tr_xasprintf("%s:%s:%s:%s", author, emoji, removed ? "removed" : "added",
	                          ref ? ref : "-");
	char *id = xm_id("reaction", connector, in->room, target, tail);
	free(tail);
	return id;
}

/* ---- outbound ---- */

static void xm_add_el(xmpp_stanza_t *parent, xmpp_stanza_t *child)
{
	xmpp_stanza_add_child(parent, child);
	xmpp_stanza_release(child);
}

static xmpp_stanza_t *xm_el(xmpp_ctx_t *ctx, const char *name, const char *ns)
{
	xmpp_stanza_t *e = xmpp_stanza_new(ctx);
	xmpp_stanza_set_name(e, name);
	if (ns)
		xmpp_stanza_set_ns(e, ns);
	return e;
}

static xmpp_stanza_t *xm_text_el(xmpp_ctx_t *ctx, const char *name, const char *text)
{
	xmpp_stanza_t *e = xm_el(ctx, name, NULL);
	xmpp_stanza_t *t = xmpp_stanza_new(ctx);
	xmpp_stanza_set_text(t, text);
	xm_add_el(e, t);
	return e;
}

xmpp_stanza_t *xm_out_stanza(xmpp_ctx_t *ctx, const struct xm_out *o)
{
	xmpp_stanza_t *m = xmpp_message_new(ctx, "groupchat", o->room, o->id);
	if (o->body)
		xm_add_el(m, xm_text_el(ctx, "body", o->body));
	if (o->subject)
		xm_add_el(m, xm_text_el(ctx, "subject", o->subject));
	xmpp_stanza_t *e = xm_el(ctx, "origin-id", XM_NS_SID);
	xmpp_stanza_set_attribute(e, "id", o->id);
	xm_add_el(m, e);
	if (o->replace_id) {
		e = xm_el(ctx, "replace", XM_NS_CORRECT);
		xmpp_stanza_set_attribute(e, "id", o->replace_id);
		xm_add_el(m, e);
	}
	if (o->reply_id) {
		e = xm_el(ctx, "reply", XM_NS_REPLY);
		xmpp_stanza_set_attribute(e, "id", o->reply_id);
		if (o->reply_to)
			xmpp_stanza_set_attribute(e, "to", o->reply_to);
		xm_add_el(m, e);
		if (o->reply_fb_end > 0) {
			char end[24];
			snprintf(end, sizeof(end), "%ld", o->reply_fb_end);
			e = xm_el(ctx, "fallback", XM_NS_FALLBACK);
			xmpp_stanza_set_attribute(e, "for", XM_NS_REPLY);
			xmpp_stanza_t *b = xm_el(ctx, "body", NULL);
			xmpp_stanza_set_attribute(b, "start", "0");
			xmpp_stanza_set_attribute(b, "end", end);
			xm_add_el(e, b);
			xm_add_el(m, e);
		}
	}
	if (o->retract_id) {
		e = xm_el(ctx, "retract", XM_NS_RETRACT);
		xmpp_stanza_set_attribute(e, "id", o->retract_id);
		xm_add_el(m, e);
		e = xm_el(ctx, "fallback", XM_NS_FALLBACK);
		xmpp_stanza_set_attribute(e, "for", XM_NS_RETRACT);
		xm_add_el(m, e);
	}
	if (o->reactions_id) {
		e = xm_el(ctx, "reactions", XM_NS_REACTIONS);
		xmpp_stanza_set_attribute(e, "id", o->reactions_id);
		for (size_t i = 0; i < o->n_reactions; i++)
			xm_add_el(e, xm_text_el(ctx, "reaction", o->reactions[i]));
		xm_add_el(m, e);
	}
	for (size_t i = 0; i < o->n_oob; i++) {
		e = xm_el(ctx, "x", XM_NS_OOB);
		xm_add_el(e, xm_text_el(ctx, "url", o->oob[i].url));
		if (o->oob[i].name)
			xm_add_el(e, xm_text_el(ctx, "desc", o->oob[i].name));
		xm_add_el(m, e);
	}
	if (o->retract_id || o->reactions_id)
		xm_add_el(m, xm_el(ctx, "store", XM_NS_HINTS));
	return m;
}

void xm_xml_clean(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		unsigned char ch = (unsigned char)*r;
		if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
			continue;
		/* U+FFFE and U+FFFF are not XML characters either (EF BF BE / EF BF BF). */
		if (ch == 0xef && (unsigned char)r[1] == 0xbf &&
		    ((unsigned char)r[2] == 0xbe || (unsigned char)r[2] == 0xbf)) {
			r += 2;
			continue;
		}
		*w++ = *r;
	}
	*w = '\0';
}

char *xm_author_prefix(const char *tmpl, const struct tr_author *a)
{
	const char *name = a->display && a->display[0] ? a->display
	                   : a->name && a->name[0]     ? a->name
	                                               : a->id;
	char *clean = tr_xstrdup(name ? name : "?");
	for (char *p = clean; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	struct tr_buf b;
	tr_buf_init(&b, 4096);
	const char *p = tmpl;
	const char *hit;
	while ((hit = strstr(p, "{name}"))) {
		if (tr_buf_append(&b, p, (size_t)(hit - p)) != TR_OK ||
		    tr_buf_appends(&b, clean) != TR_OK)
			break;
		p = hit + 6;
	}
	if (tr_buf_appends(&b, p) != TR_OK)
		tr_debug("author prefix cut at %zu bytes", b.len);
	free(clean);
	char *out = tr_buf_take(&b);
	xm_xml_clean(out);
	return out;
}

int xm_out_body(const struct tr_event *ev, const char *tmpl, const char *quote_nick,
                const char *quote, size_t max_body, char **out, long *fb_end)
{
	*out = NULL;
	*fb_end = 0;
	int rc = TR_OK;
	char *rendered = NULL, *prefix = NULL;
	struct tr_buf b;
	tr_buf_init(&b, XM_BODY_MAX);
	if (ev->text && ev->text[0]) {
		rc = tr_format_render(ev->text, strlen(ev->text), TR_DIALECT_XMPP, &rendered);
		if (rc != TR_OK)
			goto out;
	}
	if (quote) {
		/* XEP-0461 fallback: a quote of the original, marked with XEP-0428 so that
		 * clients that show replies natively strip it. */
		char *q = tr_format_truncate(quote, strlen(quote), 200, 80, TR_DIALECT_PLAIN);
		for (char *p = q; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		rc = tr_buf_printf(&b, "> %s%s%s\n", quote_nick ? quote_nick : "",
		                   quote_nick ? ": " : "", q);
		free(q);
		if (rc != TR_OK)
			goto out;
		xm_xml_clean(b.data);
		b.len = strlen(b.data);
		*fb_end = (long)tr_utf8_count(b.data, b.len);
	}
	prefix = xm_author_prefix(tmpl, &ev->author);
	rc = tr_buf_appends(&b, prefix);
	if (rc == TR_OK && rendered)
		rc = tr_buf_appends(&b, rendered);
	for (size_t i = 0; rc == TR_OK && i < ev->n_attachments; i++)
		rc = tr_buf_printf(&b, "%s%s", (rendered || i) ? "\n" : "", ev->attachments[i].url);
	if (rc != TR_OK)
		goto out;
	xm_xml_clean(b.data);
	b.len = strlen(b.data);
	if (b.len > max_body) {
		*out = tr_format_truncate(b.data, b.len, max_body, 0, TR_DIALECT_XMPP);
	} else {
		*out = tr_buf_take(&b);
	}
out:
	free(rendered);
	free(prefix);
	tr_buf_cleanup(&b);
	return rc;
}

int xm_error_code(const char *cond, const char *type)
{
	if (!cond)
		return TR_E_PROTO;
	if (type && strcmp(type, "wait") == 0)
		return TR_E_RATELIMIT;
	static const struct {
		const char *cond;
		int err;
	} map[] = {
	    {"forbidden", TR_E_FORBIDDEN},
	    {"not-allowed", TR_E_FORBIDDEN},
	    {"not-acceptable", TR_E_FORBIDDEN},
	    {"registration-required", TR_E_FORBIDDEN},
	    {"not-authorized", TR_E_AUTH},
	    {"item-not-found", TR_E_NOTFOUND},
	    {"recipient-unavailable", TR_E_NOTFOUND},
	    {"resource-constraint", TR_E_RATELIMIT},
	    {"policy-violation", TR_E_RATELIMIT},
	    {"bad-request", TR_E_INVAL},
	    {"jid-malformed", TR_E_INVAL},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(map); i++)
		if (strcmp(map[i].cond, cond) == 0)
			return map[i].err;
	return TR_E_PROTO;
}
