/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The connector interface (STYLE B2, BitlBee's struct prpl): a network connector is one folder
 * that fills in a static const struct tr_connector and calls tr_connector_main(). The core owns
 * MQTT, the environment, status (retained + will), the channels list, delivery dedupe, acks,
 * reconnect with backoff, signals and durable state files. The connector reaches the core only
 * through the tr_conn_* calls below.
 *
 * Replicas (TRESTLE_REPLICA=N, where the network allows several connections for one account):
 * each has its own MQTT session; replica 1 takes the out events and owns the status topic,
 * the others only publish what their own network connection receives (the router drops an
 * event seen twice by id). */
#ifndef TRESTLE_COMMON_CONNECTOR_H
#define TRESTLE_COMMON_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "env.h"
#include "err.h"
#include "event.h"

struct tr_conn;

enum tr_cap {
	TR_CAP_EDIT = 1 << 0,   /* edits a delivered message in place */
	TR_CAP_DELETE = 1 << 1, /* deletes a delivered message */
	TR_CAP_REACT = 1 << 2,  /* native reactions */
	TR_CAP_REPLY = 1 << 3,  /* native replies */
	TR_CAP_THREAD = 1 << 4, /* native threads */
	TR_CAP_PUPPET = 1 << 5, /* shows bridged authors with their own name and avatar */
	TR_CAP_ATTACH = 1 << 6, /* uploads attachments */
};

struct tr_connector {
	/* "slack": the default instance name and the event's network field. */
	const char *network;
	/* Size of the connector's private state, allocated zeroed by the core: tr_conn_state(). */
	size_t state_size;
	unsigned caps;
	/* Reads the connector's own settings (<NETWORK>_*) through env; records problems with
	 * tr_env_fail and returns TR_OK (the core reports every problem at once and exits 78).
	 * No I/O. Called once. */
	int (*configure)(struct tr_conn *c, struct tr_env *env);
	/* Starts logging in; never blocks. Success is reported later with tr_conn_online(),
	 * failure with tr_conn_lost(). Called at start and after every tr_conn_lost() backoff. */
	int (*connect)(struct tr_conn *c);
	/* Delivers an out event (borrowed for the call; ev->dest is set). Must end, now or later,
	 * in exactly one tr_conn_ack() for it. A non-OK return is acked as a failure by the core.
	 */
	int (*deliver)(struct tr_conn *c, const struct tr_event *ev);
	/* Optional: the channels the rooms file gives this connector (borrowed for the call);
	 * called on every change and after every tr_conn_online(). */
	int (*set_channels)(struct tr_conn *c, const char *const *ids, size_t n);
	/* Cancels every request, timer and socket, so no callback runs afterwards. May be called
	 * when not connected. */
	void (*disconnect)(struct tr_conn *c);
	/* Frees what configure/connect put in the state. */
	void (*release)(struct tr_conn *c);
};

/* Runs a connector until SIGTERM/SIGINT; returns the exit code (0, 1, 78). argv may hold
 * --help. */
int tr_connector_main(const struct tr_connector *vt, int argc, char **argv);

/* ---- calls into the core, from the loop thread only ---- */

void *tr_conn_state(struct tr_conn *c);
uv_loop_t *tr_conn_loop(struct tr_conn *c);
/* The instance name (TRESTLE_CONNECTOR). */
const char *tr_conn_name(const struct tr_conn *c);
const struct tr_connector *tr_conn_vt(const struct tr_conn *c);
/* The connection is up: status online with detail (e.g. "connected as @trestle"). */
void tr_conn_online(struct tr_conn *c, const char *detail);
/* Up but impaired (rate limited, some channels refused): status degraded. */
void tr_conn_degraded(struct tr_conn *c, const char *detail);
/* The connection is gone: status offline, disconnect() is called, and connect() again after
 * a backoff. err is an enum tr_err; TR_E_AUTH and TR_E_CONFIG back off to the maximum delay. */
void tr_conn_lost(struct tr_conn *c, int err, const char *detail);
/* Publishes an event seen on the network. The core fills v, connector and network, and ts
 * when 0; the rest must validate (tr_event_validate). TR_E_INVAL with the reason logged. */
int tr_conn_publish(struct tr_conn *c, struct tr_event *ev) TR_MUST_CHECK;
/* Calls fn(c, arg) once the broker has acknowledged every message this connector published
 * so far (events, acks, status), never before this call returns. For a network cursor that
 * must only move once what it covers is safe (a sync token, an acknowledged transaction). */
typedef void tr_conn_published_fn(struct tr_conn *c, void *arg);
void tr_conn_when_published(struct tr_conn *c, tr_conn_published_fn *fn, void *arg);
/* Reports the delivery of ev: err TR_OK with the destination's id of what was posted (may be
 * NULL), or an error with a detail for the log (never message text). */
void tr_conn_ack(struct tr_conn *c, const struct tr_event *ev, int err,
                 const char *msgid_or_detail);
/* The current channels list (borrowed until the next change). */
const char *const *tr_conn_channels(const struct tr_conn *c, size_t *n);

/* Small durable state in TRESTLE_STATE_DIR/<instance>.<name>, written atomically (temp file +
 * rename). read: TR_E_NOTFOUND when absent; *out newly allocated, NUL-terminated. */
int tr_conn_state_write(struct tr_conn *c, const char *name, const void *data,
                        size_t len) TR_MUST_CHECK;
int tr_conn_state_read(struct tr_conn *c, const char *name, char **out, size_t *len) TR_MUST_CHECK;

#endif
