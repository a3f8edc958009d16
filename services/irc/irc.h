/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-irc, private to services/irc/: the settings, the pure wire helpers (irc_proto.c: line
 * parser, the one line builder, CAP negotiation, SASL, templates) and the pure mapping between
 * IRC lines and bus events (irc_map.c). irc.c owns the connection, the send queue and the
 * channels. See ../../../shared/specs/NETWORKS.md §9 and README.md. */
#ifndef TRESTLE_SERVICES_IRC_H
#define TRESTLE_SERVICES_IRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "env.h"
#include "err.h"
#include "event.h"

#define IRC_LINE_MAX   512  /* RFC 2812 §2.3: including CR LF, excluding tags */
#define IRC_TAGS_MAX   8191 /* IRCv3 message-tags: the tag section a server may send */
#define IRC_MAX_PARAMS 15
#define IRC_MAX_TAGS   32
#define IRC_NICK_MAX   64
/* A relayed line gains ":nick!user@host " in front; budget for it when our own is unknown. */
#define IRC_PREFIX_GUESS 80

struct irc_config {
	char *host;
	int port;
	bool tls, tls_verify;
	char *ca_file;
	char *nick, *user, *realname;
	char *sasl_user, *sasl_pass, *nickserv_pass;
	char *author_tpl; /* "<{name}> " */
	char *edit_tpl;   /* NULL: edits are not sent */
	bool deletes, reactions, joins;
	double flood_rate; /* lines per second */
	int flood_burst;
	int connect_timeout_ms, register_timeout_ms, ping_interval_ms, ping_timeout_ms;
};

struct tr_connector;
/* The vtable (irc.c). */
extern const struct tr_connector irc_connector;

/* Reads IRC_* through env (problems recorded there); cfg owned by the caller. */
void irc_config_read(struct irc_config *cfg, struct tr_env *env);
void irc_config_cleanup(struct irc_config *cfg);

/* ---- irc_proto.c: one parsed line ---- */

struct irc_tag {
	const char *key, *val; /* val "" when absent; unescaped */
};

struct irc_msg {
	char *buf; /* owned copy of the line the pointers below point into */
	struct irc_tag tags[IRC_MAX_TAGS];
	size_t n_tags;
	const char *prefix; /* NULL when absent */
	const char *command;
	const char *params[IRC_MAX_PARAMS];
	size_t n_params;
};

/* Parses one line (without CR LF; len bytes, may hold anything). TR_OK and *m filled (free with
 * irc_msg_cleanup), or TR_E_PROTO (empty, no command, NUL inside) with *m cleaned. */
int irc_msg_parse(const char *line, size_t len, struct irc_msg *m) TR_MUST_CHECK;
void irc_msg_cleanup(struct irc_msg *m);
/* The tag's value (borrowed) or NULL when the tag is absent. */
const char *irc_msg_tag(const struct irc_msg *m, const char *key);
/* Parameter i or "" when absent (borrowed). */
const char *irc_msg_param(const struct irc_msg *m, size_t i);
/* The nick part of a "nick!user@host" prefix into out (cut to outlen-1); false for a server
 * prefix (no '!' and a '.' in it) or none. */
bool irc_prefix_nick(const char *prefix, char *out, size_t outlen);

/* The one IRC line builder (STYLE B12.6). Appends "[@tags ]CMD p1 p2 :last\r\n" to out.
 * params[i] has lens[i] bytes (lens NULL: strlen). Refuses (TR_E_INVAL, out unchanged) CR, LF
 * or NUL anywhere, a space or a leading ':' in a middle parameter, an empty middle parameter,
 * a command that is not letters or 3 digits; TR_E_TOOBIG when the line without tags exceeds
 * 512 bytes with CR LF. Tag values are escaped. */
int irc_line_build(struct tr_buf *out, const struct irc_tag *tags, size_t n_tags, const char *cmd,
                   size_t n, const char *const *params, const size_t *lens) TR_MUST_CHECK;

/* Lower-cases with the rfc1459 casemapping ([]\~ are the lower-case of {}|^). */
void irc_casefold(char *s);
/* Compares two nicks or channels under rfc1459 casemapping; true when equal. */
bool irc_caseeq(const char *a, const char *b);
/* True if s names a channel (#, &, + or !). */
bool irc_is_channel(const char *s);

/* ---- capability negotiation (CAP LS 302 / REQ / ACK / NAK) ---- */

enum irc_cap_bit {
	IRC_CAP_SASL = 1 << 0,
	IRC_CAP_SERVER_TIME = 1 << 1,
	IRC_CAP_MESSAGE_TAGS = 1 << 2,
	IRC_CAP_ECHO = 1 << 3,
	IRC_CAP_LABELED = 1 << 4,
	IRC_CAP_BATCH = 1 << 5,
	IRC_CAP_MULTI_PREFIX = 1 << 6,
};

struct irc_caps {
	unsigned offered; /* from CAP LS */
	unsigned acked;   /* enabled by CAP ACK */
	bool sasl_plain;  /* sasl offered with PLAIN (or without a mechanism list) */
	bool ls_done;     /* the last CAP LS line arrived */
};

/* One CAP LS line's list ("sasl=PLAIN,EXTERNAL server-time ..."); more says "*" came first. */
void irc_caps_ls(struct irc_caps *caps, const char *list, bool more);
/* The space-separated capabilities to request (want_sasl: credentials configured), written
 * into out (cleared first). Empty when there is nothing to ask. */
void irc_caps_req(const struct irc_caps *caps, bool want_sasl, char *out, size_t outlen);
/* CAP ACK list: marks the listed capabilities enabled ("-x" disables). */
void irc_caps_ack(struct irc_caps *caps, const char *list);

/* base64 of authzid \0 authcid \0 password (SASL PLAIN, RFC 4616), newly allocated. */
char *irc_sasl_plain(const char *user, const char *pass);

/* ---- text helpers ---- */

/* name with U+200D ZERO WIDTH JOINER after its first character, so that it does not highlight
 * an IRC user of the same nick; C0 controls, DEL, \x01 dropped. Newly allocated. */
char *irc_name_guard(const char *name);
/* tpl with {name}, {text}, {reaction} replaced (NULL values as ""). Newly allocated. */
char *irc_template(const char *tpl, const char *name, const char *text, const char *reaction);
/* IRCv3 server-time "2011-10-19T16:40:51.620Z" -> ms since the epoch; false on bad input. */
bool irc_parse_time(const char *s, int64_t *ms);

/* ---- irc_map.c: IRC line -> bus event ---- */

struct irc_in_ctx {
	const char *connector; /* instance name, for ids */
	const char *nick;      /* our current nick */
	const char *channel;   /* our configured spelling of the line's channel */
	bool joins;            /* bridge JOIN/PART/QUIT/KICK */
	uint64_t boot_ms;      /* start time, makes local ids unique across restarts */
	uint64_t *counter;     /* local id counter */
};

/* Maps one channel line (PRIVMSG, NOTICE, CTCP ACTION, TOPIC, JOIN, PART, KICK, QUIT) to an
 * event (owned by the caller: tr_event_cleanup). TR_E_NOTFOUND when the line is not bridged (ours,
 * a server notice, another CTCP, joins off); TR_E_INVAL when it cannot be mapped. For QUIT,
 * ctx->channel names the channel to report the leave in. */
int irc_map_in(const struct irc_msg *m, const struct irc_in_ctx *ctx,
               struct tr_event *ev) TR_MUST_CHECK;

/* ---- irc_map.c: bus event -> IRC lines ---- */

struct irc_out_ctx {
	const struct irc_config *cfg;
	const char *channel;    /* the destination channel (from dest.channel) */
	size_t self_prefix_len; /* bytes of ":nick!user@host " the server will prepend */
	bool tags;              /* message-tags enabled: +draft/reply may be sent */
	const char *reply_nick; /* the replied-to author when known, else NULL */
};

struct irc_out {
	char **lines; /* complete lines with CR LF; NULL when nothing is posted */
	size_t n;
};

/* Renders an out event as the PRIVMSG lines to send. TR_OK (lines may be none: an edit with
 * the correction line off, a delete or reaction with its line off, join/leave/topic), or
 * TR_E_INVAL (nothing sendable). */
int irc_map_out(const struct tr_event *ev, const struct irc_out_ctx *ctx,
                struct irc_out *out) TR_MUST_CHECK;
void irc_out_cleanup(struct irc_out *out);

#endif
