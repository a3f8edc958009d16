/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-xmpp: an XMPP client (libstrophe) in multi-user chat rooms (XEP-0045), on the one
 * libuv loop: a uv_poll on libstrophe's socket and a tick timer call xmpp_run_once(ctx, 0), so
 * libstrophe never blocks the loop on I/O. Owns the rooms (join, rejoin with backoff), the
 * recent-message memory that maps ids (XEP-0359 stanza-id <-> XEP-0308 id attribute), sends
 * awaiting their reflection (the ack), and the idle ping (XEP-0199). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "backoff.h"
#include "format.h"
#include "log.h"
#include "utf8.h"
#include "xmpp.h"

#define XM_RECENT       4096 /* messages remembered for corrections, replies, reactions */
#define XM_HELD_MAX     500  /* deliveries held while their room is being joined */
#define XM_TICK_MS      500
#define XM_RUNS         5 /* xmpp_run_once calls per wake-up: drains TLS-buffered records */
#define XM_SNIPPET      200
#define XM_LIVE_AFTER   5000 /* a room without a subject message counts as live after this */
#define XM_NICK_RETRIES 3

enum xm_room_state { XM_ROOM_OUT = 0, XM_ROOM_JOINING, XM_ROOM_JOINED };

struct xm_room {
	char *jid, *nick;
	enum xm_room_state st;
	bool live; /* join complete (subject seen): what arrives now is new */
	unsigned attempts, nick_tries;
	uint64_t retry_at, deadline, joined_at;
	char *problem;
};

struct xm_react {
	char *who, *emoji;
	bool out; /* a bridged author's reaction that we show in the room */
};

struct xm_msg {
	char *k1, *k2; /* map keys: room+ref, room+nick+id attribute */
	char *room, *ref, *idattr, *nick, *author, *snippet;
	bool own;
	struct xm_react *r;
	size_t nr;
};

struct xm_pending {
	struct xm_pending *next;
	char *room, *oid;
	struct tr_event ack; /* id and dest only */
	enum tr_event_type type;
	char *ack_msgid; /* for edits, deletes, reactions: the target */
	char *snippet;
	uint64_t deadline;
};

struct xm_held {
	struct xm_held *next;
	struct tr_event ev;
	uint64_t deadline;
};

struct xm_poll {
	uv_poll_t h;
	int fd;
};

struct xm_resolve {
	uv_getaddrinfo_t req;
	struct xm *x; /* NULL once disconnect() gave up on it */
};

struct xm {
	struct tr_conn *c;
	struct xm_config cfg;
	xmpp_ctx_t *ctx;
	xmpp_conn_t *conn;
	xmpp_log_t log;
	struct xm_poll *poll;
	struct xm_resolve *resolving;
	uv_timer_t tick;
	bool tick_init, in_run, again, closing, session, lost;
	int lost_err;
	char lost_detail[160];
	uint64_t login_deadline, ping_due, ping_deadline;
	char ping_id[32];
	struct xm_room *rooms;
	size_t n_rooms;
	struct tr_map msgs;
	struct xm_msg *ring[XM_RECENT];
	size_t ring_pos;
	struct xm_pending *pending;
	struct xm_held *held;
	size_t n_held;
	char *bound;
};

/* libstrophe's socket callback carries no user pointer; one connector instance per process. */
static struct xm *xm_self;
static bool xm_lib_init;

static void xm_pump(struct xm *x);

static uint64_t xm_now(struct xm *x)
{
	return uv_now(tr_conn_loop(x->c));
}

static char *xm_new_id(void)
{
	return tr_xasprintf("tr-%08x%08x", tr_random(), tr_random());
}

/* ---- recent messages ---- */

/* The first bytes of a message kept for reply quotes, cut on a code point boundary. */
static char *xm_snip(const char *s)
{
	size_t len = strlen(s);
	return tr_xstrndup(s, tr_utf8_truncate(s, len, len < XM_SNIPPET ? len : XM_SNIPPET));
}

static char *xm_key(const char *room, const char *a, const char *b)
{
	return b ? tr_xasprintf("%s\x1f%s\x1f%s", room, a, b) : tr_xasprintf("%s\x1f%s", room, a);
}

static void xm_msg_free(struct xm_msg *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nr; i++) {
		free(m->r[i].who);
		free(m->r[i].emoji);
	}
	free(m->r);
	free(m->k1);
	free(m->k2);
	free(m->room);
	free(m->ref);
	free(m->idattr);
	free(m->nick);
	free(m->author);
	free(m->snippet);
	free(m);
}

static struct xm_msg *xm_lookup(struct xm *x, const char *room, const char *ref)
{
	if (!ref)
		return NULL;
	char *k = xm_key(room, ref, NULL);
	struct xm_msg *m = tr_map_get(&x->msgs, k, strlen(k));
	free(k);
	return m;
}

static struct xm_msg *xm_lookup_idattr(struct xm *x, const char *room, const char *nick,
                                       const char *idattr)
{
	if (!idattr)
		return NULL;
	char *k = xm_key(room, nick, idattr);
	struct xm_msg *m = tr_map_get(&x->msgs, k, strlen(k));
	free(k);
	return m;
}

static struct xm_msg *xm_remember(struct xm *x, const char *room, const char *ref,
                                  const char *idattr, const char *nick, const char *author,
                                  const char *snippet, bool own)
{
	struct xm_msg *m = xm_lookup(x, room, ref);
	if (m) {
		/* A stub made for a reaction, or the same message seen again: fill it in. */
		if (!m->idattr && idattr && nick) {
			m->idattr = tr_xstrdup(idattr);
			m->k2 = xm_key(room, nick, idattr);
			tr_map_put(&x->msgs, m->k2, strlen(m->k2), m);
		}
		if (!m->nick && nick)
			m->nick = tr_xstrdup(nick);
		if (!m->author && author)
			m->author = tr_xstrdup(author);
		if (snippet) {
			free(m->snippet);
			m->snippet = xm_snip(snippet);
		}
		m->own = m->own || own;
		return m;
	}
	struct xm_msg *victim = x->ring[x->ring_pos];
	if (victim) {
		tr_map_del(&x->msgs, victim->k1, strlen(victim->k1));
		if (victim->k2 && tr_map_get(&x->msgs, victim->k2, strlen(victim->k2)) == victim)
			tr_map_del(&x->msgs, victim->k2, strlen(victim->k2));
		xm_msg_free(victim);
	}
	m = tr_xcalloc(1, sizeof(*m));
	m->room = tr_xstrdup(room);
	m->ref = tr_xstrdup(ref);
	m->idattr = tr_xstrdup(idattr);
	m->nick = tr_xstrdup(nick);
	m->author = tr_xstrdup(author);
	m->snippet = snippet ? xm_snip(snippet) : NULL;
	m->own = own;
	m->k1 = xm_key(room, ref, NULL);
	tr_map_put(&x->msgs, m->k1, strlen(m->k1), m);
	if (idattr && nick) {
		m->k2 = xm_key(room, nick, idattr);
		tr_map_put(&x->msgs, m->k2, strlen(m->k2), m);
	}
	x->ring[x->ring_pos] = m;
	x->ring_pos = (x->ring_pos + 1) % XM_RECENT;
	return m;
}

static bool xm_react_has(const struct xm_msg *m, const char *who, const char *emoji, bool out)
{
	for (size_t i = 0; i < m->nr; i++)
		if (m->r[i].out == out && strcmp(m->r[i].emoji, emoji) == 0 &&
		    (!who || strcmp(m->r[i].who, who) == 0))
			return true;
	return false;
}

static void xm_react_set(struct xm_msg *m, const char *who, const char *emoji, bool out, bool on)
{
	for (size_t i = 0; i < m->nr; i++) {
		if (m->r[i].out == out && strcmp(m->r[i].who, who) == 0 &&
		    strcmp(m->r[i].emoji, emoji) == 0) {
			if (!on) {
				free(m->r[i].who);
				free(m->r[i].emoji);
				m->r[i] = m->r[--m->nr];
			}
			return;
		}
	}
	if (!on || m->nr >= 256)
		return;
	m->r = tr_xrealloc(m->r, (m->nr + 1) * sizeof(*m->r));
	m->r[m->nr++] = (struct xm_react){tr_xstrdup(who), tr_xstrdup(emoji), out};
}

/* ---- rooms and status ---- */

static struct xm_room *xm_room_find(struct xm *x, const char *jid)
{
	for (size_t i = 0; i < x->n_rooms; i++)
		if (strcmp(x->rooms[i].jid, jid) == 0)
			return &x->rooms[i];
	return NULL;
}

static void xm_status(struct xm *x)
{
	if (!x->session)
		return;
	size_t joined = 0;
	const struct xm_room *bad = NULL;
	for (size_t i = 0; i < x->n_rooms; i++) {
		if (x->rooms[i].st == XM_ROOM_JOINED)
			joined++;
		else if (x->rooms[i].problem && !bad)
			bad = &x->rooms[i];
	}
	char detail[512];
	if (bad) {
		snprintf(detail, sizeof(detail), "room %s: %s (%zu/%zu rooms joined)", bad->jid,
		         bad->problem, joined, x->n_rooms);
		tr_conn_degraded(x->c, detail);
	} else {
		snprintf(detail, sizeof(detail), "connected as %s, %zu/%zu rooms joined",
		         tr_str(x->bound), joined, x->n_rooms);
		tr_conn_online(x->c, detail);
	}
}

static void xm_send(struct xm *x, xmpp_stanza_t *st)
{
	xmpp_send(x->conn, st);
	xmpp_stanza_release(st);
}

static void xm_room_join(struct xm *x, struct xm_room *r)
{
	char *to = tr_xasprintf("%s/%s", r->jid, r->nick);
	xmpp_stanza_t *p = xmpp_presence_new(x->ctx);
	xmpp_stanza_set_to(p, to);
	xmpp_stanza_t *mx = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(mx, "x");
	xmpp_stanza_set_ns(mx, XM_NS_MUC);
	/* No history: what the room said before we joined must never be bridged as new. */
	xmpp_stanza_t *h = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(h, "history");
	xmpp_stanza_set_attribute(h, "maxchars", "0");
	xmpp_stanza_add_child(mx, h);
	xmpp_stanza_release(h);
	xmpp_stanza_add_child(p, mx);
	xmpp_stanza_release(mx);
	xm_send(x, p);
	free(to);
	r->st = XM_ROOM_JOINING;
	r->live = false;
	r->deadline = xm_now(x) + (uint64_t)x->cfg.timeout_s * 1000;
	tr_info("joining room=%s", r->jid);
}

static void xm_room_retry_later(struct xm *x, struct xm_room *r, const char *problem, bool long_)
{
	r->st = XM_ROOM_OUT;
	r->live = false;
	free(r->problem);
	r->problem = tr_xstrdup(problem);
	if (long_)
		r->attempts = 32;
	uint32_t ms = tr_backoff_delay(&tr_backoff_connect, r->attempts++, tr_random());
	r->retry_at = xm_now(x) + ms;
	tr_warn("room=%s %s: rejoining in %u ms", r->jid, problem, ms);
	xm_status(x);
}

static void xm_room_free(struct xm_room *r)
{
	free(r->jid);
	free(r->nick);
	free(r->problem);
}

static void xm_room_leave(struct xm *x, struct xm_room *r)
{
	if (!x->session || r->st == XM_ROOM_OUT)
		return;
	char *to = tr_xasprintf("%s/%s", r->jid, r->nick);
	xmpp_stanza_t *p = xmpp_presence_new(x->ctx);
	xmpp_stanza_set_to(p, to);
	xmpp_stanza_set_type(p, "unavailable");
	xm_send(x, p);
	free(to);
}

/* ---- acks ---- */

static void xm_ack_copy(struct tr_event *dst, const struct tr_event *ev)
{
	memset(dst, 0, sizeof(*dst));
	dst->id = tr_xstrdup(ev->id);
	dst->dest.connector = tr_xstrdup(ev->dest.connector);
	dst->dest.channel = tr_xstrdup(ev->dest.channel);
	dst->has_dest = true;
}

static void xm_pending_free(struct xm_pending *p)
{
	tr_event_cleanup(&p->ack);
	free(p->room);
	free(p->oid);
	free(p->ack_msgid);
	free(p->snippet);
	free(p);
}

static struct xm_pending *xm_pending_take(struct xm *x, const char *room, const char *oid)
{
	if (!oid)
		return NULL;
	for (struct xm_pending **pp = &x->pending; *pp; pp = &(*pp)->next) {
		struct xm_pending *p = *pp;
		if (strcmp(p->oid, oid) == 0 && (!room || strcmp(p->room, room) == 0)) {
			*pp = p->next;
			return p;
		}
	}
	return NULL;
}

static void xm_fail_all(struct xm *x, int err, const char *detail)
{
	while (x->pending) {
		struct xm_pending *p = x->pending;
		x->pending = p->next;
		tr_conn_ack(x->c, &p->ack, err, detail);
		xm_pending_free(p);
	}
	while (x->held) {
		struct xm_held *h = x->held;
		x->held = h->next;
		tr_conn_ack(x->c, &h->ev, err, detail);
		tr_event_cleanup(&h->ev);
		free(h);
	}
	x->n_held = 0;
}

/* ---- inbound ---- */

static void xm_publish(struct xm *x, struct tr_event *ev)
{
	if (tr_conn_publish(x->c, ev) != TR_OK)
		tr_warn("not published id=%s", tr_str(ev->id));
}

static void xm_reflection(struct xm *x, struct xm_room *r, const struct xm_in *in,
                          struct xm_pending *p)
{
	const char *ref = xm_in_ref(in);
	if (p->type == TR_EV_MESSAGE) {
		xm_remember(x, r->jid, ref, p->oid, r->nick, "self", p->snippet, true);
		tr_conn_ack(x->c, &p->ack, TR_OK, ref);
	} else {
		if (p->type == TR_EV_EDIT && p->ack_msgid) {
			struct xm_msg *m = xm_lookup(x, r->jid, p->ack_msgid);
			if (m && p->snippet) {
				free(m->snippet);
				m->snippet = tr_xstrdup(p->snippet);
			}
		}
		tr_conn_ack(x->c, &p->ack, TR_OK, p->ack_msgid);
	}
	xm_pending_free(p);
}

static void xm_in_reactions(struct xm *x, struct xm_room *r, const struct xm_in *in,
                            const char *author)
{
	const char *target = in->reactions_id;
	if (!target || !target[0])
		return;
	struct xm_msg *m = xm_lookup(x, r->jid, target);
	if (!m)
		m = xm_remember(x, r->jid, target, NULL, NULL, NULL, NULL, false);
	/* XEP-0444 sends the full set each time: diff it against what this occupant had. */
	for (size_t i = 0; i < in->n_reactions; i++) {
		const char *e = in->reactions[i];
		if (xm_react_has(m, author, e, false))
			continue;
		xm_react_set(m, author, e, false, true);
		struct tr_event ev = {0};
		ev.type = TR_EV_REACTION;
		ev.id = xm_reaction_event_id(tr_conn_name(x->c), in, target, author, e, false);
		ev.channel = tr_xstrdup(r->jid);
		ev.target = tr_xstrdup(target);
		ev.reaction = tr_xstrdup(e);
		ev.author.id = tr_xstrdup(author);
		ev.author.name = tr_xstrdup(in->nick);
		ev.author.display = tr_xstrdup(in->nick);
		xm_publish(x, &ev);
		tr_event_cleanup(&ev);
	}
	for (size_t i = 0; i < m->nr;) {
		struct xm_react *re = &m->r[i];
		bool keep = re->out || strcmp(re->who, author) != 0;
		for (size_t j = 0; !keep && j < in->n_reactions; j++)
			keep = strcmp(in->reactions[j], re->emoji) == 0;
		if (keep) {
			i++;
			continue;
		}
		struct tr_event ev = {0};
		ev.type = TR_EV_REACTION;
		ev.id =
		    xm_reaction_event_id(tr_conn_name(x->c), in, target, author, re->emoji, true);
		ev.channel = tr_xstrdup(r->jid);
		ev.target = tr_xstrdup(target);
		ev.reaction = tr_xstrdup(re->emoji);
		ev.removed = true;
		ev.author.id = tr_xstrdup(author);
		ev.author.name = tr_xstrdup(in->nick);
		ev.author.display = tr_xstrdup(in->nick);
		xm_publish(x, &ev);
		tr_event_cleanup(&ev);
		xm_react_set(m, author, re->emoji, false, false); /* moves the last into i */
	}
}

static void xm_in_groupchat(struct xm *x, struct xm_room *r, const struct xm_in *in)
{
	if (!r->live) {
		/* The subject ends the join (XEP-0045 §7.2.15): from now on messages are new. */
		if (in->subject && !in->body)
			r->live = true;
		return;
	}
	if (in->delayed)
		return;
	char *author = xm_in_author_id(in);
	const char *target = NULL;
	if (in->retract_id) {
		/* Only the author may retract; an unknown message cannot be checked. */
		struct xm_msg *m = xm_lookup(x, r->jid, in->retract_id);
		if (!m || !m->author || strcmp(m->author, author) != 0) {
			tr_info("room=%s ignoring retraction of %s message", r->jid,
			        m ? "someone else's" : "an unknown");
			goto out;
		}
		target = m->ref;
	} else if (in->has_reactions) {
		xm_in_reactions(x, r, in, author);
		goto out;
	} else if (in->replace_id && in->body) {
		struct xm_msg *m = xm_lookup_idattr(x, r->jid, in->nick, in->replace_id);
		if (m && m->author && strcmp(m->author, author) != 0) {
			tr_info("room=%s ignoring correction by another occupant", r->jid);
			goto out;
		}
		/* Without a remembered stanza-id the id attribute is all we have (rooms without
		 * XEP-0359 use it as the message id too). */
		target = m ? m->ref : in->replace_id;
		if (m) {
			free(m->snippet);
			m->snippet = xm_snip(in->body);
		}
	}
	struct tr_event ev = {0};
	if (xm_in_to_event(in, tr_conn_name(x->c), target, &ev) == TR_OK) {
		if (ev.type == TR_EV_MESSAGE)
			xm_remember(x, r->jid, ev.msgid, in->id ? in->id : in->origin_id, in->nick,
			            author, in->body, false);
		xm_publish(x, &ev);
	}
	tr_event_cleanup(&ev);
out:
	free(author);
}

static int xm_on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *arg)
{
	(void)conn;
	struct xm *x = arg;
	struct xm_in in;
	x->ping_due = xm_now(x) + (uint64_t)x->cfg.ping_s * 1000;
	if (xm_in_parse(st, &in) != TR_OK)
		goto out;
	struct xm_room *r = xm_room_find(x, in.room);
	if (in.type && strcmp(in.type, "error") == 0) {
		struct xm_pending *p = xm_pending_take(x, in.room, in.id);
		if (p) {
			tr_conn_ack(x->c, &p->ack, xm_error_code(in.error_cond, in.error_type),
			            in.error_cond);
			xm_pending_free(p);
		}
		goto out;
	}
	if (!r || r->st != XM_ROOM_JOINED || !in.type || strcmp(in.type, "groupchat") != 0)
		goto out;
	/* Our own reflection: the room echoes what we sent with its stanza-id. Only from our
	 * own occupant, so nobody else can claim one of our origin-ids. */
	bool from_us = in.nick[0] && strcmp(in.nick, r->nick) == 0;
	struct xm_pending *p =
	    from_us ? xm_pending_take(x, r->jid, in.origin_id ? in.origin_id : in.id) : NULL;
	if (p) {
		xm_reflection(x, r, &in, p);
		goto out;
	}
	if (xm_in_is_own(&in, r->nick, false))
		goto out;
	xm_in_groupchat(x, r, &in);
out:
	xm_in_cleanup(&in);
	return 1;
}

static void xm_flush_held(struct xm *x, struct xm_room *r);

static void xm_instant_room(struct xm *x, struct xm_room *r)
{
	/* We created the room (status 201): accept the default configuration (XEP-0045 §10.1.2)
	 * or the room stays locked to everyone else. */
	char *id = xm_new_id();
	xmpp_stanza_t *iq = xmpp_iq_new(x->ctx, "set", id);
	xmpp_stanza_set_to(iq, r->jid);
	xmpp_stanza_t *q = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(q, "query");
	xmpp_stanza_set_ns(q, XM_NS_MUC_OWNER);
	xmpp_stanza_t *f = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(f, "x");
	xmpp_stanza_set_ns(f, "jabber:x:data");
	xmpp_stanza_set_type(f, "submit");
	xmpp_stanza_add_child(q, f);
	xmpp_stanza_release(f);
	xmpp_stanza_add_child(iq, q);
	xmpp_stanza_release(q);
	xm_send(x, iq);
	free(id);
}

static int xm_on_presence(xmpp_conn_t *conn, xmpp_stanza_t *st, void *arg)
{
	(void)conn;
	struct xm *x = arg;
	const char *from = xmpp_stanza_get_from(st);
	const char *type = xmpp_stanza_get_type(st);
	const char *slash = from ? strchr(from, '/') : NULL;
	if (!slash)
		return 1;
	char *room = tr_xstrndup(from, (size_t)(slash - from));
	struct xm_room *r = xm_room_find(x, room);
	free(room);
	if (!r)
		return 1;
	if (type && strcmp(type, "error") == 0) {
		if (r->st != XM_ROOM_JOINING || strcmp(slash + 1, r->nick) != 0)
			return 1;
		xmpp_stanza_t *e = xmpp_stanza_get_child_by_name(st, "error");
		xmpp_stanza_t *cond = e ? xmpp_stanza_get_children(e) : NULL;
		while (cond && !xmpp_stanza_is_tag(cond))
			cond = xmpp_stanza_get_next(cond);
		const char *cn = cond ? xmpp_stanza_get_name(cond) : "error";
		if (strcmp(cn, "conflict") == 0 && r->nick_tries < XM_NICK_RETRIES) {
			/* Nick taken in this room: try again with an underscore. */
			char *n = tr_xasprintf("%s_", r->nick);
			free(r->nick);
			r->nick = n;
			r->nick_tries++;
			xm_room_join(x, r);
			return 1;
		}
		xm_room_retry_later(x, r, cn, false);
		return 1;
	}
	xmpp_stanza_t *mx = xmpp_stanza_get_child_by_name_and_ns(st, "x", XM_NS_MUC_USER);
	if (!mx)
		return 1;
	bool self = false, created = false, nickchange = false, banned = false;
	const char *newnick = NULL;
	for (xmpp_stanza_t *c = xmpp_stanza_get_children(mx); c; c = xmpp_stanza_get_next(c)) {
		const char *n = xmpp_stanza_is_tag(c) ? xmpp_stanza_get_name(c) : NULL;
		if (n && strcmp(n, "status") == 0) {
			const char *code = xmpp_stanza_get_attribute(c, "code");
			if (!code)
				continue;
			self = self || strcmp(code, "110") == 0;
			created = created || strcmp(code, "201") == 0;
			nickchange = nickchange || strcmp(code, "303") == 0;
			banned = banned || strcmp(code, "301") == 0;
		} else if (n && strcmp(n, "item") == 0) {
			newnick = xmpp_stanza_get_attribute(c, "nick");
		}
	}
	if (!self)
		return 1;
	if (type && strcmp(type, "unavailable") == 0) {
		if (nickchange && newnick) {
			free(r->nick);
			r->nick = tr_xstrdup(newnick);
			return 1;
		}
		if (r->st == XM_ROOM_OUT)
			return 1;
		xm_room_retry_later(x, r, banned ? "banned" : "removed from the room", banned);
		return 1;
	}
	if (r->st != XM_ROOM_JOINED) {
		/* The room may have changed our nick (status 210): it is what the from says. */
		free(r->nick);
		r->nick = tr_xstrdup(slash + 1);
		r->st = XM_ROOM_JOINED;
		r->joined_at = xm_now(x);
		r->attempts = 0;
		r->nick_tries = 0;
		free(r->problem);
		r->problem = NULL;
		tr_info("joined room=%s", r->jid);
		if (created)
			xm_instant_room(x, r);
		xm_status(x);
		xm_flush_held(x, r);
	}
	return 1;
}

static int xm_on_iq(xmpp_conn_t *conn, xmpp_stanza_t *st, void *arg)
{
	(void)conn;
	struct xm *x = arg;
	const char *type = xmpp_stanza_get_type(st);
	const char *id = xmpp_stanza_get_id(st);
	x->ping_due = xm_now(x) + (uint64_t)x->cfg.ping_s * 1000;
	if (!type)
		return 1;
	if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
		/* Any answer to our ping proves the stream is alive. */
		if (id && x->ping_id[0] && strcmp(id, x->ping_id) == 0)
			x->ping_id[0] = '\0';
		return 1;
	}
	/* get/set: answer pings, refuse the rest (RFC 6120 §8.2.3: an iq always gets a reply). */
	xmpp_stanza_t *ping = xmpp_stanza_get_child_by_name_and_ns(st, "ping", XM_NS_PING);
	xmpp_stanza_t *reply =
	    ping ? xmpp_stanza_reply(st)
	         : xmpp_stanza_reply_error(st, "cancel", "service-unavailable", NULL);
	if (ping)
		xmpp_stanza_set_type(reply, "result");
	if (reply)
		xm_send(x, reply);
	return 1;
}

/* ---- connection ---- */

static void xm_log(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
	(void)ud;
	/* Debug output holds whole stanzas (message text, SASL exchanges): never logged. */
	if (level >= XMPP_LEVEL_WARN)
		tr_warn("libstrophe %s: %s", area, msg);
}

static void xm_poll_closed(uv_handle_t *h)
{
	free(h->data);
}

static void xm_poll_stop(struct xm *x)
{
	if (!x->poll)
		return;
	x->poll->h.data = x->poll;
	uv_close((uv_handle_t *)&x->poll->h, xm_poll_closed);
	x->poll = NULL;
}

static void xm_on_poll(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct xm *x = xm_self;
	(void)h;
	if (x)
		xm_pump(x);
}

static void xm_poll_update(struct xm *x)
{
	if (!x->poll || !x->conn)
		return;
	int ev = UV_READABLE;
	if (xmpp_conn_is_connecting(x->conn) || xmpp_conn_send_queue_len(x->conn) > 0)
		ev |= UV_WRITABLE;
	uv_poll_start(&x->poll->h, ev, xm_on_poll);
}

static int xm_on_socket(xmpp_conn_t *conn, void *sock)
{
	struct xm *x = xm_self;
	int fd = *(int *)sock;
	if (!x)
		return -1;
	/* A new socket (libstrophe tries each address in turn): watch this one. */
	xm_poll_stop(x);
	struct xm_poll *p = tr_xcalloc(1, sizeof(*p));
	p->fd = fd;
	if (uv_poll_init_socket(tr_conn_loop(x->c), &p->h, fd) != 0) {
		free(p);
		return -1;
	}
	x->poll = p;
	uv_poll_start(&p->h, UV_READABLE | UV_WRITABLE, xm_on_poll);
	return xmpp_sockopt_cb_keepalive(conn, sock);
}

static void xm_set_lost(struct xm *x, int err, const char *detail)
{
	if (x->lost)
		return;
	x->lost = true;
	x->lost_err = err;
	snprintf(x->lost_detail, sizeof(x->lost_detail), "%s", detail);
}

static void xm_on_conn(xmpp_conn_t *conn, xmpp_conn_event_t status, int error,
                       xmpp_stream_error_t *se, void *arg)
{
	struct xm *x = arg;
	if (x->closing)
		return;
	if (status == XMPP_CONN_CONNECT) {
		x->session = true;
		free(x->bound);
		x->bound = tr_xstrdup(xmpp_conn_get_bound_jid(conn));
		xmpp_handler_add(conn, xm_on_message, NULL, "message", NULL, x);
		xmpp_handler_add(conn, xm_on_presence, NULL, "presence", NULL, x);
		xmpp_handler_add(conn, xm_on_iq, NULL, "iq", NULL, x);
		x->ping_due = xm_now(x) + (uint64_t)x->cfg.ping_s * 1000;
		tr_info("logged in as %s (tls=%s)", tr_str(x->bound),
		        xmpp_conn_is_secured(conn) ? "yes" : "no");
		/* Available presence, then the core hands us the channels list (set_channels). */
		xm_send(x, xmpp_presence_new(x->ctx));
		xm_status(x);
		return;
	}
	/* The socket is gone: stop watching it before anything reuses the descriptor. */
	xm_poll_stop(x);
	char detail[160];
	int err = TR_E_IO;
	if (se) {
		err = se->type == XMPP_SE_NOT_AUTHORIZED ? TR_E_AUTH : TR_E_PROTO;
		snprintf(detail, sizeof(detail), "stream error %d", (int)se->type);
	} else if (error == ECONNABORTED && !x->session) {
		/* What libstrophe reports for a failed TLS handshake or an untrusted certificate.
		 */
		snprintf(detail, sizeof(detail), "TLS failed (certificate not trusted?)");
	} else if (error) {
		snprintf(detail, sizeof(detail), "connection failed: %s", strerror(error));
	} else if (!x->session) {
		/* libstrophe gives no reason for a refused login or certificate. */
		err = TR_E_AUTH;
		snprintf(detail, sizeof(detail), "login failed (credentials or TLS certificate)");
	} else {
		snprintf(detail, sizeof(detail), "disconnected by the server");
	}
	xm_set_lost(x, err, detail);
}

static void xm_pump(struct xm *x)
{
	if (x->in_run) {
		x->again = true;
		return;
	}
	if (!x->ctx)
		return;
	x->in_run = true;
	unsigned rounds = 0;
	do {
		x->again = false;
		for (int i = 0; i < XM_RUNS && x->conn && !x->lost; i++)
			xmpp_run_once(x->ctx, 0);
	} while (x->again && !x->lost && ++rounds < 4);
	x->in_run = false;
	if (x->lost) {
		x->lost = false;
		tr_conn_lost(x->c, x->lost_err, x->lost_detail);
		return;
	}
	xm_poll_update(x);
}

static void xm_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct xm_resolve *rs = req->data;
	struct xm *x = rs->x;
	char ip[INET6_ADDRSTRLEN] = "";
	if (res) {
		const void *a =
		    res->ai_family == AF_INET6
		        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
		        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
		inet_ntop(res->ai_family, a, ip, sizeof(ip));
		uv_freeaddrinfo(res);
	}
	free(rs);
	if (!x)
		return;
	x->resolving = NULL;
	if (status != 0 || !ip[0]) {
		tr_conn_lost(x->c, TR_E_IO, "cannot resolve the XMPP server");
		return;
	}
	long flags = XMPP_CONN_FLAG_DISABLE_SM;
	switch (x->cfg.tls) {
	case XM_TLS_REQUIRED:
		flags |= XMPP_CONN_FLAG_MANDATORY_TLS;
		break;
	case XM_TLS_DIRECT:
		flags |= XMPP_CONN_FLAG_LEGACY_SSL;
		break;
	case XM_TLS_TRUST:
		flags |= XMPP_CONN_FLAG_MANDATORY_TLS | XMPP_CONN_FLAG_TRUST_TLS;
		break;
	case XM_TLS_OFF:
		flags |= XMPP_CONN_FLAG_DISABLE_TLS;
		break;
	}
	x->conn = xmpp_conn_new(x->ctx);
	xmpp_conn_set_flags(x->conn, flags);
	xmpp_conn_set_jid(x->conn, x->cfg.jid);
	xmpp_conn_set_pass(x->conn, x->cfg.password);
	if (x->cfg.ca_file)
		xmpp_conn_set_cafile(x->conn, x->cfg.ca_file);
	xmpp_conn_set_sockopt_callback(x->conn, xm_on_socket);
	tr_info("connecting to %s:%u (%s)", ip, x->cfg.port, x->cfg.host);
	/* libstrophe resolves nothing itself here: the address is numeric. */
	if (xmpp_connect_client(x->conn, ip, (unsigned short)x->cfg.port, xm_on_conn, x) !=
	    XMPP_EOK) {
		tr_conn_lost(x->c, TR_E_IO, "cannot start the XMPP connection");
		return;
	}
	xm_pump(x);
}

static void xm_ping(struct xm *x)
{
	char *id = xm_new_id();
	snprintf(x->ping_id, sizeof(x->ping_id), "%s", id);
	free(id);
	xmpp_stanza_t *iq = xmpp_iq_new(x->ctx, "get", x->ping_id);
	const char *at = strchr(x->cfg.jid, '@');
	char *domain = tr_xstrdup(at + 1);
	char *slash = strchr(domain, '/');
	if (slash)
		*slash = '\0';
	xmpp_stanza_set_to(iq, domain);
	free(domain);
	xmpp_stanza_t *p = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(p, "ping");
	xmpp_stanza_set_ns(p, XM_NS_PING);
	xmpp_stanza_add_child(iq, p);
	xmpp_stanza_release(p);
	xm_send(x, iq);
	x->ping_deadline = xm_now(x) + (uint64_t)x->cfg.timeout_s * 1000;
}

static void xm_on_tick(uv_timer_t *t)
{
	struct xm *x = t->data;
	uint64_t now = xm_now(x);
	if (!x->session) {
		if (now >= x->login_deadline) {
			tr_conn_lost(x->c, TR_E_TIMEOUT, "no login within XMPP_TIMEOUT");
			return;
		}
		xm_pump(x);
		return;
	}
	if (x->ping_id[0] && now >= x->ping_deadline) {
		tr_conn_lost(x->c, TR_E_TIMEOUT, "no answer to ping");
		return;
	}
	if (!x->ping_id[0] && now >= x->ping_due)
		xm_ping(x);
	for (size_t i = 0; i < x->n_rooms; i++) {
		struct xm_room *r = &x->rooms[i];
		if (r->st == XM_ROOM_JOINING && now >= r->deadline)
			xm_room_retry_later(x, r, "no answer to join", false);
		else if (r->st == XM_ROOM_OUT && now >= r->retry_at)
			xm_room_join(x, r);
		else if (r->st == XM_ROOM_JOINED && !r->live && now >= r->joined_at + XM_LIVE_AFTER)
			r->live = true;
	}
	for (struct xm_pending **pp = &x->pending; *pp;) {
		struct xm_pending *p = *pp;
		if (now < p->deadline) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		tr_conn_ack(x->c, &p->ack, TR_E_TIMEOUT, "the room did not reflect the message");
		xm_pending_free(p);
	}
	for (struct xm_held **hp = &x->held; *hp;) {
		struct xm_held *h = *hp;
		if (now < h->deadline) {
			hp = &h->next;
			continue;
		}
		*hp = h->next;
		x->n_held--;
		tr_conn_ack(x->c, &h->ev, TR_E_AGAIN, "room not joined");
		tr_event_cleanup(&h->ev);
		free(h);
	}
	xm_pump(x);
}

/* ---- connector vtable ---- */

static int xm_configure(struct tr_conn *c, struct tr_env *env)
{
	struct xm *x = tr_conn_state(c);
	x->c = c;
	xm_config_read(&x->cfg, env);
	tr_map_init(&x->msgs);
	return TR_OK;
}

static int xm_connect(struct tr_conn *c)
{
	struct xm *x = tr_conn_state(c);
	if (!xm_lib_init) {
		xmpp_initialize();
		xm_lib_init = true;
	}
	xm_self = x;
	if (x->cfg.tls == XM_TLS_TRUST)
		tr_warn("XMPP_TLS=trust: the server certificate is not verified");
	x->log = (xmpp_log_t){.handler = xm_log, .userdata = x};
	x->ctx = xmpp_ctx_new(NULL, &x->log);
	if (!x->ctx)
		return TR_E_NOMEM;
	if (!x->tick_init) {
		uv_timer_init(tr_conn_loop(c), &x->tick);
		x->tick.data = x;
		x->tick_init = true;
	}
	x->session = false;
	x->ping_id[0] = '\0';
	x->login_deadline = xm_now(x) + (uint64_t)x->cfg.timeout_s * 1000;
	uv_timer_start(&x->tick, xm_on_tick, XM_TICK_MS, XM_TICK_MS);
	/* Resolve on libuv's resolver: libstrophe's own lookup would block the loop. */
	struct xm_resolve *rs = tr_xcalloc(1, sizeof(*rs));
	rs->x = x;
	rs->req.data = rs;
	char port[8];
	snprintf(port, sizeof(port), "%u", x->cfg.port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	if (uv_getaddrinfo(tr_conn_loop(c), &rs->req, xm_on_resolved, x->cfg.host, port, &hints) !=
	    0) {
		free(rs);
		return TR_E_IO;
	}
	x->resolving = rs;
	return TR_OK;
}

static void xm_hold(struct xm *x, const struct tr_event *ev)
{
	char *payload = NULL;
	char err[TR_ERR_LEN];
	struct xm_held *h = tr_xcalloc(1, sizeof(*h));
	/* The event is borrowed: keep a deep copy by a round trip through the codec. */
	if (tr_event_encode(ev, &payload, err) != TR_OK ||
	    tr_event_decode(payload, strlen(payload), true, &h->ev, err) != TR_OK) {
		free(payload);
		free(h);
		tr_conn_ack(x->c, ev, TR_E_INVAL, err);
		return;
	}
	free(payload);
	h->deadline = xm_now(x) + (uint64_t)x->cfg.timeout_s * 1000;
	struct xm_held **tail = &x->held;
	while (*tail)
		tail = &(*tail)->next;
	*tail = h;
	x->n_held++;
}

static int xm_deliver(struct tr_conn *c, const struct tr_event *ev);

static void xm_flush_held(struct xm *x, struct xm_room *r)
{
	struct xm_held *list = x->held, **keep = &x->held;
	x->held = NULL;
	struct xm_held *mine = NULL, **mtail = &mine;
	while (list) {
		struct xm_held *h = list;
		list = h->next;
		h->next = NULL;
		if (strcmp(h->ev.dest.channel, r->jid) == 0) {
			*mtail = h;
			mtail = &h->next;
			x->n_held--;
		} else {
			*keep = h;
			keep = &h->next;
		}
	}
	while (mine) {
		struct xm_held *h = mine;
		mine = h->next;
		int rc = xm_deliver(x->c, &h->ev);
		if (rc != TR_OK)
			tr_conn_ack(x->c, &h->ev, rc, tr_strerror(rc));
		tr_event_cleanup(&h->ev);
		free(h);
	}
}

static void xm_add_pending(struct xm *x, const struct tr_event *ev, const char *room, char *oid,
                           const char *ack_msgid, const char *snippet)
{
	struct xm_pending *p = tr_xcalloc(1, sizeof(*p));
	xm_ack_copy(&p->ack, ev);
	p->room = tr_xstrdup(room);
	p->oid = oid;
	p->type = ev->type;
	p->ack_msgid = tr_xstrdup(ack_msgid);
	p->snippet = snippet ? xm_snip(snippet) : NULL;
	p->deadline = xm_now(x) + (uint64_t)x->cfg.timeout_s * 1000;
	p->next = x->pending;
	x->pending = p;
}

static int xm_deliver_reaction(struct xm *x, struct xm_room *r, const struct tr_event *ev,
                               struct xm_out *o)
{
	struct xm_msg *m = xm_lookup(x, r->jid, ev->dest.target);
	if (!m)
		m = xm_remember(x, r->jid, ev->dest.target, NULL, NULL, NULL, NULL, false);
	xm_react_set(m, ev->author.id, ev->reaction, true, !ev->removed);
	/* One occupant shows every bridged author's reactions: send the union (XEP-0444 sends
	 * the full set each time). */
	const char **set = tr_xcalloc(m->nr + 1, sizeof(char *));
	size_t n = 0;
	for (size_t i = 0; i < m->nr; i++) {
		if (!m->r[i].out)
			continue;
		bool dup = false;
		for (size_t j = 0; j < n && !dup; j++)
			dup = strcmp(set[j], m->r[i].emoji) == 0;
		if (!dup)
			set[n++] = m->r[i].emoji;
	}
	o->reactions_id = ev->dest.target;
	o->reactions = set;
	o->n_reactions = n;
	return TR_OK;
}

static int xm_deliver(struct tr_conn *c, const struct tr_event *ev)
{
	struct xm *x = tr_conn_state(c);
	struct xm_room *r = xm_room_find(x, ev->dest.channel);
	if (!r) {
		tr_conn_ack(c, ev, TR_E_FORBIDDEN, "room not in the channels list");
		return TR_OK;
	}
	if (ev->type == TR_EV_JOIN || ev->type == TR_EV_LEAVE) {
		tr_conn_ack(c, ev, TR_OK, NULL);
		return TR_OK;
	}
	if (!x->session || r->st != XM_ROOM_JOINED) {
		if (x->n_held >= XM_HELD_MAX)
			return TR_E_AGAIN;
		xm_hold(x, ev);
		return TR_OK;
	}
	struct xm_out o = {.room = r->jid};
	char *body = NULL, *subject = NULL;
	const char **set = NULL;
	const char *ack_msgid = NULL;
	int rc = TR_OK;
	switch (ev->type) {
	case TR_EV_MESSAGE:
	case TR_EV_EDIT: {
		struct xm_msg *q = NULL;
		if (ev->type == TR_EV_MESSAGE && ev->dest.reply_to) {
			q = xm_lookup(x, r->jid, ev->dest.reply_to);
			o.reply_id = ev->dest.reply_to;
		}
		char *reply_to = q && q->nick ? tr_xasprintf("%s/%s", r->jid, q->nick) : NULL;
		o.reply_to = reply_to;
		rc = xm_out_body(ev, x->cfg.author_template, q ? q->nick : NULL,
		                 q ? q->snippet : NULL, (size_t)x->cfg.max_body, &body,
		                 &o.reply_fb_end);
		o.body = body;
		o.oob = ev->attachments;
		o.n_oob = ev->n_attachments;
		if (ev->type == TR_EV_EDIT) {
			if (!ev->dest.target) {
				free(reply_to);
				rc = TR_E_NOTFOUND;
				break;
			}
			/* XEP-0308 names the original by its id attribute, which for our copies
			 * is the origin-id we chose; rooms without stanza-ids acked with it. */
			struct xm_msg *m = xm_lookup(x, r->jid, ev->dest.target);
			o.replace_id = m && m->own && m->idattr ? m->idattr : ev->dest.target;
			ack_msgid = ev->dest.target;
			o.oob = NULL;
			o.n_oob = 0;
		}
		if (rc == TR_OK) {
			char *oid = xm_new_id();
			o.id = oid;
			xm_send(x, xm_out_stanza(x->ctx, &o));
			xm_add_pending(x, ev, r->jid, oid, ack_msgid, ev->text);
		}
		free(reply_to);
		break;
	}
	case TR_EV_DELETE:
		if (!ev->dest.target) {
			rc = TR_E_NOTFOUND;
			break;
		}
		/* XEP-0424 in a room names the room's stanza-id; the body is for old clients. */
		o.retract_id = ev->dest.target;
		o.body = "[message retracted]";
		ack_msgid = ev->dest.target;
		break;
	case TR_EV_REACTION:
		if (!ev->dest.target || !ev->reaction) {
			rc = TR_E_NOTFOUND;
			break;
		}
		rc = xm_deliver_reaction(x, r, ev, &o);
		set = (const char **)o.reactions;
		ack_msgid = ev->dest.target;
		break;
	case TR_EV_TOPIC:
		if (tr_format_render(ev->text ? ev->text : "", ev->text ? strlen(ev->text) : 0,
		                     TR_DIALECT_XMPP, &subject) != TR_OK) {
			rc = TR_E_INVAL;
			break;
		}
		xm_xml_clean(subject);
		o.subject = subject;
		break;
	default:
		rc = TR_E_INVAL;
		break;
	}
	if (rc == TR_OK && ev->type != TR_EV_MESSAGE && ev->type != TR_EV_EDIT) {
		char *oid = xm_new_id();
		o.id = oid;
		xm_send(x, xm_out_stanza(x->ctx, &o));
		xm_add_pending(x, ev, r->jid, oid, ack_msgid, NULL);
	}
	free(body);
	free(subject);
	free(set);
	if (rc == TR_OK)
		xm_pump(x);
	return rc;
}

static int xm_set_channels(struct tr_conn *c, const char *const *ids, size_t n)
{
	struct xm *x = tr_conn_state(c);
	/* Leave rooms no longer listed. */
	for (size_t i = 0; i < x->n_rooms;) {
		bool keep = false;
		for (size_t j = 0; j < n && !keep; j++)
			keep = strcmp(ids[j], x->rooms[i].jid) == 0;
		if (keep) {
			i++;
			continue;
		}
		tr_info("leaving room=%s", x->rooms[i].jid);
		xm_room_leave(x, &x->rooms[i]);
		xm_room_free(&x->rooms[i]);
		x->rooms[i] = x->rooms[--x->n_rooms];
	}
	for (size_t j = 0; j < n; j++) {
		const char *id = ids[j];
		const char *at = strchr(id, '@');
		if (!at || at == id || !at[1] || strchr(id, '/')) {
			tr_warn("channel %s is not a room JID (room@service): ignored", id);
			continue;
		}
		if (xm_room_find(x, id))
			continue;
		x->rooms = tr_xrealloc(x->rooms, (x->n_rooms + 1) * sizeof(*x->rooms));
		struct xm_room *r = &x->rooms[x->n_rooms++];
		memset(r, 0, sizeof(*r));
		r->jid = tr_xstrdup(id);
		r->nick = tr_xstrdup(x->cfg.nick);
	}
	/* New rooms, and after a reconnect every room, are joined now rather than at the tick. */
	uint64_t now = xm_now(x);
	for (size_t i = 0; x->session && i < x->n_rooms; i++)
		if (x->rooms[i].st == XM_ROOM_OUT && x->rooms[i].retry_at <= now)
			xm_room_join(x, &x->rooms[i]);
	xm_status(x);
	xm_pump(x);
	return TR_OK;
}

static void xm_disconnect(struct tr_conn *c)
{
	struct xm *x = tr_conn_state(c);
	x->closing = true;
	if (x->resolving) {
		x->resolving->x = NULL;
		uv_cancel((uv_req_t *)&x->resolving->req);
		x->resolving = NULL;
	}
	if (x->tick_init)
		uv_timer_stop(&x->tick);
	xm_poll_stop(x);
	if (x->conn) {
		xmpp_conn_release(x->conn);
		x->conn = NULL;
	}
	if (x->ctx) {
		xmpp_ctx_free(x->ctx);
		x->ctx = NULL;
	}
	xm_fail_all(x, TR_E_CLOSED, "XMPP connection lost");
	for (size_t i = 0; i < x->n_rooms; i++) {
		x->rooms[i].st = XM_ROOM_OUT;
		x->rooms[i].live = false;
		x->rooms[i].retry_at = 0;
		x->rooms[i].attempts = 0;
		free(x->rooms[i].nick);
		x->rooms[i].nick = tr_xstrdup(x->cfg.nick);
	}
	x->session = false;
	x->lost = false;
	x->closing = false;
}

static void xm_tick_closed(uv_handle_t *h)
{
	(void)h;
}

static void xm_release(struct tr_conn *c)
{
	struct xm *x = tr_conn_state(c);
	xm_disconnect(c);
	if (x->tick_init) {
		uv_close((uv_handle_t *)&x->tick, xm_tick_closed);
		x->tick_init = false;
	}
	uv_run(tr_conn_loop(c), UV_RUN_NOWAIT);
	for (size_t i = 0; i < x->n_rooms; i++)
		xm_room_free(&x->rooms[i]);
	free(x->rooms);
	for (size_t i = 0; i < XM_RECENT; i++)
		xm_msg_free(x->ring[i]);
	tr_map_cleanup(&x->msgs);
	free(x->bound);
	xm_config_cleanup(&x->cfg);
	if (xm_lib_init) {
		xmpp_shutdown();
		xm_lib_init = false;
	}
	xm_self = NULL;
}

const struct tr_connector xmpp_connector = {
    .network = "xmpp",
    .state_size = sizeof(struct xm),
    .caps = TR_CAP_EDIT | TR_CAP_DELETE | TR_CAP_REACT | TR_CAP_REPLY,
    .configure = xm_configure,
    .connect = xm_connect,
    .deliver = xm_deliver,
    .set_channels = xm_set_channels,
    .disconnect = xm_disconnect,
    .release = xm_release,
};
