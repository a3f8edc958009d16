/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-router: reads its configuration from the environment and runs the router. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backoff.h"
#include "alloc.h"
#include "env.h"
#include "event.h"
#include "log.h"
#include "router.h"

static const char router_usage[] =
    "usage: trestle-router\n"
    "Routes events between Trestle connectors over MQTT, with state in Redis.\n"
    "Configuration (each also as NAME_FILE):\n"
    "  TRESTLE_MQTT_URL        broker, mqtt[s]://[user[:password]@]host[:port]  "
    "(mqtt://127.0.0.1:1883)\n"
    "  TRESTLE_MQTT_CA_FILE    CA bundle for mqtts:// (default: the system's)\n"
    "  TRESTLE_REDIS_URL       redis://[:password@]host[:port][/db]  (redis://127.0.0.1:6379/0)\n"
    "  TRESTLE_TOPIC_PREFIX    topic and key prefix  (trestle)\n"
    "  TRESTLE_ROOMS           rooms file  (rooms.ini)\n"
    "  TRESTLE_STATE_DIR       journal directory  (state)\n"
    "  TRESTLE_METRICS_ADDR    host:port for /metrics and /healthz  (off)\n"
    "  TRESTLE_RETENTION_DAYS  how long id mappings are kept  (30)\n"
    "  TRESTLE_ACK_WAIT_MS     how long an edit waits for its message's ack  (5000)\n"
    "  TRESTLE_ROUTER_ID       MQTT client id of the persistent session  (trestle-router)\n"
    "  TRESTLE_LOG_LEVEL       error, warn, info, debug  (info)\n"
    "Signals: SIGHUP reloads the rooms file; SIGTERM/SIGINT stop after in-flight events.\n";

int main(int argc, char **argv)
{
	if (argc > 1) {
		bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
		fputs(router_usage, help ? stdout : stderr);
		return help ? 0 : 64;
	}
	signal(SIGPIPE, SIG_IGN);
	tr_random_seed();
	struct tr_env env;
	tr_env_init(&env, NULL);
	char *level_s = tr_env_str(&env, "TRESTLE_LOG_LEVEL", "info");
	enum tr_log_level level = TR_LOG_INFO;
	if (tr_log_level_parse(level_s, &level) != TR_OK)
		tr_env_fail(&env, "TRESTLE_LOG_LEVEL", "must be error, warn, info or debug");
	tr_log_init("router", level);
	free(level_s);
	struct router_config cfg = {
	    .mqtt_url = tr_env_str(&env, "TRESTLE_MQTT_URL", "mqtt://127.0.0.1:1883"),
	    .mqtt_ca_file = tr_env_str(&env, "TRESTLE_MQTT_CA_FILE", NULL),
	    .redis_url = tr_env_str(&env, "TRESTLE_REDIS_URL", "redis://127.0.0.1:6379/0"),
	    .prefix = tr_env_str(&env, "TRESTLE_TOPIC_PREFIX", "trestle"),
	    .rooms_path = tr_env_str(&env, "TRESTLE_ROOMS", "rooms.ini"),
	    .state_dir = tr_env_str(&env, "TRESTLE_STATE_DIR", "state"),
	    .metrics_addr = tr_env_str(&env, "TRESTLE_METRICS_ADDR", NULL),
	    .client_id = tr_env_str(&env, "TRESTLE_ROUTER_ID", "trestle-router"),
	    .retention_days = tr_env_int(&env, "TRESTLE_RETENTION_DAYS", 30, 1, 3650),
	    .ack_wait_ms = tr_env_int(&env, "TRESTLE_ACK_WAIT_MS", 5000, 0, 600000),
	};
	char *parts = tr_env_str(&env, "TRESTLE_ROUTER_CONNECTORS", NULL);
	for (char *tok = parts; tok && *tok;) {
		size_t n = strcspn(tok, ", ");
		char *next = tok + n + (tok[n] ? 1 : 0);
		tok[n] = '\0';
		if (n == 0) {
			tok = next;
			continue;
		}
		if (!tr_connector_name_valid(tok)) {
			tr_env_fail(&env, "TRESTLE_ROUTER_CONNECTORS", "bad connector name");
		} else {
			cfg.connectors =
			    tr_xrealloc(cfg.connectors, (cfg.n_connectors + 1) * sizeof(char *));
			cfg.connectors[cfg.n_connectors++] = tr_xstrdup(tok);
		}
		tok = next;
	}
	free(parts);
	if (cfg.prefix && (!*cfg.prefix || strpbrk(cfg.prefix, "+#/ ")))
		tr_env_fail(&env, "TRESTLE_TOPIC_PREFIX",
		            "must be one topic level without + # / or spaces");
	int code = TR_EXIT_CONFIG;
	if (tr_env_finish(&env) == TR_OK) {
		tr_info("starting prefix=%s rooms=%s state_dir=%s retention_days=%ld", cfg.prefix,
		        cfg.rooms_path, cfg.state_dir, cfg.retention_days);
		code = router_run(&cfg);
	}
	free(cfg.mqtt_url);
	free(cfg.redis_url);
	free(cfg.mqtt_ca_file);
	free(cfg.prefix);
	free(cfg.rooms_path);
	free(cfg.state_dir);
	free(cfg.metrics_addr);
	free(cfg.client_id);
	for (size_t i = 0; i < cfg.n_connectors; i++)
		free(cfg.connectors[i]);
	free(cfg.connectors);
	tr_env_cleanup(&env);
	return code;
}
