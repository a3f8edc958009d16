/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Bench load generator and measurer: publishes COUNT v1 message events (DESIGN §2) to
 * P/v1/in/CONNECTOR, round-robin over K origin channels c0..cK-1, at a fixed rate or as fast as a
 * bounded window allows, and reads P/v1/out/+. Each event carries bench_* fields (unknown fields
 * pass through the router). Prints one JSON line: throughput, latency, lost, duplicates and order
 * violations per (origin channel, destination). Threads: libmosquitto's loop threads + main. */
#include <errno.h>
#include <jansson.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "alloc.h"

#define BENCH_MAX_COUNT    10000000L
#define BENCH_KEY_LEN      384
#define BENCH_WARM_TRIES   60
#define BENCH_WARM_WAIT_MS 500

struct bench_slot {
	char *key;
	int64_t last_seq;
};

/* Last sequence number seen per (origin channel, destination): open addressing, FNV-1a. */
struct bench_order {
	struct bench_slot *slots;
	size_t cap;
	size_t n;
};

struct bench_cfg {
	const char *host;
	long port;
	const char *prefix;
	const char *connector;
	const char *run;
	long count;
	long channels;
	long rate;
	long window;
	long fanout;
	long text_bytes;
	long idle_timeout_s;
	long total_timeout_s;
};

struct bench {
	struct bench_cfg cfg;
	char *in_topic;
	char *out_filter;
	char *text;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool sub_ready;
	bool pub_ready;
	/* Everything below is guarded by mu. */
	uint64_t warm_received;
	uint64_t received;
	uint64_t unique;
	uint64_t duplicates;
	uint64_t reordered;
	uint64_t foreign; /* not ours: other run, unparseable, or out of range */
	uint16_t *per_event;
	int64_t *lat;
	size_t n_lat;
	size_t cap_lat;
	int64_t t_first_send;
	int64_t t_last_send;
	int64_t t_last_recv;
	struct bench_order order;
};

static int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t bench_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void bench_sleep_until(int64_t t_ns)
{
	struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
	}
}

/* pthread_cond_timedwait uses CLOCK_REALTIME by default; the condvar is set to MONOTONIC. */
static void bench_wait_until(struct bench *b, int64_t t_ns)
{
	struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};

	(void)pthread_cond_timedwait(&b->cv, &b->mu, &ts);
}

static uint64_t bench_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct bench_slot *bench_order_find(struct bench_order *o, const char *key)
{
	size_t i = bench_hash(key) & (o->cap - 1);

	while (o->slots[i].key && strcmp(o->slots[i].key, key) != 0)
		i = (i + 1) & (o->cap - 1);
	return &o->slots[i];
}

static void bench_order_grow(struct bench_order *o)
{
	struct bench_order n = {.cap = o->cap ? o->cap * 2 : 1024};

	n.slots = tr_xcalloc(n.cap, sizeof(*n.slots));
	for (size_t i = 0; i < o->cap; i++) {
		if (!o->slots[i].key)
			continue;
		*bench_order_find(&n, o->slots[i].key) = o->slots[i];
		n.n++;
	}
	free(o->slots);
	*o = n;
}

/* Returns true when seq is older than the last one seen for key (an order violation). */
static bool bench_order_check(struct bench_order *o, const char *key, int64_t seq)
{
	if ((o->n + 1) * 10 >= o->cap * 7)
		bench_order_grow(o);
	struct bench_slot *s = bench_order_find(o, key);
	if (!s->key) {
		s->key = tr_xstrdup(key);
		s->last_seq = seq;
		o->n++;
		return false;
	}
	if (seq < s->last_seq)
		return true;
	s->last_seq = seq;
	return false;
}

static void bench_order_cleanup(struct bench_order *o)
{
	for (size_t i = 0; i < o->cap; i++)
		free(o->slots[i].key);
	free(o->slots);
}

static int64_t bench_json_int(const json_t *obj, const char *name, int64_t def)
{
	const json_t *v = json_object_get(obj, name);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static void bench_on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *m)
{
	struct bench *b = arg;
	int64_t now = bench_now_ns();
	json_t *root = NULL;
	char key[BENCH_KEY_LEN];

	(void)mosq;
	root = json_loadb(m->payload, (size_t)m->payloadlen, 0, NULL);
	const json_t *run = json_object_get(root, "bench_run");
	bool ours = json_is_string(run) && strcmp(json_string_value(run), b->cfg.run) == 0;
	bool warm = json_is_true(json_object_get(root, "bench_warm"));
	int64_t i = bench_json_int(root, "bench_i", -1);
	int64_t ch = bench_json_int(root, "bench_ch", -1);
	int64_t seq = bench_json_int(root, "bench_seq", -1);
	int64_t sent = bench_json_int(root, "bench_ns", -1);
	const char *dch =
	    json_string_value(json_object_get(json_object_get(root, "dest"), "channel"));
	const char *dconn = strrchr(m->topic, '/');
	(void)snprintf(key, sizeof(key), "%lld|%s|%s", (long long)ch, dconn ? dconn + 1 : m->topic,
	               dch ? dch : "");

	pthread_mutex_lock(&b->mu);
	if (!ours) {
		b->foreign++;
		goto unlock;
	}
	if (warm) {
		b->warm_received++;
		goto unlock;
	}
	if (i < 0 || i >= b->cfg.count || ch < 0 || seq < 0 || sent < 0) {
		b->foreign++;
		goto unlock;
	}
	b->received++;
	if (b->per_event[i] < UINT16_MAX)
		b->per_event[i]++;
	if (b->per_event[i] <= b->cfg.fanout)
		b->unique++;
	else
		b->duplicates++;
	if (b->n_lat < b->cap_lat)
		b->lat[b->n_lat++] = now - sent;
	if (bench_order_check(&b->order, key, seq))
		b->reordered++;
	b->t_last_recv = now;
unlock:
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	json_decref(root);
}

static void bench_on_sub_connect(struct mosquitto *mosq, void *arg, int rc)
{
	struct bench *b = arg;

	if (rc != 0) {
		fprintf(stderr, "bench_load: connect refused: %s\n", mosquitto_connack_string(rc));
		return;
	}
	rc = mosquitto_subscribe(mosq, NULL, b->out_filter, 1);
	if (rc != MOSQ_ERR_SUCCESS)
		fprintf(stderr, "bench_load: subscribe: %s\n", mosquitto_strerror(rc));
}

static void bench_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *qos)
{
	struct bench *b = arg;

	(void)mosq;
	(void)mid;
	(void)n;
	(void)qos;
	pthread_mutex_lock(&b->mu);
	b->sub_ready = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void bench_on_pub_connect(struct mosquitto *mosq, void *arg, int rc)
{
	struct bench *b = arg;

	(void)mosq;
	if (rc != 0) {
		fprintf(stderr, "bench_load: connect refused: %s\n", mosquitto_connack_string(rc));
		return;
	}
	pthread_mutex_lock(&b->mu);
	b->pub_ready = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* Waits (mu held) until *flag or the deadline; returns *flag. */
static bool bench_wait_flag(struct bench *b, const bool *flag, int64_t deadline)
{
	while (!*flag && bench_now_ns() < deadline)
		bench_wait_until(b, deadline);
	return *flag;
}

static int bench_publish(struct bench *b, struct mosquitto *pub, long i, bool warm)
{
	long ch = warm ? 0 : i % b->cfg.channels;
	char chan[32], msgid[96], id[192];
	int rc;

	(void)snprintf(chan, sizeof(chan), "c%ld", ch);
	(void)snprintf(msgid, sizeof(msgid), "%s-%s%ld", b->cfg.run, warm ? "w" : "", i);
	(void)snprintf(id, sizeof(id), "%s:message:%s", b->cfg.connector, msgid);
	int64_t now = bench_now_ns();
	json_t *ev = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:{s:s, s:s}, s:s, s:s}",
	                       "v", 1, "id", id, "type", "message", "connector", b->cfg.connector,
	                       "network", "bench", "channel", chan, "msgid", msgid, "ts",
	                       (json_int_t)bench_wall_ms(), "author", "id", "u1", "name", "bench",
	                       "text", b->text, "bench_run", b->cfg.run);
	if (warm) {
		json_object_set_new(ev, "bench_warm", json_true());
	} else {
		json_object_set_new(ev, "bench_i", json_integer(i));
		json_object_set_new(ev, "bench_ch", json_integer(ch));
		json_object_set_new(ev, "bench_seq", json_integer(i / b->cfg.channels));
	}
	json_object_set_new(ev, "bench_ns", json_integer(now));
	char *s = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (!warm) {
		pthread_mutex_lock(&b->mu);
		if (i == 0)
			b->t_first_send = now;
		b->t_last_send = now;
		pthread_mutex_unlock(&b->mu);
	}
	rc = mosquitto_publish(pub, NULL, b->in_topic, (int)strlen(s), s, 1, false);
	free(s);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "bench_load: publish: %s\n", mosquitto_strerror(rc));
		return -1;
	}
	return 0;
}

static int bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double bench_pct_us(const int64_t *v, size_t n, double p)
{
	if (n == 0)
		return -1;
	size_t k = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[k] / 1000.0;
}

static bool bench_parse_long(const char *s, long min, long max, long *out)
{
	char *end = NULL;

	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static void bench_usage(void)
{
	fprintf(stderr,
	        "usage: bench_load [-H host] [-p port] [-P prefix] [-C connector] [-R run_id]\n"
	        "                  [-n count] [-k channels] [-r rate/s, 0=window] [-w window]\n"
	        "                  [-f fanout] [-s text_bytes] [-t idle_timeout_s] [-T total_s]\n");
}

static int bench_parse_args(struct bench_cfg *c, int argc, char **argv)
{
	int opt;

	*c = (struct bench_cfg){.host = "127.0.0.1",
	                        .port = 1883,
	                        .prefix = "trestle",
	                        .connector = "src",
	                        .run = "run",
	                        .count = 10000,
	                        .channels = 1,
	                        .rate = 0,
	                        .window = 200,
	                        .fanout = 1,
	                        .text_bytes = 100,
	                        .idle_timeout_s = 5,
	                        .total_timeout_s = 120};
	while ((opt = getopt(argc, argv, "H:p:P:C:R:n:k:r:w:f:s:t:T:h")) != -1) {
		bool ok = true;
		switch (opt) {
		case 'H':
			c->host = optarg;
			break;
		case 'P':
			c->prefix = optarg;
			break;
		case 'C':
			c->connector = optarg;
			break;
		case 'R':
			c->run = optarg;
			break;
		case 'p':
			ok = bench_parse_long(optarg, 1, 65535, &c->port);
			break;
		case 'n':
			ok = bench_parse_long(optarg, 1, BENCH_MAX_COUNT, &c->count);
			break;
		case 'k':
			ok = bench_parse_long(optarg, 1, 1000000, &c->channels);
			break;
		case 'r':
			ok = bench_parse_long(optarg, 0, 10000000, &c->rate);
			break;
		case 'w':
			ok = bench_parse_long(optarg, 1, BENCH_MAX_COUNT, &c->window);
			break;
		case 'f':
			ok = bench_parse_long(optarg, 1, 1000, &c->fanout);
			break;
		case 's':
			ok = bench_parse_long(optarg, 1, 60000, &c->text_bytes);
			break;
		case 't':
			ok = bench_parse_long(optarg, 1, 3600, &c->idle_timeout_s);
			break;
		case 'T':
			ok = bench_parse_long(optarg, 1, 3600, &c->total_timeout_s);
			break;
		default:
			ok = false;
		}
		if (!ok) {
			bench_usage();
			return -1;
		}
	}
	if (optind != argc) {
		bench_usage();
		return -1;
	}
	return 0;
}

static struct mosquitto *bench_client(struct bench *b, const char *role)
{
	char id[64];

	(void)snprintf(id, sizeof(id), "bench-%s-%ld", role, (long)getpid());
	struct mosquitto *m = mosquitto_new(id, true, b);
	if (!m)
		return NULL;
	mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
	/* 0: no client-side cap, the load is bounded by the window or the rate. */
	mosquitto_max_inflight_messages_set(m, 0);
	return m;
}

/* Sends the measured events; returns false when stopped by the idle or total deadline. */
static bool bench_send_all(struct bench *b, struct mosquitto *pub, int64_t deadline)
{
	int64_t t0 = bench_now_ns();
	int64_t idle = b->cfg.idle_timeout_s * 1000000000LL;

	for (long i = 0; i < b->cfg.count; i++) {
		if (b->cfg.rate > 0) {
			bench_sleep_until(t0 + (int64_t)((double)i * 1e9 / (double)b->cfg.rate));
		} else {
			pthread_mutex_lock(&b->mu);
			uint64_t seen = b->received;
			int64_t progress = bench_now_ns();
			for (;;) {
				/* Events in flight: sent minus those whose copies have all arrived.
				 */
				int64_t done = (int64_t)(b->received / (uint64_t)b->cfg.fanout);
				int64_t now = bench_now_ns();
				if (i - done < b->cfg.window)
					break;
				if (b->received != seen) {
					seen = b->received;
					progress = now;
				}
				if (now - progress > idle || now > deadline) {
					pthread_mutex_unlock(&b->mu);
					return false;
				}
				bench_wait_until(b, now + 100000000);
			}
			pthread_mutex_unlock(&b->mu);
		}
		if (bench_now_ns() > deadline || bench_publish(b, pub, i, false) != 0)
			return false;
	}
	return true;
}

/* Waits until every expected copy has arrived, nothing arrives for the idle timeout, or the
 * total deadline passes. Returns true when complete. */
static bool bench_drain(struct bench *b, int64_t deadline)
{
	uint64_t expected = (uint64_t)b->cfg.count * (uint64_t)b->cfg.fanout;
	int64_t idle = b->cfg.idle_timeout_s * 1000000000LL;
	bool complete;

	pthread_mutex_lock(&b->mu);
	uint64_t seen = b->received;
	int64_t progress = bench_now_ns();
	for (;;) {
		int64_t now = bench_now_ns();
		complete = b->unique >= expected;
		if (complete || now - progress > idle || now > deadline)
			break;
		if (b->received != seen) {
			seen = b->received;
			progress = now;
		}
		bench_wait_until(b, now + 100000000);
	}
	pthread_mutex_unlock(&b->mu);
	return complete;
}

static void bench_report(struct bench *b, const char *error, bool sent_all, bool complete)
{
	uint64_t expected = (uint64_t)b->cfg.count * (uint64_t)b->cfg.fanout;

	pthread_mutex_lock(&b->mu);
	qsort(b->lat, b->n_lat, sizeof(*b->lat), bench_cmp_i64);
	double dur = b->t_last_recv > b->t_first_send
	                 ? (double)(b->t_last_recv - b->t_first_send) / 1e9
	                 : 0.0;
	double send_s = (double)(b->t_last_send - b->t_first_send) / 1e9;
	json_t *o = json_pack(
	    "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:f, s:f, "
	    "s:f, s:f, s:f, s:f, s:f, s:f}",
	    "run", b->cfg.run, "count", (json_int_t)b->cfg.count, "fanout",
	    (json_int_t)b->cfg.fanout, "channels", (json_int_t)b->cfg.channels, "rate",
	    (json_int_t)b->cfg.rate, "window", (json_int_t)b->cfg.window, "expected",
	    (json_int_t)expected, "received", (json_int_t)b->received, "unique",
	    (json_int_t)b->unique, "lost", (json_int_t)(expected - b->unique), "duplicates",
	    (json_int_t)b->duplicates, "reordered", (json_int_t)b->reordered, "sent_all", sent_all,
	    "complete", complete, "duration_s", dur, "send_s", send_s, "in_per_s",
	    dur > 0 ? (double)b->unique / (double)b->cfg.fanout / dur : 0.0, "out_per_s",
	    dur > 0 ? (double)b->unique / dur : 0.0, "p50_us", bench_pct_us(b->lat, b->n_lat, 0.50),
	    "p99_us", bench_pct_us(b->lat, b->n_lat, 0.99), "max_us",
	    bench_pct_us(b->lat, b->n_lat, 1.0), "min_us", bench_pct_us(b->lat, b->n_lat, 0.0));
	json_object_set_new(o, "foreign", json_integer((json_int_t)b->foreign));
	json_object_set_new(o, "order_keys", json_integer((json_int_t)b->order.n));
	if (error)
		json_object_set_new(o, "error", json_string(error));
	pthread_mutex_unlock(&b->mu);
	char *s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

int main(int argc, char **argv)
{
	struct bench b = {0};
	struct mosquitto *sub = NULL, *pub = NULL;
	const char *error = NULL;
	bool sent_all = false, complete = false, sub_loop = false, pub_loop = false;
	int rc = 1;

	if (bench_parse_args(&b.cfg, argc, argv) != 0)
		return 2;
	int64_t deadline = bench_now_ns() + b.cfg.total_timeout_s * 1000000000LL;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b.cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&b.mu, NULL);
	b.in_topic = tr_xasprintf("%s/v1/in/%s", b.cfg.prefix, b.cfg.connector);
	b.out_filter = tr_xasprintf("%s/v1/out/+", b.cfg.prefix);
	b.text = tr_xmalloc((size_t)b.cfg.text_bytes + 1);
	static const char filler[] = "bench message, plain CommonMark text ";
	for (long i = 0; i < b.cfg.text_bytes; i++)
		b.text[i] = filler[(size_t)i % (sizeof(filler) - 1)];
	b.text[b.cfg.text_bytes] = '\0';
	b.per_event = tr_xcalloc((size_t)b.cfg.count, sizeof(*b.per_event));
	/* Room for every expected copy plus some duplicates; more are counted but not timed. */
	b.cap_lat = (size_t)b.cfg.count * (size_t)b.cfg.fanout + 1024;
	b.lat = tr_xmalloc(b.cap_lat * sizeof(*b.lat));

	mosquitto_lib_init();
	sub = bench_client(&b, "sub");
	pub = bench_client(&b, "pub");
	if (!sub || !pub) {
		error = "mosquitto_new failed";
		goto out;
	}
	mosquitto_connect_callback_set(sub, bench_on_sub_connect);
	mosquitto_subscribe_callback_set(sub, bench_on_subscribe);
	mosquitto_message_callback_set(sub, bench_on_message);
	mosquitto_connect_callback_set(pub, bench_on_pub_connect);
	if (mosquitto_connect(sub, b.cfg.host, (int)b.cfg.port, 30) != MOSQ_ERR_SUCCESS ||
	    mosquitto_connect(pub, b.cfg.host, (int)b.cfg.port, 30) != MOSQ_ERR_SUCCESS) {
		error = "cannot connect to the broker";
		goto out;
	}
	sub_loop = mosquitto_loop_start(sub) == MOSQ_ERR_SUCCESS;
	pub_loop = mosquitto_loop_start(pub) == MOSQ_ERR_SUCCESS;
	if (!sub_loop || !pub_loop) {
		error = "mosquitto_loop_start failed";
		goto out;
	}
	pthread_mutex_lock(&b.mu);
	int64_t ready_by = bench_now_ns() + 10000000000LL;
	bool ready = bench_wait_flag(&b, &b.sub_ready, ready_by) &&
	             bench_wait_flag(&b, &b.pub_ready, ready_by);
	pthread_mutex_unlock(&b.mu);
	if (!ready) {
		error = "no CONNACK/SUBACK within 10 s";
		goto out;
	}

	/* Warm-up: the relay under test may still be subscribing; resend until one copy of a
	 * warm-up event comes back. Warm-up copies are not measured. */
	bool warm = false;
	for (int t = 0; t < BENCH_WARM_TRIES && !warm && bench_now_ns() < deadline; t++) {
		if (bench_publish(&b, pub, t, true) != 0)
			break;
		pthread_mutex_lock(&b.mu);
		int64_t until = bench_now_ns() + BENCH_WARM_WAIT_MS * 1000000LL;
		while (b.warm_received == 0 && bench_now_ns() < until)
			bench_wait_until(&b, until);
		warm = b.warm_received > 0;
		pthread_mutex_unlock(&b.mu);
	}
	if (!warm) {
		error = "nothing came back during warm-up";
		goto out;
	}

	sent_all = bench_send_all(&b, pub, deadline);
	complete = bench_drain(&b, deadline);
	if (!sent_all)
		error = "stalled while sending (idle or total timeout)";
	else if (!complete)
		error = "not every copy arrived (idle or total timeout)";
	rc = 0;
out:
	bench_report(&b, error, sent_all, complete);
	if (sub)
		mosquitto_disconnect(sub);
	if (pub)
		mosquitto_disconnect(pub);
	if (sub_loop)
		mosquitto_loop_stop(sub, false);
	if (pub_loop)
		mosquitto_loop_stop(pub, false);
	mosquitto_destroy(sub);
	mosquitto_destroy(pub);
	mosquitto_lib_cleanup();
	bench_order_cleanup(&b.order);
	free(b.lat);
	free(b.per_event);
	free(b.text);
	free(b.in_topic);
	free(b.out_filter);
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.mu);
	return rc;
}
