/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-xmpp, private to services/xmpp/: settings, the connector state, and the pure helpers
 * of xmpp_map.c (stanza <-> event, id choice, own-message detection) that the unit tests call.
 * Functions use the prefix xm_ because libstrophe owns the xmpp_ namespace. */
#ifndef TRESTLE_SERVICES_XMPP_XMPP_H
#define TRESTLE_SERVICES_XMPP_XMPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <strophe.h>
#include "connector.h"
#include "map.h"

#define XM_NS_MUC       "http://jabber.org/protocol/muc"
#define XM_NS_MUC_USER  "http://jabber.org/protocol/muc#user"
#define XM_NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define XM_NS_SID       "urn:xmpp:sid:0"
#define XM_NS_OCCUPANT  "urn:xmpp:occupant-id:0"
#define XM_NS_CORRECT   "urn:xmpp:message-correct:0"
#define XM_NS_RETRACT   "urn:xmpp:message-retract:1"
#define XM_NS_REACTIONS "urn:xmpp:reactions:0"
#define XM_NS_REPLY     "urn:xmpp:reply:0"
#define XM_NS_FALLBACK  "urn:xmpp:fallback:0"
#define XM_NS_OOB       "jabber:x:oob"
#define XM_NS_DELAY     "urn:xmpp:delay"
#define XM_NS_HINTS     "urn:xmpp:hints"
#define XM_NS_PING      "urn:xmpp:ping"
#define XM_NS_STANZAS   "urn:ietf:params:xml:ns:xmpp-stanzas"

#define XM_MAX_REACTIONS 32 /* reactions read from one stanza */
#define XM_MAX_OOB       8  /* out-of-band links read from one stanza */

enum xm_tls {
	XM_TLS_REQUIRED = 0, /* STARTTLS, certificate verified (the default) */
	XM_TLS_DIRECT,       /* direct TLS (XEP-0368, port 5223), certificate verified */
	XM_TLS_TRUST,        /* STARTTLS, any certificate accepted (tests, self-signed) */
	XM_TLS_OFF,          /* plaintext: refused unless the server is on loopback */
};

struct xm_config {
	char *jid, *password;
	char *host; /* XMPP_SERVER host, else the JID's domain */
	unsigned port;
	char *nick;
	enum xm_tls tls;
	char *ca_file;
	char *author_template; /* "{name}" is replaced by the author's display name */
	long ping_s;           /* idle ping interval */
	long timeout_s;        /* connect/login, ping answer, join answer, reflection wait */
	long max_body;         /* bytes of an outgoing body */
};

extern const struct tr_connector xmpp_connector;

/* Reads XMPP_* settings; problems are recorded in env (tr_env_fail). Pure apart from env. */
void xm_config_read(struct xm_config *cfg, struct tr_env *env);
void xm_config_cleanup(struct xm_config *cfg);

/* ---- inbound: one groupchat message, parsed (strings borrowed from the stanza) ---- */

struct xm_in {
	const char *from, *type, *id;
	char *room, *nick; /* owned: bare room JID and occupant nick ("" from the room) */
	char *body;        /* owned, NULL when absent */
	char *subject;     /* owned, NULL when absent ("" for an empty subject) */
	const char *origin_id, *stanza_id, *occupant_id;
	const char *replace_id, *retract_id, *reactions_id, *reply_id, *reply_to;
	char *reactions[XM_MAX_REACTIONS]; /* owned */
	size_t n_reactions;
	bool has_reactions;
	long reply_fb_start, reply_fb_end; /* code points; -1 when absent */
	char *oob[XM_MAX_OOB];             /* owned URLs */
	size_t n_oob;
	bool delayed;
	const char *error_cond; /* type='error': the condition's element name */
	const char *error_type;
};

/* Fills in from a <message/> stanza (borrowing attribute strings from it: keep the stanza
 * alive while using in). TR_E_INVAL when from is missing. */
int xm_in_parse(xmpp_stanza_t *st, struct xm_in *in) TR_MUST_CHECK;
void xm_in_cleanup(struct xm_in *in);

/* The id other clients use to refer to a groupchat message (XEP-0461/0444/0424 §groupchat):
 * the room's stanza-id (by=room), else the origin-id, else the id attribute. NULL if none. */
const char *xm_in_ref(const struct xm_in *in);

/* The stable author id: the occupant-id (XEP-0421) when the room gives one, else the
 * occupant JID room/nick. Newly allocated. */
char *xm_in_author_id(const struct xm_in *in);

/* Own-message detection: our origin-id is pending (origin_known), or the occupant is our own
 * nick in that room (a reflection we did not expect, e.g. sent before a restart). */
bool xm_in_is_own(const struct xm_in *in, const char *our_nick, bool origin_known);

/* Removes the code point range [start, end) (a XEP-0428 fallback) from body; a copy of body
 * when the range is invalid. Newly allocated. */
char *xm_strip_range(const char *body, long start, long end);

/* Maps an inbound message to an event (message, edit, delete or topic). target is the
 * resolved id the edit/delete applies to (may be NULL for message/topic). The event owns its
 * strings: tr_event_cleanup. TR_E_INVAL when there is nothing to publish. */
int xm_in_to_event(const struct xm_in *in, const char *connector, const char *target,
                   struct tr_event *ev) TR_MUST_CHECK;

/* An event id for a reaction change, deterministic from the reaction stanza. */
char *xm_reaction_event_id(const char *connector, const struct xm_in *in, const char *target,
                           const char *author, const char *emoji, bool removed);

/* ---- outbound ---- */

struct xm_out {
	const char *room;
	const char *id;           /* the id attribute and origin-id */
	const char *body;         /* NULL: no body */
	const char *subject;      /* NULL: no subject */
	const char *replace_id;   /* XEP-0308 */
	const char *retract_id;   /* XEP-0424 */
	const char *reactions_id; /* XEP-0444: with reactions[0..n_reactions) (may be 0: none) */
	const char *const *reactions;
	size_t n_reactions;
	const char *reply_id, *reply_to; /* XEP-0461 */
	long reply_fb_end;               /* code points of the quoted fallback at the start */
	const struct tr_attachment *oob; /* XEP-0066 */
	size_t n_oob;
};

/* Builds the <message type='groupchat'/> stanza (released by the caller). */
xmpp_stanza_t *xm_out_stanza(xmpp_ctx_t *ctx, const struct xm_out *o);

/* The author prefix from the template: "{name}" becomes display (else name, else id), with
 * control characters removed. Newly allocated. */
char *xm_author_prefix(const char *tmpl, const struct tr_author *a);

/* The body for an out event: an optional quoted reply fallback, the author prefix, the text
 * rendered to XEP-0393 styling (mass mentions neutralised), attachment URLs on lines of their
 * own; characters illegal in XML 1.0 removed; at most max_body bytes. *fb_end is the reply
 * fallback's length in code points (0 without quote). Newly allocated. */
int xm_out_body(const struct tr_event *ev, const char *tmpl, const char *quote_nick,
                const char *quote, size_t max_body, char **out, long *fb_end) TR_MUST_CHECK;

/* Removes characters XML 1.0 forbids (C0 controls other than tab, LF, CR) in place. */
void xm_xml_clean(char *s);

/* The tr_err for a stanza error condition (forbidden -> TR_E_FORBIDDEN, ...). */
int xm_error_code(const char *cond, const char *type);

#endif
