/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/utf8.c: the strict validator on the boundaries of Unicode table 3-7
 * (overlongs, surrogates, > U+10FFFF, truncated and bad continuation bytes), and the
 * boundary-safe truncation helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "err.h"
#include "utf8.h"

struct valid_case {
	const char *s;
	size_t len; /* 0: strlen */
	bool valid;
};

static const struct valid_case valid_cases[] = {
    {"", 0, true},
    {"abc", 0, true},
    {"\0", 1, true}, /* NUL is an ordinary byte here */
    {"a\0b", 3, true},
    {"\x7f", 0, true},
    {"\xc2\x80", 0, true},      /* U+0080 */
    {"\xdf\xbf", 0, true},      /* U+07FF */
    {"\xc0\x80", 0, false},     /* overlong NUL */
    {"\xc1\xbf", 0, false},     /* overlong U+007F */
    {"\xc0\xaf", 0, false},     /* overlong '/' */
    {"\xe0\xa0\x80", 0, true},  /* U+0800 */
    {"\xe0\x9f\xbf", 0, false}, /* overlong U+07FF */
    {"\xe0\x80\xaf", 0, false},
    {"\xed\x9f\xbf", 0, true},              /* U+D7FF */
    {"\xed\xa0\x80", 0, false},             /* U+D800, a surrogate */
    {"\xed\xbf\xbf", 0, false},             /* U+DFFF */
    {"\xed\xa0\xbd\xed\xb2\xa9", 0, false}, /* CESU-8 pair */
    {"\xee\x80\x80", 0, true},              /* U+E000 */
    {"\xef\xbf\xbf", 0, true},              /* U+FFFF */
    {"\xf0\x90\x80\x80", 0, true},          /* U+10000 */
    {"\xf0\x8f\xbf\xbf", 0, false},         /* overlong U+FFFF */
    {"\xf4\x8f\xbf\xbf", 0, true},          /* U+10FFFF */
    {"\xf4\x90\x80\x80", 0, false},         /* U+110000 */
    {"\xf5\x80\x80\x80", 0, false},
    {"\xf8\x88\x80\x80\x80", 0, false}, /* 5-byte form */
    {"\xfc\x84\x80\x80\x80\x80", 0, false},
    {"\xfe", 0, false},
    {"\xff", 0, false},
    {"\x80", 0, false}, /* lone continuation */
    {"\xbf", 0, false},
    {"a\x80", 0, false},
    {"\xc3", 0, false}, /* truncated */
    {"\xe2\x82", 0, false},
    {"\xf0\x9f\x91", 0, false},
    {"\xc3\x28", 0, false}, /* bad continuation */
    {"\xe2\x28\xa1", 0, false},
    {"\xe2\x82\x28", 0, false},
    {"\xf0\x9f\x91\x28", 0, false},
    {"\xf0\x28\x8c\xbc", 0, false},
    {"a\xc3\xa9z", 0, true},
    {"\xf0\x9f\x91\x8d", 0, true},
    {"\xe2\x82\xac 5", 0, true},
    {"\xc3\xa9", 1, false}, /* len cuts the sequence */
    {"\xf0\x9f\x91\x8d", 3, false},
};

static void test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(valid_cases); i++) {
		const struct valid_case *c = &valid_cases[i];
		size_t len = c->len ? c->len : strlen(c->s);
		if (tr_utf8_valid(c->s, len) != c->valid)
			fail_msg("case %zu: expected %s", i, c->valid ? "valid" : "invalid");
	}
	assert_true(tr_utf8_valid(NULL, 0));
}

static void test_seq_len(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len, want;
	} cases[] = {
	    {"a", 1, 1},
	    {"\0", 1, 1},
	    {"\xc3\xa9", 2, 2},
	    {"\xe2\x82\xac", 3, 3},
	    {"\xf0\x9f\x91\x8d", 4, 4},
	    {"\xf0\x9f\x91\x8dxyz", 7, 4},
	    {"\x80", 1, 0},
	    {"\xc3\xa9", 1, 0},
	    {"\xed\xa0\x80", 3, 0},
	    {"\xff", 1, 0},
	    {"a", 0, 0},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		size_t got = tr_utf8_seq_len(cases[i].s, cases[i].len);
		if (got != cases[i].want)
			fail_msg("case %zu: got %zu, want %zu", i, got, cases[i].want);
	}
}

/* "a", "é" (2 bytes), "€" (3), "👍" (4): boundaries at 0, 1, 3, 6, 10. */
static const char mixed[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x91\x8d";

static void test_count(void **state)
{
	(void)state;
	assert_int_equal(tr_utf8_count(mixed, strlen(mixed)), 4);
	assert_int_equal(tr_utf8_count("", 0), 0);
	assert_int_equal(tr_utf8_count("abc", 3), 3);
	assert_int_equal(tr_utf8_count(mixed, 3), 2);
}

static void test_truncate(void **state)
{
	(void)state;
	static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10, 10};
	size_t len = strlen(mixed);
	assert_int_equal(len, 10);
	for (size_t max = 0; max < TR_ARRAY_LEN(want); max++) {
		size_t got = tr_utf8_truncate(mixed, len, max);
		if (got != want[max])
			fail_msg("max %zu: got %zu, want %zu", max, got, want[max]);
		assert_true(got <= max);
		assert_true(tr_utf8_valid(mixed, got));
	}
	assert_int_equal(tr_utf8_truncate(mixed, len, SIZE_MAX), len);
	assert_int_equal(tr_utf8_truncate("", 0, 0), 0);
}

static void test_prefix_chars(void **state)
{
	(void)state;
	static const size_t want[] = {0, 1, 3, 6, 10, 10, 10};
	size_t len = strlen(mixed);
	for (size_t n = 0; n < TR_ARRAY_LEN(want); n++) {
		size_t got = tr_utf8_prefix_chars(mixed, len, n);
		if (got != want[n])
			fail_msg("chars %zu: got %zu, want %zu", n, got, want[n]);
	}
	/* Invalid input still advances: a bad byte counts as one character, never loops. */
	assert_int_equal(tr_utf8_prefix_chars("\xff\xff\xff", 3, 2), 2);
	assert_int_equal(tr_utf8_prefix_chars("\xc3", 1, 5), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),        cmocka_unit_test(test_seq_len),
	    cmocka_unit_test(test_count),        cmocka_unit_test(test_truncate),
	    cmocka_unit_test(test_prefix_chars),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
