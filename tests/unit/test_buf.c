/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/buf.c: the maximum is exact and a refused append changes nothing; the
 * data is always NUL-terminated; reset keeps memory; take hands over ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "buf.h"

static void test_empty(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 16);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, 16);
	assert_string_equal(tr_buf_str(&b), "");
	/* An empty append still gives a NUL-terminated buffer. */
	assert_int_equal(tr_buf_append(&b, NULL, 0), TR_OK);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	tr_buf_cleanup(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_append_and_max(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 8);
	assert_int_equal(tr_buf_append(&b, "abc", 3), TR_OK);
	assert_int_equal(tr_buf_appends(&b, "de"), TR_OK);
	assert_int_equal(b.len, 5);
	assert_string_equal(tr_buf_str(&b), "abcde");
	/* One byte over the maximum is refused and changes nothing. */
	assert_int_equal(tr_buf_append(&b, "wxyz", 4), TR_E_TOOBIG);
	assert_int_equal(b.len, 5);
	assert_string_equal(tr_buf_str(&b), "abcde");
	/* Exactly to the maximum is fine. */
	assert_int_equal(tr_buf_append(&b, "fgh", 3), TR_OK);
	assert_int_equal(b.len, 8);
	assert_string_equal(tr_buf_str(&b), "abcdefgh");
	assert_int_equal(tr_buf_append(&b, "i", 1), TR_E_TOOBIG);
	assert_int_equal(tr_buf_append(&b, "", 0), TR_OK);
	/* A length that would wrap around size_t is refused. */
	assert_int_equal(tr_buf_append(&b, "x", SIZE_MAX), TR_E_TOOBIG);
	assert_int_equal(b.len, 8);
	tr_buf_cleanup(&b);
}

static void test_binary(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 64);
	assert_int_equal(tr_buf_append(&b, "a\0b", 3), TR_OK);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b", 4);
	tr_buf_cleanup(&b);
}

static void test_growth(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 100000);
	for (size_t i = 0; i < 10000; i++) {
		char c = (char)('a' + i % 26);
		assert_int_equal(tr_buf_append(&b, &c, 1), TR_OK);
	}
	assert_int_equal(b.len, 10000);
	assert_true(b.cap > b.len);
	for (size_t i = 0; i < 10000; i++)
		assert_int_equal(b.data[i], 'a' + i % 26);
	assert_int_equal(b.data[10000], '\0');
	tr_buf_cleanup(&b);
}

static void test_printf(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 20);
	assert_int_equal(tr_buf_printf(&b, "%d-%s", 42, "x"), TR_OK);
	assert_int_equal(tr_buf_printf(&b, "|%05d", 7), TR_OK);
	assert_string_equal(tr_buf_str(&b), "42-x|00007");
	assert_int_equal(b.len, 10);
	/* 11 more bytes would make 21: refused, nothing written. */
	assert_int_equal(tr_buf_printf(&b, "%s", "0123456789a"), TR_E_TOOBIG);
	assert_string_equal(tr_buf_str(&b), "42-x|00007");
	assert_int_equal(tr_buf_printf(&b, "%s", "0123456789"), TR_OK);
	assert_int_equal(b.len, 20);
	assert_int_equal(tr_buf_printf(&b, "%s", ""), TR_OK);
	assert_int_equal(strlen(b.data), 20);
	tr_buf_cleanup(&b);
}

static void test_reset_and_take(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 64);
	assert_int_equal(tr_buf_appends(&b, "hello"), TR_OK);
	char *mem = b.data;
	tr_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, mem);
	assert_string_equal(tr_buf_str(&b), "");
	assert_int_equal(tr_buf_appends(&b, "again"), TR_OK);
	assert_ptr_equal(b.data, mem);

	char *p = tr_buf_take(&b);
	assert_ptr_equal(p, mem);
	assert_string_equal(p, "again");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 64);
	free(p);

	/* Taking an empty buffer gives an owned "". */
	p = tr_buf_take(&b);
	assert_non_null(p);
	assert_string_equal(p, "");
	free(p);

	/* The buffer is usable after take and after cleanup. */
	assert_int_equal(tr_buf_appends(&b, "x"), TR_OK);
	tr_buf_cleanup(&b);
	assert_int_equal(tr_buf_appends(&b, "y"), TR_OK);
	assert_string_equal(tr_buf_str(&b), "y");
	tr_buf_cleanup(&b);
	tr_buf_reset(&b); /* on an empty buffer: no effect */
	assert_null(b.data);
}

static void test_zero_max(void **state)
{
	(void)state;
	struct tr_buf b;
	tr_buf_init(&b, 0);
	assert_int_equal(tr_buf_append(&b, "a", 1), TR_E_TOOBIG);
	assert_int_equal(tr_buf_printf(&b, "%c", 'a'), TR_E_TOOBIG);
	assert_int_equal(tr_buf_append(&b, "", 0), TR_OK);
	assert_string_equal(tr_buf_str(&b), "");
	tr_buf_cleanup(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),    cmocka_unit_test(test_append_and_max),
	    cmocka_unit_test(test_binary),   cmocka_unit_test(test_growth),
	    cmocka_unit_test(test_printf),   cmocka_unit_test(test_reset_and_take),
	    cmocka_unit_test(test_zero_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
