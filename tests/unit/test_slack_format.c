/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* common/format_mrkdwn: CommonMark -> mrkdwn (escaping, mass mentions made inert, links,
 * emphasis, code, quotes, lists) and mrkdwn -> CommonMark (entities, <@U>/<#C>/<!…> tokens,
 * links, emphasis runs), plus round trips. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "format_mrkdwn.h"

struct pair {
	const char *in, *want;
};

static void test_to_mrkdwn(void **state)
{
	(void)state;
	static const struct pair cases[] = {
	    {"plain text", "plain text"},
	    {"**bold** and *it* and _it2_", "*bold* and _it_ and _it2_"},
	    {"a & b < c > d", "a &amp; b &lt; c &gt; d"},
	    {"`x < y`", "`x &lt; y`"},
	    {"```\ncode <b>\n```", "```\ncode &lt;b&gt;\n```"},
	    {"> quoted\n> more", "> quoted\n> more"},
	    {"> a < b", "> a &lt; b"},
	    {"[site](https://example.org/a?b=1&c=2)", "<https://example.org/a?b=1&amp;c=2|site>"},
	    {"<https://example.org>", "<https://example.org>"},
	    {"[x](javascript:alert(1))", "x (javascript:alert(1))"},
	    {"- one\n- two", "\xe2\x80\xa2 one\n\xe2\x80\xa2 two"},
	    {"1. one\n2. two", "1. one\n2. two"},
	    {"para one\n\npara two", "para one\n\npara two"},
	    {"line one\nline two", "line one\nline two"},
	    {"~~gone~~", "~gone~"},
	    {"# Title", "*Title*"},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *out = NULL;
		assert_int_equal(tr_mrkdwn_from_commonmark(cases[i].in, strlen(cases[i].in), &out),
		                 TR_OK);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: %s -> [%s], want [%s]", i, cases[i].in, out,
			         cases[i].want);
		free(out);
	}
}

/* Whatever the bridged text holds, no Slack mass-mention token survives. */
static void test_to_mrkdwn_never_mass_mentions(void **state)
{
	(void)state;
	static const char *const cases[] = {
	    "<!channel>",
	    "<!here> hi",
	    "<!everyone>",
	    "<!subteam^S123|@team>",
	    "\\<!channel\\>",
	    "`<!channel>`",
	    "[<!here>](https://x.org)",
	    "<!channel|x>",
	    "&lt;!channel&gt;",
	    "<<!here>>",
	    "@channel wake up",
	    "@here",
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *out = NULL;
		assert_int_equal(tr_mrkdwn_from_commonmark(cases[i], strlen(cases[i]), &out),
		                 TR_OK);
		if (strstr(out, "<!") || strstr(out, "@channel") || strstr(out, "@here"))
			fail_msg("case %zu: %s -> %s", i, cases[i], out);
		free(out);
	}
}

static const char *names(void *arg, const char *id)
{
	(void)arg;
	if (!strcmp(id, "U0ALICE"))
		return "Alice Smith";
	if (!strcmp(id, "C0GENERAL"))
		return "general";
	return NULL;
}

static void test_to_commonmark(void **state)
{
	(void)state;
	static const struct pair cases[] = {
	    {"plain text", "plain text"},
	    {"*bold* _it_ ~gone~", "**bold** _it_ ~~gone~~"},
	    {"a &amp; b &lt; c &gt; d", "a \\& b \\< c \\> d"},
	    {"hi <@U0ALICE>", "hi @Alice Smith"},
	    {"hi <@U0BOB|bob>", "hi @bob"},
	    {"hi <@U0NOBODY>", "hi @U0NOBODY"},
	    {"see <#C0GENERAL>", "see #general"},
	    {"see <#C0OTHER|other>", "see #other"},
	    {"<!here> and <!channel>", "@here and @channel"},
	    {"<!subteam^S1|@devs> ping", "@devs ping"},
	    {"<https://example.org|site>", "[site](<https://example.org>)"},
	    {"<https://example.org/?a=1&amp;b=2>", "<https://example.org/?a=1&b=2>"},
	    {"<mailto:a@b.org|mail>", "[mail](<mailto:a@b.org>)"},
	    {"&gt; quoted", "> quoted"},
	    {"> raw quote", "> raw quote"},
	    {"x &gt; y", "x \\> y"},
	    {"`a*b*c`", "`` a*b*c ``"},
	    {"```x = *y*```", "```\nx = *y*\n```"},
	    {"2*3*4 and snake_case_name", "2\\*3\\*4 and snake\\_case\\_name"},
	    {"[not a link](x)", "\\[not a link\\](x)"},
	    {"# not a heading", "\\# not a heading"},
	    {"a\nb", "a\\\nb"},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *out = NULL;
		assert_int_equal(
		    tr_mrkdwn_to_commonmark(cases[i].in, strlen(cases[i].in), names, NULL, &out),
		    TR_OK);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: %s -> [%s], want [%s]", i, cases[i].in, out,
			         cases[i].want);
		free(out);
	}
}

/* CommonMark -> mrkdwn -> CommonMark keeps the meaning of the common markup. */
static void test_round_trip(void **state)
{
	(void)state;
	static const struct pair cases[] = {
	    {"**bold** and _it_", "**bold** and _it_"},
	    {"a & b < c", "a \\& b \\< c"},
	    {"[site](https://example.org)", "[site](<https://example.org>)"},
	    {"`code`", "`` code ``"},
	    {"> quote", "> quote"},
	    {"~~gone~~", "~~gone~~"},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *mk = NULL, *back = NULL;
		assert_int_equal(tr_mrkdwn_from_commonmark(cases[i].in, strlen(cases[i].in), &mk),
		                 TR_OK);
		assert_int_equal(tr_mrkdwn_to_commonmark(mk, strlen(mk), NULL, NULL, &back), TR_OK);
		if (strcmp(back, cases[i].want) != 0)
			fail_msg("case %zu: %s -> %s -> [%s], want [%s]", i, cases[i].in, mk, back,
			         cases[i].want);
		free(mk);
		free(back);
	}
}

static void test_bad_utf8(void **state)
{
	(void)state;
	char *out = (char *)1;
	assert_int_equal(tr_mrkdwn_from_commonmark("\xff", 1, &out), TR_E_INVAL);
	assert_null(out);
	out = (char *)1;
	assert_int_equal(tr_mrkdwn_to_commonmark("\xc3", 1, NULL, NULL, &out), TR_E_INVAL);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_to_mrkdwn),
	    cmocka_unit_test(test_to_mrkdwn_never_mass_mentions),
	    cmocka_unit_test(test_to_commonmark),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_bad_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
