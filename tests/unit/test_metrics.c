/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/metrics.c: the rendered text exposition format compared byte for byte,
 * creation order, cumulative histogram buckets, number formatting, escaping, and the size cap. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "metrics.h"

static void assert_render(const struct tr_metrics *m, const char *want)
{
	struct tr_buf out;
	tr_buf_init(&out, 1 << 20);
	assert_int_equal(tr_metrics_render(m, &out), TR_OK);
	if (strcmp(tr_buf_str(&out), want) != 0)
		fail_msg("got:\n%s\nwant:\n%s", tr_buf_str(&out), want);
	tr_buf_cleanup(&out);
}

static void test_empty(void **state)
{
	(void)state;
	struct tr_metrics *m = tr_metrics_new();
	assert_render(m, "");
	tr_metrics_free(m);
	tr_metrics_free(NULL);
}

static void test_counters_gauges(void **state)
{
	(void)state;
	struct tr_metrics *m = tr_metrics_new();
	struct tr_metric *in = tr_metrics_counter(m, "trestle_events_in_total", "Events received.",
	                                          "connector=\"irc\"");
	struct tr_metric *g = tr_metrics_gauge(m, "trestle_up", "1 when connected.", NULL);
	struct tr_metric *in2 =
	    tr_metrics_counter(m, "trestle_events_in_total", "ignored help", "connector=\"slack\"");
	/* The same name and labels give the same series. */
	assert_ptr_equal(
	    tr_metrics_counter(m, "trestle_events_in_total", NULL, "connector=\"irc\""), in);
	/* NULL and "" labels are one series. */
	assert_ptr_equal(tr_metrics_gauge(m, "trestle_up", NULL, ""), g);
	tr_metric_inc(in);
	tr_metric_inc(in);
	tr_metric_add(in, 3);
	tr_metric_add(in, -1); /* refused: counters only go up */
	tr_metric_add(in2, 0.5);
	tr_metric_set(g, 1);
	tr_metric_add(g, -3); /* gauges go down */
	assert_true(tr_metric_value(in) == 5);
	assert_true(tr_metric_value(in2) == 0.5);
	assert_true(tr_metric_value(g) == -2);
	assert_render(m, "# HELP trestle_events_in_total Events received.\n"
	                 "# TYPE trestle_events_in_total counter\n"
	                 "trestle_events_in_total{connector=\"irc\"} 5\n"
	                 "trestle_events_in_total{connector=\"slack\"} 0.5\n"
	                 "# HELP trestle_up 1 when connected.\n"
	                 "# TYPE trestle_up gauge\n"
	                 "trestle_up -2\n");
	tr_metrics_free(m);
}

static void test_histogram(void **state)
{
	(void)state;
	static const double bounds[] = {0.005, 0.1, 1, 2.5};
	struct tr_metrics *m = tr_metrics_new();
	struct tr_metric *h = tr_metrics_histogram(
	    m, "trestle_latency_seconds", "Delivery latency.", NULL, bounds, TR_ARRAY_LEN(bounds));
	struct tr_metric *hl = tr_metrics_histogram(m, "trestle_latency_seconds", NULL,
	                                            "connector=\"irc\"", bounds, 4);
	static const double obs[] = {0.001, 0.005, 0.05, 0.5, 0.7, 2.5, 3, 100};
	for (size_t i = 0; i < TR_ARRAY_LEN(obs); i++)
		tr_metric_observe(h, obs[i]);
	tr_metric_observe(h, NAN); /* ignored */
	tr_metric_observe(hl, 0.25);
	assert_true(tr_metric_value(h) == 8);
	assert_render(m, "# HELP trestle_latency_seconds Delivery latency.\n"
	                 "# TYPE trestle_latency_seconds histogram\n"
	                 "trestle_latency_seconds_bucket{le=\"0.005\"} 2\n"
	                 "trestle_latency_seconds_bucket{le=\"0.1\"} 3\n"
	                 "trestle_latency_seconds_bucket{le=\"1\"} 5\n"
	                 "trestle_latency_seconds_bucket{le=\"2.5\"} 6\n"
	                 "trestle_latency_seconds_bucket{le=\"+Inf\"} 8\n"
	                 "trestle_latency_seconds_sum 106.756\n"
	                 "trestle_latency_seconds_count 8\n"
	                 "trestle_latency_seconds_bucket{connector=\"irc\",le=\"0.005\"} 0\n"
	                 "trestle_latency_seconds_bucket{connector=\"irc\",le=\"0.1\"} 0\n"
	                 "trestle_latency_seconds_bucket{connector=\"irc\",le=\"1\"} 1\n"
	                 "trestle_latency_seconds_bucket{connector=\"irc\",le=\"2.5\"} 1\n"
	                 "trestle_latency_seconds_bucket{connector=\"irc\",le=\"+Inf\"} 1\n"
	                 "trestle_latency_seconds_sum{connector=\"irc\"} 0.25\n"
	                 "trestle_latency_seconds_count{connector=\"irc\"} 1\n");
	tr_metrics_free(m);
}

static void test_histogram_no_bounds(void **state)
{
	(void)state;
	static const double bounds[] = {INFINITY};
	struct tr_metrics *m = tr_metrics_new();
	struct tr_metric *h = tr_metrics_histogram(m, "h", "", NULL, bounds, 1);
	tr_metric_observe(h, -1);
	assert_render(m, "# HELP h \n"
	                 "# TYPE h histogram\n"
	                 "h_bucket{le=\"+Inf\"} 1\n"
	                 "h_sum -1\n"
	                 "h_count 1\n");
	tr_metrics_free(m);
}

struct num_case {
	double v;
	const char *want;
};

static const struct num_case num_cases[] = {
    {0, "0"},
    {1, "1"},
    {-2, "-2"},
    {0.1, "0.1"},
    {1.0 / 3, "0.3333333333333333"},
    {123456789, "123456789"},
    {1e21, "1e+21"},
    {1.5e-7, "1.5e-07"},
    {INFINITY, "+Inf"},
    {-INFINITY, "-Inf"},
    {NAN, "NaN"},
};

static void test_numbers(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(num_cases); i++) {
		struct tr_metrics *m = tr_metrics_new();
		tr_metric_set(tr_metrics_gauge(m, "g", "G.", NULL), num_cases[i].v);
		char want[128];
		snprintf(want, sizeof(want), "# HELP g G.\n# TYPE g gauge\ng %s\n",
		         num_cases[i].want);
		assert_render(m, want);
		tr_metrics_free(m);
	}
}

struct esc_case {
	const char *in, *want;
};

static const struct esc_case esc_cases[] = {
    {"", ""},
    {"plain", "plain"},
    {"a\"b", "a\\\"b"},
    {"a\\b", "a\\\\b"},
    {"line\nbreak", "line\\nbreak"},
    {"\\\"\n", "\\\\\\\"\\n"},
    {"caf\xc3\xa9", "caf\xc3\xa9"},
};

static void test_escape(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(esc_cases); i++) {
		char *s = tr_metrics_label_escape(esc_cases[i].in);
		assert_string_equal(s, esc_cases[i].want);
		free(s);
	}
	/* An escaped value renders as given, and HELP text escapes backslash and newline. */
	struct tr_metrics *m = tr_metrics_new();
	char *v = tr_metrics_label_escape("a\"b\nc");
	char labels[64];
	snprintf(labels, sizeof(labels), "reason=\"%s\"", v);
	free(v);
	tr_metric_inc(tr_metrics_counter(m, "x_total", "Two\nlines \\ and \"quotes\".", labels));
	assert_render(m, "# HELP x_total Two\\nlines \\\\ and \"quotes\".\n"
	                 "# TYPE x_total counter\n"
	                 "x_total{reason=\"a\\\"b\\nc\"} 1\n");
	tr_metrics_free(m);
}

static void test_order_and_set_counter(void **state)
{
	(void)state;
	struct tr_metrics *m = tr_metrics_new();
	static const char *const names[] = {"zeta", "alpha", "mid:dle", "_u"};
	for (size_t i = 0; i < TR_ARRAY_LEN(names); i++)
		tr_metric_set(tr_metrics_counter(m, names[i], "h", NULL), (double)i);
	/* Series of a family keep creation order too. */
	tr_metric_inc(tr_metrics_counter(m, "alpha", NULL, "b=\"2\""));
	tr_metric_inc(tr_metrics_counter(m, "alpha", NULL, "a=\"1\""));
	assert_render(m, "# HELP zeta h\n# TYPE zeta counter\nzeta 0\n"
	                 "# HELP alpha h\n# TYPE alpha counter\nalpha 1\nalpha{b=\"2\"} 1\n"
	                 "alpha{a=\"1\"} 1\n"
	                 "# HELP mid:dle h\n# TYPE mid:dle counter\nmid:dle 2\n"
	                 "# HELP _u h\n# TYPE _u counter\n_u 3\n");
	tr_metrics_free(m);
}

static void test_render_too_big(void **state)
{
	(void)state;
	struct tr_metrics *m = tr_metrics_new();
	for (int i = 0; i < 50; i++) {
		char labels[32];
		snprintf(labels, sizeof(labels), "n=\"%d\"", i);
		tr_metric_inc(tr_metrics_counter(m, "many_total", "Many series.", labels));
	}
	struct tr_buf out;
	tr_buf_init(&out, 200);
	assert_int_equal(tr_metrics_render(m, &out), TR_E_TOOBIG);
	assert_true(out.len <= 200);
	tr_buf_cleanup(&out);
	tr_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_counters_gauges),
	    cmocka_unit_test(test_histogram),
	    cmocka_unit_test(test_histogram_no_bounds),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_order_and_set_counter),
	    cmocka_unit_test(test_render_too_big),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
