/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-xmpp pure parts: settings, groupchat stanza -> event (every kind), id choice,
 * own-message detection, fallback stripping, out event -> body and stanza, error mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../services/xmpp/xmpp.h"
#include "alloc.h"
#include "env.h"
#include "utf8.h"

static xmpp_ctx_t *ctx;

static int setup(void **state)
{
	(void)state;
	xmpp_initialize();
	ctx = xmpp_ctx_new(NULL, NULL);
	return ctx ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	xmpp_ctx_free(ctx);
	xmpp_shutdown();
	return 0;
}

/* ---- settings ---- */

static const char *const *env_vars;

static const char *env_lookup(const char *name)
{
	for (size_t i = 0; env_vars[i]; i += 2)
		if (strcmp(env_vars[i], name) == 0)
			return env_vars[i + 1];
	return NULL;
}

struct cfg_case {
	const char *vars[20];
	int errors;
	const char *host;
	unsigned port;
	const char *nick;
	enum xm_tls tls;
};

static const struct cfg_case cfg_cases[] = {
    {{"XMPP_JID", "bot@example.org", "XMPP_PASSWORD", "pw", NULL},
     0,
     "example.org",
     5222,
     "bot",
     XM_TLS_REQUIRED},
    {{"XMPP_JID", "bot@example.org/res", "XMPP_PASSWORD", "pw", "XMPP_SERVER", "xmpp.example:5223",
      "XMPP_NICK", "Bridge", "XMPP_TLS", "direct", NULL},
     0,
     "xmpp.example",
     5223,
     "Bridge",
     XM_TLS_DIRECT},
    {{"XMPP_JID", "bot@localhost", "XMPP_PASSWORD", "pw", "XMPP_SERVER", "[::1]:5222", "XMPP_TLS",
      "off", NULL},
     0,
     "::1",
     5222,
     "bot",
     XM_TLS_OFF},
    /* plaintext to a remote server is refused */
    {{"XMPP_JID", "bot@example.org", "XMPP_PASSWORD", "pw", "XMPP_TLS", "off", NULL},
     1,
     "example.org",
     5222,
     "bot",
     XM_TLS_OFF},
    /* missing password, bad JID, bad TLS, bad port, template without {name} */
    {{"XMPP_JID", "nodomain", NULL}, 2, NULL, 0, NULL, XM_TLS_REQUIRED},
    {{"XMPP_JID", "a@b", "XMPP_PASSWORD", "pw", "XMPP_TLS", "maybe", "XMPP_SERVER", "h:99999",
      "XMPP_AUTHOR_TEMPLATE", "[x] ", NULL},
     3,
     "h",
     5222,
     "a",
     XM_TLS_REQUIRED},
    {{"XMPP_JID", "a@b", "XMPP_PASSWORD", "pw", "XMPP_NICK", "x/y", NULL},
     1,
     "b",
     5222,
     "x/y",
     XM_TLS_REQUIRED},
};

static void test_config(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(cfg_cases); i++) {
		const struct cfg_case *tc = &cfg_cases[i];
		env_vars = tc->vars;
		struct tr_env env;
		tr_env_init(&env, env_lookup);
		struct xm_config cfg;
		xm_config_read(&cfg, &env);
		if (env.n_errors != tc->errors)
			fail_msg("case %zu: %d errors, want %d: %s", i, env.n_errors, tc->errors,
			         tr_buf_str(&env.errors));
		if (tc->host)
			assert_string_equal(cfg.host, tc->host);
		if (tc->port)
			assert_int_equal(cfg.port, tc->port);
		if (tc->nick)
			assert_string_equal(cfg.nick, tc->nick);
		if (!tc->errors)
			assert_int_equal(cfg.tls, tc->tls);
		xm_config_cleanup(&cfg);
		tr_env_cleanup(&env);
	}
}

/* ---- inbound ---- */

#define R    "r@conf.example"
#define SID  "<stanza-id xmlns='urn:xmpp:sid:0' id='S1' by='r@conf.example'/>"
#define OCC  "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='OCC'/>"
#define FROM "<message type='groupchat' from='r@conf.example/alice' id='A1'>"

struct in_case {
	const char *xml;
	const char *target; /* resolved by the caller */
	int rc;
	enum tr_event_type type;
	const char *id, *msgid, *text, *ev_target, *reply_to, *author_id, *attachment;
};

static const struct in_case in_cases[] = {
    {FROM "<body>hello</body>" OCC SID "</message>", NULL, TR_OK, TR_EV_MESSAGE,
     "x:message:" R ":S1", "S1", "hello", NULL, NULL, "occupant:OCC", NULL},
    /* no stanza-id: origin-id, then id attribute; no occupant-id: the occupant JID */
    {FROM "<body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='O1'/></message>", NULL, TR_OK,
     TR_EV_MESSAGE, "x:message:" R ":O1", "O1", "hi", NULL, NULL, R "/alice", NULL},
    {FROM "<body>hi</body></message>", NULL, TR_OK, TR_EV_MESSAGE, "x:message:" R ":A1", "A1", "hi",
     NULL, NULL, R "/alice", NULL},
    /* a stanza-id by someone else is ignored (the sender could forge it) */
    {FROM "<body>x</body><stanza-id xmlns='urn:xmpp:sid:0' id='F' by='evil@x'/></message>", NULL,
     TR_OK, TR_EV_MESSAGE, "x:message:" R ":A1", "A1", "x", NULL, NULL, R "/alice", NULL},
    /* correction */
    {FROM "<body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='A0'/>" SID
          "</message>",
     "S0", TR_OK, TR_EV_EDIT, "x:edit:" R ":S0:S1", "S0", "fixed", "S0", NULL, R "/alice", NULL},
    /* retraction */
    {FROM "<body>fallback</body><retract xmlns='urn:xmpp:message-retract:1' id='S0'/>"
          "</message>",
     "S0", TR_OK, TR_EV_DELETE, "x:delete:" R ":S0", NULL, NULL, "S0", NULL, R "/alice", NULL},
    /* reply with a fallback quote of 9 code points ("> bob: é\n") */
    {FROM "<body>&gt; bob: é\nanswer</body><reply xmlns='urn:xmpp:reply:0' to='" R
          "/bob' id='S0'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'>"
          "<body start='0' end='9'/></fallback>" SID "</message>",
     NULL, TR_OK, TR_EV_MESSAGE, "x:message:" R ":S1", "S1", "answer", NULL, "S0", R "/alice",
     NULL},
    /* styling to CommonMark; characters CommonMark would read as markup are escaped */
    {FROM "<body>*bold* [x]</body>" SID "</message>", NULL, TR_OK, TR_EV_MESSAGE,
     "x:message:" R ":S1", "S1", NULL, NULL, NULL, R "/alice", NULL},
    /* out-of-band link: the URL is not repeated in the text */
    {FROM "<body>https://f.example/a.png</body><x xmlns='jabber:x:oob'><url>"
          "https://f.example/a.png</url></x>" SID "</message>",
     NULL, TR_OK, TR_EV_MESSAGE, "x:message:" R ":S1", "S1", NULL, NULL, NULL, R "/alice",
     "https://f.example/a.png"},
    /* a non-web OOB URL is dropped */
    {FROM "<body>see</body><x xmlns='jabber:x:oob'><url>file:///etc/passwd</url></x>" SID
          "</message>",
     NULL, TR_OK, TR_EV_MESSAGE, "x:message:" R ":S1", "S1", "see", NULL, NULL, R "/alice", NULL},
    /* subject change */
    {FROM "<subject>new topic</subject>" SID "</message>", NULL, TR_OK, TR_EV_TOPIC,
     "x:topic:" R ":S1", NULL, "new topic", NULL, NULL, R "/alice", NULL},
    /* nothing to publish: no body, an edit or delete without a resolved target */
    {FROM "<active xmlns='http://jabber.org/protocol/chatstates'/></message>", NULL, TR_E_INVAL},
    {FROM "<body>x</body><replace xmlns='urn:xmpp:message-correct:0' id='A0'/></message>", NULL,
     TR_E_INVAL},
    {FROM "<retract xmlns='urn:xmpp:message-retract:1' id='S0'/></message>", NULL, TR_E_INVAL},
    {FROM "<body></body></message>", NULL, TR_E_INVAL},
};

static void test_in_to_event(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(in_cases); i++) {
		const struct in_case *tc = &in_cases[i];
		xmpp_stanza_t *st = xmpp_stanza_new_from_string(ctx, tc->xml);
		if (!st)
			fail_msg("case %zu: stanza does not parse", i);
		struct xm_in in;
		assert_int_equal(xm_in_parse(st, &in), TR_OK);
		assert_string_equal(in.room, R);
		assert_string_equal(in.nick, "alice");
		struct tr_event ev;
		int rc = xm_in_to_event(&in, "x", tc->target, &ev);
		if (rc != tc->rc)
			fail_msg("case %zu: rc %d, want %d", i, rc, tc->rc);
		if (rc == TR_OK) {
			char err[TR_ERR_LEN];
			ev.connector = tr_xstrdup("x");
			ev.network = tr_xstrdup("xmpp");
			ev.ts = 1;
			if (tr_event_validate(&ev, false, err) != TR_OK)
				fail_msg("case %zu: invalid event: %s", i, err);
			assert_int_equal(ev.type, tc->type);
			assert_string_equal(ev.id, tc->id);
			assert_string_equal(ev.channel, R);
			assert_string_equal(ev.author.id, tc->author_id);
			assert_string_equal(ev.author.name, "alice");
			if (tc->msgid)
				assert_string_equal(ev.msgid, tc->msgid);
			if (tc->text)
				assert_string_equal(ev.text, tc->text);
			if (tc->ev_target)
				assert_string_equal(ev.target, tc->ev_target);
			if (tc->reply_to)
				assert_string_equal(ev.reply_to, tc->reply_to);
			else
				assert_null(ev.reply_to);
			if (tc->attachment) {
				assert_int_equal(ev.n_attachments, 1);
				assert_string_equal(ev.attachments[0].url, tc->attachment);
				assert_null(ev.text);
			} else {
				assert_int_equal(ev.n_attachments, 0);
			}
		}
		tr_event_cleanup(&ev);
		xm_in_cleanup(&in);
		xmpp_stanza_release(st);
	}
}

static void test_styling_in(void **state)
{
	(void)state;
	xmpp_stanza_t *st =
	    xmpp_stanza_new_from_string(ctx, FROM "<body>*bold* and [x]</body>" SID "</message>");
	struct xm_in in;
	assert_int_equal(xm_in_parse(st, &in), TR_OK);
	struct tr_event ev;
	assert_int_equal(xm_in_to_event(&in, "x", NULL, &ev), TR_OK);
	/* Whatever the converter does with styling, the literal brackets must not become a
	 * CommonMark link reference, and the text survives. */
	assert_non_null(strstr(ev.text, "bold"));
	assert_non_null(strstr(ev.text, "\\[x\\]"));
	tr_event_cleanup(&ev);
	xm_in_cleanup(&in);
	xmpp_stanza_release(st);
}

static void test_reactions_and_errors_parse(void **state)
{
	(void)state;
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(
	    ctx, FROM "<reactions xmlns='urn:xmpp:reactions:0' id='S0'><reaction>👍</reaction>"
	              "<reaction></reaction><reaction>🎉</reaction></reactions>" SID "</message>");
	struct xm_in in;
	assert_int_equal(xm_in_parse(st, &in), TR_OK);
	assert_true(in.has_reactions);
	assert_string_equal(in.reactions_id, "S0");
	assert_int_equal(in.n_reactions, 2);
	assert_string_equal(in.reactions[0], "👍");
	assert_string_equal(in.reactions[1], "🎉");
	char *id = xm_reaction_event_id("x", &in, "S0", "occupant:O", "👍", true);
	assert_string_equal(id, "x:reaction:" R ":S0:occupant:O:👍:removed:S1");
	free(id);
	xm_in_cleanup(&in);
	xmpp_stanza_release(st);

	st = xmpp_stanza_new_from_string(
	    ctx, "<message type='error' from='" R "' id='tr-1'><error type='auth'><forbidden "
	         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
	assert_int_equal(xm_in_parse(st, &in), TR_OK);
	assert_string_equal(in.error_cond, "forbidden");
	assert_int_equal(xm_error_code(in.error_cond, in.error_type), TR_E_FORBIDDEN);
	assert_string_equal(in.nick, "");
	xm_in_cleanup(&in);
	xmpp_stanza_release(st);
	/* history on join is marked delayed and never bridged */
	st = xmpp_stanza_new_from_string(ctx, FROM "<body>old</body><delay xmlns='urn:xmpp:delay' "
	                                           "stamp='2020-01-01T00:00:00Z'/></message>");
	assert_int_equal(xm_in_parse(st, &in), TR_OK);
	assert_true(in.delayed);
	xm_in_cleanup(&in);
	xmpp_stanza_release(st);
}

static void test_ref_and_own(void **state)
{
	(void)state;
	struct xm_in in = {0};
	in.room = tr_xstrdup(R);
	in.nick = tr_xstrdup("bridge");
	assert_null(xm_in_ref(&in));
	in.id = "I";
	assert_string_equal(xm_in_ref(&in), "I");
	in.origin_id = "O";
	assert_string_equal(xm_in_ref(&in), "O");
	in.stanza_id = "S";
	assert_string_equal(xm_in_ref(&in), "S");
	static const struct {
		const char *our_nick;
		bool origin_known, own;
	} own[] = {
	    {"bridge", false, true}, {"other", false, false}, {"other", true, true},
	    {NULL, false, false},    {NULL, true, true},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(own); i++)
		assert_int_equal(xm_in_is_own(&in, own[i].our_nick, own[i].origin_known),
		                 own[i].own);
	/* a message from the room itself (no nick) is never "ours" by nick */
	free(in.nick);
	in.nick = tr_xstrdup("");
	assert_false(xm_in_is_own(&in, "", false));
	xm_in_cleanup(&in);
}

static void test_strip_range(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		long start, end;
		const char *out;
	} cases[] = {
	    {"> q\nanswer", 0, 4, "answer"},
	    {"é> q\nx", 1, 5, "éx"},
	    {"abc", 0, 3, ""},
	    {"abc", 0, 9, "abc"},  /* past the end: untouched */
	    {"abc", 2, 1, "abc"},  /* reversed */
	    {"abc", -1, 2, "abc"}, /* absent */
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *s = xm_strip_range(cases[i].in, cases[i].start, cases[i].end);
		assert_string_equal(s, cases[i].out);
		free(s);
	}
}

/* ---- outbound ---- */

/* Serialises st and parses it back: what a peer would receive. */
static xmpp_stanza_t *round_trip(xmpp_stanza_t *st)
{
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(xmpp_stanza_to_text(st, &buf, &len), XMPP_EOK);
	xmpp_stanza_release(st);
	char *copy = tr_xstrndup(buf, len);
	xmpp_free(ctx, buf);
	xmpp_stanza_t *back = xmpp_stanza_new_from_string(ctx, copy);
	free(copy);
	assert_non_null(back);
	return back;
}

static const char *attr_of(xmpp_stanza_t *st, const char *name, const char *ns, const char *attr)
{
	xmpp_stanza_t *c = xmpp_stanza_get_child_by_name_and_ns(st, name, ns);
	return c ? xmpp_stanza_get_attribute(c, attr) : NULL;
}

static char *body_of(xmpp_stanza_t *st)
{
	xmpp_stanza_t *b = xmpp_stanza_get_child_by_name(st, "body");
	char *t = b ? xmpp_stanza_get_text(b) : NULL;
	char *copy = tr_xstrdup(t);
	xmpp_free(ctx, t);
	return copy;
}

static void test_out_stanza(void **state)
{
	(void)state;
	const char *reacts[] = {"👍", "🎉"};
	struct tr_attachment att = {.url = "https://f.example/c.png", .name = "c.png", .size = -1};
	struct xm_out o = {.room = R,
	                   .id = "tr-1",
	                   .body = "<A> hi & bye",
	                   .reply_id = "S0",
	                   .reply_to = R "/bob",
	                   .reply_fb_end = 7,
	                   .oob = &att,
	                   .n_oob = 1};
	xmpp_stanza_t *st = round_trip(xm_out_stanza(ctx, &o));
	assert_string_equal(xmpp_stanza_get_type(st), "groupchat");
	assert_string_equal(xmpp_stanza_get_to(st), R);
	assert_string_equal(xmpp_stanza_get_id(st), "tr-1");
	char *body = body_of(st);
	assert_string_equal(body, "<A> hi & bye");
	free(body);
	assert_string_equal(attr_of(st, "origin-id", XM_NS_SID, "id"), "tr-1");
	assert_string_equal(attr_of(st, "reply", XM_NS_REPLY, "id"), "S0");
	assert_string_equal(attr_of(st, "reply", XM_NS_REPLY, "to"), R "/bob");
	xmpp_stanza_t *fb = xmpp_stanza_get_child_by_name_and_ns(st, "fallback", XM_NS_FALLBACK);
	assert_string_equal(xmpp_stanza_get_attribute(fb, "for"), XM_NS_REPLY);
	xmpp_stanza_t *fbb = xmpp_stanza_get_child_by_name(fb, "body");
	assert_string_equal(xmpp_stanza_get_attribute(fbb, "start"), "0");
	assert_string_equal(xmpp_stanza_get_attribute(fbb, "end"), "7");
	xmpp_stanza_t *x = xmpp_stanza_get_child_by_name_and_ns(st, "x", XM_NS_OOB);
	char *url = xmpp_stanza_get_text(xmpp_stanza_get_child_by_name(x, "url"));
	assert_string_equal(url, "https://f.example/c.png");
	xmpp_free(ctx, url);
	assert_null(xmpp_stanza_get_child_by_name(st, "store"));
	assert_null(xmpp_stanza_get_child_by_name(st, "replace"));
	xmpp_stanza_release(st);

	struct xm_out c = {.room = R, .id = "tr-2", .body = "x", .replace_id = "tr-1"};
	st = round_trip(xm_out_stanza(ctx, &c));
	assert_string_equal(attr_of(st, "replace", XM_NS_CORRECT, "id"), "tr-1");
	assert_string_equal(attr_of(st, "origin-id", XM_NS_SID, "id"), "tr-2");
	xmpp_stanza_release(st);

	struct xm_out d = {
	    .room = R, .id = "tr-3", .body = "[message retracted]", .retract_id = "S9"};
	st = round_trip(xm_out_stanza(ctx, &d));
	assert_string_equal(attr_of(st, "retract", XM_NS_RETRACT, "id"), "S9");
	assert_string_equal(attr_of(st, "fallback", XM_NS_FALLBACK, "for"), XM_NS_RETRACT);
	assert_non_null(xmpp_stanza_get_child_by_name_and_ns(st, "store", XM_NS_HINTS));
	xmpp_stanza_release(st);

	struct xm_out r = {
	    .room = R, .id = "tr-4", .reactions_id = "S9", .reactions = reacts, .n_reactions = 2};
	st = round_trip(xm_out_stanza(ctx, &r));
	assert_null(xmpp_stanza_get_child_by_name(st, "body"));
	xmpp_stanza_t *re = xmpp_stanza_get_child_by_name_and_ns(st, "reactions", XM_NS_REACTIONS);
	assert_string_equal(xmpp_stanza_get_attribute(re, "id"), "S9");
	size_t n = 0;
	for (xmpp_stanza_t *e = xmpp_stanza_get_children(re); e; e = xmpp_stanza_get_next(e), n++) {
		char *t = xmpp_stanza_get_text(e);
		assert_string_equal(t, reacts[n]);
		xmpp_free(ctx, t);
	}
	assert_int_equal(n, 2);
	xmpp_stanza_release(st);
	/* an empty set withdraws every reaction */
	r.n_reactions = 0;
	st = round_trip(xm_out_stanza(ctx, &r));
	re = xmpp_stanza_get_child_by_name_and_ns(st, "reactions", XM_NS_REACTIONS);
	assert_non_null(re);
	assert_null(xmpp_stanza_get_children(re));
	xmpp_stanza_release(st);

	struct xm_out t = {.room = R, .id = "tr-5", .subject = "topic"};
	st = round_trip(xm_out_stanza(ctx, &t));
	assert_non_null(xmpp_stanza_get_child_by_name(st, "subject"));
	assert_null(xmpp_stanza_get_child_by_name(st, "body"));
	xmpp_stanza_release(st);
}

static void test_author_prefix(void **state)
{
	(void)state;
	static const struct {
		const char *tmpl, *id, *name, *display, *want;
	} cases[] = {
	    {"<{name}> ", "U1", "alice", "Alice Smith", "<Alice Smith> "},
	    {"<{name}> ", "U1", "alice", NULL, "<alice> "},
	    {"<{name}> ", "U1", NULL, "", "<U1> "},
	    {"[{name}|{name}] ", "U1", "a", NULL, "[a|a] "},
	    {"<{name}> ", "U1", "bad\nname\x01", NULL, "<bad name > "},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		struct tr_author a = {.id = (char *)cases[i].id,
		                      .name = (char *)cases[i].name,
		                      .display = (char *)cases[i].display};
		char *p = xm_author_prefix(cases[i].tmpl, &a);
		assert_string_equal(p, cases[i].want);
		free(p);
	}
}

static void test_out_body(void **state)
{
	(void)state;
	struct tr_attachment att[] = {{.url = "https://f.example/1.png", .size = -1},
	                              {.url = "https://f.example/2.png", .size = -1}};
	struct tr_event ev = {.author = {.id = "U", .name = "alice"}, .text = "plain words"};
	char *body = NULL;
	long fb = -1;
	assert_int_equal(xm_out_body(&ev, "<{name}> ", NULL, NULL, 1000, &body, &fb), TR_OK);
	assert_string_equal(body, "<alice> plain words");
	assert_int_equal(fb, 0);
	free(body);
	/* reply: quoted fallback first, its length in code points */
	assert_int_equal(xm_out_body(&ev, "<{name}> ", "bób", "line1\nline2", 1000, &body, &fb),
	                 TR_OK);
	assert_string_equal(body, "> bób: line1 line2\n<alice> plain words");
	assert_int_equal(fb, 19);
	free(body);
	/* attachments on lines of their own; no text */
	ev.text = NULL;
	ev.attachments = att;
	ev.n_attachments = 2;
	assert_int_equal(xm_out_body(&ev, "<{name}> ", NULL, NULL, 1000, &body, &fb), TR_OK);
	assert_string_equal(body, "<alice> https://f.example/1.png\nhttps://f.example/2.png");
	free(body);
	/* characters XML forbids are removed; long bodies truncated on a code point */
	ev.attachments = NULL;
	ev.n_attachments = 0;
	ev.text = "a\x01\x02"
	          "b";
	assert_int_equal(xm_out_body(&ev, "<{name}> ", NULL, NULL, 1000, &body, &fb), TR_OK);
	assert_string_equal(body, "<alice> ab");
	free(body);
	ev.text = "ééééééééééééééééééééééééééééééééééééééééé";
	assert_int_equal(xm_out_body(&ev, "<{name}> ", NULL, NULL, 40, &body, &fb), TR_OK);
	assert_true(strlen(body) <= 40);
	assert_true(tr_utf8_valid(body, strlen(body)));
	free(body);
}

static void test_error_codes(void **state)
{
	(void)state;
	static const struct {
		const char *cond, *type;
		int err;
	} cases[] = {
	    {"forbidden", "auth", TR_E_FORBIDDEN},
	    {"not-acceptable", "modify", TR_E_FORBIDDEN},
	    {"resource-constraint", "wait", TR_E_RATELIMIT},
	    {"anything", "wait", TR_E_RATELIMIT},
	    {"item-not-found", "cancel", TR_E_NOTFOUND},
	    {"undefined-condition", "cancel", TR_E_PROTO},
	    {NULL, NULL, TR_E_PROTO},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++)
		assert_int_equal(xm_error_code(cases[i].cond, cases[i].type), cases[i].err);
}

static void test_xml_clean(void **state)
{
	(void)state;
	char s[] = "a\x01\tb\nc\r\x1f"
	           "d\xef\xbf\xbe"
	           "e";
	xm_xml_clean(s);
	assert_string_equal(s, "a\tb\nc\rde");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config),      cmocka_unit_test(test_in_to_event),
	    cmocka_unit_test(test_styling_in),  cmocka_unit_test(test_reactions_and_errors_parse),
	    cmocka_unit_test(test_ref_and_own), cmocka_unit_test(test_strip_range),
	    cmocka_unit_test(test_out_stanza),  cmocka_unit_test(test_author_prefix),
	    cmocka_unit_test(test_out_body),    cmocka_unit_test(test_error_codes),
	    cmocka_unit_test(test_xml_clean),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
