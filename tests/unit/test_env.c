/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/env.c through a fake lookup function: defaults, NAME_FILE secrets in
 * temporary files (trimming, size cap, NUL bytes, unreadable), NAME and NAME_FILE both set,
 * typed getters with bounds, and all-at-once error reporting that never shows a value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "alloc.h"
#include "env.h"

/* ---- a fake environment ---- */

#define FAKE_MAX 8
static const char *fake_names[FAKE_MAX];
static const char *fake_values[FAKE_MAX];
static size_t fake_n;

static void fake_clear(void)
{
	fake_n = 0;
}

static void fake_set(const char *name, const char *value)
{
	assert_true(fake_n < FAKE_MAX);
	fake_names[fake_n] = name;
	fake_values[fake_n] = value;
	fake_n++;
}

static const char *fake_lookup(const char *name)
{
	for (size_t i = 0; i < fake_n; i++)
		if (strcmp(fake_names[i], name) == 0)
			return fake_values[i];
	return NULL;
}

/* A temporary directory per test run, removed at teardown. */
static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	const char *base = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/trestle-test-env-XXXXXX", base);
	if (!mkdtemp(tmpdir))
		return -1;
	fake_clear();
	return 0;
}

static char created[16][300];
static size_t n_created;

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_created; i++)
		unlink(created[i]);
	n_created = 0;
	rmdir(tmpdir);
	return 0;
}

/* Writes len bytes to a new file in tmpdir; returns its path (static storage). */
static const char *write_file(const char *name, const void *data, size_t len)
{
	assert_true(n_created < TR_ARRAY_LEN(created));
	char *path = created[n_created++];
	snprintf(path, sizeof(created[0]), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *errors_of(const struct tr_env *e)
{
	return tr_buf_str(&e->errors);
}

/* ---- tests ---- */

static void test_str_plain(void **state)
{
	(void)state;
	struct tr_env e;
	fake_clear();
	fake_set("TRESTLE_TOPIC_PREFIX", "bridge");
	fake_set("EMPTY", "");
	tr_env_init(&e, fake_lookup);
	char *v = tr_env_str(&e, "TRESTLE_TOPIC_PREFIX", "trestle");
	assert_string_equal(v, "bridge");
	free(v);
	v = tr_env_str(&e, "UNSET", "dflt");
	assert_string_equal(v, "dflt");
	free(v);
	assert_null(tr_env_str(&e, "UNSET", NULL));
	v = tr_env_str(&e, "EMPTY", "dflt");
	assert_string_equal(v, ""); /* set to empty is set */
	free(v);
	assert_int_equal(e.n_errors, 0);
	assert_int_equal(tr_env_finish(&e), TR_OK);
	tr_env_cleanup(&e);
}

static void test_str_file(void **state)
{
	(void)state;
	static const struct {
		const char *data;
		size_t len;
		const char *want;
	} cases[] = {
	    {"s3cret\n", 7, "s3cret"},
	    {"s3cret", 6, "s3cret"},
	    {"s3cret\r\n", 8, "s3cret"},
	    {"two\n\n", 5, "two\n"}, /* only one newline is trimmed */
	    {" spaced \n", 9, " spaced "},
	    {"", 0, ""},
	    {"\n", 1, ""},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char name[32];
		snprintf(name, sizeof(name), "secret-%zu", i);
		const char *path = write_file(name, cases[i].data, cases[i].len);
		struct tr_env e;
		fake_clear();
		fake_set("SLACK_BOT_TOKEN_FILE", path);
		tr_env_init(&e, fake_lookup);
		char *v = tr_env_str(&e, "SLACK_BOT_TOKEN", "dflt");
		assert_non_null(v);
		if (strcmp(v, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, v, cases[i].want);
		free(v);
		assert_int_equal(e.n_errors, 0);
		tr_env_cleanup(&e);
	}
}

static void test_file_problems(void **state)
{
	(void)state;
	char *big = tr_xmalloc(TR_ENV_FILE_MAX + 1);
	memset(big, 'x', TR_ENV_FILE_MAX + 1);
	const char *at_max = write_file("at-max", big, TR_ENV_FILE_MAX);
	const char *over_max = write_file("over-max", big, TR_ENV_FILE_MAX + 1);
	free(big);
	const char *with_nul = write_file("nul", "TOPSECRET\0cd\n", 13);
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/does-not-exist", tmpdir);

	struct tr_env e;
	fake_clear();
	fake_set("A_FILE", at_max);
	fake_set("B_FILE", over_max);
	fake_set("C_FILE", with_nul);
	fake_set("D_FILE", missing);
	fake_set("E_FILE", tmpdir); /* a directory: open works, read fails */
	tr_env_init(&e, fake_lookup);

	char *v = tr_env_str(&e, "A", NULL);
	assert_non_null(v);
	assert_int_equal(strlen(v), TR_ENV_FILE_MAX);
	free(v);
	assert_int_equal(e.n_errors, 0);

	/* Each problem is recorded and the getter returns the default, never a partial value. */
	v = tr_env_str(&e, "B", "dflt");
	assert_string_equal(v, "dflt");
	free(v);
	assert_int_equal(e.n_errors, 1);
	v = tr_env_str(&e, "C", "dflt");
	assert_string_equal(v, "dflt");
	free(v);
	assert_int_equal(e.n_errors, 2);
	v = tr_env_str(&e, "D", "dflt");
	assert_string_equal(v, "dflt");
	free(v);
	assert_int_equal(e.n_errors, 3);
	v = tr_env_str(&e, "E", NULL);
	assert_null(v);
	assert_int_equal(e.n_errors, 4);

	const char *errs = errors_of(&e);
	assert_non_null(strstr(errs, "B: "));
	assert_non_null(strstr(errs, "is larger than 65536 bytes\n"));
	assert_non_null(strstr(errs, "C: "));
	assert_non_null(strstr(errs, "holds a NUL byte\n"));
	assert_non_null(strstr(errs, "D: cannot open "));
	assert_non_null(strstr(errs, "No such file or directory\n"));
	assert_non_null(strstr(errs, "E: cannot read "));
	/* The contents of a secret file never appear. */
	assert_null(strstr(errs, "xxxxxxxxxxxxxxxx"));
	assert_null(strstr(errs, "TOPSECRET"));
	assert_int_equal(tr_env_finish(&e), TR_E_CONFIG);
	tr_env_cleanup(&e);
}

static void test_both_set(void **state)
{
	(void)state;
	const char *path = write_file("both", "from-file\n", 10);
	struct tr_env e;
	fake_clear();
	fake_set("TRESTLE_MQTT_URL", "mqtt://a");
	fake_set("TRESTLE_MQTT_URL_FILE", path);
	tr_env_init(&e, fake_lookup);
	char *v = tr_env_str(&e, "TRESTLE_MQTT_URL", "mqtt://127.0.0.1:1883");
	assert_string_equal(v, "mqtt://127.0.0.1:1883");
	free(v);
	assert_int_equal(e.n_errors, 1);
	assert_string_equal(errors_of(&e), "TRESTLE_MQTT_URL: set both TRESTLE_MQTT_URL and "
	                                   "TRESTLE_MQTT_URL_FILE; keep one\n");
	tr_env_cleanup(&e);
}

static void test_required(void **state)
{
	(void)state;
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/nope", tmpdir);
	struct tr_env e;
	fake_clear();
	fake_set("IRC_NICK", "trestle");
	fake_set("IRC_SERVER", "");
	fake_set("SLACK_APP_TOKEN_FILE", missing);
	tr_env_init(&e, fake_lookup);
	char *v = tr_env_required(&e, "IRC_NICK");
	assert_string_equal(v, "trestle");
	free(v);
	assert_null(tr_env_required(&e, "IRC_SERVER"));
	assert_null(tr_env_required(&e, "SLACK_BOT_TOKEN"));
	assert_int_equal(e.n_errors, 2);
	/* An unreadable NAME_FILE is one problem, not two. */
	assert_null(tr_env_required(&e, "SLACK_APP_TOKEN"));
	assert_int_equal(e.n_errors, 3);
	const char *errs = errors_of(&e);
	assert_non_null(strstr(errs, "IRC_SERVER: required (set IRC_SERVER or IRC_SERVER_FILE)\n"));
	assert_non_null(strstr(errs, "SLACK_BOT_TOKEN: required (set SLACK_BOT_TOKEN or "
	                             "SLACK_BOT_TOKEN_FILE)\n"));
	assert_non_null(strstr(errs, "SLACK_APP_TOKEN: cannot open "));
	assert_null(strstr(errs, "SLACK_APP_TOKEN: required"));
	assert_int_equal(tr_env_finish(&e), TR_E_CONFIG);
	tr_env_cleanup(&e);
}

static void test_int(void **state)
{
	(void)state;
	static const struct {
		const char *value; /* NULL: unset */
		long want;
		bool error;
	} cases[] = {
	    {NULL, 30, false},   {"42", 42, false},
	    {"1", 1, false},     {"100", 100, false},
	    {"0", 30, true},     {"101", 30, true},
	    {"-5", 30, true},    {"abc", 30, true},
	    {"12abc", 30, true}, {"", 30, true},
	    {" 5", 30, true},    {"+5", 30, true},
	    {"5 ", 30, true},    {"0x10", 30, true},
	    {"1e2", 30, true},   {"99999999999999999999", 30, true},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		struct tr_env e;
		fake_clear();
		if (cases[i].value)
			fake_set("TRESTLE_RETENTION_DAYS", cases[i].value);
		tr_env_init(&e, fake_lookup);
		long v = tr_env_int(&e, "TRESTLE_RETENTION_DAYS", 30, 1, 100);
		if (v != cases[i].want || (e.n_errors != 0) != cases[i].error)
			fail_msg("case %zu \"%s\": got %ld errors %d", i, cases[i].value, v,
			         e.n_errors);
		if (cases[i].error) {
			assert_string_equal(errors_of(&e),
			                    "TRESTLE_RETENTION_DAYS: must be a whole "
			                    "number from 1 to 100\n");
		}
		tr_env_cleanup(&e);
	}
}

static void test_bool(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		bool def, want, error;
	} cases[] = {
	    {NULL, true, true, false},    {NULL, false, false, false},   {"1", false, true, false},
	    {"true", false, true, false}, {"yes", false, true, false},   {"on", false, true, false},
	    {"0", true, false, false},    {"false", true, false, false}, {"no", true, false, false},
	    {"off", true, false, false},  {"maybe", true, true, true},   {"2", false, false, true},
	    {"", true, true, true},       {"1 ", false, false, true},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		struct tr_env e;
		fake_clear();
		if (cases[i].value)
			fake_set("IRC_TLS", cases[i].value);
		tr_env_init(&e, fake_lookup);
		bool v = tr_env_bool(&e, "IRC_TLS", cases[i].def);
		if (v != cases[i].want || (e.n_errors != 0) != cases[i].error)
			fail_msg("case %zu \"%s\": got %d errors %d", i, cases[i].value, v,
			         e.n_errors);
		tr_env_cleanup(&e);
	}
}

static void test_parse_helpers(void **state)
{
	(void)state;
	long l = 7;
	assert_int_equal(tr_parse_long("-3", -5, 5, &l), TR_OK);
	assert_int_equal(l, -3);
	assert_int_equal(tr_parse_long("-5", -5, 5, &l), TR_OK);
	assert_int_equal(tr_parse_long("5", -5, 5, &l), TR_OK);
	assert_int_equal(l, 5);
	l = 7;
	assert_int_equal(tr_parse_long("6", -5, 5, &l), TR_E_INVAL);
	assert_int_equal(tr_parse_long("-", -5, 5, &l), TR_E_INVAL);
	assert_int_equal(tr_parse_long(NULL, -5, 5, &l), TR_E_INVAL);
	assert_int_equal(tr_parse_long("\t1", -5, 5, &l), TR_E_INVAL);
	assert_int_equal(l, 7); /* untouched on failure */
	assert_int_equal(tr_parse_long("9223372036854775807", 0, 9223372036854775807L, &l), TR_OK);
	assert_int_equal(l, 9223372036854775807L);
	assert_int_equal(tr_parse_long("9223372036854775808", 0, 9223372036854775807L, &l),
	                 TR_E_INVAL);
	bool b = false;
	assert_int_equal(tr_parse_bool("on", &b), TR_OK);
	assert_true(b);
	assert_int_equal(tr_parse_bool("TRUE", &b), TR_E_INVAL);
	assert_int_equal(tr_parse_bool(NULL, &b), TR_E_INVAL);
	assert_true(b);
}

static void test_fail_and_finish(void **state)
{
	(void)state;
	struct tr_env e;
	fake_clear();
	tr_env_init(&e, fake_lookup);
	assert_int_equal(tr_env_finish(&e), TR_OK);
	tr_env_fail(&e, "MATRIX_AS_LISTEN", "must be host:port, got %d parts", 3);
	tr_env_fail(&e, "X", "second");
	assert_int_equal(e.n_errors, 2);
	assert_string_equal(errors_of(&e),
	                    "MATRIX_AS_LISTEN: must be host:port, got 3 parts\nX: second\n");
	assert_int_equal(tr_env_finish(&e), TR_E_CONFIG);
	tr_env_cleanup(&e);

	/* Past the 64 KiB of error text every problem is still counted. */
	tr_env_init(&e, fake_lookup);
	char reason[400];
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	for (int i = 0; i < 500; i++)
		tr_env_fail(&e, "N", "%s", reason);
	assert_int_equal(e.n_errors, 500);
	assert_true(e.errors.len <= 64 * 1024);
	tr_env_cleanup(&e);
}

/* With no lookup function, the process environment is read. */
static void test_process_env(void **state)
{
	(void)state;
	assert_int_equal(setenv("TRESTLE_TEST_ENV_VALUE", "from-env", 1), 0);
	struct tr_env e;
	tr_env_init(&e, NULL);
	char *v = tr_env_str(&e, "TRESTLE_TEST_ENV_VALUE", NULL);
	assert_string_equal(v, "from-env");
	free(v);
	assert_int_equal(tr_env_int(&e, "TRESTLE_TEST_ENV_UNSET", 9, 0, 10), 9);
	assert_int_equal(e.n_errors, 0);
	tr_env_cleanup(&e);
	unsetenv("TRESTLE_TEST_ENV_VALUE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_str_plain),
	    cmocka_unit_test(test_str_file),
	    cmocka_unit_test(test_file_problems),
	    cmocka_unit_test(test_both_set),
	    cmocka_unit_test(test_required),
	    cmocka_unit_test(test_int),
	    cmocka_unit_test(test_bool),
	    cmocka_unit_test(test_parse_helpers),
	    cmocka_unit_test(test_fail_and_finish),
	    cmocka_unit_test(test_process_env),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
