/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/format_html.c: CommonMark -> the org.matrix.custom.html subset, with
 * hostile input (script tags, unbalanced tags, event-handler attributes, javascript: links,
 * non-mxc images) arriving escaped, never as markup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "format_html.h"

struct html_case {
	const char *md;
	const char *html; /* exact result */
	bool plain;       /* no markup at all */
};

static const struct html_case cases[] = {
    {"hello", "hello", true},
    {"a & b < c", "a &amp; b &lt; c", true},
    {"hello **world**", "hello <strong>world</strong>", false},
    {"*em* and `code <x>`", "<em>em</em> and <code>code &lt;x&gt;</code>", false},
    {"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;", false},
    {"x <b>unbalanced", "x &lt;b&gt;unbalanced", false},
    {"<i onclick=\"evil()\">hi</i>", "&lt;i onclick=&quot;evil()&quot;&gt;hi&lt;/i&gt;", false},
    {"[click](javascript:alert(1))", "click", false},
    {"[site](https://example.org/?a=1&b=\"2\")",
     "<a href=\"https://example.org/?a=1&amp;b=&quot;2&quot;\">site</a>", false},
    {"![cat](https://evil.example/cat.png)", "<a href=\"https://evil.example/cat.png\">cat</a>",
     false},
    {"![a \"cat\"](mxc://hs/abc)", "<img src=\"mxc://hs/abc\" alt=\"a &quot;cat&quot;\">", false},
    {"line one\nline two", "line one\nline two", true},
    {"para one\n\npara two", "<p>para one</p><p>para two</p>", false},
    {"- a\n- b", "<ul><li>a</li><li>b</li></ul>", false},
    {"3. x\n4. y", "<ol start=\"3\"><li>x</li><li>y</li></ol>", false},
    {"```js onload=x\nif (a<b) {}\n```",
     "<pre><code class=\"language-js\">if (a&lt;b) {}\n</code></pre>", false},
    {"> quoted", "<blockquote><p>quoted</p></blockquote>", false},
    {"<div>\n<script>x</script>\n</div>",
     "&lt;div&gt;\n&lt;script&gt;x&lt;/script&gt;\n&lt;/div&gt;", false},
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		bool plain = false;
		assert_int_equal(tr_format_html(cases[i].md, strlen(cases[i].md), &out, &plain),
		                 TR_OK);
		if (strcmp(out, cases[i].html) != 0)
			fail_msg("case %zu: %s\n got: [%s]\nwant: [%s]", i, cases[i].md, out,
			         cases[i].html);
		if (plain != cases[i].plain)
			fail_msg("case %zu: plain %d", i, (int)plain);
		free(out);
	}
}

/* Whatever goes in, no "<" in the output starts a tag outside the allowed list. */
static void test_no_foreign_tags(void **state)
{
	(void)state;
	static const char *const hostile[] = {
	    "<img src=x onerror=alert(1)>", "<a href=\"javascript:x\">y</a>",
	    "<style>*{}</style>",           "<<script>script>",
	    "<iframe src=//evil>",          "**<b>** [x](<javascript:y>)",
	    "<svg/onload=alert(1)>",        "</p></code><script>",
	};
	static const char *const allowed[] = {"p>",   "/p>", "strong>", "/strong>", "em>",
	                                      "/em>", "a h", "/a>",     "code>",    "/code>",
	                                      "br>",  "ul>", "/ul>",    "li>",      "/li>"};
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		char *out = NULL;
		assert_int_equal(tr_format_html(hostile[i], strlen(hostile[i]), &out, NULL), TR_OK);
		for (const char *p = strchr(out, '<'); p; p = strchr(p + 1, '<')) {
			bool ok = false;
			for (size_t k = 0; k < sizeof(allowed) / sizeof(allowed[0]); k++)
				ok = ok || strncmp(p + 1, allowed[k], strlen(allowed[k])) == 0;
			if (!ok)
				fail_msg("input %zu: foreign tag in [%s]", i, out);
		}
		assert_null(strstr(out, "javascript:\">"));
		free(out);
	}
}

static void test_bad_input(void **state)
{
	(void)state;
	char *out = (char *)1;
	assert_int_equal(tr_format_html("\xff\xfe", 2, &out, NULL), TR_E_INVAL);
	assert_null(out);
	char *e = tr_html_escape("<a href='x'>&", 13);
	assert_string_equal(e, "&lt;a href=&#39;x&#39;&gt;&amp;");
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_no_foreign_tags),
	    cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
