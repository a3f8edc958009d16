/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of trestle-irc's pure parts: the line parser (tags, prefix,
 * params), the one line builder refusing CR/LF/NUL, CAP negotiation state, SASL
 * PLAIN, the name guard, server-time, and the mapping of lines to events and of
 * events to PRIVMSG lines (prefix budget, splitting, injection). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../services/irc/irc.h"
#include "alloc.h"
#include "utf8.h"

#define ZWJ "\xe2\x80\x8d"

/* ---- parser ---- */

struct parse_case {
	const char *line;
	int rc;
	const char *prefix, *command;
	size_t n_params;
	const char *p0, *plast;
	const char *tag_key, *tag_val;
};

static const struct parse_case parse_cases[] = {
    {"PING :abc", TR_OK, NULL, "PING", 1, "abc", "abc", NULL, NULL},
    {":n!u@h PRIVMSG #c :hello world", TR_OK, "n!u@h", "PRIVMSG", 2, "#c", "hello world", NULL,
     NULL},
    {"@time=2011-10-19T16:40:51.620Z;msgid=abc :a!b@c PRIVMSG #x :hi", TR_OK, "a!b@c", "PRIVMSG", 2,
     "#x", "hi", "msgid", "abc"},
    {"@k=a\\:b\\sc\\\\d\\r\\n :s 001 me :Welcome", TR_OK, "s", "001", 2, "me", "Welcome", "k",
     "a;b c\\d\r\n"},
    {"@flag;+draft/reply=x1 :s NOTICE * :x", TR_OK, "s", "NOTICE", 2, "*", "x", "+draft/reply",
     "x1"},
    {"@flag :s CAP * LS * :sasl", TR_OK, "s", "CAP", 4, "*", "sasl", "flag", ""},
    {":s 005 me A B C :are supported", TR_OK, "s", "005", 5, "me", "are supported", NULL, NULL},
    {"CMD a  b   :  spaced ", TR_OK, NULL, "CMD", 3, "a", "  spaced ", NULL, NULL},
    {"PRIVMSG #c ::starts with colon", TR_OK, NULL, "PRIVMSG", 2, "#c", ":starts with colon", NULL,
     NULL},
    {"QUIT", TR_OK, NULL, "QUIT", 0, NULL, NULL, NULL, NULL},
    {"", TR_E_PROTO, NULL, NULL, 0, NULL, NULL, NULL, NULL},
    {":only-prefix", TR_E_PROTO, NULL, NULL, 0, NULL, NULL, NULL, NULL},
    {"@tags-only", TR_E_PROTO, NULL, NULL, 0, NULL, NULL, NULL, NULL},
    {":p ", TR_E_PROTO, NULL, NULL, 0, NULL, NULL, NULL, NULL},
};

static void test_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct irc_msg m;
		int rc = irc_msg_parse(c->line, strlen(c->line), &m);
		assert_int_equal(rc, c->rc);
		if (rc != TR_OK)
			continue;
		if (c->prefix)
			assert_string_equal(m.prefix, c->prefix);
		else
			assert_null(m.prefix);
		assert_string_equal(m.command, c->command);
		assert_int_equal(m.n_params, c->n_params);
		if (c->p0) {
			assert_string_equal(irc_msg_param(&m, 0), c->p0);
			assert_string_equal(irc_msg_param(&m, m.n_params - 1), c->plast);
		}
		if (c->tag_key)
			assert_string_equal(irc_msg_tag(&m, c->tag_key), c->tag_val);
		assert_null(irc_msg_tag(&m, "absent"));
		irc_msg_cleanup(&m);
	}
	/* A NUL inside the line is refused. */
	struct irc_msg m;
	assert_int_equal(irc_msg_parse("PING a\0b", 8, &m), TR_E_PROTO);
}

static void test_prefix_nick(void **state)
{
	(void)state;
	char n[IRC_NICK_MAX];
	assert_true(irc_prefix_nick("alice!~a@host", n, sizeof(n)));
	assert_string_equal(n, "alice");
	assert_true(irc_prefix_nick("bob", n, sizeof(n)));
	assert_string_equal(n, "bob");
	assert_false(irc_prefix_nick("irc.example.org", n, sizeof(n)));
	assert_false(irc_prefix_nick(NULL, n, sizeof(n)));
	char small[4];
	assert_true(irc_prefix_nick("longnick!u@h", small, sizeof(small)));
	assert_string_equal(small, "lon");
}

/* ---- builder ---- */

struct build_case {
	const char *cmd;
	size_t n;
	const char *params[4];
	size_t lens[4]; /* all 0: strlen */
	int rc;
	const char *want;
};

static const struct build_case build_cases[] = {
    {"PRIVMSG", 2, {"#c", "hello world"}, {0}, TR_OK, "PRIVMSG #c :hello world\r\n"},
    {"PRIVMSG", 2, {"#c", "one"}, {0}, TR_OK, "PRIVMSG #c one\r\n"},
    {"PRIVMSG", 2, {"#c", ":x"}, {0}, TR_OK, "PRIVMSG #c ::x\r\n"},
    {"PRIVMSG", 2, {"#c", ""}, {0}, TR_OK, "PRIVMSG #c :\r\n"},
    {"USER", 4, {"u", "0", "*", "Real Name"}, {0}, TR_OK, "USER u 0 * :Real Name\r\n"},
    {"CAP", 1, {"END"}, {0}, TR_OK, "CAP END\r\n"},
    {"001", 1, {"x"}, {0}, TR_OK, "001 x\r\n"},
    /* injection attempts */
    {"PRIVMSG", 2, {"#c", "hi\r\nQUIT :bye"}, {0}, TR_E_INVAL, NULL},
    {"PRIVMSG", 2, {"#c", "hi\nQUIT"}, {0}, TR_E_INVAL, NULL},
    {"PRIVMSG", 2, {"#c", "hi\rQUIT"}, {0}, TR_E_INVAL, NULL},
    {"PRIVMSG", 2, {"#c", "hi\0QUIT"}, {2, 7}, TR_E_INVAL, NULL},
    {"PRIVMSG", 2, {"#c\r\nQUIT", "x"}, {0}, TR_E_INVAL, NULL},
    {"PRIVMSG", 2, {"#c x", "x"}, {0}, TR_E_INVAL, NULL},
    {"PRIVMSG", 2, {":#c", "x"}, {0}, TR_E_INVAL, NULL},
    {"PRIVMSG", 2, {"", "x"}, {0}, TR_E_INVAL, NULL},
    {"PRIV MSG", 1, {"x"}, {0}, TR_E_INVAL, NULL},
    {"PRIVMSG\r\n", 1, {"x"}, {0}, TR_E_INVAL, NULL},
    {"12", 1, {"x"}, {0}, TR_E_INVAL, NULL},
    {"", 1, {"x"}, {0}, TR_E_INVAL, NULL},
};

static void test_build(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(build_cases); i++) {
		const struct build_case *c = &build_cases[i];
		struct tr_buf b;
		tr_buf_init(&b, 100000);
		assert_int_equal(tr_buf_appends(&b, "keep"), TR_OK);
		int rc = irc_line_build(&b, NULL, 0, c->cmd, c->n, c->params,
		                        c->lens[0] ? c->lens : NULL);
		assert_int_equal(rc, c->rc);
		if (rc == TR_OK) {
			assert_string_equal(b.data + 4, c->want);
		} else {
			assert_string_equal(tr_buf_str(&b), "keep"); /* unchanged */
		}
		tr_buf_cleanup(&b);
	}
}

static void test_build_limits_and_tags(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 100000);
	/* "PRIVMSG #c :" is 12 bytes, CR LF 2: 498 bytes of text fit, 499 do not. */
	char text[600];
	memset(text, 'a', sizeof(text));
	text[1] = ' '; /* a space: the last parameter needs its ':' */
	text[498] = '\0';
	const char *p[2] = {"#c", text};
	assert_int_equal(irc_line_build(&b, NULL, 0, "PRIVMSG", 2, p, NULL), TR_OK);
	assert_int_equal(b.len, 512);
	text[498] = 'a';
	text[499] = '\0';
	tr_buf_reset(&b);
	assert_int_equal(irc_line_build(&b, NULL, 0, "PRIVMSG", 2, p, NULL), TR_E_TOOBIG);
	/* Tags: escaped, and outside the 512-byte budget. */
	text[498] = '\0';
	struct irc_tag tags[2] = {{"+draft/reply", "a b;c\\"}, {"label", NULL}};
	tr_buf_reset(&b);
	assert_int_equal(irc_line_build(&b, tags, 2, "PRIVMSG", 2, p, NULL), TR_OK);
	assert_int_equal(strncmp(b.data, "@+draft/reply=a\\sb\\:c\\\\;label PRIVMSG #c :", 42), 0);
	struct irc_tag bad[1] = {{"bad key", "x"}};
	tr_buf_reset(&b);
	assert_int_equal(irc_line_build(&b, bad, 1, "PRIVMSG", 2, p, NULL), TR_E_INVAL);
	struct irc_tag crlf[1] = {{"k", "x\r\nQUIT"}};
	assert_int_equal(irc_line_build(&b, crlf, 1, "PRIVMSG", 2, p, NULL), TR_E_INVAL);
	tr_buf_cleanup(&b);
}

static void test_casemap(void **state)
{
	(void)state;
	assert_true(irc_caseeq("#Chan[1]", "#chan{1}"));
	assert_true(irc_caseeq("Nick\\~", "nick|^"));
	assert_false(irc_caseeq("#a", "#ab"));
	char s[] = "ABC[]\\~";
	irc_casefold(s);
	assert_string_equal(s, "abc{}|^");
	assert_true(irc_is_channel("#x"));
	assert_true(irc_is_channel("&x"));
	assert_false(irc_is_channel("x"));
	assert_false(irc_is_channel("#"));
}

/* ---- CAP ---- */

static void test_caps(void **state)
{
	(void)state;
	struct irc_caps caps = {0};
	char req[256];
	/* CAP LS 302 over two lines: nothing is requested before the last. */
	irc_caps_ls(&caps, "multi-prefix sasl=PLAIN,EXTERNAL server-time", true);
	assert_false(caps.ls_done);
	irc_caps_ls(&caps, "message-tags echo-message labeled-response batch away-notify", false);
	assert_true(caps.ls_done);
	assert_true(caps.sasl_plain);
	irc_caps_req(&caps, true, req, sizeof(req));
	assert_string_equal(req, "sasl server-time message-tags echo-message labeled-response "
	                         "batch multi-prefix");
	irc_caps_req(&caps, false, req, sizeof(req));
	assert_string_equal(req, "server-time message-tags echo-message labeled-response batch "
	                         "multi-prefix");
	irc_caps_ack(&caps, "sasl server-time echo-message");
	assert_int_equal(caps.acked, IRC_CAP_SASL | IRC_CAP_SERVER_TIME | IRC_CAP_ECHO);
	irc_caps_ack(&caps, "-echo-message");
	assert_int_equal(caps.acked, IRC_CAP_SASL | IRC_CAP_SERVER_TIME);

	/* sasl without PLAIN is not requested; labeled-response needs batch. */
	struct irc_caps c2 = {0};
	irc_caps_ls(&c2, "sasl=EXTERNAL labeled-response", false);
	assert_false(c2.sasl_plain);
	irc_caps_req(&c2, true, req, sizeof(req));
	assert_string_equal(req, "");
	/* ngircd 26 offers only multi-prefix. */
	struct irc_caps c3 = {0};
	irc_caps_ls(&c3, "multi-prefix", false);
	irc_caps_req(&c3, true, req, sizeof(req));
	assert_string_equal(req, "multi-prefix");
	/* Bare "sasl" (3.1) means PLAIN is worth trying; "PLAINX" is not PLAIN. */
	struct irc_caps c4 = {0};
	irc_caps_ls(&c4, "sasl", false);
	assert_true(c4.sasl_plain);
	struct irc_caps c5 = {0};
	irc_caps_ls(&c5, "sasl=PLAINX,XPLAIN", false);
	assert_false(c5.sasl_plain);
}

static void test_sasl_plain(void **state)
{
	(void)state;
	char *s = irc_sasl_plain("user", "pass");
	assert_string_equal(s, "dXNlcgB1c2VyAHBhc3M=");
	free(s);
	s = irc_sasl_plain("jilles", "sesame");
	assert_string_equal(s, "amlsbGVzAGppbGxlcwBzZXNhbWU=");
	free(s);
}

/* ---- text ---- */

static void test_name_guard_template_time(void **state)
{
	(void)state;
	struct {
		const char *in, *want;
	} g[] = {
	    {"alice", "a" ZWJ "lice"},
	    {"\xc3\xa9mile", "\xc3\xa9" ZWJ "mile"},
	    {"x", "x"},
	    {"", ""},
	    {"ev\r\nil\x01", "e" ZWJ "vil"},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(g); i++) {
		char *s = irc_name_guard(g[i].in);
		assert_string_equal(s, g[i].want);
		free(s);
	}
	char *t = irc_template("<{name}> {text} {reaction}{unknown}", "n", "t", NULL);
	assert_string_equal(t, "<n> t {unknown}");
	free(t);
	int64_t ms;
	assert_true(irc_parse_time("2011-10-19T16:40:51.620Z", &ms));
	assert_int_equal(ms, 1319042451620LL);
	assert_true(irc_parse_time("1970-01-01T00:00:00Z", &ms));
	assert_int_equal(ms, 0);
	assert_true(irc_parse_time("2024-02-29T12:00:00.5Z", &ms));
	assert_int_equal(ms, 1709208000500LL);
	assert_false(irc_parse_time("2011-10-19 16:40:51Z", &ms));
	assert_false(irc_parse_time("2011-13-19T16:40:51Z", &ms));
	assert_false(irc_parse_time("2011-10-19T16:40:51", &ms));
	assert_false(irc_parse_time("", &ms));
}

/* ---- mapping in ---- */

struct in_case {
	const char *line;
	bool joins;
	int rc;
	enum tr_event_type type;
	const char *id, *msgid, *author, *text;
};

static const struct in_case in_cases[] = {
    {"@msgid=M1 :bob!b@h PRIVMSG #Chan :hello", false, TR_OK, TR_EV_MESSAGE, "irc-t:#chan:M1", "M1",
     "bob", "hello"},
    {":bob!b@h PRIVMSG #chan :\x01"
     "ACTION waves\x01",
     false, TR_OK, TR_EV_MESSAGE, NULL, NULL, "bob", "/me waves"},
    {":bob!b@h NOTICE #chan :note", false, TR_OK, TR_EV_MESSAGE, NULL, NULL, "bob", "note"},
    {"@time=2011-10-19T16:40:51.620Z :bob!b@h PRIVMSG #chan :x", false, TR_OK, TR_EV_MESSAGE,
     "irc-t:#chan:t1319042451620-", NULL, "bob", "x"},
    {":bob!b@h TOPIC #chan :new topic", false, TR_OK, TR_EV_TOPIC, NULL, NULL, "bob", "new topic"},
    {":bob!b@h JOIN #chan", true, TR_OK, TR_EV_JOIN, NULL, NULL, "bob", NULL},
    {":bob!b@h PART #chan :bye", true, TR_OK, TR_EV_LEAVE, NULL, NULL, "bob", NULL},
    {":op!b@h KICK #chan carol :out", true, TR_OK, TR_EV_LEAVE, NULL, NULL, "carol", NULL},
    {":bob!b@h QUIT :gone", true, TR_OK, TR_EV_LEAVE, NULL, NULL, "bob", NULL},
    /* not bridged */
    {":bob!b@h JOIN #chan", false, TR_E_NOTFOUND, 0, NULL, NULL, NULL, NULL},
    {":bot!b@h PRIVMSG #chan :echo of ours", false, TR_E_NOTFOUND, 0, NULL, NULL, NULL, NULL},
    {":BOT!b@h PRIVMSG #chan :ours, other case", false, TR_E_NOTFOUND, 0, NULL, NULL, NULL, NULL},
    {":bob!b@h PRIVMSG #chan :\x01VERSION\x01", false, TR_E_NOTFOUND, 0, NULL, NULL, NULL, NULL},
    {":bob!b@h NOTICE #chan :\x01"
     "ACTION x\x01",
     false, TR_E_NOTFOUND, 0, NULL, NULL, NULL, NULL},
    {":irc.server.org NOTICE #chan :server", false, TR_E_NOTFOUND, 0, NULL, NULL, NULL, NULL},
    {":bob!b@h MODE #chan +o x", true, TR_E_NOTFOUND, 0, NULL, NULL, NULL, NULL},
};

static void test_map_in(void **state)
{
	(void)state;
	uint64_t counter = 0;
	for (size_t i = 0; i < TR_ARRAY_LEN(in_cases); i++) {
		const struct in_case *c = &in_cases[i];
		struct irc_msg m;
		assert_int_equal(irc_msg_parse(c->line, strlen(c->line), &m), TR_OK);
		struct irc_in_ctx ctx = {.connector = "irc-t",
		                         .nick = "bot",
		                         .channel = "#chan",
		                         .joins = c->joins,
		                         .boot_ms = 1000,
		                         .counter = &counter};
		struct tr_event ev;
		int rc = irc_map_in(&m, &ctx, &ev);
		assert_int_equal(rc, c->rc);
		if (rc == TR_OK) {
			assert_int_equal(ev.type, c->type);
			assert_string_equal(ev.channel, "#chan");
			if (c->id)
				assert_int_equal(strncmp(ev.id, c->id, strlen(c->id)), 0);
			else
				assert_int_equal(strncmp(ev.id, "irc-t:#chan:l1000-", 18), 0);
			if (c->msgid)
				assert_string_equal(ev.msgid, c->msgid);
			if (c->type == TR_EV_MESSAGE)
				assert_non_null(ev.msgid);
			assert_string_equal(ev.author.id, c->author);
			assert_string_equal(ev.author.name, c->author);
			if (c->text)
				assert_string_equal(ev.text, c->text);
			else
				assert_null(ev.text);
			char err[TR_ERR_LEN];
			ev.connector = tr_xstrdup("irc-t");
			ev.network = tr_xstrdup("irc");
			ev.ts = ev.ts ? ev.ts : 1;
			assert_int_equal(tr_event_validate(&ev, false, err), TR_OK);
		}
		tr_event_cleanup(&ev);
		irc_msg_cleanup(&m);
	}
}

static void test_map_in_ids(void **state)
{
	(void)state;
	/* Local ids never repeat; server-time ids repeat for the same line only. */
	uint64_t counter = 0;
	const char *lines[] = {":bob!b@h PRIVMSG #c :same", ":bob!b@h PRIVMSG #c :same",
	                       "@time=2020-01-01T00:00:00.000Z :bob!b@h PRIVMSG #c :same",
	                       "@time=2020-01-01T00:00:00.000Z :bob!b@h PRIVMSG #c :same",
	                       "@time=2020-01-01T00:00:00.000Z :bob!b@h PRIVMSG #c :other"};
	char *ids[5];
	for (size_t i = 0; i < 5; i++) {
		struct irc_msg m;
		assert_int_equal(irc_msg_parse(lines[i], strlen(lines[i]), &m), TR_OK);
		struct irc_in_ctx ctx = {"irc-t", "bot", "#c", false, 7, &counter};
		struct tr_event ev;
		assert_int_equal(irc_map_in(&m, &ctx, &ev), TR_OK);
		ids[i] = tr_xstrdup(ev.id);
		tr_event_cleanup(&ev);
		irc_msg_cleanup(&m);
	}
	assert_string_not_equal(ids[0], ids[1]);
	assert_string_equal(ids[2], ids[3]);
	assert_string_not_equal(ids[3], ids[4]);
	for (size_t i = 0; i < 5; i++)
		free(ids[i]);
}

/* ---- mapping out ---- */

static struct irc_config test_cfg(void)
{
	struct irc_config cfg = {0};
	cfg.author_tpl = "<{name}> ";
	cfg.edit_tpl = "{name} edited: {text}";
	return cfg;
}

static struct tr_event test_event(enum tr_event_type type, const char *text)
{
	struct tr_event ev = {0};
	ev.type = type;
	ev.id = "x:1";
	ev.text = (char *)text;
	ev.author.id = "U1";
	ev.author.name = "alice";
	ev.has_dest = true;
	ev.dest.channel = "#chan";
	return ev;
}

/* The PRIVMSG content of a built line ("PRIVMSG #chan :content\r\n"). */
static const char *content_of(const char *line)
{
	const char *p = strstr(line, "PRIVMSG #chan ");
	assert_non_null(p);
	p += strlen("PRIVMSG #chan ");
	return *p == ':' ? p + 1 : p;
}

static void test_map_out_basic(void **state)
{
	(void)state;
	struct irc_config cfg = test_cfg();
	struct irc_out_ctx ctx = {.cfg = &cfg, .channel = "#chan", .self_prefix_len = 30};
	struct irc_out out;
	struct tr_event ev = test_event(TR_EV_MESSAGE, "hello");
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_int_equal(out.n, 1);
	assert_string_equal(out.lines[0], "PRIVMSG #chan :<a" ZWJ "lice> hello\r\n");
	irc_out_cleanup(&out);

	/* display wins over name */
	ev.author.display = "Bob Smith";
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_string_equal(out.lines[0], "PRIVMSG #chan :<B" ZWJ "ob Smith> hello\r\n");
	irc_out_cleanup(&out);
	ev.author.display = NULL;

	/* /me becomes a CTCP ACTION */
	ev.text = "/me waves";
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_string_equal(out.lines[0], "PRIVMSG #chan :\x01"
	                                  "ACTION a" ZWJ "lice waves\x01\r\n");
	irc_out_cleanup(&out);

	/* reply: prefix without tags, +draft/reply with them */
	ev.text = "yes";
	ev.dest.reply_to = "M9";
	ctx.reply_nick = "bob";
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_string_equal(out.lines[0], "PRIVMSG #chan :<a" ZWJ "lice> bob: yes\r\n");
	irc_out_cleanup(&out);
	ctx.tags = true;
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_string_equal(out.lines[0], "@+draft/reply=M9 PRIVMSG #chan :<a" ZWJ "lice> yes\r\n");
	irc_out_cleanup(&out);
	ctx.tags = false;
	ctx.reply_nick = NULL;
	ev.dest.reply_to = NULL;

	/* attachments become URL lines */
	struct tr_attachment att = {.url = "https://x.example/cat.png", .size = -1};
	ev.attachments = &att;
	ev.n_attachments = 1;
	ev.text = "look";
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_true(out.n >= 2);
	assert_non_null(strstr(out.lines[out.n - 1], "https://x.example/cat.png"));
	irc_out_cleanup(&out);
	ev.attachments = NULL;
	ev.n_attachments = 0;
}

static void test_map_out_edit_delete_react(void **state)
{
	(void)state;
	struct irc_config cfg = test_cfg();
	struct irc_out_ctx ctx = {.cfg = &cfg, .channel = "#chan", .self_prefix_len = 30};
	struct irc_out out;
	struct tr_event ev = test_event(TR_EV_EDIT, "fixed");
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_int_equal(out.n, 1);
	assert_string_equal(out.lines[0], "PRIVMSG #chan :a" ZWJ "lice edited: fixed\r\n");
	irc_out_cleanup(&out);
	cfg.edit_tpl = NULL; /* "off" */
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_int_equal(out.n, 0);
	/* deletes and reactions are off by default */
	ev = test_event(TR_EV_DELETE, NULL);
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_int_equal(out.n, 0);
	cfg.deletes = true;
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_string_equal(out.lines[0], "PRIVMSG #chan :a" ZWJ "lice deleted a message\r\n");
	irc_out_cleanup(&out);
	ev = test_event(TR_EV_REACTION, NULL);
	ev.reaction = "\xf0\x9f\x91\x8d";
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_int_equal(out.n, 0);
	cfg.reactions = true;
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_string_equal(out.lines[0],
	                    "PRIVMSG #chan :a" ZWJ "lice reacted \xf0\x9f\x91\x8d\r\n");
	irc_out_cleanup(&out);
	ev = test_event(TR_EV_JOIN, NULL);
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_int_equal(out.n, 0);
}

static void test_map_out_split(void **state)
{
	(void)state;
	struct irc_config cfg = test_cfg();
	/* A 3,000-byte message of words with multi-byte characters. */
	char text[3100];
	size_t len = 0;
	for (int w = 0; len < 3000; w++) {
		int n = snprintf(text + len, sizeof(text) - len, "w%d\xc3\xa9\xe2\x82\xac ", w);
		len += (size_t)n;
	}
	text[len - 1] = '\0';
	struct tr_event ev = test_event(TR_EV_MESSAGE, text);
	for (size_t self = 0; self <= 120; self += 60) {
		struct irc_out_ctx ctx = {.cfg = &cfg, .channel = "#chan", .self_prefix_len = self};
		struct irc_out out;
		assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
		assert_true(out.n >= 7);
		struct tr_buf all;
		tr_buf_init(&all, 100000);
		for (size_t i = 0; i < out.n; i++) {
			size_t l = strlen(out.lines[i]);
			/* The line as relayed, with our prefix in front, fits in 512. */
			assert_true(self + l <= IRC_LINE_MAX);
			assert_true(tr_utf8_valid(out.lines[i], l));
			const char *c = content_of(out.lines[i]);
			assert_int_equal(strncmp(c, "<a" ZWJ "lice> ", 11), 0);
			if (i)
				assert_int_equal(tr_buf_append(&all, " ", 1), TR_OK);
			assert_int_equal(tr_buf_append(&all, c + 11, strlen(c + 11) - 2), TR_OK);
		}
		assert_string_equal(tr_buf_str(&all), text);
		tr_buf_cleanup(&all);
		irc_out_cleanup(&out);
	}
}

static void test_map_out_injection(void **state)
{
	(void)state;
	struct irc_config cfg = test_cfg();
	struct irc_out_ctx ctx = {.cfg = &cfg, .channel = "#chan", .self_prefix_len = 30};
	const char *hostile[] = {"hi\r\nQUIT :bye", "hi\rQUIT",
	                         "\x01"
	                         "DCC SEND x\x01",
	                         "a\nb\n\nJOIN #other"};
	for (size_t i = 0; i < TR_ARRAY_LEN(hostile); i++) {
		struct tr_event ev = test_event(TR_EV_MESSAGE, hostile[i]);
		struct irc_out out;
		assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
		assert_true(out.n >= 1);
		for (size_t k = 0; k < out.n; k++) {
			const char *l = out.lines[k];
			size_t n = strlen(l);
			/* exactly one CR LF, at the end, and every line a PRIVMSG to #chan */
			assert_int_equal(strncmp(l, "PRIVMSG #chan :<a", 17), 0);
			assert_ptr_equal(strchr(l, '\r'), l + n - 2);
			assert_ptr_equal(strchr(l, '\n'), l + n - 1);
			assert_null(strchr(l, '\x01'));
		}
		irc_out_cleanup(&out);
	}
	/* The author's name cannot inject either. */
	struct tr_event ev = test_event(TR_EV_MESSAGE, "x");
	ev.author.name = "evil\r\nQUIT";
	struct irc_out out;
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_OK);
	assert_int_equal(out.n, 1);
	assert_null(strstr(out.lines[0], "\r\nQUIT"));
	irc_out_cleanup(&out);
	/* A channel that is not one is refused. */
	ctx.channel = "nick";
	assert_int_equal(irc_map_out(&ev, &ctx, &out), TR_E_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),         cmocka_unit_test(test_prefix_nick),
	    cmocka_unit_test(test_build),         cmocka_unit_test(test_build_limits_and_tags),
	    cmocka_unit_test(test_casemap),       cmocka_unit_test(test_caps),
	    cmocka_unit_test(test_sasl_plain),    cmocka_unit_test(test_name_guard_template_time),
	    cmocka_unit_test(test_map_in),        cmocka_unit_test(test_map_in_ids),
	    cmocka_unit_test(test_map_out_basic), cmocka_unit_test(test_map_out_edit_delete_react),
	    cmocka_unit_test(test_map_out_split), cmocka_unit_test(test_map_out_injection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
