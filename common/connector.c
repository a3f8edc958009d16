/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The connector core: everything a network connector shares. Owns the bus (status retained
 * and as will, out/ and channels/ subscriptions), delivery dedupe (a redelivered out event is
 * acked again, not delivered twice), back-pressure (reads pause while the network is down or
 * too many deliveries are unacknowledged), reconnect with backoff, signals and state files. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "alloc.h"
#include "backoff.h"
#include "bus.h"
#include "connector.h"
#include "log.h"
#include "map.h"

#define CONN_SEEN_MAX        4096 /* recent deliveries remembered for dedupe */
#define CONN_INFLIGHT_PAUSE  500  /* unacknowledged deliveries before reads pause */
#define CONN_INFLIGHT_RESUME 100
#define CONN_HELD_MAX        1000 /* out events held while the network is down */
#define CONN_HELD_PAUSE      500  /* held events before the core leaves the broker */

struct conn_held {
	struct conn_held *next;
	struct tr_event ev;
};

struct conn_waiter {
	struct conn_waiter *next;
	uint64_t target;
	tr_conn_published_fn *fn;
	void *arg;
};

/* A publish not yet acknowledged by the broker, in publish order. */
struct conn_unacked {
	int id;
	bool acked;
};

struct tr_conn {
	const struct tr_connector *vt;
	void *state;
	char *name, *prefix, *state_dir;
	long replica; /* TRESTLE_REPLICA: 1 delivers; others only add inbound connections */
	uv_loop_t *loop;
	struct tr_bus *bus;
	char *t_in, *t_ack, *t_status, *t_out, *t_channels;
	enum tr_state st;
	char *st_detail;
	bool online, stopping;
	char **channels;
	size_t n_channels;
	struct tr_backoff backoff;
	uv_timer_t reconnect;
	uv_signal_t sig_term, sig_int;
	struct tr_map seen; /* "id\x1fchannel" -> ack payload ("" while in progress) */
	char *seen_ring[CONN_SEEN_MAX];
	size_t seen_pos;
	unsigned inflight;
	struct conn_unacked *unacked; /* ring, oldest first */
	size_t un_head, un_len, un_cap;
	uint64_t pub_seq, acked_seq; /* publishes made / acknowledged in order */
	struct conn_waiter *waiters, **waiters_tail;
	uv_timer_t waiter_timer;
	struct conn_held *held, **held_tail;
	size_t n_held;
	int handles_open;
};

static void conn_pump(struct tr_conn *c);

void *tr_conn_state(struct tr_conn *c)
{
	return c->state;
}

uv_loop_t *tr_conn_loop(struct tr_conn *c)
{
	return c->loop;
}

const char *tr_conn_name(const struct tr_conn *c)
{
	return c->name;
}

const struct tr_connector *tr_conn_vt(const struct tr_conn *c)
{
	return c->vt;
}

const char *const *tr_conn_channels(const struct tr_conn *c, size_t *n)
{
	*n = c->n_channels;
	return (const char *const *)c->channels;
}

/* Every publish goes through here, so that acknowledgements can be followed in order. */
static int conn_bus_publish(struct tr_conn *c, const char *topic, const char *payload, bool retain)
{
	int id = 0;
	int rc = tr_bus_publish(c->bus, topic, payload, strlen(payload), retain, &id);
	if (rc != TR_OK)
		return rc;
	if (c->un_len == c->un_cap) {
		size_t cap = c->un_cap ? c->un_cap * 2 : 64;
		struct conn_unacked *n = tr_xmalloc(cap * sizeof(*n));
		for (size_t i = 0; i < c->un_len; i++)
			n[i] = c->unacked[(c->un_head + i) % c->un_cap];
		free(c->unacked);
		c->unacked = n;
		c->un_cap = cap;
		c->un_head = 0;
	}
	c->unacked[(c->un_head + c->un_len) % c->un_cap] = (struct conn_unacked){.id = id};
	c->un_len++;
	c->pub_seq++;
	return TR_OK;
}

static void conn_run_waiters(struct tr_conn *c)
{
	while (c->waiters && c->waiters->target <= c->acked_seq) {
		struct conn_waiter *w = c->waiters;
		c->waiters = w->next;
		if (!c->waiters)
			c->waiters_tail = &c->waiters;
		w->fn(c, w->arg);
		free(w);
	}
}

static void conn_on_waiter_timer(uv_timer_t *t)
{
	conn_run_waiters(t->data);
}

static void conn_on_acked(void *arg, int id)
{
	struct tr_conn *c = arg;
	for (size_t i = 0; i < c->un_len; i++) {
		struct conn_unacked *u = &c->unacked[(c->un_head + i) % c->un_cap];
		if (u->id == id && !u->acked) {
			u->acked = true;
			break;
		}
	}
	while (c->un_len && c->unacked[c->un_head].acked) {
		c->un_head = (c->un_head + 1) % c->un_cap;
		c->un_len--;
		c->acked_seq++;
	}
	conn_run_waiters(c);
}

void tr_conn_when_published(struct tr_conn *c, tr_conn_published_fn *fn, void *arg)
{
	struct conn_waiter *w = tr_xcalloc(1, sizeof(*w));
	w->target = c->pub_seq;
	w->fn = fn;
	w->arg = arg;
	*c->waiters_tail = w;
	c->waiters_tail = &w->next;
	if (w->target <= c->acked_seq)
		uv_timer_start(&c->waiter_timer, conn_on_waiter_timer, 0, 0);
}

static void conn_publish_status(struct tr_conn *c)
{
	/* The status topic speaks for the instance: replica 1 owns it (and its will). */
	if (c->replica != 1)
		return;
	struct tr_status st = {.connector = c->name,
	                       .network = (char *)c->vt->network,
	                       .state = c->st,
	                       .since = tr_now_ms(),
	                       .detail = c->st_detail};
	char *payload = NULL;
	if (tr_status_encode(&st, &payload) != TR_OK)
		return;
	if (conn_bus_publish(c, c->t_status, payload, true) != TR_OK)
		tr_error("cannot publish status");
	free(payload);
}

static void conn_set_state(struct tr_conn *c, enum tr_state st, const char *detail)
{
	if (c->st == st && c->st_detail && detail && strcmp(c->st_detail, detail) == 0)
		return;
	c->st = st;
	free(c->st_detail);
	c->st_detail = tr_xstrdup(detail);
	tr_info("status %s detail=\"%s\"", tr_state_name(st), tr_str(detail));
	conn_publish_status(c);
}

/* Back-pressure: while the network is down, out events are held (in memory, and in the state
 * dir at stop); past a high-water mark, or with too many deliveries unacknowledged, the core
 * leaves the broker, whose persistent session keeps the rest until the network is back. */
static void conn_flow(struct tr_conn *c)
{
	if (c->stopping)
		return;
	bool pause = c->inflight >= CONN_INFLIGHT_PAUSE || c->n_held >= CONN_HELD_PAUSE;
	if (!pause && c->inflight > CONN_INFLIGHT_RESUME && c->n_held && c->online)
		pause = true;
	tr_bus_pause(c->bus, pause);
}

static void conn_call_channels(struct tr_conn *c)
{
	if (c->vt->set_channels && c->online)
		c->vt->set_channels(c, (const char *const *)c->channels, c->n_channels);
}

void tr_conn_online(struct tr_conn *c, const char *detail)
{
	bool was = c->online;
	c->online = true;
	tr_backoff_reset(&c->backoff);
	conn_set_state(c, TR_STATE_ONLINE, detail);
	if (!was)
		conn_call_channels(c);
	conn_pump(c);
	conn_flow(c);
}

void tr_conn_degraded(struct tr_conn *c, const char *detail)
{
	conn_set_state(c, TR_STATE_DEGRADED, detail);
}

static void conn_on_reconnect(uv_timer_t *t)
{
	struct tr_conn *c = t->data;
	if (c->stopping)
		return;
	conn_set_state(c, TR_STATE_STARTING, "connecting");
	if (c->vt->connect(c) != TR_OK)
		tr_conn_lost(c, TR_E_IO, "connect failed");
}

void tr_conn_lost(struct tr_conn *c, int err, const char *detail)
{
	c->online = false;
	if (c->stopping)
		return;
	conn_set_state(c, TR_STATE_OFFLINE, detail ? detail : tr_strerror(err));
	c->vt->disconnect(c);
	/* A refused login will not fix itself quickly: wait the longest delay. */
	if (err == TR_E_AUTH || err == TR_E_CONFIG)
		c->backoff.attempt = 32;
	uint32_t ms = tr_backoff_next(&c->backoff);
	tr_info("reconnecting in %u ms", ms);
	uv_timer_start(&c->reconnect, conn_on_reconnect, ms, 0);
	conn_flow(c);
}

int tr_conn_publish(struct tr_conn *c, struct tr_event *ev)
{
	char err[TR_ERR_LEN];
	char *payload = NULL;
	char *save_conn = ev->connector, *save_net = ev->network;
	ev->connector = c->name;
	ev->network = (char *)c->vt->network;
	if (!ev->ts)
		ev->ts = tr_now_ms();
	int rc = tr_event_encode(ev, &payload, err);
	ev->connector = save_conn;
	ev->network = save_net;
	if (rc != TR_OK) {
		tr_warn("not publishing event id=%s: %s", tr_str(ev->id), err);
		return rc;
	}
	rc = conn_bus_publish(c, c->t_in, payload, false);
	if (rc == TR_OK)
		tr_debug("published id=%s type=%s", ev->id, tr_event_type_name(ev->type));
	free(payload);
	return rc;
}

static char *conn_seen_key(const struct tr_event *ev)
{
	return tr_xasprintf("%s\x1f%s", ev->id, ev->dest.channel);
}

static void conn_seen_put(struct tr_conn *c, char *key, char *val)
{
	char *old = tr_map_put(&c->seen, key, strlen(key), val);
	if (old) {
		free(old);
		free(key);
		return;
	}
	/* A new key: evict the oldest when the ring is full. */
	char *victim = c->seen_ring[c->seen_pos];
	if (victim) {
		free(tr_map_del(&c->seen, victim, strlen(victim)));
		free(victim);
	}
	c->seen_ring[c->seen_pos] = key;
	c->seen_pos = (c->seen_pos + 1) % CONN_SEEN_MAX;
}

static const char *conn_err_code(int err)
{
	switch (err) {
	case TR_E_FORBIDDEN:
		return "forbidden";
	case TR_E_RATELIMIT:
		return "ratelimited";
	case TR_E_NOTFOUND:
		return "not_found";
	case TR_E_TOOBIG:
		return "too_big";
	case TR_E_INVAL:
	case TR_E_UTF8:
		return "invalid";
	case TR_E_AUTH:
		return "auth";
	case TR_E_TIMEOUT:
		return "timeout";
	default:
		return "failed";
	}
}

void tr_conn_ack(struct tr_conn *c, const struct tr_event *ev, int err, const char *msgid_or_detail)
{
	struct tr_ack ack = {.id = ev->id,
	                     .dest_connector = ev->dest.connector,
	                     .dest_channel = ev->dest.channel,
	                     .ok = err == TR_OK};
	if (err == TR_OK) {
		ack.msgid = (char *)msgid_or_detail;
	} else {
		ack.error = (char *)conn_err_code(err);
		ack.detail = (char *)msgid_or_detail;
		tr_warn("delivery failed id=%s channel=%s error=%s detail=\"%s\"", ev->id,
		        ev->dest.channel, ack.error, tr_str(msgid_or_detail));
	}
	char *payload = NULL;
	if (tr_ack_encode(&ack, &payload) != TR_OK) {
		tr_error("cannot encode ack id=%s", ev->id);
		return;
	}
	if (conn_bus_publish(c, c->t_ack, payload, false) != TR_OK)
		tr_error("cannot publish ack id=%s", ev->id);
	conn_seen_put(c, conn_seen_key(ev), payload);
	if (c->inflight)
		c->inflight--;
	conn_flow(c);
}

static void conn_deliver(struct tr_conn *c, struct tr_event *ev)
{
	char *key = conn_seen_key(ev);
	const char *prev = tr_map_get(&c->seen, key, strlen(key));
	if (prev) {
		/* Redelivered by the broker (or doubled upstream): never post twice. */
		tr_debug("already delivered id=%s", ev->id);
		if (*prev && conn_bus_publish(c, c->t_ack, prev, false) != TR_OK)
			tr_error("cannot publish ack id=%s", ev->id);
		free(key);
		return;
	}
	conn_seen_put(c, key, tr_xstrdup(""));
	c->inflight++;
	int rc = c->vt->deliver(c, ev);
	if (rc != TR_OK)
		tr_conn_ack(c, ev, rc, tr_strerror(rc));
}

/* Delivers what was held while the network was down, in order. */
static void conn_pump(struct tr_conn *c)
{
	while (c->online && c->held && c->inflight < CONN_INFLIGHT_PAUSE) {
		struct conn_held *h = c->held;
		c->held = h->next;
		if (!c->held)
			c->held_tail = &c->held;
		c->n_held--;
		conn_deliver(c, &h->ev);
		tr_event_cleanup(&h->ev);
		free(h);
	}
}

static void conn_on_msg(void *arg, const char *topic, const void *payload, size_t len,
                        bool retained)
{
	(void)retained;
	struct tr_conn *c = arg;
	char err[TR_ERR_LEN];
	if (strcmp(topic, c->t_channels) == 0) {
		char **chans = NULL;
		size_t n = 0;
		if (tr_channels_decode(payload, len, &chans, &n, err) != TR_OK) {
			tr_warn("ignoring bad channels list: %s", err);
			return;
		}
		tr_channels_free(c->channels);
		c->channels = chans;
		c->n_channels = n;
		tr_info("channels list: %zu channels", n);
		conn_call_channels(c);
		return;
	}
	struct tr_event ev = {0};
	if (tr_event_decode(payload, len, true, &ev, err) != TR_OK) {
		tr_warn("dropped out event (%zu bytes): %s", len, err);
		return;
	}
	if (strcmp(ev.dest.connector, c->name) != 0) {
		tr_warn("dropped out event id=%s addressed to %s", ev.id, ev.dest.connector);
		tr_event_cleanup(&ev);
		return;
	}
	if (c->online && !c->held) {
		conn_deliver(c, &ev);
		tr_event_cleanup(&ev);
		return;
	}
	if (c->n_held >= CONN_HELD_MAX) {
		/* Reads are paused long before this; keep the promise not to grow without bound. */
		tr_conn_ack(c, &ev, TR_E_AGAIN, "network down and hold queue full");
		tr_event_cleanup(&ev);
		return;
	}
	struct conn_held *h = tr_xcalloc(1, sizeof(*h));
	h->ev = ev;
	*c->held_tail = h;
	c->held_tail = &h->next;
	c->n_held++;
	conn_flow(c);
}

static void conn_on_bus(void *arg, bool connected, bool session_present)
{
	(void)session_present;
	struct tr_conn *c = arg;
	if (connected) {
		/* The will may have fired while we were away: say again where we are. */
		conn_publish_status(c);
		conn_flow(c);
	}
}

static void conn_handle_closed(uv_handle_t *h)
{
	(void)h;
}

/* Out events taken from the broker but not delivered when the connector stops are kept in
 * the state dir and delivered first at the next start: the broker will not send them again. */
static void conn_save_held(struct tr_conn *c)
{
	struct tr_buf b;
	tr_buf_init(&b, 512u * 1024 * 1024);
	size_t n = 0;
	for (struct conn_held *h = c->held; h; h = h->next) {
		char *payload = NULL;
		char err[TR_ERR_LEN];
		if (tr_event_encode(&h->ev, &payload, err) != TR_OK)
			continue;
		if (tr_buf_appends(&b, payload) == TR_OK && tr_buf_append(&b, "\n", 1) == TR_OK)
			n++;
		free(payload);
	}
	if (n && tr_conn_state_write(c, "held", b.data, b.len) == TR_OK)
		tr_info("kept %zu undelivered events for the next start", n);
	tr_buf_cleanup(&b);
}

static void conn_load_held(struct tr_conn *c)
{
	char *data = NULL;
	size_t len = 0;
	if (tr_conn_state_read(c, "held", &data, &len) != TR_OK)
		return;
	size_t n = 0;
	for (char *line = data; *line;) {
		char *nl = strchr(line, '\n');
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);
		struct tr_event ev = {0};
		char err[TR_ERR_LEN];
		if (tr_event_decode(line, ll, true, &ev, err) == TR_OK) {
			struct conn_held *h = tr_xcalloc(1, sizeof(*h));
			h->ev = ev;
			*c->held_tail = h;
			c->held_tail = &h->next;
			c->n_held++;
			n++;
		}
		line += ll + (nl ? 1 : 0);
	}
	free(data);
	char *path = tr_xasprintf("%s/%s.held", c->state_dir, c->name);
	unlink(path);
	free(path);
	if (n)
		tr_info("delivering %zu events kept from the last stop", n);
}

static void conn_bus_closed(void *arg)
{
	struct tr_conn *c = arg;
	conn_save_held(c);
	uv_close((uv_handle_t *)&c->reconnect, conn_handle_closed);
	uv_close((uv_handle_t *)&c->waiter_timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->sig_term, conn_handle_closed);
	uv_close((uv_handle_t *)&c->sig_int, conn_handle_closed);
}

static void conn_on_signal(uv_signal_t *s, int signum)
{
	struct tr_conn *c = s->data;
	if (c->stopping)
		return;
	tr_info("signal %d: stopping", signum);
	c->online = false;
	c->stopping = true;
	uv_timer_stop(&c->reconnect);
	c->vt->disconnect(c);
	c->st = TR_STATE_OFFLINE;
	free(c->st_detail);
	c->st_detail = tr_xstrdup("stopped");
	conn_publish_status(c);
	/* Still reading while the bus closes: what arrives is held and kept for the next start. */
	tr_bus_close(c->bus, 5000, conn_bus_closed, c);
}

int tr_conn_state_write(struct tr_conn *c, const char *name, const void *data, size_t len)
{
	int rc = TR_E_IO;
	char *path = tr_xasprintf("%s/%s.%s", c->state_dir, c->name, name);
	char *tmp = tr_xasprintf("%s.tmp", path);
	if (mkdir(c->state_dir, 0700) != 0 && errno != EEXIST)
		goto out;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		p += w;
		left -= (size_t)w;
	}
	bool ok = left == 0 && fsync(fd) == 0;
	close(fd);
	if (ok && rename(tmp, path) == 0)
		rc = TR_OK;
	else
		unlink(tmp);
out:
	if (rc != TR_OK)
		tr_error("cannot write state %s: %s", path, strerror(errno));
	free(tmp);
	free(path);
	return rc;
}

int tr_conn_state_read(struct tr_conn *c, const char *name, char **out, size_t *len)
{
	char *path = tr_xasprintf("%s/%s.%s", c->state_dir, c->name, name);
	int rc = TR_E_IO;
	FILE *f = fopen(path, "re");
	if (!f) {
		rc = errno == ENOENT ? TR_E_NOTFOUND : TR_E_IO;
		free(path);
		return rc;
	}
	struct tr_buf b;
	tr_buf_init(&b, 16 * 1024 * 1024);
	char chunk[4096];
	size_t n;
	rc = TR_OK;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (tr_buf_append(&b, chunk, n) != TR_OK) {
			rc = TR_E_TOOBIG;
			break;
		}
	fclose(f);
	free(path);
	if (rc != TR_OK) {
		tr_buf_cleanup(&b);
		return rc;
	}
	*len = b.len;
	*out = tr_buf_take(&b);
	return TR_OK;
}

static void conn_usage(const struct tr_connector *vt, FILE *f)
{
	fprintf(
	    f,
	    "usage: trestle-%s\n"
	    "A Trestle connector: bridges one %s account to the Trestle bus.\n"
	    "Common settings (each also as NAME_FILE): TRESTLE_CONNECTOR (instance name, default "
	    "%s), TRESTLE_REPLICA, TRESTLE_MQTT_URL, TRESTLE_TOPIC_PREFIX, TRESTLE_STATE_DIR,\n"
	    "TRESTLE_LOG_LEVEL.\n"
	    "Network settings: see services/%s/README.md.\n",
	    vt->network, vt->network, vt->network, vt->network);
}

static void conn_free(struct tr_conn *c)
{
	if (c->vt->release)
		c->vt->release(c);
	free(c->state);
	tr_bus_free(c->bus);
	free(c->name);
	free(c->prefix);
	free(c->state_dir);
	free(c->t_in);
	free(c->t_ack);
	free(c->t_status);
	free(c->t_out);
	free(c->t_channels);
	free(c->st_detail);
	tr_channels_free(c->channels);
	for (size_t i = 0; i < CONN_SEEN_MAX; i++)
		free(c->seen_ring[i]);
	size_t it = 0;
	void *v;
	while (tr_map_next(&c->seen, &it, NULL, NULL, &v))
		free(v);
	tr_map_cleanup(&c->seen);
	free(c->unacked);
	while (c->waiters) {
		struct conn_waiter *w = c->waiters;
		c->waiters = w->next;
		free(w);
	}
	while (c->held) {
		struct conn_held *h = c->held;
		c->held = h->next;
		tr_event_cleanup(&h->ev);
		free(h);
	}
	free(c);
}

int tr_connector_main(const struct tr_connector *vt, int argc, char **argv)
{
	if (argc > 1) {
		bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
		conn_usage(vt, help ? stdout : stderr);
		return help ? 0 : 64;
	}
	signal(SIGPIPE, SIG_IGN);
	tr_random_seed();
	struct tr_conn *c = tr_xcalloc(1, sizeof(*c));
	c->vt = vt;
	c->state = tr_xcalloc(1, vt->state_size ? vt->state_size : 1);
	c->loop = uv_default_loop();
	c->held_tail = &c->held;
	c->waiters_tail = &c->waiters;
	tr_map_init(&c->seen);
	tr_backoff_init(&c->backoff, &tr_backoff_connect);
	int code = TR_EXIT_CONFIG;
	char err[TR_ERR_LEN];

	struct tr_env env;
	tr_env_init(&env, NULL);
	char *level_s = tr_env_str(&env, "TRESTLE_LOG_LEVEL", "info");
	enum tr_log_level level = TR_LOG_INFO;
	if (tr_log_level_parse(level_s, &level) != TR_OK)
		tr_env_fail(&env, "TRESTLE_LOG_LEVEL", "must be error, warn, info or debug");
	free(level_s);
	c->name = tr_env_str(&env, "TRESTLE_CONNECTOR", vt->network);
	tr_log_init(c->name, level);
	if (!tr_connector_name_valid(c->name))
		tr_env_fail(&env, "TRESTLE_CONNECTOR", "must match [a-z0-9][a-z0-9_-]{0,62}");
	c->prefix = tr_env_str(&env, "TRESTLE_TOPIC_PREFIX", "trestle");
	c->state_dir = tr_env_str(&env, "TRESTLE_STATE_DIR", "state");
	c->replica = tr_env_int(&env, "TRESTLE_REPLICA", 1, 1, 64);
	char *mqtt_url = tr_env_str(&env, "TRESTLE_MQTT_URL", "mqtt://127.0.0.1:1883");
	char *mqtt_ca = tr_env_str(&env, "TRESTLE_MQTT_CA_FILE", NULL);
	if (vt->configure(c, &env) != TR_OK)
		tr_env_fail(&env, "configuration", "the connector refused its settings");
	if (tr_env_finish(&env) != TR_OK)
		goto out;

	c->t_in = tr_topic(c->prefix, "in", c->name);
	c->t_ack = tr_topic(c->prefix, "ack", c->name);
	c->t_status = tr_topic(c->prefix, "status", c->name);
	c->t_out = tr_topic(c->prefix, "out", c->name);
	c->t_channels = tr_topic(c->prefix, "channels", c->name);
	/* Each replica keeps a session of its own. Only replica 1 takes out events: deliveries to
	 * one channel stay in order, and what is queued for it waits in its session. */
	char *client_id = c->replica == 1 ? tr_xasprintf("trestle-%s", c->name)
	                                  : tr_xasprintf("trestle-%s-r%ld", c->name, c->replica);
	struct tr_status will = {.connector = c->name,
	                         .network = (char *)vt->network,
	                         .state = TR_STATE_OFFLINE,
	                         .since = tr_now_ms(),
	                         .detail = "connection to the bus lost"};
	char *will_payload = NULL;
	if (tr_status_encode(&will, &will_payload) != TR_OK)
		will_payload = tr_xstrdup("");
	const char *subs[] = {c->t_channels, c->t_out};
	struct tr_bus_opts bo = {.url = mqtt_url,
	                         .ca_file = mqtt_ca,
	                         .client_id = client_id,
	                         .will_topic = c->replica == 1 ? c->t_status : NULL,
	                         .will_payload = will_payload,
	                         .subs = subs,
	                         .n_subs = c->replica == 1 ? 2 : 1,
	                         .receive_max = 100,
	                         .on_msg = conn_on_msg,
	                         .on_state = conn_on_bus,
	                         .on_acked = conn_on_acked,
	                         .arg = c};
	c->bus = tr_bus_new(c->loop, &bo, err);
	free(client_id);
	free(will_payload);
	if (!c->bus) {
		tr_error("config: %s", err);
		goto out;
	}
	code = TR_EXIT_FAIL;
	uv_timer_init(c->loop, &c->reconnect);
	c->reconnect.data = c;
	uv_timer_init(c->loop, &c->waiter_timer);
	c->waiter_timer.data = c;
	uv_signal_init(c->loop, &c->sig_term);
	uv_signal_init(c->loop, &c->sig_int);
	c->sig_term.data = c->sig_int.data = c;
	uv_signal_start(&c->sig_term, conn_on_signal, SIGTERM);
	uv_signal_start(&c->sig_int, conn_on_signal, SIGINT);
	conn_load_held(c);
	c->st = TR_STATE_STARTING;
	c->st_detail = tr_xstrdup("connecting");
	conn_publish_status(c);
	if (tr_bus_start(c->bus) != TR_OK)
		goto out;
	if (vt->connect(c) != TR_OK)
		tr_conn_lost(c, TR_E_IO, "connect failed");
	uv_run(c->loop, UV_RUN_DEFAULT);
	code = TR_EXIT_OK;
	tr_info("stopped");
out:
	free(mqtt_url);
	free(mqtt_ca);
	tr_env_cleanup(&env);
	conn_free(c);
	uv_loop_close(uv_default_loop());
	return code;
}
