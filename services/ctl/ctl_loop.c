/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* One command's run on a private libuv loop: configuration, the bus or Redis, one deadline
 * timer, SIGINT/SIGTERM, and an orderly finish that closes every handle before the loop ends. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "ctl.h"
#include "env.h"
#include "log.h"
#include "url.h"

int ctl_init(struct ctl *c)
{
	memset(c, 0, sizeof(*c));
	struct tr_env env;
	tr_env_init(&env, NULL);
	c->mqtt_url = tr_env_str(&env, "TRESTLE_MQTT_URL", "mqtt://127.0.0.1:1883");
	c->mqtt_ca_file = tr_env_str(&env, "TRESTLE_MQTT_CA_FILE", NULL);
	c->redis_url = tr_env_str(&env, "TRESTLE_REDIS_URL", "redis://127.0.0.1:6379/0");
	c->prefix = tr_env_str(&env, "TRESTLE_TOPIC_PREFIX", "trestle");
	/* A command-line tool is quiet by default: warnings and errors only. */
	char *level = tr_env_str(&env, "TRESTLE_LOG_LEVEL", "warn");
	enum tr_log_level lv;
	if (tr_log_level_parse(level, &lv) == TR_OK)
		tr_log_set_level(lv);
	else
		tr_env_fail(&env, "TRESTLE_LOG_LEVEL", "must be error, warn, info or debug");
	free(level);
	/* The prefix starts every topic and the Redis key; MQTT wildcards would change meaning. */
	if (!*c->prefix || strpbrk(c->prefix, "+#") || c->prefix[strlen(c->prefix) - 1] == '/')
		tr_env_fail(&env, "TRESTLE_TOPIC_PREFIX",
		            "must be non-empty, without + or #, and not end with /");
	int rc = tr_env_finish(&env);
	tr_env_cleanup(&env);
	if (rc != TR_OK) {
		free(c->mqtt_url);
		free(c->mqtt_ca_file);
		free(c->redis_url);
		free(c->prefix);
		return TR_EXIT_CONFIG;
	}
	char hex[17];
	ctl_random_hex(hex, 8);
	snprintf(c->client_id, sizeof(c->client_id), "trestle-ctl-%s", hex);
	uv_loop_init(&c->loop);
	uv_timer_init(&c->loop, &c->deadline);
	c->deadline.data = c;
	c->exit_code = TR_EXIT_FAIL;
	return TR_EXIT_OK;
}

int ctl_bus_start(struct ctl *c, const char *const *subs, size_t n_subs, tr_bus_msg_fn *on_msg,
                  tr_bus_state_fn *on_state, tr_bus_acked_fn *on_acked)
{
	char err[TR_ERR_LEN];
	struct tr_bus_opts o = {
	    .url = c->mqtt_url,
	    .ca_file = c->mqtt_ca_file,
	    .client_id = c->client_id,
	    .subs = subs,
	    .n_subs = n_subs,
	    .on_msg = on_msg,
	    .on_state = on_state,
	    .on_acked = on_acked,
	    .arg = c,
	    .ephemeral = true,
	};
	c->bus = tr_bus_new(&c->loop, &o, err);
	if (!c->bus) {
		fprintf(stderr, "trestle-ctl: %s\n", err);
		return TR_E_CONFIG;
	}
	return tr_bus_start(c->bus);
}

int ctl_redis_start(struct ctl *c, tr_redis_state_fn *on_state)
{
	char err[TR_ERR_LEN];
	struct tr_redis_opts o = {
	    .url = c->redis_url,
	    .timeout_ms = CTL_WAIT_MS,
	    .on_state = on_state,
	    .arg = c,
	};
	c->redis = tr_redis_new(&c->loop, &o, err);
	if (!c->redis) {
		fprintf(stderr, "trestle-ctl: %s\n", err);
		return TR_E_CONFIG;
	}
	return tr_redis_start(c->redis);
}

static void ctl_on_deadline(uv_timer_t *t)
{
	struct ctl *c = t->data;
	if (c->on_deadline && !c->finishing)
		c->on_deadline(c);
}

void ctl_deadline(struct ctl *c, unsigned ms, ctl_timeout_fn *fn)
{
	c->on_deadline = fn;
	uv_timer_start(&c->deadline, ctl_on_deadline, ms, 0);
}

static void ctl_on_signal(uv_signal_t *s, int signum)
{
	struct ctl *c = s->data;
	(void)signum;
	ctl_finish(c, TR_EXIT_OK);
}

void ctl_signals(struct ctl *c)
{
	uv_signal_init(&c->loop, &c->sigint);
	uv_signal_init(&c->loop, &c->sigterm);
	c->sigint.data = c;
	c->sigterm.data = c;
	uv_signal_start(&c->sigint, ctl_on_signal, SIGINT);
	uv_signal_start(&c->sigterm, ctl_on_signal, SIGTERM);
	c->signals_on = true;
}

static void ctl_bus_closed(void *arg)
{
	(void)arg;
}

static void ctl_redis_closed(void *arg)
{
	(void)arg;
}

void ctl_finish(struct ctl *c, int code)
{
	if (c->finishing)
		return;
	c->finishing = true;
	c->exit_code = code;
	uv_timer_stop(&c->deadline);
	uv_close((uv_handle_t *)&c->deadline, NULL);
	if (c->signals_on) {
		uv_close((uv_handle_t *)&c->sigint, NULL);
		uv_close((uv_handle_t *)&c->sigterm, NULL);
	}
	/* Up to 2 s for the broker to acknowledge what was published. */
	if (c->bus)
		tr_bus_close(c->bus, 2000, ctl_bus_closed, c);
	if (c->redis)
		tr_redis_close(c->redis, ctl_redis_closed, c);
}

void ctl_fail(struct ctl *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("trestle-ctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	ctl_finish(c, code);
}

int ctl_run(struct ctl *c)
{
	uv_run(&c->loop, UV_RUN_DEFAULT);
	/* Every handle is closed by now: the objects can go. */
	tr_bus_free(c->bus);
	tr_redis_free(c->redis);
	if (uv_loop_close(&c->loop) != 0)
		tr_warn("event loop closed with handles still open");
	free(c->mqtt_url);
	free(c->mqtt_ca_file);
	free(c->redis_url);
	free(c->prefix);
	fflush(stdout);
	return c->exit_code;
}

char *ctl_url_safe(const char *url)
{
	struct tr_url u;
	char err[TR_ERR_LEN];
	if (tr_url_parse(url, &u, err) != TR_OK)
		return tr_xstrdup("(bad URL)");
	char *safe = tr_url_redacted(&u);
	tr_url_cleanup(&u);
	return safe;
}
