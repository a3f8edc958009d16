/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* A connector whose "network" is its own stdin/stdout, one JSON object per line: it proves the
 * connector interface end to end in the integration tests (status, will, channels list,
 * deliver + ack, dedupe of redelivered events, publishing, reconnect) without a chat server.
 *   stdin:  a partial v1 event ({"type":"message","channel":..,"msgid":..,"author":{..},..}),
 *           {"op":"lost"} (the network drops), {"op":"degraded"},
 *           {"op":"down"} / {"op":"up"} (logins fail / work again; TESTNET_DOWN=1 starts down)
 *   stdout: {"op":"connect"}, {"op":"channels","channels":[..]}, {"op":"deliver","event":{..}}
 * Deliveries to a channel whose name starts with "deny" are acked as forbidden. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"
#include "connector.h"
#include "log.h"

struct testnet {
	uv_pipe_t in;
	bool reading;
	bool down;
	struct tr_buf line;
	unsigned long next_msgid;
	unsigned long next_id;
};

static void testnet_emit(json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (!s)
		return;
	fprintf(stdout, "%s\n", s);
	fflush(stdout);
	free(s);
}

static int testnet_configure(struct tr_conn *c, struct tr_env *env)
{
	struct testnet *t = tr_conn_state(c);
	t->down = tr_env_bool(env, "TESTNET_DOWN", false);
	char *v = tr_env_str(env, "TESTNET_FAIL_CONFIG", NULL);
	if (v)
		tr_env_fail(env, "TESTNET_FAIL_CONFIG", "set: refusing to start (test of exit 78)");
	free(v);
	return TR_OK;
}

static void testnet_line(struct tr_conn *c, const char *s, size_t n)
{
	struct testnet *t = tr_conn_state(c);
	json_t *obj = json_loadb(s, n, 0, NULL);
	if (!json_is_object(obj)) {
		tr_warn("testnet: not a JSON object");
		json_decref(obj);
		return;
	}
	const char *op = json_string_value(json_object_get(obj, "op"));
	if (op && strcmp(op, "lost") == 0) {
		tr_conn_lost(c, TR_E_CLOSED, "testnet dropped");
	} else if (op && strcmp(op, "down") == 0) {
		t->down = true;
		tr_conn_lost(c, TR_E_CLOSED, "testnet down");
	} else if (op && strcmp(op, "up") == 0) {
		t->down = false;
	} else if (op && strcmp(op, "degraded") == 0) {
		tr_conn_degraded(c, "testnet degraded");
	} else if (!op) {
		/* Fill what the network itself would know, then the core validates. */
		json_object_set_new(obj, "v", json_integer(1));
		json_object_set_new(obj, "connector", json_string(tr_conn_name(c)));
		json_object_set_new(obj, "network", json_string("testnet"));
		if (!json_object_get(obj, "ts"))
			json_object_set_new(obj, "ts", json_integer(tr_now_ms()));
		if (!json_object_get(obj, "id")) {
			char *id = tr_xasprintf("%s:%lu", tr_conn_name(c), ++t->next_id);
			json_object_set_new(obj, "id", json_string(id));
			free(id);
		}
		char *payload = json_dumps(obj, JSON_COMPACT);
		struct tr_event ev = {0};
		char err[TR_ERR_LEN];
		if (payload &&
		    tr_event_decode(payload, strlen(payload), false, &ev, err) == TR_OK) {
			if (tr_conn_publish(c, &ev) != TR_OK)
				tr_warn("testnet: publish failed");
		} else {
			tr_warn("testnet: bad event: %s", payload ? err : "unencodable");
		}
		tr_event_cleanup(&ev);
		free(payload);
	}
	json_decref(obj);
}

static void testnet_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	static char chunk[65536];
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static void testnet_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct tr_conn *c = s->data;
	struct testnet *t = tr_conn_state(c);
	if (n < 0) {
		uv_read_stop(s);
		t->reading = false;
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf->base[i] == '\n') {
			testnet_line(c, tr_buf_str(&t->line), t->line.len);
			tr_buf_reset(&t->line);
		} else if (tr_buf_append(&t->line, &buf->base[i], 1) != TR_OK) {
			tr_warn("testnet: line too long, dropped");
			tr_buf_reset(&t->line);
		}
	}
}

static int testnet_connect(struct tr_conn *c)
{
	struct testnet *t = tr_conn_state(c);
	testnet_emit(json_pack("{s:s}", "op", "connect"));
	if (!t->reading) {
		if (!t->line.max) {
			tr_buf_init(&t->line, 512 * 1024);
			uv_pipe_init(tr_conn_loop(c), &t->in, 0);
			if (uv_pipe_open(&t->in, 0) != 0)
				return TR_E_IO;
			t->in.data = c;
		}
		uv_read_start((uv_stream_t *)&t->in, testnet_alloc, testnet_read);
		/* stdin alone must not keep the process alive once the core has stopped. */
		uv_unref((uv_handle_t *)&t->in);
		t->reading = true;
	}
	if (t->down)
		return TR_E_IO; /* the core reports it lost and tries again with backoff */
	tr_conn_online(c, "connected to testnet");
	return TR_OK;
}

static int testnet_deliver(struct tr_conn *c, const struct tr_event *ev)
{
	struct testnet *t = tr_conn_state(c);
	char *payload = NULL;
	char err[TR_ERR_LEN];
	if (tr_event_encode(ev, &payload, err) != TR_OK)
		return TR_E_INVAL;
	testnet_emit(
	    json_pack("{s:s, s:o}", "op", "deliver", "event", json_loads(payload, 0, NULL)));
	free(payload);
	if (strncmp(ev->dest.channel, "deny", 4) == 0) {
		tr_conn_ack(c, ev, TR_E_FORBIDDEN, "bot not in channel");
		return TR_OK;
	}
	char msgid[32];
	snprintf(msgid, sizeof(msgid), "tn-%lu", ++t->next_msgid);
	tr_conn_ack(c, ev, TR_OK, msgid);
	return TR_OK;
}

static int testnet_set_channels(struct tr_conn *c, const char *const *ids, size_t n)
{
	(void)c;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_string(ids[i]));
	testnet_emit(json_pack("{s:s, s:o}", "op", "channels", "channels", arr));
	return TR_OK;
}

static void testnet_disconnect(struct tr_conn *c)
{
	/* stdin is also the test's control channel: it stays open while the "network" is down,
	 * and is closed in release(). */
	(void)c;
}

static void testnet_closed(uv_handle_t *h)
{
	(void)h;
}

static void testnet_release(struct tr_conn *c)
{
	struct testnet *t = tr_conn_state(c);
	tr_buf_cleanup(&t->line);
	if (t->reading) {
		uv_read_stop((uv_stream_t *)&t->in);
		t->reading = false;
	}
	if (t->line.max && !uv_is_closing((uv_handle_t *)&t->in)) {
		uv_close((uv_handle_t *)&t->in, testnet_closed);
		uv_run(tr_conn_loop(c), UV_RUN_NOWAIT);
	}
}

static const struct tr_connector testnet_connector = {
    .network = "testnet",
    .state_size = sizeof(struct testnet),
    .caps = TR_CAP_EDIT | TR_CAP_DELETE | TR_CAP_REACT | TR_CAP_REPLY,
    .configure = testnet_configure,
    .connect = testnet_connect,
    .deliver = testnet_deliver,
    .set_channels = testnet_set_channels,
    .disconnect = testnet_disconnect,
    .release = testnet_release,
};

int main(int argc, char **argv)
{
	return tr_connector_main(&testnet_connector, argc, argv);
}
