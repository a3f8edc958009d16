/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/backoff.c: the pure delay function over a table of policies, attempts
 * and random values; the stateful next/reset; and the PRNG's spread. No timing involved. */
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "backoff.h"
#include "err.h"

static const struct tr_backoff_policy no_jitter = {.base_ms = 100, .max_ms = 1000, .jitter_pct = 0};
static const struct tr_backoff_policy jitter30 = {
    .base_ms = 1000, .max_ms = 8000, .jitter_pct = 30};
static const struct tr_backoff_policy full_jitter = {
    .base_ms = 1000, .max_ms = 1000, .jitter_pct = 250};
static const struct tr_backoff_policy zero_base = {.base_ms = 0, .max_ms = 1000, .jitter_pct = 50};
static const struct tr_backoff_policy max_below_base = {
    .base_ms = 5000, .max_ms = 2000, .jitter_pct = 0};

static void test_delay_table(void **state)
{
	(void)state;
	static const struct {
		const struct tr_backoff_policy *p;
		unsigned attempt;
		uint32_t rnd;
		uint32_t want;
	} cases[] = {
	    {&no_jitter, 0, 12345, 100},
	    {&no_jitter, 1, 0, 200},
	    {&no_jitter, 2, UINT32_MAX, 400},
	    {&no_jitter, 3, 7, 800},
	    {&no_jitter, 4, 0, 1000}, /* 1600 capped */
	    {&no_jitter, 5, 0, 1000},
	    {&no_jitter, 64, 0, 1000},
	    {&no_jitter, 1000, 0, 1000},
	    {&no_jitter, UINT_MAX, 0, 1000},
	    {&jitter30, 0, 0, 1000},         /* no randomness drawn: full delay */
	    {&jitter30, 0, UINT32_MAX, 700}, /* the whole 30% taken away */
	    {&jitter30, 1, UINT32_MAX, 1400},
	    {&jitter30, 3, 0, 8000},
	    {&jitter30, 3, UINT32_MAX, 5600},
	    {&jitter30, 10, UINT32_MAX / 2, 6801}, /* just under half of 2400 away */
	    {&full_jitter, 0, UINT32_MAX, 0},      /* jitter_pct above 100 means 100 */
	    {&full_jitter, 0, 0, 1000},
	    {&zero_base, 0, 0, 0},
	    {&zero_base, UINT_MAX, UINT32_MAX, 0},
	    {&max_below_base, 0, 0, 2000},
	    {&tr_backoff_connect, 0, 0, 500},
	    {&tr_backoff_connect, 6, 0, 30000}, /* 32000 capped */
	    {&tr_backoff_connect, 6, UINT32_MAX, 21000},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		uint32_t got = tr_backoff_delay(cases[i].p, cases[i].attempt, cases[i].rnd);
		if (got != cases[i].want)
			fail_msg("case %zu: got %u, want %u", i, got, cases[i].want);
	}
}

/* For every attempt and random value, the delay lies in [d - jitter, d]. */
static void test_delay_bounds(void **state)
{
	(void)state;
	static const uint32_t rnds[] = {
	    0, 1, 1000, UINT32_MAX / 3, UINT32_MAX / 2, UINT32_MAX - 1, UINT32_MAX};
	for (unsigned a = 0; a < 20; a++) {
		uint64_t d = (uint64_t)jitter30.base_ms << (a < 20 ? a : 20);
		if (d > jitter30.max_ms)
			d = jitter30.max_ms;
		uint32_t prev = 0;
		for (size_t r = 0; r < TR_ARRAY_LEN(rnds); r++) {
			uint32_t got = tr_backoff_delay(&jitter30, a, rnds[r]);
			assert_true(got <= d);
			assert_true(got >= d - d * 30 / 100);
			/* More randomness, more taken away. */
			if (r > 0)
				assert_true(got <= prev);
			prev = got;
		}
	}
}

static void test_next_and_reset(void **state)
{
	(void)state;
	struct tr_backoff b;
	tr_random_seed();
	tr_backoff_init(&b, &tr_backoff_connect);
	assert_int_equal(b.attempt, 0);
	uint32_t want_max[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
	for (size_t i = 0; i < TR_ARRAY_LEN(want_max); i++) {
		uint32_t d = tr_backoff_next(&b);
		assert_true(d <= want_max[i]);
		assert_true(d >= want_max[i] - want_max[i] * 30 / 100);
		assert_int_equal(b.attempt, i + 1);
	}
	/* The attempt counter saturates instead of wrapping. */
	for (int i = 0; i < 1000; i++) {
		uint32_t d = tr_backoff_next(&b);
		assert_true(d <= 30000 && d >= 21000);
	}
	assert_true(b.attempt <= 64);
	tr_backoff_reset(&b);
	assert_int_equal(b.attempt, 0);
	uint32_t d = tr_backoff_next(&b);
	assert_true(d <= 500 && d >= 350);
}

static void test_random_spread(void **state)
{
	(void)state;
	tr_random_seed();
	uint32_t first = tr_random();
	bool differs = false, high = false, low = false, odd = false, even = false;
	for (int i = 0; i < 1000; i++) {
		uint32_t r = tr_random();
		differs = differs || r != first;
		high = high || r > UINT32_MAX / 4 * 3;
		low = low || r < UINT32_MAX / 4;
		odd = odd || (r & 1);
		even = even || !(r & 1);
	}
	assert_true(differs);
	assert_true(high);
	assert_true(low);
	assert_true(odd);
	assert_true(even);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delay_table),
	    cmocka_unit_test(test_delay_bounds),
	    cmocka_unit_test(test_next_and_reset),
	    cmocka_unit_test(test_random_spread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
