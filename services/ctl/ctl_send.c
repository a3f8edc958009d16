/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl send: publishes a v1 message event on {prefix}/v1/in/CONNECTOR as if that
 * connector had seen it, waits for the broker's PUBACK, and prints the event id. */
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "ctl.h"
#include "event.h"

struct ctl_send {
	int mid;
	char *id;
	char *topic;
	bool connected_once;
};

static void ctl_send_acked(void *arg, int mid)
{
	struct ctl *c = arg;
	struct ctl_send *st = c->cmd;
	if (mid != st->mid || c->finishing)
		return;
	printf("%s\n", st->id);
	ctl_finish(c, TR_EXIT_OK);
}

static void ctl_send_state(void *arg, bool connected, bool session_present)
{
	(void)session_present;
	struct ctl *c = arg;
	struct ctl_send *st = c->cmd;
	if (connected)
		st->connected_once = true;
}

static void ctl_send_timeout(struct ctl *c)
{
	struct ctl_send *st = c->cmd;
	char *safe = ctl_url_safe(c->mqtt_url);
	if (st->connected_once)
		ctl_fail(c, TR_EXIT_FAIL,
		         "the broker at %s did not acknowledge the publish within %d s", safe,
		         CTL_WAIT_MS / 1000);
	else
		ctl_fail(c, TR_EXIT_FAIL, "cannot reach the broker at %s within %d s", safe,
		         CTL_WAIT_MS / 1000);
	free(safe);
}

/* The option's value: "--opt VALUE" or "--opt=VALUE"; NULL (after a message) when missing. */
static const char *ctl_send_optval(int argc, char **argv, int *i, const char *opt)
{
	size_t n = strlen(opt);
	if (strncmp(argv[*i], opt, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		fprintf(stderr, "trestle-ctl send: %s needs a value\n", opt);
		return NULL;
	}
	return argv[++*i];
}

int ctl_send(int argc, char **argv)
{
	const char *pos[3] = {NULL, NULL, NULL};
	int npos = 0;
	const char *author = "trestle-ctl", *network = NULL;
	bool dashdash = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = true;
		} else if (!dashdash && strncmp(a, "--author", 8) == 0 && (!a[8] || a[8] == '=')) {
			author = ctl_send_optval(argc, argv, &i, "--author");
			if (!author)
				return ctl_usage("send", stderr, CTL_EXIT_USAGE);
		} else if (!dashdash && strncmp(a, "--network", 9) == 0 && (!a[9] || a[9] == '=')) {
			network = ctl_send_optval(argc, argv, &i, "--network");
			if (!network)
				return ctl_usage("send", stderr, CTL_EXIT_USAGE);
		} else if (!dashdash && a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9') &&
		           npos < 2) {
			/* Telegram channels are negative numbers, and TEXT may start with '-';
			 * anything else that looks like an option before TEXT is refused. */
			fprintf(stderr, "trestle-ctl send: unknown option '%s'\n", a);
			return ctl_usage("send", stderr, CTL_EXIT_USAGE);
		} else if (npos < 3) {
			pos[npos++] = a;
		} else {
			fprintf(stderr, "trestle-ctl send: too many arguments (quote TEXT)\n");
			return ctl_usage("send", stderr, CTL_EXIT_USAGE);
		}
	}
	if (npos < 3) {
		fprintf(stderr, "trestle-ctl send: CONNECTOR, CHANNEL and TEXT are required\n");
		return ctl_usage("send", stderr, CTL_EXIT_USAGE);
	}
	const char *connector = pos[0];
	if (!tr_connector_name_valid(connector)) {
		fprintf(
		    stderr,
		    "trestle-ctl send: '%s' is not a connector name ([a-z0-9][a-z0-9_-]{0,62})\n",
		    connector);
		return CTL_EXIT_USAGE;
	}
	char hex[33];
	ctl_random_hex(hex, 8);
	char *net = network ? tr_xstrdup(network) : ctl_network_of(connector);
	struct tr_event ev = {
	    .id = tr_xasprintf("%s:ctl:%s", connector, hex),
	    .type = TR_EV_MESSAGE,
	    .connector = tr_xstrdup(connector),
	    .network = net,
	    .channel = tr_xstrdup(pos[1]),
	    .msgid = tr_xstrdup(hex),
	    .ts = tr_now_ms(),
	    .author = {.id = tr_xstrdup("trestle-ctl"), .name = tr_xstrdup(author)},
	    .text = tr_xstrdup(pos[2]),
	};
	char *payload = NULL;
	char err[TR_ERR_LEN];
	int rc = tr_event_encode(&ev, &payload, err);
	if (rc != TR_OK) {
		fprintf(stderr, "trestle-ctl send: cannot build the event: %s\n", err);
		tr_event_cleanup(&ev);
		return CTL_EXIT_USAGE;
	}
	struct ctl c;
	rc = ctl_init(&c);
	if (rc != TR_EXIT_OK) {
		free(payload);
		tr_event_cleanup(&ev);
		return rc;
	}
	struct ctl_send st = {.id = ev.id, .topic = tr_topic(c.prefix, "in", connector)};
	c.cmd = &st;
	ctl_deadline(&c, CTL_WAIT_MS, ctl_send_timeout);
	if (ctl_bus_start(&c, NULL, 0, NULL, ctl_send_state, ctl_send_acked) != TR_OK) {
		ctl_finish(&c, TR_EXIT_CONFIG);
	} else if (tr_bus_publish(c.bus, st.topic, payload, strlen(payload), false, &st.mid) !=
	           TR_OK) {
		/* Queued until connected; a failure here is a local one (size). */
		ctl_fail(&c, TR_EXIT_FAIL, "cannot publish to %s", st.topic);
	}
	rc = ctl_run(&c);
	free(st.topic);
	free(payload);
	tr_event_cleanup(&ev);
	return rc;
}
