/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/format.c: tables of input -> output for CommonMark -> IRC / XEP-0393 /
 * plain and back, mass-mention neutralising, splitting and truncation, plus hostile input
 * (deep nesting, CR/LF/NUL injection, unbalanced markup) checked against output invariants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "alloc.h"
#include "buf.h"
#include "format.h"
#include "utf8.h"

#define P  TR_DIALECT_PLAIN
#define I  TR_DIALECT_IRC
#define X  TR_DIALECT_XMPP
#define WJ "\xe2\x81\xa0"

struct conv_case {
	enum tr_dialect d;
	const char *in;
	const char *out;
};

static const struct conv_case render_cases[] = {
    /* emphasis, code, strike */
    {I, "**bold** and *it*",
     "\x02"
     "bold\x02 and \x1dit\x1d"},
    {X, "**bold** and *it*", "*bold* and _it_"},
    {P, "**bold** and *it*", "bold and it"},
    {I, "`code` ~~gone~~",
     "\x11"
     "code\x11 \x1egone\x1e"},
    {X, "`code` ~~gone~~", "`code` ~gone~"},
    {P, "`code` ~~gone~~", "code gone"},
    {I, "\\~\\~lit\\~\\~", "~~lit~~"}, /* escaped tildes stay literal */
    {I, "&#126;&#126;x&#126;&#126;", "~~x~~"},
    {I, "~~ a~~ x", "~~ a~~ x"}, /* a strike must hug its text */
    {I, "`~~x~~`", "\x11~~x~~\x11"},
    {I, "***both***",
     "\x1d\x02"
     "both\x02\x1d"},
    {I, "**a *b* c**",
     "\x02"
     "a \x1d"
     "b\x1d c\x02"},
    {I, "**a **b** c**",
     "\x02"
     "a b c\x02"}, /* nested same style: one run */
    {X, "**a *b* c**", "*a _b_ c*"},
    {I, "*a\nb*",
     "\x1d"
     "a\x1d\n\x1d"
     "b\x1d"}, /* runs closed and reopened per line */
    /* links and images */
    {I, "[text](http://u)", "text <http://u>"},
    {X, "[text](http://u)", "text <http://u>"},
    {P, "[text](http://u)", "text (http://u)"},
    {I, "<http://x.y/z>", "http://x.y/z"},
    {I, "<a@b.c>", "a@b.c"},
    {I, "[](http://e)", "http://e"},
    {I, "[**b**](http://u)",
     "\x02"
     "b\x02 <http://u>"},
    {I, "![alt *x*](http://i.png)", "[image: alt x] http://i.png"},
    {I, "![](u)", "[image] u"},
    {X, "![a](u)", "[image: a] u"},
    /* blocks */
    {I, "# Head\n\npara", "\x02Head\x02\npara"},
    {X, "# Head\n\npara", "*Head*\n\npara"},
    {P, "# Head\n\npara", "Head\n\npara"},
    {I, "> q1\n> > q2", "> q1\n> > q2"},
    {X, "> q1\n>\n> q2", "> q1\n>\n> q2"},
    {I, "- a\n- b\n  - c", "- a\n- b\n  - c"},
    {I, "3. x\n4. y", "3. x\n4. y"},
    {I, "1) a\n2) b", "1) a\n2) b"},
    {P, "- a\n\n- b", "- a\n\n- b"},
    {I, "- a\n\n  b", "- a\n  b"},
    {I, "```\ncode\n  more\n```",
     "\x11"
     "code\x11\n\x11  more\x11"},
    {X, "```\ncode\n```\nnext", "```\ncode\n```\n\nnext"},
    {P, "```\ncode\n```", "code"},
    {X, "> ```\n> c\n> ```", "> ```\n> c\n> ```"},
    {X, "````\n```\n````", "```\n" WJ "```\n```"}, /* a content line "```" cannot end it */
    {I, "---", "---"},
    {I, "a  \nb\\\nc", "a\nb\nc"},
    {I, "<b>hi</b> <div>", "<b>hi</b> <div>"},
    {I, "<div>\n*x*\n</div>", "<div>\n*x*\n</div>"},
    /* injection: CR, LF, NUL and IRC codes in content never reach the output as such */
    {I, "hi\r\nQUIT :x", "hi\nQUIT :x"},
    {I,
     "a\x02"
     "b\x03"
     "04c\x0f"
     "d\x01\x7f",
     "ab04cd\x7f"},
    {I, "`a\rb`",
     "\x11"
     "a b\x11"},
    /* XEP-0393: literal directives neutralised, invalid spans left unmarked */
    {X, "\\*not bold\\*", WJ "*not bold*"},
    {X, "a \\_b_ c", "a " WJ "_b_ c"},
    {X, "snake_case_name x*y", "snake_case_name x*y"},
    {X, "\\> not a quote", WJ "> not a quote"},
    {X, "2*3*4", "234"},   /* intraword: XEP-0393 cannot open there */
    {X, "**a*b**", "a*b"}, /* would close early */
    {X, "`a`b`", "`a`b`"},
    {X, "**x** `y` *z*", "*x* `y` _z_"},
    {X, "*a\nb*", "a\nb"}, /* spans cannot cross lines */
    {X, "** x **", WJ "** x " WJ "**"},
    /* mentions in every dialect */
    {I, "@everyone hi", "@" WJ "everyone hi"},
    {X, "**@here**", "*@" WJ "here*"},
    {P, "mail a@here.org", "mail a@here.org"},
    /* unicode passes through */
    {I, "**h\xc3\xa9llo** \xf0\x9f\x98\x80 \xd0\xbc\xd0\xb8\xd1\x80",
     "\x02h\xc3\xa9llo\x02 \xf0\x9f\x98\x80 \xd0\xbc\xd0\xb8\xd1\x80"},
    {I, "", ""},
};

static void test_render_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(render_cases); i++) {
		const struct conv_case *c = &render_cases[i];
		char *out = NULL;
		assert_int_equal(tr_format_render(c->in, strlen(c->in), c->d, &out), TR_OK);
		if (strcmp(out, c->out) != 0)
			print_message("case %zu (%d) in=\"%s\" got=\"%s\"\n", i, c->d, c->in, out);
		assert_string_equal(out, c->out);
		free(out);
	}
}

static const struct conv_case to_md_cases[] = {
    {I,
     "\x02"
     "bold\x02 \x1dit\x1d \x1estrike\x1e",
     "**bold** *it* ~~strike~~"},
    {I,
     "\x03"
     "04,05red\x03 \x03"
     "12blue \x0f"
     "plain",
     "red blue plain"},
    {I,
     "\x04"
     "ff0000hex",
     "hex"},
    {I,
     "\x11"
     "co`de\x11",
     "``co`de``"},
    {I, "\x11`x\x11", "`` `x ``"},
    {I,
     "\x02"
     "bold \x1d"
     "both\x02 it\x1d",
     "**bold *both*** *it*"},
    {I,
     "\x02 spaced \x02"
     "x",
     "**spaced** x"},
    {I,
     "\x02"
     "unclosed",
     "**unclosed**"},
    {I, "\x1funder\x1f \x16rev\x16", "under rev"},
    {I, "*lit* _x_ [a](b) <c> `d` \\e ~f &amp; # g",
     "\\*lit\\* \\_x\\_ \\[a\\](b) \\<c> \\`d\\` \\\\e \\~f \\&amp; # g"},
    {I, "# not a heading", "\\# not a heading"},
    {I, "1. not a list", "1\\. not a list"},
    {I, "- nor this", "\\- nor this"},
    {I, "> nor a quote", "\\> nor a quote"},
    {I, "    indented", "indented"},
    {I,
     "a\r\nb\x00"
     "c",
     "a\nb"}, /* strlen stops at the NUL: see below for an embedded one */
    {I,
     "\x02"
     "a\nb",
     "**a**\nb"},
    {X, "*bold* _it_ ~st~ `co*de`", "**bold** *it* ~~st~~ `co*de`"},
    {X, "*strong*plain*", "**strong**plain\\*"},
    {X, "* plain *strong*", "\\* plain **strong**"},
    {X, "not strong*", "not strong\\*"},
    {X, "*not strong", "\\*not strong"},
    {X, "*not *strong", "\\*not \\*strong"},
    {X, "**", "\\*\\*"},
    {X, "***", "\\*\\*\\*"},
    {X, "*_both_*", "***both***"},
    {X, "`*code*` *`mono bold`*", "`*code*` **`mono bold`**"},
    {X, "a*b*c snake_case", "a\\*b\\*c snake\\_case"},
    {X, "*not\nstrong*", "\\*not\nstrong\\*"},
    {X, "> That that is, is.\nSaid the hermit.", "> That that is, is.\n\nSaid the hermit."},
    {X, ">> nested\n> outer\nWho?", "> > nested\n>\n> outer\n\nWho?"},
    {X, "```ignored\n*pre*\n```\nafter", "```\n*pre*\n```\nafter"},
    {X, "> ```\n> code\nplain", "> ```\n> code\n> ```\n\nplain"},
    {X, "```\n````\n```", "`````\n````\n`````"},
    {X, "> _ <", "> \\_ \\<"},
    {P, "*a* # b\n# c", "\\*a\\* # b\n\\# c"},
    {P, "", ""},
};

static void test_to_commonmark_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(to_md_cases); i++) {
		const struct conv_case *c = &to_md_cases[i];
		size_t len = strlen(c->in);
		if (strstr(c->in, "b\x00"))
			len = 0;
		char *out = NULL;
		assert_int_equal(tr_format_to_commonmark(c->in, strlen(c->in), c->d, &out), TR_OK);
		if (strcmp(out, c->out) != 0)
			print_message("case %zu (%d) in=\"%s\" got=\"%s\"\n", i, c->d, c->in, out);
		assert_string_equal(out, c->out);
		free(out);
		(void)len;
	}
	/* NUL inside the text is dropped, not a terminator. */
	char *out = NULL;
	assert_int_equal(tr_format_to_commonmark("a\0b", 3, I, &out), TR_OK);
	assert_string_equal(out, "ab");
	free(out);
}

/* Text from a network, to CommonMark and back, keeps its meaning. */
static void test_round_trip(void **state)
{
	(void)state;
	static const struct conv_case cases[] = {
	    {I,
	     "\x02"
	     "bold\x02 \x1dit\x1d \x1estrike\x1e \x11"
	     "code\x11",
	     NULL},
	    {I, "*lit* _x_ [a](b) <c> `d` \\e ~~f~~ &amp; #g 1. x", NULL},
	    {I, "# heading? - no", NULL},
	    {I, "@ever\xc3\xbd one \xf0\x9f\x98\x80", NULL},
	    {X, "*bold* _it_ ~st~ `code`", NULL},
	    {X, "> quote\n\nplain", NULL},
	    {X, "```\n*pre*\n```", NULL},
	    {P, "*a* _b_ [c](d) <e> `f` \\g ~~h~~ # i", NULL},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *md = NULL, *back = NULL;
		assert_int_equal(
		    tr_format_to_commonmark(cases[i].in, strlen(cases[i].in), cases[i].d, &md),
		    TR_OK);
		assert_int_equal(tr_format_render(md, strlen(md), cases[i].d, &back), TR_OK);
		if (strcmp(back, cases[i].in) != 0)
			print_message("case %zu md=\"%s\" back=\"%s\"\n", i, md, back);
		assert_string_equal(back, cases[i].in);
		free(md);
		free(back);
	}
}

struct mention_case {
	const char *in;
	const char *out;
};

static const struct mention_case mention_cases[] = {
    {"@everyone", "@" WJ "everyone"},
    {"@here", "@" WJ "here"},
    {"@channel", "@" WJ "channel"},
    {"@room", "@" WJ "room"},
    {"@all", "@" WJ "all"},
    {"@EveryOne @HERE @Channel @ROOM @All",
     "@" WJ "EveryOne @" WJ "HERE @" WJ "Channel @" WJ "ROOM @" WJ "All"},
    {"hi @here!", "hi @" WJ "here!"},
    {"(@room)", "(@" WJ "room)"},
    {"@here's", "@" WJ "here's"},
    {"@everyone\n@all", "@" WJ "everyone\n@" WJ "all"},
    {"@hereford @roomba @allison @channels", "@hereford @roomba @allison @channels"},
    {"a@here.org x.y@all.com me+@room.io", "a@here.org x.y@all.com me+@room.io"},
    {"foo@everyone", "foo@everyone"},
    {"<!channel> <!here> <!everyone> <!group>",
     "<" WJ "!channel> <" WJ "!here> <" WJ "!everyone> <" WJ "!group>"},
    {"<!here|here> <!CHANNEL>", "<" WJ "!here|here> <" WJ "!CHANNEL>"},
    {"<!subteam^S123|@team>", "<" WJ "!subteam^S123|@team>"},
    {"<@&123456> <@123456>", "<" WJ "@&123456> <@123456>"},
    {"<!date^1|x> <!channelx>", "<!date^1|x> <!channelx>"},
    {"@" WJ "everyone", "@" WJ "everyone"}, /* idempotent */
    {"", ""},
};

static void test_mentions(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(mention_cases); i++) {
		const struct mention_case *c = &mention_cases[i];
		char *out = tr_mentions_neutralise(c->in, strlen(c->in));
		assert_string_equal(out, c->out);
		char *again = tr_mentions_neutralise(out, strlen(out));
		assert_string_equal(again, out);
		free(again);
		free(out);
	}
	char *out = tr_mentions_neutralise(NULL, 0);
	assert_string_equal(out, "");
	free(out);
}

/* Every output piece: valid UTF-8, within the limits, no CR/NUL, no LF. */
static void check_pieces(char **p, size_t n, size_t max_bytes, size_t max_chars)
{
	assert_non_null(p);
	assert_null(p[n]);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(p[i]);
		assert_true(l > 0);
		assert_true(l <= max_bytes);
		if (max_chars)
			assert_true(tr_utf8_count(p[i], l) <= max_chars);
		assert_true(tr_utf8_valid(p[i], l));
		assert_null(strpbrk(p[i], "\r\n"));
	}
}

struct split_case {
	enum tr_dialect d;
	const char *in;
	size_t max;
	const char *out[6];
};

static const struct split_case split_cases[] = {
    {P, "short", 16, {"short"}},
    {P, "one\ntwo\n\n\nthree\n", 16, {"one", "two", "three"}},
    {P, "aaaa bbbb cccc dddd eeee", 16, {"aaaa bbbb cccc", "dddd eeee"}},
    {P, "aaaaaaaaaaaaaaaaaaaa", 16, {"aaaaaaaaaaaaaaaa", "aaaa"}},
    {P, "aaaa     bbbbbbbbbbbbbbbbb", 16, {"aaaa", "bbbbbbbbbbbbbbbb", "b"}},
    /* "é" is 2 bytes: never split inside it */
    {P,
     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
     16,
     {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "\xc3\xa9"}},
    /* emoji (4 bytes): 15 bytes of room hold three */
    {P,
     "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80",
     16,
     {"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"}},
    /* "e" + U+0301 combining acute: the mark stays with its base */
    {P, "abcdefghijklmne\xcc\x81xyz", 16, {"abcdefghijklmn", "e\xcc\x81xyz"}},
    /* IRC: a bold run cut by the split is closed and reopened */
    {I,
     "\x02"
     "aaaa bbbb cccc dddd\x02 e",
     16,
     {"\x02"
      "aaaa bbbb cccc\x0f",
      "\x02"
      "dddd\x02 e"}},
    {I,
     "\x02\x1d"
     "abcdefghijklmnopqrstuvwxyz",
     16,
     {"\x02\x1d"
      "abcdefghijklm\x0f",
      "\x02\x1dnopqrstuvwxyz"}},
    {I,
     "\x03"
     "04red text here and more",
     16,
     {"\x03"
      "04red text",
      "here and more"}},
    {X, "*bold text that is long*", 16, {"*bold text that", "is long*"}},
};

static void test_split_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(split_cases); i++) {
		const struct split_case *c = &split_cases[i];
		char **p = NULL;
		size_t n = 0;
		assert_int_equal(tr_format_split(c->in, strlen(c->in), c->max, c->d, &p, &n),
		                 TR_OK);
		check_pieces(p, n, c->max, 0);
		size_t want = 0;
		while (want < 6 && c->out[want])
			want++;
		for (size_t k = 0; k < n && k < want; k++) {
			if (strcmp(p[k], c->out[k]) != 0)
				print_message("case %zu piece %zu got \"%s\"\n", i, k, p[k]);
			assert_string_equal(p[k], c->out[k]);
		}
		assert_int_equal(n, want);
		tr_format_pieces_free(p);
	}
}

static void test_split_errors(void **state)
{
	(void)state;
	char **p = (char **)1;
	size_t n = 9;
	assert_int_equal(tr_format_split("abc", 3, 15, P, &p, &n), TR_E_INVAL);
	assert_null(p);
	assert_int_equal(n, 0);
	assert_int_equal(tr_format_split("\xff", 1, 100, P, &p, &n), TR_E_INVAL);
	assert_int_equal(tr_format_split("abc", 3, 100, TR_DIALECT__COUNT, &p, &n), TR_E_INVAL);
	assert_int_equal(tr_format_split_limits("abc", 3, 100, 3, P, &p, &n), TR_E_INVAL);
	assert_int_equal(tr_format_split("", 0, 100, P, &p, &n), TR_OK);
	assert_int_equal(n, 0);
	assert_null(p[0]);
	tr_format_pieces_free(p);
	tr_format_pieces_free(NULL);
}

/* A 3,000-byte message split at 400 bytes: every piece fits, words are kept whole, and the
 * pieces put back together give the original words. */
static void test_split_long(void **state)
{
	(void)state;
	static const char *const words[] = {"alpha",
	                                    "\xce\xb2\xce\xae\xcf\x84\xce\xb1",
	                                    "\xf0\x9f\x98\x80",
	                                    "e\xcc\x81t\xc3\xa9",
	                                    "\xd0\xbc\xd0\xb8\xd1\x80",
	                                    "\xe4\xb8\xad\xe6\x96\x87"};
	for (int d = 0; d < TR_DIALECT__COUNT; d++) {
		struct tr_buf b;
		tr_buf_init(&b, 1 << 20);
		size_t k = 0;
		while (b.len < 3000) {
			if (d == I && k % 7 == 0)
				assert_int_equal(tr_buf_appends(&b, "\x02"), TR_OK);
			assert_int_equal(tr_buf_appends(&b, words[k % 6]), TR_OK);
			assert_int_equal(tr_buf_appends(&b, " "), TR_OK);
			k++;
		}
		b.data[--b.len] = '\0'; /* no trailing space */
		char **p = NULL;
		size_t n = 0;
		assert_int_equal(tr_format_split(b.data, b.len, 400, d, &p, &n), TR_OK);
		check_pieces(p, n, 400, 0);
		assert_true(n >= 8 && n <= 10);
		/* Joined with spaces and without formatting codes, the text is the original's. */
		struct tr_buf j, o;
		tr_buf_init(&j, 1 << 20);
		tr_buf_init(&o, 1 << 20);
		for (size_t i = 0; i < n; i++) {
			for (const char *s = p[i]; *s; s++)
				if (!strchr("\x02\x0f", *s))
					assert_int_equal(tr_buf_append(&j, s, 1), TR_OK);
			assert_int_equal(tr_buf_appends(&j, " "), TR_OK);
		}
		for (const char *s = b.data; *s; s++)
			if (*s != '\x02')
				assert_int_equal(tr_buf_append(&o, s, 1), TR_OK);
		assert_int_equal(tr_buf_appends(&o, " "), TR_OK);
		if (strcmp(j.data, o.data) != 0)
			for (size_t i = 0; i < n; i++)
				print_message("d=%d piece %zu: [%s]\n", d, i, p[i]);
		assert_string_equal(j.data, o.data);
		tr_buf_cleanup(&j);
		tr_buf_cleanup(&o);
		tr_format_pieces_free(p);
		/* And with a character limit as well. */
		assert_int_equal(tr_format_split_limits(b.data, b.len, 400, 100, d, &p, &n), TR_OK);
		check_pieces(p, n, 400, 100);
		tr_format_pieces_free(p);
		tr_buf_cleanup(&b);
	}
}

/* The visible text with each character's IRC style (bold, italic) after it, spaces and codes
 * left out: what a reader sees. Each piece starts unformatted, as an IRC message does. */
static void irc_styled(struct tr_buf *out, const char *s)
{
	unsigned st = 0;
	for (; *s; s++) {
		if (*s == '\x02')
			st ^= 1u;
		else if (*s == '\x1d')
			st ^= 2u;
		else if (*s == '\x0f')
			st = 0;
		else if (*s != ' ') {
			char x[2] = {*s, (char)('0' + st)};
			assert_int_equal(tr_buf_append(out, x, 2), TR_OK);
		}
	}
}

/* IRC: runs cut by a split are closed and reopened, so every character keeps its style. */
static void test_split_irc_runs(void **state)
{
	(void)state;
	struct tr_buf b, want, got;
	tr_buf_init(&b, 1 << 20);
	tr_buf_init(&want, 1 << 20);
	tr_buf_init(&got, 1 << 20);
	for (int i = 0; i < 300; i++)
		assert_int_equal(tr_buf_appends(&b, i % 3 == 0   ? "\x02w "
		                                    : i % 3 == 1 ? "\x1dx "
		                                                 : "y "),
		                 TR_OK);
	char **p = NULL;
	size_t n = 0;
	assert_int_equal(tr_format_split(b.data, b.len, 50, I, &p, &n), TR_OK);
	check_pieces(p, n, 50, 0);
	assert_true(n > 10);
	irc_styled(&want, b.data);
	for (size_t i = 0; i < n; i++)
		irc_styled(&got, p[i]);
	assert_string_equal(got.data, want.data);
	tr_format_pieces_free(p);
	tr_buf_cleanup(&b);
	tr_buf_cleanup(&want);
	tr_buf_cleanup(&got);
}

struct trunc_case {
	enum tr_dialect d;
	const char *in;
	size_t max_bytes, max_chars;
	const char *out;
};

#define ELL "\xe2\x80\xa6"
static const struct trunc_case trunc_cases[] = {
    {P, "short", 10, 0, "short"},
    {P, "short", 0, 5, "short"},
    {P, "hello world again", 14, 0, "hello world" ELL},
    {P, "hello world again", 0, 12, "hello world" ELL},
    {P, "abcdefghijklmnop", 10, 0, "abcdefg" ELL},
    {P, "a verylongwordthatgoeson", 12, 0, "a verylon" ELL}, /* space too early: mid-word */
    {P, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 0, "\xc3\xa9\xc3\xa9" ELL},
    {P, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 0, 3, "\xc3\xa9\xc3\xa9" ELL},
    {P, "abcde\xcc\x81xyz", 9, 0, "abcd" ELL},
    {P, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 6, 0, ELL},
    {P, "abcdef", 2, 0, "ab"},
    {P, "abcdef", 0, 1, ELL},
    {I,
     "\x02"
     "bold text here",
     12, 0,
     "\x02"
     "bold"
     "\x0f" ELL},
    {I,
     "\x02"
     "bo\x02 plain text",
     14, 0,
     "\x02"
     "bo\x02 plain" ELL},
    {X, "*bold* text", 9, 0, "*bold*" ELL},
    {X, "*bold* text", 8, 0, "*bold" ELL},
};

static void test_truncate_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(trunc_cases); i++) {
		const struct trunc_case *c = &trunc_cases[i];
		char *out =
		    tr_format_truncate(c->in, strlen(c->in), c->max_bytes, c->max_chars, c->d);
		if (strcmp(out, c->out) != 0)
			print_message("case %zu got \"%s\"\n", i, out);
		assert_string_equal(out, c->out);
		size_t l = strlen(out);
		assert_true(tr_utf8_valid(out, l));
		if (c->max_bytes)
			assert_true(l <= c->max_bytes);
		if (c->max_chars)
			assert_true(tr_utf8_count(out, l) <= c->max_chars);
		free(out);
	}
}

/* Output invariants for hostile input, in every dialect. */
static void check_render(const char *in, size_t len, size_t max_out)
{
	for (int d = 0; d < TR_DIALECT__COUNT; d++) {
		char *out = NULL;
		assert_int_equal(tr_format_render(in, len, d, &out), TR_OK);
		size_t l = strlen(out);
		assert_true(tr_utf8_valid(out, l));
		assert_true(l <= max_out);
		assert_null(strchr(out, '\r'));
		for (size_t i = 0; i < l; i++)
			assert_true((unsigned char)out[i] >= 0x20 || out[i] == '\n' ||
			            out[i] == '\t' ||
			            (d == I && strchr("\x02\x1d\x1e\x11", out[i])));
		if (d == I) {
			/* Every line closes what it opens. */
			unsigned st = 0;
			for (size_t i = 0; i <= l; i++) {
				if (i == l || out[i] == '\n') {
					assert_int_equal(st, 0);
					continue;
				}
				for (int k = 0; k < 4; k++)
					if (out[i] == "\x02\x1d\x1e\x11"[k])
						st ^= 1u << k;
			}
		}
		char *md = NULL;
		assert_int_equal(tr_format_to_commonmark(in, len, d, &md), TR_OK);
		assert_true(tr_utf8_valid(md, strlen(md)));
		free(md);
		free(out);
	}
}

static void test_hostile(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 1 << 22);
	/* 10,000 nested quotes, with lazy continuation lines: the prefix depth is capped. */
	for (int i = 0; i < 10000; i++)
		assert_int_equal(tr_buf_appends(&b, "> "), TR_OK);
	assert_int_equal(tr_buf_appends(&b, "deep\nlazy\nlazy\nlazy"), TR_OK);
	check_render(b.data, b.len, 200);
	tr_buf_reset(&b);
	/* 10,000 nested list items. */
	for (int i = 0; i < 10000; i++)
		assert_int_equal(tr_buf_appends(&b, "- "), TR_OK);
	assert_int_equal(tr_buf_appends(&b, "x"), TR_OK);
	check_render(b.data, b.len, 200);
	tr_buf_reset(&b);
	/* Deep emphasis and brackets, unbalanced. */
	for (int i = 0; i < 5000; i++)
		assert_int_equal(tr_buf_appends(&b, "*_[`~~<"), TR_OK);
	check_render(b.data, b.len, 10 * b.len);
	tr_buf_reset(&b);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(tr_buf_appends(&b, "**a "), TR_OK);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(tr_buf_appends(&b, "b**"), TR_OK);
	check_render(b.data, b.len, 10 * b.len);
	tr_buf_cleanup(&b);

	static const char *const bad[] = {
	    "hi\r\nQUIT :x",
	    "hi\rQUIT :x",
	    "a\x00QUIT",
	    "`x\r\nPRIVMSG #a :y`",
	    "```\r\nx\r\n```",
	    "[a\r\nb](http://x\r\n)",
	    "<http://a\rb>",
	    "\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f\x7f",
	    "**a *b** c* ~~d **e~~ f**",
	    "<div>\r\n\x00</div>",
	    "# *a\n===\n- > 1. ```",
	    "~~~\n\x02~~x~~\x0f",
	    "\xe2\x80\xae\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a \xe0\xa4\xb9\xe0\xa4\xbf mixed",
	    "e\xcc\x81\xcc\x81\xcc\x81 \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb",
	    "\xef\xb7\x90~\xef\xb7\x90~ ~\xef\xb7\x90~x~\xef\xb7\x90~",
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
		size_t len = strlen(bad[i]);
		if (i == 2)
			len = 7;
		check_render(bad[i], len, 1000);
	}
	/* The injection attempt stays two harmless lines in IRC. */
	char *out = NULL;
	assert_int_equal(tr_format_render("hi\r\nQUIT :x", 11, I, &out), TR_OK);
	assert_string_equal(out, "hi\nQUIT :x");
	free(out);
	assert_int_equal(tr_format_render("a\0b", 3, I, &out), TR_OK);
	assert_string_equal(out, "a\xef\xbf\xbd"
	                         "b"); /* cmark: NUL becomes U+FFFD */
	free(out);
}

static void test_invalid(void **state)
{
	(void)state;
	char *out = (char *)1;
	assert_int_equal(tr_format_render("\xc3", 1, I, &out), TR_E_INVAL);
	assert_null(out);
	out = (char *)1;
	assert_int_equal(tr_format_to_commonmark("\xed\xa0\x80", 3, X, &out), TR_E_INVAL);
	assert_null(out);
	assert_int_equal(tr_format_render("a", 1, TR_DIALECT__COUNT, &out), TR_E_INVAL);
	assert_int_equal(tr_format_to_commonmark(NULL, 0, P, &out), TR_E_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render_table),   cmocka_unit_test(test_to_commonmark_table),
	    cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_mentions),
	    cmocka_unit_test(test_split_table),    cmocka_unit_test(test_split_errors),
	    cmocka_unit_test(test_split_long),     cmocka_unit_test(test_split_irc_runs),
	    cmocka_unit_test(test_truncate_table), cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
