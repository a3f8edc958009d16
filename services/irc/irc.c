/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-irc: the connector vtable and the IRC session on the one libuv loop: registration
 * (CAP LS 302, SASL PLAIN, NickServ fallback, nick-in-use), keepalive, channels kept equal to
 * the channels list (rejoin after KICK with backoff), the flood-controlled send queue with
 * delivery confirmation (echo-message msgid, else a PONG after the lines), and inbound lines
 * published as events. Owns struct irc and everything in it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "backoff.h"
#include "connector.h"
#include "irc.h"
#include "irc_net.h"
#include "log.h"
#include "map.h"
#include "utf8.h"

#define IRC_RX_MAX      (IRC_TAGS_MAX + IRC_LINE_MAX + 2)
#define IRC_CONFIRM_MAX 8    /* jobs written before a confirming PING is forced */
#define IRC_NICKS_KEPT  2048 /* msgid -> author remembered for reply prefixes */
#define IRC_SASL_CHUNK  400
#define IRC_CONFIRM_TAG "trestle-c"
#define IRC_KEEPALIVE   "trestle-ka"

static const struct tr_backoff_policy irc_rejoin_policy = {
    .base_ms = 2000, .max_ms = 300000, .jitter_pct = 30};

enum irc_chan_state { IRC_CHAN_OUT = 0, IRC_CHAN_JOINING, IRC_CHAN_IN };

struct irc_chan {
	char *name; /* as the channels list spells it */
	bool want;
	enum irc_chan_state st;
	unsigned attempt;
	uint64_t retry_at, last_kick;
	bool refused;          /* the last join failed */
	struct tr_map members; /* casefolded nicks (IRC_JOINS only) */
};

/* One delivery (or one control line when ev.id is NULL). */
struct irc_job {
	struct irc_job *next;
	struct tr_event ev; /* only id, dest.connector, dest.channel: what an ack needs */
	char *author;       /* the guarded bridged name, remembered for reply prefixes */
	char **lines;
	size_t n, sent, echoes;
	char *local_msgid, *echo_msgid;
	uint64_t confirm_seq;
};

struct irc_queue {
	struct irc_job *head, **tail;
	size_t len;
};

struct irc {
	struct tr_conn *c;
	struct irc_config cfg;
	SSL_CTX *tls;
	struct irc_link *link;
	bool timers_init;
	uv_timer_t t_register, t_ping, t_send, t_rejoin;
	/* session */
	struct tr_buf rx;
	bool rx_discard;
	bool registered, cap_ended, sasl_ok;
	struct irc_caps caps;
	char nick[IRC_NICK_MAX];
	unsigned nick_try;
	size_t self_prefix_len;
	uint64_t last_rx, ka_sent;
	bool ka_outstanding;
	/* channels */
	struct irc_chan *chans;
	size_t n_chans;
	/* sending */
	struct irc_queue ctl, pending, awaiting;
	double tokens;
	uint64_t tokens_at;
	uint64_t ping_seq; /* seq of the next confirming PING */
	bool need_confirm;
	/* ids */
	uint64_t boot_ms, counter;
	struct tr_map nicks;
	char **nick_ring;
	size_t nick_pos;
};

static void irc_pump(struct irc *irc);

/* ---- configuration ---- */

static bool irc_nick_valid(const char *s)
{
	if (!s || !*s || strlen(s) >= IRC_NICK_MAX || (*s >= '0' && *s <= '9') || *s == '-')
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		            "-_[]{}\\|^`",
		            *s))
			return false;
	return true;
}

void irc_config_read(struct irc_config *cfg, struct tr_env *env)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->tls = tr_env_bool(env, "IRC_TLS", false);
	cfg->tls_verify = tr_env_bool(env, "IRC_TLS_VERIFY", true);
	cfg->ca_file = tr_env_str(env, "IRC_CA_FILE", NULL);
	char *server = tr_env_required(env, "IRC_SERVER");
	if (server) {
		/* host:port, [v6addr]:port, or host alone (6667, or 6697 with TLS). */
		char *host = server, *port = NULL;
		if (*server == '[') {
			char *end = strchr(server, ']');
			if (end) {
				*end = '\0';
				host = server + 1;
				port = end[1] == ':' ? end + 2 : NULL;
			}
		} else {
			char *colon = strrchr(server, ':');
			if (colon && colon == strchr(server, ':')) {
				*colon = '\0';
				port = colon + 1;
			}
		}
		long p = cfg->tls ? 6697 : 6667;
		if (port && tr_parse_long(port, 1, 65535, &p) != TR_OK)
			tr_env_fail(env, "IRC_SERVER", "port must be 1-65535");
		if (!*host)
			tr_env_fail(env, "IRC_SERVER", "host:port expected");
		cfg->host = tr_xstrdup(host);
		cfg->port = (int)p;
		free(server);
	}
	cfg->nick = tr_env_required(env, "IRC_NICK");
	if (cfg->nick && !irc_nick_valid(cfg->nick))
		tr_env_fail(env, "IRC_NICK", "not a valid nickname");
	cfg->user = tr_env_str(env, "IRC_USER", cfg->nick ? cfg->nick : "trestle");
	if (cfg->user && !irc_nick_valid(cfg->user))
		tr_env_fail(env, "IRC_USER", "not a valid user name");
	cfg->realname = tr_env_str(env, "IRC_REALNAME", "Trestle chat bridge");
	if (cfg->realname && strpbrk(cfg->realname, "\r\n"))
		tr_env_fail(env, "IRC_REALNAME", "must be one line");
	cfg->sasl_user = tr_env_str(env, "IRC_SASL_USER", NULL);
	cfg->sasl_pass = tr_env_str(env, "IRC_SASL_PASSWORD", NULL);
	if (!cfg->sasl_user != !cfg->sasl_pass)
		tr_env_fail(env, "IRC_SASL_USER",
		            "IRC_SASL_USER and IRC_SASL_PASSWORD go together");
	cfg->nickserv_pass = tr_env_str(env, "IRC_NICKSERV_PASSWORD", NULL);
	if (cfg->nickserv_pass && strpbrk(cfg->nickserv_pass, "\r\n"))
		tr_env_fail(env, "IRC_NICKSERV_PASSWORD", "must be one line");
	cfg->author_tpl = tr_env_str(env, "IRC_AUTHOR_TEMPLATE", "<{name}> ");
	cfg->edit_tpl = tr_env_str(env, "IRC_EDIT_TEMPLATE", "{name} edited: {text}");
	if (cfg->edit_tpl && (strcmp(cfg->edit_tpl, "off") == 0 || !*cfg->edit_tpl)) {
		free(cfg->edit_tpl);
		cfg->edit_tpl = NULL;
	}
	cfg->deletes = tr_env_bool(env, "IRC_DELETES", false);
	cfg->reactions = tr_env_bool(env, "IRC_REACTIONS", false);
	cfg->joins = tr_env_bool(env, "IRC_JOINS", false);
	char *rate = tr_env_str(env, "IRC_FLOOD_RATE", "1");
	char *end = NULL;
	cfg->flood_rate = rate ? strtod(rate, &end) : 1;
	if (!rate || end == rate || *end || !(cfg->flood_rate >= 0.05 && cfg->flood_rate <= 1000))
		tr_env_fail(env, "IRC_FLOOD_RATE", "lines per second, 0.05-1000");
	free(rate);
	cfg->flood_burst = (int)tr_env_int(env, "IRC_FLOOD_BURST", 5, 1, 1000);
	cfg->register_timeout_ms = 1000 * (int)tr_env_int(env, "IRC_REGISTER_TIMEOUT", 30, 1, 600);
	cfg->ping_interval_ms = 1000 * (int)tr_env_int(env, "IRC_PING_INTERVAL", 60, 1, 3600);
	cfg->ping_timeout_ms = 1000 * (int)tr_env_int(env, "IRC_PING_TIMEOUT", 30, 1, 3600);
}

void irc_config_cleanup(struct irc_config *cfg)
{
	free(cfg->host);
	free(cfg->ca_file);
	free(cfg->nick);
	free(cfg->user);
	free(cfg->realname);
	free(cfg->sasl_user);
	free(cfg->sasl_pass);
	free(cfg->nickserv_pass);
	free(cfg->author_tpl);
	free(cfg->edit_tpl);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- sending ---- */

static uint64_t irc_now(struct irc *irc)
{
	return uv_now(tr_conn_loop(irc->c));
}

/* Registration, PONG and keepalive lines: outside the flood bucket (a few per session). */
static void irc_send_now(struct irc *irc, const char *cmd, size_t n, const char *const *params)
{
	struct tr_buf b;
	tr_buf_init(&b, IRC_LINE_MAX + 2);
	if (irc_line_build(&b, NULL, 0, cmd, n, params, NULL) != TR_OK) {
		tr_warn("irc: refused to build a %s line", cmd);
	} else if (irc->link && irc_link_write(irc->link, b.data, b.len) != TR_OK) {
		tr_conn_lost(irc->c, TR_E_IO, "write failed");
	}
	tr_buf_cleanup(&b);
}

static void irc_send1(struct irc *irc, const char *cmd, const char *p0)
{
	const char *params[1] = {p0};
	irc_send_now(irc, cmd, p0 ? 1 : 0, params);
}

static void irc_queue_init(struct irc_queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->len = 0;
}

static void irc_queue_push(struct irc_queue *q, struct irc_job *j)
{
	if (!q->tail)
		irc_queue_init(q);
	j->next = NULL;
	*q->tail = j;
	q->tail = &j->next;
	q->len++;
}

static struct irc_job *irc_queue_pop(struct irc_queue *q)
{
	struct irc_job *j = q->head;
	if (!j)
		return NULL;
	q->head = j->next;
	if (!q->head)
		q->tail = &q->head;
	q->len--;
	j->next = NULL;
	return j;
}

static void irc_job_free(struct irc_job *j)
{
	if (!j)
		return;
	tr_event_cleanup(&j->ev);
	for (size_t i = 0; i < j->n; i++)
		free(j->lines[i]);
	free(j->lines);
	free(j->author);
	free(j->local_msgid);
	free(j->echo_msgid);
	free(j);
}

/* A control line (JOIN, PART, NickServ): through the bucket, ahead of messages, never acked. */
static void irc_send_ctl(struct irc *irc, const char *cmd, size_t n, const char *const *params)
{
	struct tr_buf b;
	tr_buf_init(&b, IRC_LINE_MAX + 2);
	if (irc_line_build(&b, NULL, 0, cmd, n, params, NULL) != TR_OK) {
		tr_warn("irc: refused to build a %s line", cmd);
		tr_buf_cleanup(&b);
		return;
	}
	struct irc_job *j = tr_xcalloc(1, sizeof(*j));
	j->lines = tr_xcalloc(1, sizeof(char *));
	j->lines[0] = tr_buf_take(&b);
	j->n = 1;
	irc_queue_push(&irc->ctl, j);
	irc_pump(irc);
}

static void irc_remember(struct irc *irc, const char *msgid, const char *nick)
{
	if (!msgid || !nick)
		return;
	if (!irc->nick_ring)
		irc->nick_ring = tr_xcalloc(IRC_NICKS_KEPT, sizeof(char *));
	char *old = tr_map_put(&irc->nicks, msgid, strlen(msgid), tr_xstrdup(nick));
	if (old) {
		free(old);
		return;
	}
	char *victim = irc->nick_ring[irc->nick_pos];
	if (victim) {
		free(tr_map_del(&irc->nicks, victim, strlen(victim)));
		free(victim);
	}
	irc->nick_ring[irc->nick_pos] = tr_xstrdup(msgid);
	irc->nick_pos = (irc->nick_pos + 1) % IRC_NICKS_KEPT;
}

static void irc_job_ack(struct irc *irc, struct irc_job *j, int err, const char *detail)
{
	if (err == TR_OK) {
		const char *msgid = j->echo_msgid ? j->echo_msgid : j->local_msgid;
		irc_remember(irc, msgid, j->author);
		tr_debug("irc: delivered id=%s lines=%zu", j->ev.id, j->n);
		tr_conn_ack(irc->c, &j->ev, TR_OK, msgid);
	} else {
		tr_conn_ack(irc->c, &j->ev, err, detail);
	}
	irc_job_free(j);
}

static void irc_on_send_timer(uv_timer_t *t)
{
	irc_pump(t->data);
}

static bool irc_write_line(struct irc *irc, const char *line)
{
	if (irc_link_write(irc->link, line, strlen(line)) != TR_OK) {
		tr_conn_lost(irc->c, TR_E_IO, "write failed");
		return false;
	}
	return true;
}

/* Writes queued lines as the token bucket allows: control lines first, then deliveries; a
 * delivery fully written waits in `awaiting` for the PONG to a PING sent after it (the server
 * handles a client's lines in order), so an error numeric in between can refuse it and a lost
 * connection can send it again. */
static void irc_pump(struct irc *irc)
{
	if (!irc->registered || !irc->link)
		return;
	uint64_t now = irc_now(irc);
	double burst = irc->cfg.flood_burst;
	irc->tokens += (double)(now - irc->tokens_at) * irc->cfg.flood_rate / 1000.0;
	if (irc->tokens > burst)
		irc->tokens = burst;
	irc->tokens_at = now;
	while (irc->link && irc->tokens >= 1.0) {
		struct irc_job *j = irc->ctl.head;
		if (j) {
			irc_queue_pop(&irc->ctl);
			bool ok = irc_write_line(irc, j->lines[0]);
			irc_job_free(j);
			if (!ok)
				return;
		} else if ((j = irc->pending.head) != NULL) {
			if (!irc_write_line(irc, j->lines[j->sent]))
				return;
			if (++j->sent == j->n) {
				irc_queue_pop(&irc->pending);
				j->confirm_seq = irc->ping_seq;
				irc_queue_push(&irc->awaiting, j);
				irc->need_confirm = true;
			}
		} else {
			break;
		}
		irc->tokens -= 1.0;
		/* Confirm when the queue drains, or every few deliveries in a long run. */
		bool drained = !irc->ctl.head && !irc->pending.head;
		if (irc->need_confirm && irc->link &&
		    (drained || irc->awaiting.len >= IRC_CONFIRM_MAX)) {
			char tok[48];
			snprintf(tok, sizeof(tok), IRC_CONFIRM_TAG "%llu",
			         (unsigned long long)irc->ping_seq++);
			irc->need_confirm = false;
			irc_send1(irc, "PING", tok);
		}
	}
	if (irc->link && (irc->ctl.head || irc->pending.head)) {
		double wait = (1.0 - irc->tokens) * 1000.0 / irc->cfg.flood_rate;
		uv_timer_start(&irc->t_send, irc_on_send_timer, (uint64_t)wait + 1, 0);
	}
}

static void irc_confirmed(struct irc *irc, uint64_t seq)
{
	while (irc->awaiting.head && irc->awaiting.head->confirm_seq <= seq)
		irc_job_ack(irc, irc_queue_pop(&irc->awaiting), TR_OK, NULL);
}

/* The delivery a server reply about channel `chan` refers to: the oldest one with lines out. */
static struct irc_job **irc_find_sent(struct irc *irc, const char *chan, bool want_echo)
{
	struct irc_queue *qs[2] = {&irc->awaiting, &irc->pending};
	for (size_t q = 0; q < 2; q++)
		for (struct irc_job **pp = &qs[q]->head; *pp; pp = &(*pp)->next) {
			struct irc_job *j = *pp;
			if (j->sent && irc_caseeq(j->ev.dest.channel, chan) &&
			    (!want_echo || j->echoes < j->sent))
				return pp;
		}
	return NULL;
}

static void irc_refused(struct irc *irc, const char *chan, const char *numeric)
{
	struct irc_job **pp = irc_find_sent(irc, chan, false);
	if (!pp)
		return;
	struct irc_job *j = *pp;
	struct irc_queue *q = NULL;
	for (struct irc_job *k = irc->awaiting.head; k; k = k->next)
		if (k == j)
			q = &irc->awaiting;
	if (!q)
		q = &irc->pending;
	/* Unlink from the middle of its queue. */
	*pp = j->next;
	if (q->tail == &j->next)
		q->tail = pp;
	q->len--;
	char detail[96];
	snprintf(detail, sizeof(detail), "cannot send to channel (%s)", numeric);
	irc_job_ack(irc, j, TR_E_FORBIDDEN, detail);
}

/* ---- channels ---- */

static struct irc_chan *irc_chan_find(struct irc *irc, const char *name)
{
	for (size_t i = 0; i < irc->n_chans; i++)
		if (irc_caseeq(irc->chans[i].name, name))
			return &irc->chans[i];
	return NULL;
}

static void irc_members_clear(struct irc_chan *ch)
{
	tr_map_cleanup(&ch->members);
	tr_map_init(&ch->members);
}

static void irc_member(struct irc *irc, struct irc_chan *ch, const char *nick, bool in)
{
	if (!irc->cfg.joins)
		return;
	char *k = tr_xstrdup(nick);
	irc_casefold(k);
	if (in)
		tr_map_put(&ch->members, k, strlen(k), ch);
	else
		tr_map_del(&ch->members, k, strlen(k));
	free(k);
}

static void irc_on_rejoin_timer(uv_timer_t *t);

static void irc_status(struct irc *irc)
{
	size_t refused = 0;
	for (size_t i = 0; i < irc->n_chans; i++)
		if (irc->chans[i].want && irc->chans[i].refused)
			refused++;
	char detail[128];
	if (refused) {
		snprintf(detail, sizeof(detail), "connected as %s; %zu channel(s) not joined",
		         irc->nick, refused);
		tr_conn_degraded(irc->c, detail);
	} else {
		snprintf(detail, sizeof(detail), "connected as %s", irc->nick);
		tr_conn_online(irc->c, detail);
	}
}

/* Joins and parts so the joined set equals the wanted set; arms the rejoin timer. */
static void irc_chans_sync(struct irc *irc)
{
	if (!irc->registered)
		return;
	uint64_t now = irc_now(irc), next = 0;
	size_t w = 0;
	for (size_t i = 0; i < irc->n_chans; i++) {
		struct irc_chan *ch = &irc->chans[i];
		if (ch->want && ch->st == IRC_CHAN_OUT) {
			if (ch->retry_at <= now) {
				irc_send_ctl(irc, "JOIN", 1, (const char *const *)&ch->name);
				ch->st = IRC_CHAN_JOINING;
			} else if (!next || ch->retry_at < next) {
				next = ch->retry_at;
			}
		} else if (!ch->want && ch->st != IRC_CHAN_OUT) {
			irc_send_ctl(irc, "PART", 1, (const char *const *)&ch->name);
			ch->st = IRC_CHAN_OUT;
		}
		if (!ch->want && ch->st == IRC_CHAN_OUT) {
			free(ch->name);
			tr_map_cleanup(&ch->members);
			continue;
		}
		irc->chans[w++] = *ch;
	}
	irc->n_chans = w;
	if (next)
		uv_timer_start(&irc->t_rejoin, irc_on_rejoin_timer, next - now, 0);
}

static void irc_on_rejoin_timer(uv_timer_t *t)
{
	irc_chans_sync(t->data);
}

static void irc_chan_backoff(struct irc *irc, struct irc_chan *ch)
{
	uint64_t now = irc_now(irc);
	/* A kick long ago does not make the next one look like a loop. */
	if (now - ch->last_kick > 600000)
		ch->attempt = 0;
	ch->last_kick = now;
	ch->retry_at = now + tr_backoff_delay(&irc_rejoin_policy, ch->attempt++, tr_random());
	ch->st = IRC_CHAN_OUT;
	irc_members_clear(ch);
}

/* ---- session ---- */

static void irc_try_nick(struct irc *irc)
{
	const char *base = irc->cfg.nick;
	unsigned k = irc->nick_try++;
	if (k == 0) {
		snprintf(irc->nick, sizeof(irc->nick), "%s", base);
	} else if (k <= 3) {
		snprintf(irc->nick, sizeof(irc->nick), "%s%.*s", base, (int)k, "___");
	} else {
		/* Servers cap nick length (RFC 2812: 9): keep the random tail inside it. */
		snprintf(irc->nick, sizeof(irc->nick), "%.5s%03u", base, tr_random() % 1000);
	}
	irc_send1(irc, "NICK", irc->nick);
}

static void irc_cap_end(struct irc *irc)
{
	if (irc->cap_ended)
		return;
	irc->cap_ended = true;
	irc_send1(irc, "CAP", "END");
}

static void irc_on_register_timer(uv_timer_t *t)
{
	struct irc *irc = t->data;
	tr_conn_lost(irc->c, TR_E_TIMEOUT, "registration timed out");
}

static void irc_on_ping_timer(uv_timer_t *t)
{
	struct irc *irc = t->data;
	uint64_t now = irc_now(irc);
	if (irc->ka_outstanding) {
		if (now - irc->ka_sent >= (uint64_t)irc->cfg.ping_timeout_ms)
			tr_conn_lost(irc->c, TR_E_TIMEOUT, "ping timeout");
		return;
	}
	if (now - irc->last_rx >= (uint64_t)irc->cfg.ping_interval_ms) {
		irc->ka_outstanding = true;
		irc->ka_sent = now;
		irc_send1(irc, "PING", IRC_KEEPALIVE);
	}
}

static void irc_on_link_up(struct irc *irc)
{
	irc->last_rx = irc_now(irc);
	const char *ls[2] = {"LS", "302"};
	irc_send_now(irc, "CAP", 2, ls);
	irc_try_nick(irc);
	const char *user[4] = {irc->cfg.user, "0", "*", irc->cfg.realname};
	irc_send_now(irc, "USER", 4, user);
}

static void irc_on_welcome(struct irc *irc, const struct irc_msg *m)
{
	irc->registered = true;
	uv_timer_stop(&irc->t_register);
	snprintf(irc->nick, sizeof(irc->nick), "%s", irc_msg_param(m, 0));
	/* "Welcome to the network nick!user@host": our prefix as others will see it. */
	const char *last = irc_msg_param(m, m->n_params ? m->n_params - 1 : 0);
	const char *sp = strrchr(last, ' ');
	const char *word = sp ? sp + 1 : last;
	irc->self_prefix_len = strchr(word, '!') ? strlen(word) + 2 : 0;
	irc->tokens = irc->cfg.flood_burst;
	irc->tokens_at = irc_now(irc);
	uint64_t every = (uint64_t)(irc->cfg.ping_interval_ms < irc->cfg.ping_timeout_ms
	                                ? irc->cfg.ping_interval_ms
	                                : irc->cfg.ping_timeout_ms) /
	                 4;
	uv_timer_start(&irc->t_ping, irc_on_ping_timer, every ? every : 250, every ? every : 250);
	tr_info("irc: registered nick=%s caps=0x%x sasl=%d", irc->nick, irc->caps.acked,
	        irc->sasl_ok);
	if (irc->cfg.nickserv_pass && !irc->sasl_ok) {
		char *id = tr_xasprintf("IDENTIFY %s", irc->cfg.nickserv_pass);
		const char *p[2] = {"NickServ", id};
		irc_send_ctl(irc, "PRIVMSG", 2, p);
		memset(id, 0, strlen(id));
		free(id);
	}
	/* The channels list as it stands; set_channels() brings later changes. */
	size_t n = 0;
	const char *const *ids = tr_conn_channels(irc->c, &n);
	for (size_t i = 0; i < irc->n_chans; i++)
		irc->chans[i].want = false;
	for (size_t i = 0; i < n; i++) {
		struct irc_chan *ch = irc_chan_find(irc, ids[i]);
		if (!ch && irc_is_channel(ids[i])) {
			irc->chans = tr_xrealloc(irc->chans, (irc->n_chans + 1) * sizeof(*ch));
			ch = &irc->chans[irc->n_chans++];
			memset(ch, 0, sizeof(*ch));
			ch->name = tr_xstrdup(ids[i]);
			tr_map_init(&ch->members);
		}
		if (ch)
			ch->want = true;
	}
	irc_chans_sync(irc);
	irc_status(irc);
	irc_pump(irc);
}

static void irc_on_cap(struct irc *irc, const struct irc_msg *m)
{
	const char *sub = irc_msg_param(m, 1);
	bool more = m->n_params >= 4 && strcmp(irc_msg_param(m, 2), "*") == 0;
	const char *list = irc_msg_param(m, m->n_params - 1);
	if (strcmp(sub, "LS") == 0) {
		irc_caps_ls(&irc->caps, list, more);
		if (!irc->caps.ls_done || irc->registered)
			return;
		char req[256];
		irc_caps_req(&irc->caps, irc->cfg.sasl_user != NULL, req, sizeof(req));
		if (irc->cfg.sasl_user && !(irc->caps.offered & IRC_CAP_SASL))
			tr_warn("irc: server offers no SASL PLAIN; logging in without it");
		if (*req) {
			const char *p[2] = {"REQ", req};
			irc_send_now(irc, "CAP", 2, p);
		} else {
			irc_cap_end(irc);
		}
	} else if (strcmp(sub, "ACK") == 0) {
		irc_caps_ack(&irc->caps, list);
		if ((irc->caps.acked & IRC_CAP_SASL) && irc->cfg.sasl_user && !irc->registered)
			irc_send1(irc, "AUTHENTICATE", "PLAIN");
		else
			irc_cap_end(irc);
	} else if (strcmp(sub, "NAK") == 0) {
		irc_cap_end(irc);
	}
}

static void irc_on_authenticate(struct irc *irc, const struct irc_msg *m)
{
	if (strcmp(irc_msg_param(m, 0), "+") != 0 || !irc->cfg.sasl_user)
		return;
	char *b64 = irc_sasl_plain(irc->cfg.sasl_user, irc->cfg.sasl_pass);
	size_t len = strlen(b64);
	for (size_t off = 0; off < len; off += IRC_SASL_CHUNK) {
		size_t n = len - off < IRC_SASL_CHUNK ? len - off : IRC_SASL_CHUNK;
		char chunk[IRC_SASL_CHUNK + 1];
		memcpy(chunk, b64 + off, n);
		chunk[n] = '\0';
		irc_send1(irc, "AUTHENTICATE", chunk);
		memset(chunk, 0, sizeof(chunk));
	}
	if (len % IRC_SASL_CHUNK == 0)
		irc_send1(irc, "AUTHENTICATE", "+");
	memset(b64, 0, len);
	free(b64);
}

static void irc_publish(struct irc *irc, const struct irc_msg *m, const char *chan)
{
	struct irc_in_ctx ctx = {.connector = tr_conn_name(irc->c),
	                         .nick = irc->nick,
	                         .channel = chan,
	                         .joins = irc->cfg.joins,
	                         .boot_ms = irc->boot_ms,
	                         .counter = &irc->counter};
	struct tr_event ev;
	int rc = irc_map_in(m, &ctx, &ev);
	if (rc == TR_OK) {
		if (ev.msgid)
			irc_remember(irc, ev.msgid, ev.author.name);
		if (tr_conn_publish(irc->c, &ev) != TR_OK)
			tr_warn("irc: could not publish %s in %s", m->command, chan);
	} else if (rc != TR_E_NOTFOUND) {
		tr_warn("irc: unmappable %s in %s: %s", m->command, chan, tr_strerror(rc));
	}
	tr_event_cleanup(&ev);
}

/* An echo-message copy of one of our PRIVMSGs: it gives the msgid to ack with. */
static void irc_on_echo(struct irc *irc, const struct irc_msg *m)
{
	struct irc_job **pp = irc_find_sent(irc, irc_msg_param(m, 0), true);
	if (!pp)
		return;
	struct irc_job *j = *pp;
	const char *msgid = irc_msg_tag(m, "msgid");
	if (j->echoes++ == 0 && msgid && *msgid)
		j->echo_msgid = tr_xstrdup(msgid);
}

static void irc_on_channel_line(struct irc *irc, const struct irc_msg *m, const char *from)
{
	const char *cmd = m->command;
	bool ours = irc_caseeq(from, irc->nick);
	const char *target = irc_msg_param(m, 0);
	if (strcmp(cmd, "QUIT") == 0) {
		if (ours || !irc->cfg.joins)
			return;
		char *k = tr_xstrdup(from);
		irc_casefold(k);
		for (size_t i = 0; i < irc->n_chans; i++) {
			struct irc_chan *ch = &irc->chans[i];
			if (ch->st == IRC_CHAN_IN && tr_map_del(&ch->members, k, strlen(k)))
				irc_publish(irc, m, ch->name);
		}
		free(k);
		return;
	}
	if (strcmp(cmd, "NICK") == 0) {
		if (ours) {
			snprintf(irc->nick, sizeof(irc->nick), "%s", target);
			return;
		}
		for (size_t i = 0; i < irc->n_chans; i++) {
			char *k = tr_xstrdup(from);
			irc_casefold(k);
			if (tr_map_del(&irc->chans[i].members, k, strlen(k)))
				irc_member(irc, &irc->chans[i], target, true);
			free(k);
		}
		return;
	}
	struct irc_chan *ch = irc_is_channel(target) ? irc_chan_find(irc, target) : NULL;
	if (!ch)
		return;
	if (strcmp(cmd, "JOIN") == 0) {
		if (ours) {
			ch->st = IRC_CHAN_IN;
			ch->refused = false;
			/* Our prefix as the server now shows it (a cloak may have changed it). */
			irc->self_prefix_len = strlen(m->prefix) + 2;
			tr_info("irc: joined channel=%s", ch->name);
			irc_status(irc);
			return;
		}
		irc_member(irc, ch, from, true);
	} else if (strcmp(cmd, "PART") == 0) {
		if (ours) {
			ch->st = IRC_CHAN_OUT;
			irc_members_clear(ch);
			return;
		}
		irc_member(irc, ch, from, false);
	} else if (strcmp(cmd, "KICK") == 0) {
		const char *victim = irc_msg_param(m, 1);
		if (irc_caseeq(victim, irc->nick)) {
			irc_chan_backoff(irc, ch);
			tr_warn("irc: kicked from channel=%s by %s; rejoining later", ch->name,
			        from);
			irc_chans_sync(irc);
			return;
		}
		irc_member(irc, ch, victim, false);
	} else if (ours && strcmp(cmd, "PRIVMSG") == 0) {
		irc_on_echo(irc, m);
		return;
	}
	if (!ours)
		irc_publish(irc, m, ch->name);
}

static void irc_on_line(struct irc *irc, const char *line, size_t len)
{
	struct irc_msg m;
	if (irc_msg_parse(line, len, &m) != TR_OK) {
		tr_debug("irc: unparsable line of %zu bytes", len);
		return;
	}
	irc->ka_outstanding = false;
	const char *cmd = m.command;
	char from[IRC_NICK_MAX] = "";
	bool from_user = irc_prefix_nick(m.prefix, from, sizeof(from));
	if (strcmp(cmd, "PING") == 0) {
		irc_send1(irc, "PONG", irc_msg_param(&m, m.n_params ? m.n_params - 1 : 0));
	} else if (strcmp(cmd, "PONG") == 0) {
		const char *tok = irc_msg_param(&m, m.n_params ? m.n_params - 1 : 0);
		if (strncmp(tok, IRC_CONFIRM_TAG, strlen(IRC_CONFIRM_TAG)) == 0)
			irc_confirmed(irc, strtoull(tok + strlen(IRC_CONFIRM_TAG), NULL, 10));
	} else if (strcmp(cmd, "CAP") == 0) {
		irc_on_cap(irc, &m);
	} else if (strcmp(cmd, "AUTHENTICATE") == 0) {
		irc_on_authenticate(irc, &m);
	} else if (strcmp(cmd, "903") == 0) {
		irc->sasl_ok = true;
		irc_cap_end(irc);
	} else if (!strcmp(cmd, "902") || !strcmp(cmd, "904") || !strcmp(cmd, "905") ||
	           !strcmp(cmd, "906")) {
		tr_warn("irc: SASL login refused (%s)", cmd);
		tr_conn_lost(irc->c, TR_E_AUTH, "SASL authentication failed");
	} else if (strcmp(cmd, "001") == 0) {
		irc_on_welcome(irc, &m);
	} else if (!strcmp(cmd, "433") || !strcmp(cmd, "432") || !strcmp(cmd, "436") ||
	           !strcmp(cmd, "437")) {
		if (!irc->registered) {
			tr_info("irc: nick %s unavailable (%s), trying another", irc->nick, cmd);
			irc_try_nick(irc);
		}
	} else if (!strcmp(cmd, "404") || !strcmp(cmd, "442") || !strcmp(cmd, "403")) {
		irc_refused(irc, irc_msg_param(&m, 1), cmd);
	} else if (!strcmp(cmd, "471") || !strcmp(cmd, "473") || !strcmp(cmd, "474") ||
	           !strcmp(cmd, "475") || !strcmp(cmd, "477") || !strcmp(cmd, "405")) {
		struct irc_chan *ch = irc_chan_find(irc, irc_msg_param(&m, 1));
		if (ch && ch->st == IRC_CHAN_JOINING) {
			tr_warn("irc: cannot join channel=%s (%s)", ch->name, cmd);
			ch->refused = true;
			irc_chan_backoff(irc, ch);
			irc_chans_sync(irc);
			irc_status(irc);
		}
	} else if (strcmp(cmd, "353") == 0) {
		/* NAMES: "= #chan :@op +voice nick" */
		struct irc_chan *ch = irc_chan_find(irc, irc_msg_param(&m, 2));
		char *names = tr_xstrdup(irc_msg_param(&m, 3));
		for (char *p = names; ch && *p;) {
			size_t n = strcspn(p, " ");
			char save = p[n];
			p[n] = '\0';
			char *nick = p + strspn(p, "~&@%+");
			if (*nick && !irc_caseeq(nick, irc->nick))
				irc_member(irc, ch, nick, true);
			p += n + (save ? 1 : 0);
		}
		free(names);
	} else if (strcmp(cmd, "ERROR") == 0) {
		tr_conn_lost(irc->c, TR_E_CLOSED, "server closed the link (ERROR)");
	} else if (from_user && irc->registered) {
		irc_on_channel_line(irc, &m, from);
	}
	irc_msg_cleanup(&m);
}

/* Bytes to lines. Servers may send Latin-1 or worse: bad UTF-8 bytes are read as Latin-1. */
static void irc_on_data(struct irc *irc, const char *data, size_t len)
{
	irc->last_rx = irc_now(irc);
	for (size_t i = 0; i < len && irc->link; i++) {
		char ch = data[i];
		if (ch != '\n') {
			if (!irc->rx_discard && tr_buf_append(&irc->rx, &ch, 1) != TR_OK) {
				tr_warn("irc: line over %d bytes dropped", IRC_RX_MAX);
				irc->rx_discard = true;
			}
			continue;
		}
		if (!irc->rx_discard) {
			size_t n = irc->rx.len;
			if (n && irc->rx.data[n - 1] == '\r')
				n--;
			const char *s = tr_buf_str(&irc->rx);
			if (tr_utf8_valid(s, n)) {
				irc_on_line(irc, s, n);
			} else {
				struct tr_buf fixed;
				tr_buf_init(&fixed, 2 * IRC_RX_MAX);
				for (size_t k = 0; k < n;) {
					size_t sl = tr_utf8_seq_len(s + k, n - k);
					if (sl) {
						(void)!tr_buf_append(&fixed, s + k, sl);
						k += sl;
						continue;
					}
					unsigned char b = (unsigned char)s[k++];
					char two[2] = {(char)(0xc0 | (b >> 6)),
					               (char)(0x80 | (b & 0x3f))};
					(void)!tr_buf_append(&fixed, two, 2);
				}
				irc_on_line(irc, tr_buf_str(&fixed), fixed.len);
				tr_buf_cleanup(&fixed);
			}
		}
		irc->rx_discard = false;
		tr_buf_reset(&irc->rx);
	}
}

static void irc_on_link(void *arg, enum irc_link_what what, int err, const char *detail,
                        const char *data, size_t len)
{
	struct irc *irc = arg;
	switch (what) {
	case IRC_LINK_UP:
		irc_on_link_up(irc);
		break;
	case IRC_LINK_DATA:
		irc_on_data(irc, data, len);
		break;
	case IRC_LINK_LOST:
		tr_conn_lost(irc->c, err, detail);
		break;
	}
}

/* ---- vtable ---- */

static int irc_configure(struct tr_conn *c, struct tr_env *env)
{
	struct irc *irc = tr_conn_state(c);
	irc->c = c;
	irc_config_read(&irc->cfg, env);
	irc_queue_init(&irc->ctl);
	irc_queue_init(&irc->pending);
	irc_queue_init(&irc->awaiting);
	tr_map_init(&irc->nicks);
	tr_buf_init(&irc->rx, IRC_RX_MAX);
	irc->boot_ms = (uint64_t)tr_now_ms();
	if (irc->cfg.tls && irc->cfg.host) {
		char err[TR_ERR_LEN];
		irc->tls = irc_tls_ctx_new(irc->cfg.ca_file, err);
		if (!irc->tls)
			tr_env_fail(env, irc->cfg.ca_file ? "IRC_CA_FILE" : "IRC_TLS", "%s", err);
	}
	if (irc->cfg.host)
		tr_info("irc: server=%s port=%d tls=%d verify=%d nick=%s sasl=%s nickserv=%s "
		        "flood=%.2f/s burst=%d",
		        irc->cfg.host, irc->cfg.port, irc->cfg.tls, irc->cfg.tls_verify,
		        tr_str(irc->cfg.nick), irc->cfg.sasl_user ? "yes" : "no",
		        irc->cfg.nickserv_pass ? "yes" : "no", irc->cfg.flood_rate,
		        irc->cfg.flood_burst);
	return TR_OK;
}

static int irc_connect(struct tr_conn *c)
{
	struct irc *irc = tr_conn_state(c);
	uv_loop_t *loop = tr_conn_loop(c);
	if (!irc->timers_init) {
		uv_timer_t *ts[] = {&irc->t_register, &irc->t_ping, &irc->t_send, &irc->t_rejoin};
		for (size_t i = 0; i < TR_ARRAY_LEN(ts); i++) {
			uv_timer_init(loop, ts[i]);
			ts[i]->data = irc;
		}
		irc->timers_init = true;
	}
	memset(&irc->caps, 0, sizeof(irc->caps));
	irc->registered = irc->cap_ended = irc->sasl_ok = irc->ka_outstanding = false;
	irc->rx_discard = false;
	irc->nick_try = 0;
	irc->self_prefix_len = 0;
	tr_buf_reset(&irc->rx);
	struct irc_link_cb cb = {.fn = irc_on_link, .arg = irc};
	irc->link =
	    irc_link_open(loop, irc->cfg.host, irc->cfg.port, irc->tls, irc->cfg.tls_verify, &cb);
	if (!irc->link)
		return TR_E_IO;
	uv_timer_start(&irc->t_register, irc_on_register_timer,
	               (uint64_t)irc->cfg.register_timeout_ms, 0);
	tr_info("irc: connecting to %s:%d", irc->cfg.host, irc->cfg.port);
	return TR_OK;
}

static int irc_deliver(struct tr_conn *c, const struct tr_event *ev)
{
	struct irc *irc = tr_conn_state(c);
	struct irc_chan *ch = irc_chan_find(irc, ev->dest.channel);
	if (!ch || !ch->want) {
		tr_conn_ack(c, ev, TR_E_FORBIDDEN, "channel not in the channels list");
		return TR_OK;
	}
	const char *reply_nick = NULL;
	if (ev->dest.reply_to)
		reply_nick = tr_map_get(&irc->nicks, ev->dest.reply_to, strlen(ev->dest.reply_to));
	size_t guess = 1 + strlen(irc->nick) + IRC_PREFIX_GUESS;
	struct irc_out_ctx ctx = {.cfg = &irc->cfg,
	                          .channel = ch->name,
	                          .self_prefix_len =
	                              irc->self_prefix_len ? irc->self_prefix_len : guess,
	                          .tags = (irc->caps.acked & IRC_CAP_MESSAGE_TAGS) != 0,
	                          .reply_nick = reply_nick};
	struct irc_out out;
	int rc = irc_map_out(ev, &ctx, &out);
	if (rc != TR_OK)
		return rc;
	if (out.n == 0) {
		/* Nothing is said on IRC for this event (configured off): done. */
		tr_conn_ack(c, ev, TR_OK, NULL);
		irc_out_cleanup(&out);
		return TR_OK;
	}
	struct irc_job *j = tr_xcalloc(1, sizeof(*j));
	j->ev.id = tr_xstrdup(ev->id);
	j->ev.dest.connector = tr_xstrdup(ev->dest.connector);
	j->ev.dest.channel = tr_xstrdup(ev->dest.channel);
	j->lines = out.lines;
	j->n = out.n;
	char *who = irc_name_guard(ev->author.display ? ev->author.display
	                           : ev->author.name  ? ev->author.name
	                                              : ev->author.id);
	j->author = who;
	j->local_msgid = tr_xasprintf("o%llu-%llu", (unsigned long long)irc->boot_ms,
	                              (unsigned long long)++irc->counter);
	irc_queue_push(&irc->pending, j);
	irc_pump(irc);
	return TR_OK;
}

static int irc_set_channels(struct tr_conn *c, const char *const *ids, size_t n)
{
	struct irc *irc = tr_conn_state(c);
	for (size_t i = 0; i < irc->n_chans; i++)
		irc->chans[i].want = false;
	for (size_t i = 0; i < n; i++) {
		if (!irc_is_channel(ids[i]) || strpbrk(ids[i], " ,\a")) {
			tr_warn("irc: ignoring channel id that is not an IRC channel: %s", ids[i]);
			continue;
		}
		struct irc_chan *ch = irc_chan_find(irc, ids[i]);
		if (!ch) {
			irc->chans = tr_xrealloc(irc->chans, (irc->n_chans + 1) * sizeof(*ch));
			ch = &irc->chans[irc->n_chans++];
			memset(ch, 0, sizeof(*ch));
			ch->name = tr_xstrdup(ids[i]);
			tr_map_init(&ch->members);
		}
		ch->want = true;
	}
	irc_chans_sync(irc);
	return TR_OK;
}

static void irc_disconnect(struct tr_conn *c)
{
	struct irc *irc = tr_conn_state(c);
	irc_link_close(irc->link);
	irc->link = NULL;
	if (irc->timers_init) {
		uv_timer_stop(&irc->t_register);
		uv_timer_stop(&irc->t_ping);
		uv_timer_stop(&irc->t_send);
		uv_timer_stop(&irc->t_rejoin);
	}
	irc->registered = false;
	/* Control lines are rebuilt by the next registration. */
	struct irc_job *j;
	while ((j = irc_queue_pop(&irc->ctl)) != NULL)
		irc_job_free(j);
	/* Deliveries not confirmed by the server go out again, first, in order (at least once). */
	struct irc_queue again;
	irc_queue_init(&again);
	while ((j = irc_queue_pop(&irc->awaiting)) != NULL) {
		j->sent = j->echoes = 0;
		free(j->echo_msgid);
		j->echo_msgid = NULL;
		irc_queue_push(&again, j);
	}
	while ((j = irc_queue_pop(&irc->pending)) != NULL) {
		j->sent = j->echoes = 0;
		free(j->echo_msgid);
		j->echo_msgid = NULL;
		irc_queue_push(&again, j);
	}
	irc->pending = again;
	if (!irc->pending.head)
		irc_queue_init(&irc->pending);
	irc->need_confirm = false;
	for (size_t i = 0; i < irc->n_chans; i++) {
		irc->chans[i].st = IRC_CHAN_OUT;
		irc->chans[i].retry_at = 0;
		irc_members_clear(&irc->chans[i]);
	}
}

static void irc_timer_closed(uv_handle_t *h)
{
	(void)h;
}

static void irc_release(struct tr_conn *c)
{
	struct irc *irc = tr_conn_state(c);
	irc_disconnect(c);
	struct irc_job *j;
	while ((j = irc_queue_pop(&irc->pending)) != NULL)
		irc_job_free(j);
	for (size_t i = 0; i < irc->n_chans; i++) {
		free(irc->chans[i].name);
		tr_map_cleanup(&irc->chans[i].members);
	}
	free(irc->chans);
	const char *k;
	size_t kl;
	void *v;
	for (size_t it = 0; tr_map_next(&irc->nicks, &it, &k, &kl, &v);)
		free(v);
	tr_map_cleanup(&irc->nicks);
	if (irc->nick_ring)
		for (size_t i = 0; i < IRC_NICKS_KEPT; i++)
			free(irc->nick_ring[i]);
	free(irc->nick_ring);
	tr_buf_cleanup(&irc->rx);
	if (irc->timers_init) {
		uv_close((uv_handle_t *)&irc->t_register, irc_timer_closed);
		uv_close((uv_handle_t *)&irc->t_ping, irc_timer_closed);
		uv_close((uv_handle_t *)&irc->t_send, irc_timer_closed);
		uv_close((uv_handle_t *)&irc->t_rejoin, irc_timer_closed);
	}
	uv_run(tr_conn_loop(c), UV_RUN_NOWAIT);
	if (irc->tls)
		irc_tls_ctx_free(irc->tls);
	irc_config_cleanup(&irc->cfg);
}

const struct tr_connector irc_connector = {
    .network = "irc",
    .state_size = sizeof(struct irc),
    .caps = 0,
    .configure = irc_configure,
    .connect = irc_connect,
    .deliver = irc_deliver,
    .set_channels = irc_set_channels,
    .disconnect = irc_disconnect,
    .release = irc_release,
};
