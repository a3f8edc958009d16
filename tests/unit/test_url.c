/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/url.c: the broker and Redis URL forms of DESIGN §6, percent-decoded
 * credentials, IPv6 hosts, default ports, every refusal, and redaction of the password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "url.h"

struct good_case {
	const char *in;
	const char *scheme, *user, *password, *host;
	int port;
	const char *path;
	const char *redacted;
};

static const struct good_case good[] = {
    {"mqtt://127.0.0.1:1883", "mqtt", NULL, NULL, "127.0.0.1", 1883, NULL, "mqtt://127.0.0.1:1883"},
    {"mqtt://localhost", "mqtt", NULL, NULL, "localhost", 1883, NULL, "mqtt://localhost:1883"},
    {"mqtts://broker.example.org", "mqtts", NULL, NULL, "broker.example.org", 8883, NULL,
     "mqtts://broker.example.org:8883"},
    {"MQTT://Host:1", "mqtt", NULL, NULL, "Host", 1, NULL, "mqtt://Host:1"},
    {"mqtt://h:65535", "mqtt", NULL, NULL, "h", 65535, NULL, "mqtt://h:65535"},
    {"redis://127.0.0.1:6379/0", "redis", NULL, NULL, "127.0.0.1", 6379, "0",
     "redis://127.0.0.1:6379/0"},
    {"redis://:s3cret@127.0.0.1/2", "redis", NULL, "s3cret", "127.0.0.1", 6379, "2",
     "redis://:***@127.0.0.1:6379/2"},
    {"mqtt://router:pa%40ss%3a%2F@broker:1884", "mqtt", "router", "pa@ss:/", "broker", 1884, NULL,
     "mqtt://router:***@broker:1884"},
    {"mqtt://us%65r@host", "mqtt", "user", NULL, "host", 1883, NULL, "mqtt://user@host:1883"},
    {"mqtt://user:@host", "mqtt", "user", "", "host", 1883, NULL, "mqtt://user:***@host:1883"},
    /* The last '@' ends the credentials. */
    {"mqtt://u:p@ss@host", "mqtt", "u", "p@ss", "host", 1883, NULL, "mqtt://u:***@host:1883"},
    /* A '%' not followed by two hex digits is kept as it is. */
    {"mqtt://u:50%zz%4@host", "mqtt", "u", "50%zz%4", "host", 1883, NULL, "mqtt://u:***@host:1883"},
    {"mqtt://u:%\xff\xfe@host", "mqtt", "u", "%\xff\xfe", "host", 1883, NULL,
     "mqtt://u:***@host:1883"},
    {"mqtt://[::1]:1883", "mqtt", NULL, NULL, "::1", 1883, NULL, "mqtt://[::1]:1883"},
    {"mqtt://[fe80::1]", "mqtt", NULL, NULL, "fe80::1", 1883, NULL, "mqtt://[fe80::1]:1883"},
    {"redis://u:p@[::1]:7000/3", "redis", "u", "p", "::1", 7000, "3", "redis://u:***@[::1]:7000/3"},
    {"redis://host/", "redis", NULL, NULL, "host", 6379, NULL, "redis://host:6379"},
    {"redis://host/0?timeout=1", "redis", NULL, NULL, "host", 6379, "0", "redis://host:6379/0"},
    {"mqtt://host?x=@y", "mqtt", NULL, NULL, "host", 1883, NULL, "mqtt://host:1883"},
    {"http://host:80", "http", NULL, NULL, "host", 80, NULL, "http://host:80"},
};

static void assert_str_or_null(const char *got, const char *want, const char *what, size_t i)
{
	if (!got && !want)
		return;
	if (!got || !want || strcmp(got, want) != 0)
		fail_msg("case %zu %s: got %s, want %s", i, what, got ? got : "NULL",
		         want ? want : "NULL");
}

static void test_parse_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(good); i++) {
		const struct good_case *c = &good[i];
		struct tr_url u;
		char err[TR_ERR_LEN] = "";
		int rc = tr_url_parse(c->in, &u, err);
		if (rc != TR_OK)
			fail_msg("case %zu %s: %s", i, c->in, err);
		assert_str_or_null(u.scheme, c->scheme, "scheme", i);
		assert_str_or_null(u.user, c->user, "user", i);
		assert_str_or_null(u.password, c->password, "password", i);
		assert_str_or_null(u.host, c->host, "host", i);
		assert_int_equal(u.port, c->port);
		assert_str_or_null(u.path, c->path, "path", i);
		char *red = tr_url_redacted(&u);
		assert_str_or_null(red, c->redacted, "redacted", i);
		if (c->password && *c->password)
			assert_null(strstr(red, c->password));
		free(red);
		tr_url_cleanup(&u);
		assert_null(u.host);
	}
}

struct bad_case {
	const char *in;
	const char *err;
};

static const struct bad_case bad[] = {
    {"", "empty URL"},
    {"broker:1883", "no scheme (expected scheme://host)"},
    {"://host", "no scheme (expected scheme://host)"},
    {"mqtt:/host", "no scheme (expected scheme://host)"},
    {"mqtt://", "no host"},
    {"mqtt://:1883", "no host"},
    {"mqtt://user:pw@", "no host"},
    {"mqtt:///path", "no host"},
    {"mqtt://[]:1883", "no host"},
    {"mqtt://host:", "bad port"},
    {"mqtt://host:0", "bad port (1-65535)"},
    {"mqtt://host:65536", "bad port (1-65535)"},
    {"mqtt://host:-1", "bad port (1-65535)"},
    {"mqtt://host:+80", "bad port (1-65535)"},
    {"mqtt://host: 80", "bad port (1-65535)"},
    {"mqtt://host:12ab", "bad port (1-65535)"},
    {"mqtt://host:0x50", "bad port (1-65535)"},
    {"mqtt://host:1883:1", "bad port (1-65535)"},
    {"mqtt://host:123456789012345678", "bad port"},
    {"mqtt://[::1", "unterminated IPv6 address"},
    {"mqtt://[::1]x", "junk after IPv6 address"},
    {"mqtt://u:p%00@host", "bad percent-encoding in credentials"},
    {"mqtt://%00:p@host", "bad percent-encoding in credentials"},
    {"http://host", "no port and no default for scheme http"},
};

static void test_parse_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
		struct tr_url u;
		char err[TR_ERR_LEN] = "";
		int rc = tr_url_parse(bad[i].in, &u, err);
		if (rc != TR_E_INVAL || strcmp(err, bad[i].err) != 0)
			fail_msg("case %zu %s: got %d \"%s\", want \"%s\"", i, bad[i].in, rc, err,
			         bad[i].err);
		/* Nothing is left allocated or half-filled. */
		assert_null(u.scheme);
		assert_null(u.user);
		assert_null(u.password);
		assert_null(u.host);
		assert_null(u.path);
	}
	struct tr_url u;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(tr_url_parse(NULL, &u, err), TR_E_INVAL);
	assert_string_equal(err, "empty URL");
}

/* The error text never carries the password. */
static void test_err_has_no_secret(void **state)
{
	(void)state;
	static const char *const in[] = {"mqtt://u:hunter2@host:bad", "mqtt://u:hunter2@",
	                                 "mqtt://u:hunter2@[::1"};
	for (size_t i = 0; i < TR_ARRAY_LEN(in); i++) {
		struct tr_url u;
		char err[TR_ERR_LEN] = "";
		assert_int_equal(tr_url_parse(in[i], &u, err), TR_E_INVAL);
		assert_null(strstr(err, "hunter2"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_err_has_no_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
