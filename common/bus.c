/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* libmosquitto on the libuv loop: a uv_poll_t on mosquitto_socket() for reads and writes, a
 * 1 s timer for mosquitto_loop_misc() (keepalive), and a retry timer for reconnects. Owns the
 * mosquitto handle and the uv handles; libmosquitto's codes are translated here only. */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "backoff.h"
#include "bus.h"
#include "event.h"
#include "log.h"
#include "map.h"
#include "url.h"

/* Sessions outlive a router or connector that is away for up to 30 days. */
#define TR_BUS_SESSION_EXPIRY_S (30u * 24 * 3600)
#define TR_BUS_MAX_PAYLOAD      (TR_EVENT_MAX_PAYLOAD + 1024)

/* A publish made while disconnected, kept in order until the next connect. */
struct tr_bus_out {
	struct tr_bus_out *next;
	int id;
	bool retain;
	size_t len;
	char *topic;
	char payload[];
};

struct tr_bus {
	uv_loop_t *loop;
	struct mosquitto *mosq;
	struct tr_url url;
	char *client_id;
	char **subs;
	size_t n_subs;
	unsigned keepalive_s;
	tr_bus_msg_fn *on_msg;
	tr_bus_state_fn *on_state;
	tr_bus_acked_fn *on_acked;
	void *arg;

	uv_poll_t *poll; /* heap: freed in its close callback, one per socket */
	int poll_fd;
	int poll_events;
	uv_timer_t misc_timer;
	uv_timer_t retry_timer;
	struct tr_backoff backoff;
	bool started, connected, paused, closing, ephemeral;
	bool logged_down; /* a failure was logged since the last state change */
	unsigned pending;
	int next_id;        /* our publish ids: libmosquitto's mids are per connection */
	struct tr_map mids; /* libmosquitto mid -> our id, until PUBACK */
	struct tr_bus_out *outq, **outq_tail;
	unsigned long reconnects;
	unsigned long connects;

	tr_bus_closed_fn *closed_fn;
	void *closed_arg;
	unsigned close_deadline_ticks;
	int handles_open;
};

static void tr_bus_schedule_retry(struct tr_bus *b);
static void tr_bus_update_poll(struct tr_bus *b);
static void tr_bus_flush_outq(struct tr_bus *b);

static void tr_bus_handle_closed(uv_handle_t *h)
{
	struct tr_bus *b = h->data;
	if (--b->handles_open == 0 && b->closed_fn)
		b->closed_fn(b->closed_arg);
}

static void tr_bus_poll_closed(uv_handle_t *h)
{
	free(h);
}

static void tr_bus_drop_poll(struct tr_bus *b)
{
	if (!b->poll)
		return;
	uv_close((uv_handle_t *)b->poll, tr_bus_poll_closed);
	b->poll = NULL;
	b->poll_fd = -1;
	b->poll_events = 0;
}

static void tr_bus_went_down(struct tr_bus *b, const char *why)
{
	bool was = b->connected;
	b->connected = false;
	tr_bus_drop_poll(b);
	if (was) {
		tr_warn("broker connection lost reason=\"%s\"", why);
		b->logged_down = true;
		if (b->on_state)
			b->on_state(b->arg, false, false);
	}
	if (!b->closing && !b->paused)
		tr_bus_schedule_retry(b);
}

static void tr_bus_on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                              const mosquitto_property *props)
{
	(void)props;
	struct tr_bus *b = obj;
	if (rc != 0) {
		tr_error("broker refused the connection reason=\"%s\" client_id=%s",
		         mosquitto_reason_string(rc), b->client_id);
		/* libmosquitto closes the socket after a refusal; disconnect fires next. */
		return;
	}
	if (b->paused) {
		/* Paused while connecting: leave again; the session keeps what comes meanwhile. */
		mosquitto_disconnect(mosq);
		return;
	}
	b->connected = true;
	b->logged_down = false;
	if (b->connects++)
		b->reconnects++;
	tr_backoff_reset(&b->backoff);
	bool session_present = (flags & 1) != 0;
	tr_info("broker connected host=%s port=%d client_id=%s session_present=%d", b->url.host,
	        b->url.port, b->client_id, session_present);
	if (b->n_subs) {
		int src =
		    mosquitto_subscribe_multiple(mosq, NULL, (int)b->n_subs, b->subs, 1, 0, NULL);
		if (src != MOSQ_ERR_SUCCESS)
			tr_error("subscribe failed reason=\"%s\"", mosquitto_strerror(src));
	}
	tr_bus_flush_outq(b);
	if (b->on_state)
		b->on_state(b->arg, true, session_present);
}

static void tr_bus_on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                                 const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	struct tr_bus *b = obj;
	tr_debug("disconnect rc=%d", rc);
	/* Called from inside mosquitto_loop_*: only mark; the poll is dropped right after. */
	b->connected = false;
	if (b->on_state && !b->logged_down && !b->closing && !b->paused) {
		tr_warn("broker connection lost reason=\"%s\"",
		        rc ? mosquitto_strerror(rc) : "closed");
		b->logged_down = true;
		b->on_state(b->arg, false, false);
	}
}

static void tr_bus_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                              const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	struct tr_bus *b = obj;
	if (b->on_msg)
		b->on_msg(b->arg, m->topic, m->payload,
		          m->payloadlen > 0 ? (size_t)m->payloadlen : 0, m->retain);
}

static void tr_bus_on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                              const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	struct tr_bus *b = obj;
	char key[16];
	int kl = snprintf(key, sizeof(key), "%d", mid);
	void *v = tr_map_del(&b->mids, key, (size_t)kl);
	if (!v)
		return;
	if (b->pending)
		b->pending--;
	if (reason >= 0x80)
		tr_warn("broker refused a publish mid=%d reason=\"%s\"", mid,
		        mosquitto_reason_string(reason));
	if (b->on_acked)
		b->on_acked(b->arg, (int)(intptr_t)v);
}

/* Hands one publish to libmosquitto and remembers which of our ids its mid stands for. */
static int tr_bus_send(struct tr_bus *b, int id, const char *topic, const void *payload, size_t len,
                       bool retain)
{
	int m = 0;
	int rc = mosquitto_publish_v5(b->mosq, &m, topic, (int)len, payload, 1, retain, NULL);
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
		tr_error("publish failed topic=%s reason=\"%s\"", topic, mosquitto_strerror(rc));
		return rc == MOSQ_ERR_NOMEM ? TR_E_NOMEM : TR_E_INVAL;
	}
	char key[16];
	int kl = snprintf(key, sizeof(key), "%d", m);
	tr_map_put(&b->mids, key, (size_t)kl, (void *)(intptr_t)id);
	return TR_OK;
}

static void tr_bus_flush_outq(struct tr_bus *b)
{
	while (b->outq && b->connected) {
		struct tr_bus_out *o = b->outq;
		b->outq = o->next;
		if (!b->outq)
			b->outq_tail = &b->outq;
		if (tr_bus_send(b, o->id, o->topic, o->payload, o->len, o->retain) != TR_OK &&
		    b->pending)
			b->pending--;
		free(o->topic);
		free(o);
	}
}

static void tr_bus_on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
	(void)mosq;
	(void)obj;
	if (level & (MOSQ_LOG_ERR))
		tr_debug("libmosquitto: %s", str);
}

/* After every libmosquitto call: a closed socket means the connection is gone. */
static void tr_bus_check_socket(struct tr_bus *b, int rc, const char *what)
{
	int fd = mosquitto_socket(b->mosq);
	if (fd < 0 || (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)) {
		if (fd >= 0)
			mosquitto_disconnect(b->mosq);
		tr_bus_went_down(b, rc ? mosquitto_strerror(rc) : what);
		return;
	}
	tr_bus_update_poll(b);
}

static void tr_bus_on_poll(uv_poll_t *p, int status, int events)
{
	struct tr_bus *b = p->data;
	int rc = MOSQ_ERR_SUCCESS;
	if (status < 0) {
		tr_bus_went_down(b, uv_strerror(status));
		return;
	}
	if (events & UV_READABLE)
		rc = mosquitto_loop_read(b->mosq, 1);
	if (rc == MOSQ_ERR_SUCCESS && (events & UV_WRITABLE) && b->poll)
		rc = mosquitto_loop_write(b->mosq, 1);
	if (b->poll)
		tr_bus_check_socket(b, rc, "socket closed");
}

static void tr_bus_update_poll(struct tr_bus *b)
{
	int fd = mosquitto_socket(b->mosq);
	if (fd < 0 || (b->closing && !b->poll))
		return;
	if (b->poll && b->poll_fd != fd)
		tr_bus_drop_poll(b);
	if (!b->poll) {
		b->poll = tr_xmalloc(sizeof(*b->poll));
		if (uv_poll_init_socket(b->loop, b->poll, fd) != 0) {
			free(b->poll);
			b->poll = NULL;
			return;
		}
		b->poll->data = b;
		b->poll_fd = fd;
		b->poll_events = 0;
	}
	int ev = UV_READABLE | (mosquitto_want_write(b->mosq) ? UV_WRITABLE : 0);
	if (ev == b->poll_events)
		return;
	b->poll_events = ev;
	if (ev)
		uv_poll_start(b->poll, ev, tr_bus_on_poll);
	else
		uv_poll_stop(b->poll);
}

static void tr_bus_try_connect(struct tr_bus *b)
{
	mosquitto_property *props = NULL;
	int rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
	                                      b->ephemeral ? 0 : TR_BUS_SESSION_EXPIRY_S);
	if (rc == MOSQ_ERR_SUCCESS)
		/* libmosquitto 2.0 keeps no CONNECT properties for reconnects, so every connect
		 * goes through connect_bind_v5 to carry the session expiry (without it a v5
		 * session would end with the connection). */
		rc = mosquitto_connect_bind_v5(b->mosq, b->url.host, b->url.port,
		                               (int)b->keepalive_s, NULL, props);
	mosquitto_property_free_all(&props);
	if (rc != MOSQ_ERR_SUCCESS) {
		if (!b->logged_down) {
			tr_warn("broker unreachable host=%s port=%d reason=\"%s\"; retrying",
			        b->url.host, b->url.port,
			        rc == MOSQ_ERR_ERRNO ? "connection failed"
			                             : mosquitto_strerror(rc));
			b->logged_down = true;
		}
		tr_bus_schedule_retry(b);
		return;
	}
	tr_bus_update_poll(b);
}

static void tr_bus_on_retry(uv_timer_t *t)
{
	struct tr_bus *b = t->data;
	if (!b->closing && !b->paused)
		tr_bus_try_connect(b);
}

static void tr_bus_schedule_retry(struct tr_bus *b)
{
	uint32_t ms = tr_backoff_next(&b->backoff);
	tr_debug("reconnect in %u ms", ms);
	uv_timer_start(&b->retry_timer, tr_bus_on_retry, ms, 0);
}

static void tr_bus_finish_close(struct tr_bus *b)
{
	uv_timer_stop(&b->misc_timer);
	uv_timer_stop(&b->retry_timer);
	if (mosquitto_socket(b->mosq) >= 0) {
		mosquitto_disconnect(b->mosq);
		/* Flush the DISCONNECT; the socket is non-blocking, a tiny packet goes at once. */
		(void)mosquitto_loop_write(b->mosq, 1);
	}
	tr_bus_drop_poll(b);
	b->connected = false;
	uv_close((uv_handle_t *)&b->misc_timer, tr_bus_handle_closed);
	uv_close((uv_handle_t *)&b->retry_timer, tr_bus_handle_closed);
}

static void tr_bus_on_misc(uv_timer_t *t)
{
	struct tr_bus *b = t->data;
	if (b->closing) {
		if (b->pending == 0 || !b->connected || b->close_deadline_ticks-- == 0) {
			if (b->pending)
				tr_warn("closing with %u messages not acknowledged by the broker",
				        b->pending);
			tr_bus_finish_close(b);
		}
		return;
	}
	if (!b->poll)
		return;
	int rc = mosquitto_loop_misc(b->mosq);
	tr_bus_check_socket(b, rc, "keepalive");
}

struct tr_bus *tr_bus_new(uv_loop_t *loop, const struct tr_bus_opts *o, char err[TR_ERR_LEN])
{
	struct tr_bus *b = tr_xcalloc(1, sizeof(*b));
	char uerr[TR_ERR_LEN];
	if (!o->client_id || !*o->client_id) {
		snprintf(err, TR_ERR_LEN, "no MQTT client id");
		goto fail;
	}
	if (tr_url_parse(o->url, &b->url, uerr) != TR_OK) {
		snprintf(err, TR_ERR_LEN, "TRESTLE_MQTT_URL: %.200s", uerr);
		goto fail;
	}
	bool tls = strcmp(b->url.scheme, "mqtts") == 0;
	if (!tls && strcmp(b->url.scheme, "mqtt") != 0) {
		snprintf(err, TR_ERR_LEN, "TRESTLE_MQTT_URL: scheme must be mqtt or mqtts");
		goto fail;
	}
	b->loop = loop;
	b->client_id = tr_xstrdup(o->client_id);
	b->n_subs = o->n_subs;
	b->subs = tr_xcalloc(o->n_subs + 1, sizeof(char *));
	for (size_t i = 0; i < o->n_subs; i++)
		b->subs[i] = tr_xstrdup(o->subs[i]);
	b->keepalive_s = o->keepalive_s ? o->keepalive_s : 30;
	b->on_msg = o->on_msg;
	b->on_state = o->on_state;
	b->on_acked = o->on_acked;
	b->arg = o->arg;
	b->poll_fd = -1;
	tr_map_init(&b->mids);
	b->outq_tail = &b->outq;
	tr_backoff_init(&b->backoff, &tr_backoff_connect);

	mosquitto_lib_init();
	b->ephemeral = o->ephemeral;
	b->mosq = mosquitto_new(b->client_id, o->ephemeral, b);
	if (!b->mosq) {
		snprintf(err, TR_ERR_LEN, "cannot create MQTT client");
		goto fail;
	}
	mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(b->mosq, MOSQ_OPT_RECEIVE_MAXIMUM,
	                     (int)(o->receive_max ? o->receive_max : 100));
	mosquitto_int_option(b->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	/* Unlimited in-flight QoS 1 makes libmosquitto rescan a long list on every ack. */
	mosquitto_max_inflight_messages_set(b->mosq, 100);
	mosquitto_connect_v5_callback_set(b->mosq, tr_bus_on_connect);
	mosquitto_disconnect_v5_callback_set(b->mosq, tr_bus_on_disconnect);
	mosquitto_message_v5_callback_set(b->mosq, tr_bus_on_message);
	mosquitto_publish_v5_callback_set(b->mosq, tr_bus_on_publish);
	mosquitto_log_callback_set(b->mosq, tr_bus_on_log);
	if (b->url.user || b->url.password) {
		if (mosquitto_username_pw_set(b->mosq, b->url.user ? b->url.user : "",
		                              b->url.password) != MOSQ_ERR_SUCCESS) {
			snprintf(err, TR_ERR_LEN, "cannot set MQTT credentials");
			goto fail;
		}
	}
	if (tls) {
		int rc = o->ca_file ? mosquitto_tls_set(b->mosq, o->ca_file, NULL, NULL, NULL, NULL)
		                    : mosquitto_int_option(b->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(err, TR_ERR_LEN, "TLS set-up failed: %s", mosquitto_strerror(rc));
			goto fail;
		}
	}
	if (o->will_topic) {
		const char *wp = o->will_payload ? o->will_payload : "";
		int rc = mosquitto_will_set_v5(b->mosq, o->will_topic, (int)strlen(wp), wp, 1, true,
		                               NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(err, TR_ERR_LEN, "cannot set MQTT will: %s",
			         mosquitto_strerror(rc));
			goto fail;
		}
	}
	uv_timer_init(loop, &b->misc_timer);
	uv_timer_init(loop, &b->retry_timer);
	b->misc_timer.data = b;
	b->retry_timer.data = b;
	b->handles_open = 2;
	return b;
fail:
	tr_bus_free(b);
	return NULL;
}

int tr_bus_start(struct tr_bus *b)
{
	if (b->started)
		return TR_E_INVAL;
	b->started = true;
	char *safe = tr_url_redacted(&b->url);
	tr_info("broker %s client_id=%s", safe, b->client_id);
	free(safe);
	uv_timer_start(&b->misc_timer, tr_bus_on_misc, 1000, 1000);
	if (!b->paused)
		tr_bus_try_connect(b);
	return TR_OK;
}

int tr_bus_publish(struct tr_bus *b, const char *topic, const void *payload, size_t len,
                   bool retain, int *mid)
{
	if (len > TR_BUS_MAX_PAYLOAD)
		return TR_E_TOOBIG;
	int id = b->next_id = b->next_id == INT32_MAX ? 1 : b->next_id + 1;
	if (b->connected) {
		int rc = tr_bus_send(b, id, topic, payload, len, retain);
		if (rc != TR_OK)
			return rc;
	} else {
		/* libmosquitto 2.0 drops QoS 1 messages published before the first CONNACK, so
		 * what is published while disconnected waits here, in order. */
		struct tr_bus_out *o = tr_xmalloc(sizeof(*o) + len);
		o->next = NULL;
		o->id = id;
		o->retain = retain;
		o->len = len;
		o->topic = tr_xstrdup(topic);
		memcpy(o->payload, payload, len);
		*b->outq_tail = o;
		b->outq_tail = &o->next;
	}
	b->pending++;
	if (mid)
		*mid = id;
	if (b->poll)
		tr_bus_update_poll(b);
	return TR_OK;
}

void tr_bus_pause(struct tr_bus *b, bool paused)
{
	if (b->paused == paused || b->closing)
		return;
	b->paused = paused;
	if (paused) {
		/* A clean DISCONNECT: the persistent session keeps every message for us at the
		 * broker, unacknowledged, until we come back. Not reading the socket instead would
		 * also hold back CONNACK, PUBACK and PINGRESP. */
		tr_info("pausing: leaving the broker, which keeps our messages meanwhile");
		if (b->connected && b->on_state)
			b->on_state(b->arg, false, false);
		b->connected = false;
		if (mosquitto_socket(b->mosq) >= 0) {
			mosquitto_disconnect(b->mosq);
			(void)mosquitto_loop_write(b->mosq, 1);
		}
		uv_timer_stop(&b->retry_timer);
		return;
	}
	tr_info("resuming: back to the broker");
	if (b->started && mosquitto_socket(b->mosq) < 0) {
		uv_timer_stop(&b->retry_timer);
		tr_bus_try_connect(b);
	}
}

bool tr_bus_connected(const struct tr_bus *b)
{
	return b->connected;
}

unsigned tr_bus_pending(const struct tr_bus *b)
{
	return b->pending;
}

unsigned long tr_bus_reconnects(const struct tr_bus *b)
{
	return b->reconnects;
}

void tr_bus_close(struct tr_bus *b, unsigned timeout_ms, tr_bus_closed_fn *done, void *arg)
{
	b->closed_fn = done;
	b->closed_arg = arg;
	if (b->closing)
		return;
	b->closing = true;
	b->paused = false;
	if (b->poll)
		tr_bus_update_poll(b);
	if (!b->started) {
		tr_bus_finish_close(b);
		return;
	}
	b->close_deadline_ticks = (timeout_ms + 99) / 100;
	/* The misc timer now polls every 100 ms for the acknowledgements to drain. */
	uv_timer_start(&b->misc_timer, tr_bus_on_misc, 0, 100);
}

void tr_bus_free(struct tr_bus *b)
{
	if (!b)
		return;
	if (b->mosq)
		mosquitto_destroy(b->mosq);
	while (b->outq) {
		struct tr_bus_out *o = b->outq;
		b->outq = o->next;
		free(o->topic);
		free(o);
	}
	tr_map_cleanup(&b->mids);
	tr_url_cleanup(&b->url);
	free(b->client_id);
	for (size_t i = 0; b->subs && i < b->n_subs; i++)
		free(b->subs[i]);
	free(b->subs);
	free(b);
}

char *tr_topic(const char *prefix, const char *kind, const char *connector)
{
	return tr_xasprintf("%s/v1/%s/%s", prefix, kind, connector);
}

int tr_topic_split(const char *prefix, const char *topic, char **owned, const char **kind,
                   const char **connector)
{
	size_t pl = strlen(prefix);
	*owned = NULL;
	if (strncmp(topic, prefix, pl) != 0 || strncmp(topic + pl, "/v1/", 4) != 0)
		return TR_E_INVAL;
	char *copy = tr_xstrdup(topic + pl + 4);
	char *slash = strchr(copy, '/');
	if (!slash || strchr(slash + 1, '/') || slash == copy || !slash[1]) {
		free(copy);
		return TR_E_INVAL;
	}
	*slash = '\0';
	*owned = copy;
	*kind = copy;
	*connector = slash + 1;
	return TR_OK;
}
