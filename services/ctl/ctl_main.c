/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl's command table and dispatch: picks the command, answers --help, and hands over
 * to the command's own file (ctl_<command>.c). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "backoff.h"
#include "ctl.h"
#include "env.h"
#include "log.h"

static const struct ctl_command ctl_commands[] = {
    {
        .name = "check",
        .args = "FILE",
        .summary = "validate a rooms file",
        .help =
            "Reads FILE as the router would (the rooms file format) and reports every problem as\n"
            "FILE:LINE: reason on stderr. Needs neither the broker nor Redis.\n"
            "\n"
            "Exit status: 0 when the file is valid, 78 when it is not or cannot be read.\n",
        .run = ctl_check,
    },
    {
        .name = "rooms",
        .args = "",
        .summary = "show the routing table the router keeps in Redis",
        .help = "Reads the key {prefix}:rooms from Redis (written by the router from its\n"
                "rooms file) and prints one line per endpoint: room, connector, channel, mode.\n"
                "\n"
                "Exit status: 1 when Redis cannot be reached within 5 s or the key is missing.\n",
        .run = ctl_rooms,
        .needs_env = true,
    },
    {
        .name = "status",
        .args = "",
        .summary = "show every connector's retained status",
        .help = "Reads the retained messages on {prefix}/v1/status/+ and prints one line per\n"
                "connector: connector, network, state, since (UTC), detail.\n"
                "\n"
                "Exit status: 1 when the broker does not answer within 5 s.\n",
        .run = ctl_status,
        .needs_env = true,
    },
    {
        .name = "tail",
        .args = "[CONNECTOR] [--text]",
        .summary = "follow in/out/ack/status events",
        .help = "Prints one line per event published from now on, for every connector or for\n"
                "CONNECTOR only: time (UTC), kind, connector, type, id, channel, author and\n"
                "text length. Payloads that do not decode are shown as one warning line.\n"
                "Runs until interrupted (SIGINT or SIGTERM), then exits 0.\n"
                "\n"
                "  --text   also print each message's text (escaped to one line)\n",
        .run = ctl_tail,
        .needs_env = true,
    },
    {
        .name = "send",
        .args = "CONNECTOR CHANNEL TEXT [--author NAME] [--network NET]",
        .summary = "inject a message as if CONNECTOR had seen it",
        .help = "Publishes a v1 message event on {prefix}/v1/in/CONNECTOR, waits for the\n"
                "broker to acknowledge it and prints its id (CONNECTOR:ctl:<random hex>).\n"
                "\n"
                "  --author NAME   the author's name (default trestle-ctl)\n"
                "  --network NET   the network (default: CONNECTOR up to its first '-')\n",
        .run = ctl_send,
        .needs_env = true,
    },
    {
        .name = "health",
        .args = "[CONNECTOR | --url URL | --broker] [--strict]",
        .summary = "exit 0 when a connector, the router or the broker is healthy",
        .help = "CONNECTOR: its retained status must be online (or degraded, unless --strict).\n"
                "--url http://host:port/path: the answer must be 200 (the router's /healthz).\n"
                "--broker: the broker must answer. With no argument, what TRESTLE_SERVICE\n"
                "names (set by the images): router (/healthz on TRESTLE_METRICS_ADDR), ctl\n"
                "(the broker) or a connector (TRESTLE_CONNECTOR, default the network).\n"
                "\n"
                "Exit status: 0 healthy, 1 not (the reason on stderr); the container health\n"
                "check of every Trestle image.\n",
        .run = ctl_health,
        .needs_env = true,
    },
};

static const char ctl_env_help[] =
    "Environment:\n"
    "  TRESTLE_MQTT_URL      broker (default mqtt://127.0.0.1:1883)\n"
    "  TRESTLE_MQTT_CA_FILE  CA bundle for mqtts:// (default: the system's)\n"
    "  TRESTLE_REDIS_URL     Redis (default redis://127.0.0.1:6379/0)\n"
    "  TRESTLE_TOPIC_PREFIX  topic and key prefix (default trestle)\n"
    "  TRESTLE_LOG_LEVEL     error, warn, info, debug (default warn for this tool)\n"
    "Each may be given as NAME_FILE, the path of a file holding the value.\n";

static const struct ctl_command *ctl_find(const char *name)
{
	for (size_t i = 0; i < TR_ARRAY_LEN(ctl_commands); i++)
		if (strcmp(ctl_commands[i].name, name) == 0)
			return &ctl_commands[i];
	return NULL;
}

int ctl_usage(const char *cmd, FILE *out, int code)
{
	const struct ctl_command *c = cmd ? ctl_find(cmd) : NULL;
	if (c) {
		/* The summary doubles as a sentence: capitalised here, lower-case in the list. */
		fprintf(out, "Usage: trestle-ctl %s%s%s\n\n%c%s.\n\n%s\n%s", c->name,
		        *c->args ? " " : "", c->args, toupper((unsigned char)c->summary[0]),
		        c->summary + 1, c->help, c->needs_env ? ctl_env_help : "");
		return code;
	}
	fprintf(out, "Usage: trestle-ctl COMMAND [ARGS]\n\nTrestle's admin tool. Commands:\n");
	for (size_t i = 0; i < TR_ARRAY_LEN(ctl_commands); i++)
		fprintf(out, "  %-7s %s\n", ctl_commands[i].name, ctl_commands[i].summary);
	fprintf(out, "\n'trestle-ctl COMMAND --help' describes one command.\n\n%s", ctl_env_help);
	return code;
}

bool ctl_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

int ctl_main(int argc, char **argv)
{
	tr_log_init("trestle-ctl", TR_LOG_WARN);
	tr_random_seed();
	if (argc < 2) {
		fprintf(stderr, "trestle-ctl: no command given\n");
		return ctl_usage(NULL, stderr, CTL_EXIT_USAGE);
	}
	const char *name = argv[1];
	if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0)
		return ctl_usage(NULL, stdout, TR_EXIT_OK);
	if (strcmp(name, "help") == 0) {
		if (argc > 2 && !ctl_find(argv[2])) {
			fprintf(stderr, "trestle-ctl: unknown command '%s'\n", argv[2]);
			return ctl_usage(NULL, stderr, CTL_EXIT_USAGE);
		}
		return ctl_usage(argc > 2 ? argv[2] : NULL, stdout, TR_EXIT_OK);
	}
	const struct ctl_command *c = ctl_find(name);
	if (!c) {
		fprintf(stderr, "trestle-ctl: unknown command '%s'\n", name);
		return ctl_usage(NULL, stderr, CTL_EXIT_USAGE);
	}
	if (ctl_wants_help(argc - 1, argv + 1))
		return ctl_usage(c->name, stdout, TR_EXIT_OK);
	return c->run(argc - 1, argv + 1);
}
