/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/map.c: insert, replace, delete, iteration, binary keys, growth, and
 * tombstone churn that must neither loop forever nor grow the table without bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "map.h"

static int vals[4];

static void test_empty(void **state)
{
	(void)state;
	struct tr_map m;
	tr_map_init(&m);
	assert_null(tr_map_get(&m, "a", 1));
	assert_null(tr_map_del(&m, "a", 1));
	size_t it = 0;
	assert_false(tr_map_next(&m, &it, NULL, NULL, NULL));
	tr_map_cleanup(&m);
	tr_map_cleanup(&m);
}

static void test_put_get_replace_del(void **state)
{
	(void)state;
	struct tr_map m;
	tr_map_init(&m);
	assert_null(tr_map_put(&m, "alpha", 5, &vals[0]));
	assert_null(tr_map_put(&m, "beta", 4, &vals[1]));
	assert_int_equal(m.len, 2);
	assert_ptr_equal(tr_map_get(&m, "alpha", 5), &vals[0]);
	assert_ptr_equal(tr_map_get(&m, "beta", 4), &vals[1]);
	assert_null(tr_map_get(&m, "alph", 4));
	assert_null(tr_map_get(&m, "alphab", 6));

	/* Replacing returns the old value and keeps the count. */
	assert_ptr_equal(tr_map_put(&m, "alpha", 5, &vals[2]), &vals[0]);
	assert_int_equal(m.len, 2);
	assert_ptr_equal(tr_map_get(&m, "alpha", 5), &vals[2]);

	assert_ptr_equal(tr_map_del(&m, "alpha", 5), &vals[2]);
	assert_int_equal(m.len, 1);
	assert_null(tr_map_get(&m, "alpha", 5));
	assert_null(tr_map_del(&m, "alpha", 5));
	assert_ptr_equal(tr_map_get(&m, "beta", 4), &vals[1]);

	/* A deleted key can come back. */
	assert_null(tr_map_put(&m, "alpha", 5, &vals[3]));
	assert_ptr_equal(tr_map_get(&m, "alpha", 5), &vals[3]);
	assert_int_equal(m.len, 2);
	tr_map_cleanup(&m);
	assert_int_equal(m.len, 0);
	assert_null(m.slots);
}

static void test_binary_keys(void **state)
{
	(void)state;
	struct tr_map m;
	tr_map_init(&m);
	assert_null(tr_map_put(&m, "a\0b", 3, &vals[0]));
	assert_null(tr_map_put(&m, "a\0c", 3, &vals[1]));
	assert_null(tr_map_put(&m, "a", 1, &vals[2]));
	assert_null(tr_map_put(&m, "", 0, &vals[3]));
	assert_int_equal(m.len, 4);
	assert_ptr_equal(tr_map_get(&m, "a\0b", 3), &vals[0]);
	assert_ptr_equal(tr_map_get(&m, "a\0c", 3), &vals[1]);
	assert_ptr_equal(tr_map_get(&m, "a", 1), &vals[2]);
	assert_ptr_equal(tr_map_get(&m, "", 0), &vals[3]);
	/* Only klen bytes count. */
	assert_ptr_equal(tr_map_get(&m, "a\0zzz", 1), &vals[2]);
	tr_map_cleanup(&m);
}

static void test_key_is_copied(void **state)
{
	(void)state;
	struct tr_map m;
	tr_map_init(&m);
	char key[8] = "mutable";
	assert_null(tr_map_put(&m, key, 7, &vals[0]));
	memcpy(key, "changed", 7);
	assert_null(tr_map_get(&m, key, 7));
	assert_ptr_equal(tr_map_get(&m, "mutable", 7), &vals[0]);
	tr_map_cleanup(&m);
}

static void test_many_and_iterate(void **state)
{
	(void)state;
	enum { N = 5000 };
	struct tr_map m;
	tr_map_init(&m);
	static int nums[N];
	char key[32];
	for (int i = 0; i < N; i++) {
		nums[i] = i;
		int n = snprintf(key, sizeof(key), "key-%d", i);
		assert_null(tr_map_put(&m, key, (size_t)n, &nums[i]));
	}
	assert_int_equal(m.len, N);
	assert_true(m.len * 10 < m.cap * 7); /* load factor kept under 70% */
	for (int i = 0; i < N; i += 2) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		assert_ptr_equal(tr_map_del(&m, key, (size_t)n), &nums[i]);
	}
	assert_int_equal(m.len, N / 2);
	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		void *v = tr_map_get(&m, key, (size_t)n);
		if (i % 2)
			assert_ptr_equal(v, &nums[i]);
		else
			assert_null(v);
	}
	/* Iteration visits every live entry once, with its own key. */
	static unsigned char seen[N];
	memset(seen, 0, sizeof(seen));
	size_t it = 0, count = 0;
	const char *k;
	size_t kl;
	void *v;
	while (tr_map_next(&m, &it, &k, &kl, &v)) {
		int idx = *(int *)v;
		int n = snprintf(key, sizeof(key), "key-%d", idx);
		assert_int_equal(kl, (size_t)n);
		assert_memory_equal(k, key, kl);
		assert_int_equal(seen[idx], 0);
		seen[idx] = 1;
		count++;
	}
	assert_int_equal(count, N / 2);
	/* NULL outputs are allowed. */
	it = 0;
	count = 0;
	while (tr_map_next(&m, &it, NULL, NULL, NULL))
		count++;
	assert_int_equal(count, N / 2);
	tr_map_cleanup(&m);
}

/* A cache-like pattern: always one live key, a new key every time. Tombstones must be
 * recycled: the table stays small and lookups of absent keys terminate. */
static void test_tombstone_churn(void **state)
{
	(void)state;
	struct tr_map m;
	tr_map_init(&m);
	char key[32];
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(key, sizeof(key), "k%d", i);
		assert_null(tr_map_put(&m, key, (size_t)n, &vals[0]));
		assert_null(tr_map_get(&m, "absent", 6));
		assert_ptr_equal(tr_map_del(&m, key, (size_t)n), &vals[0]);
	}
	assert_int_equal(m.len, 0);
	assert_true(m.cap <= 32);
	assert_null(tr_map_get(&m, "absent", 6));
	tr_map_cleanup(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_put_get_replace_del),
	    cmocka_unit_test(test_binary_keys),
	    cmocka_unit_test(test_key_is_copied),
	    cmocka_unit_test(test_many_and_iterate),
	    cmocka_unit_test(test_tombstone_churn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
