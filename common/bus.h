/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The MQTT bus: libmosquitto driven by the libuv loop (uv_poll on mosquitto_socket() plus a
 * timer for mosquitto_loop_misc), MQTT v5, QoS 1, persistent session (fixed client id, clean
 * start off, session expiry), will + retained status, reconnect with backoff and jitter,
 * mqtt:// and mqtts://, user/password. Subscriptions are made again on every connect.
 * Owns the mosquitto handle; callbacks get borrowed data valid for the call only. */
#ifndef TRESTLE_COMMON_BUS_H
#define TRESTLE_COMMON_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "err.h"

struct tr_bus;

/* A message arrived. topic and payload are borrowed for the call. retained: a retained
 * message delivered on subscribe. */
typedef void tr_bus_msg_fn(void *arg, const char *topic, const void *payload, size_t len,
                           bool retained);
/* The session came up (connected true; session_present: the broker kept our session) or went
 * down. */
typedef void tr_bus_state_fn(void *arg, bool connected, bool session_present);
/* The broker acknowledged the QoS 1 publish with this mid (PUBACK). */
typedef void tr_bus_acked_fn(void *arg, int mid);
/* tr_bus_close() finished: every handle is closed, the bus may be freed. */
typedef void tr_bus_closed_fn(void *arg);

struct tr_bus_opts {
	const char *url;          /* TRESTLE_MQTT_URL */
	const char *client_id;    /* stable: the persistent session is keyed by it */
	const char *will_topic;   /* NULL: no will */
	const char *will_payload; /* retained */
	const char *const *subs;  /* topic filters subscribed at QoS 1 on every connect */
	size_t n_subs;
	unsigned receive_max; /* in-flight QoS 1 messages the broker may send us; 0 = 100 */
	unsigned keepalive_s; /* 0 = 30 */
	const char *ca_file;  /* mqtts: CA bundle; NULL = the system's */
	bool ephemeral;       /* clean start, no session kept (command-line tools) */
	tr_bus_msg_fn *on_msg;
	tr_bus_state_fn *on_state;
	tr_bus_acked_fn *on_acked; /* may be NULL */
	void *arg;
};

/* Copies what it needs from o. NULL with err filled on a bad URL or option. */
struct tr_bus *tr_bus_new(uv_loop_t *loop, const struct tr_bus_opts *o, char err[TR_ERR_LEN]);
/* Starts connecting; failures are retried with tr_backoff_connect forever, and logged once per
 * state change. */
int tr_bus_start(struct tr_bus *b) TR_MUST_CHECK;
/* Queues a QoS 1 publish; works while disconnected too (sent after reconnect, in order).
 * *mid (may be NULL) is the id tr_bus_acked_fn reports. TR_E_TOOBIG over 256 KiB + 1 KiB. */
int tr_bus_publish(struct tr_bus *b, const char *topic, const void *payload, size_t len,
                   bool retain, int *mid) TR_MUST_CHECK;
/* Paused: leaves the broker with a clean DISCONNECT and stays away; the persistent session
 * keeps every message for us there, and publishes wait in the bus's outbox. Resumed: connects
 * again. This is how a service applies back-pressure. Publishes already handed over and not
 * acknowledged are sent again by libmosquitto after the reconnect. */
void tr_bus_pause(struct tr_bus *b, bool paused);
bool tr_bus_connected(const struct tr_bus *b);
/* Waits (at most timeout_ms) for outgoing QoS 1 messages to be acknowledged, sends
 * DISCONNECT, closes handles, then calls done. Reading goes on meanwhile (acknowledgements
 * share the socket with messages), so on_msg may still be called: a caller that cannot handle
 * a message then must keep it durably, since the broker considers it delivered. */
void tr_bus_close(struct tr_bus *b, unsigned timeout_ms, tr_bus_closed_fn *done, void *arg);
/* Frees a closed (or never started) bus. */
void tr_bus_free(struct tr_bus *b);
/* Number of outgoing messages not yet acknowledged by the broker. */
unsigned tr_bus_pending(const struct tr_bus *b);
/* Reconnects since start, for metrics. */
unsigned long tr_bus_reconnects(const struct tr_bus *b);

/* "{prefix}/v1/{kind}/{connector}" newly allocated; kind: in, out, ack, status, channels. */
char *tr_topic(const char *prefix, const char *kind, const char *connector);
/* Splits "{prefix}/v1/{kind}/{connector}": TR_OK with kind/connector pointing into a copy the
 * caller frees via *owned; TR_E_INVAL when topic does not have that shape. */
int tr_topic_split(const char *prefix, const char *topic, char **owned, const char **kind,
                   const char **connector) TR_MUST_CHECK;

#endif
