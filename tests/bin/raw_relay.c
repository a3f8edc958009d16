/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Bench baseline: a plain subscribe -> publish relay on libmosquitto, with no validation, state or
 * durability. Each message on IN_FILTER is republished unchanged (QoS 1) to OUT_PREFIX1 ..
 * OUT_PREFIXN, the same number of publishes the router makes at fan-out N. A bench tool, not a
 * service: it runs mosquitto_loop_forever() until killed (SIGTERM). */
#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "alloc.h"

#define RELAY_MAX_FANOUT 64

struct relay {
	const char *in_filter;
	char *out_topics[RELAY_MAX_FANOUT];
	int fanout;
	int publish_errors;
};

static void relay_on_connect(struct mosquitto *mosq, void *arg, int rc)
{
	struct relay *r = arg;

	if (rc != 0) {
		fprintf(stderr, "raw_relay: connect refused: %s\n", mosquitto_connack_string(rc));
		mosquitto_disconnect(mosq);
		return;
	}
	/* Subscribed on every connect: the session is clean. */
	rc = mosquitto_subscribe(mosq, NULL, r->in_filter, 1);
	if (rc != MOSQ_ERR_SUCCESS)
		fprintf(stderr, "raw_relay: subscribe: %s\n", mosquitto_strerror(rc));
}

static void relay_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *qos)
{
	(void)mosq;
	(void)arg;
	(void)mid;
	/* run.py waits for this line before it starts the load. */
	if (n > 0 && qos[0] <= 2) {
		printf("ready\n");
		fflush(stdout);
	}
}

static void relay_on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *m)
{
	struct relay *r = arg;

	for (int i = 0; i < r->fanout; i++) {
		int rc = mosquitto_publish(mosq, NULL, r->out_topics[i], m->payloadlen, m->payload,
		                           1, false);
		if (rc != MOSQ_ERR_SUCCESS && r->publish_errors++ < 5)
			fprintf(stderr, "raw_relay: publish: %s\n", mosquitto_strerror(rc));
	}
}

static void relay_on_log(struct mosquitto *mosq, void *arg, int level, const char *s)
{
	(void)mosq;
	(void)arg;
	(void)level;
	(void)s;
}

static bool relay_parse_int(const char *s, long min, long max, long *out)
{
	char *end = NULL;

	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static void relay_usage(void)
{
	fprintf(stderr,
	        "usage: raw_relay [-H host] [-p port] [-m max_inflight] [-i client_id]\n"
	        "                 IN_FILTER OUT_PREFIX FANOUT\n"
	        "  republishes each message on IN_FILTER to OUT_PREFIX1 .. OUT_PREFIXN;\n"
	        "  max_inflight: QoS 1 publishes awaiting PUBACK (default 100, 0 = no cap)\n");
}

int main(int argc, char **argv)
{
	int rc = 1;
	const char *host = "127.0.0.1";
	const char *client_id = "bench-raw-relay";
	long port = 1883, inflight = 100, fanout = 0;
	struct relay r = {0};
	struct mosquitto *mosq = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "H:p:m:i:h")) != -1) {
		switch (opt) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			if (!relay_parse_int(optarg, 1, 65535, &port)) {
				relay_usage();
				return 2;
			}
			break;
		case 'm':
			if (!relay_parse_int(optarg, 0, 65535, &inflight)) {
				relay_usage();
				return 2;
			}
			break;
		case 'i':
			client_id = optarg;
			break;
		default:
			relay_usage();
			return 2;
		}
	}
	if (argc - optind != 3 ||
	    !relay_parse_int(argv[optind + 2], 1, RELAY_MAX_FANOUT, &fanout)) {
		relay_usage();
		return 2;
	}
	r.in_filter = argv[optind];
	r.fanout = (int)fanout;
	for (int i = 0; i < r.fanout; i++)
		r.out_topics[i] = tr_xasprintf("%s%d", argv[optind + 1], i + 1);

	mosquitto_lib_init();
	mosq = mosquitto_new(client_id, true, &r);
	if (!mosq) {
		fprintf(stderr, "raw_relay: mosquitto_new failed\n");
		goto out;
	}
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_max_inflight_messages_set(mosq, (unsigned)inflight);
	mosquitto_connect_callback_set(mosq, relay_on_connect);
	mosquitto_subscribe_callback_set(mosq, relay_on_subscribe);
	mosquitto_message_callback_set(mosq, relay_on_message);
	mosquitto_log_callback_set(mosq, relay_on_log);
	int mrc = mosquitto_connect(mosq, host, (int)port, 30);
	if (mrc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "raw_relay: connect %s:%ld: %s\n", host, port,
		        mosquitto_strerror(mrc));
		goto out;
	}
	/* mosquitto's own loop (reconnects by itself); SIGTERM/SIGINT end the process. */
	mrc = mosquitto_loop_forever(mosq, -1, 1);
	if (mrc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "raw_relay: loop: %s\n", mosquitto_strerror(mrc));
		goto out;
	}
	rc = 0;
out:
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	for (int i = 0; i < r.fanout; i++)
		free(r.out_topics[i]);
	return rc;
}
