/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl's private header: the state one command runs with (a loop, the bus or Redis,
 * a deadline and the signals), the commands, and the output helpers. Private to this folder. */
#ifndef TRESTLE_CTL_CTL_H
#define TRESTLE_CTL_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>
#include "bus.h"
#include "redis.h"

/* sysexits.h values, spelt out: EX_USAGE for bad command lines, EX_CONFIG as TR_EXIT_CONFIG. */
#define CTL_EXIT_USAGE 64
/* How long a command waits for the broker or Redis before giving up. */
#define CTL_WAIT_MS 5000

struct ctl;
typedef void ctl_timeout_fn(struct ctl *c);

struct ctl {
	uv_loop_t loop;
	/* From the environment (common/env.h), read once at start. */
	char *mqtt_url, *mqtt_ca_file, *redis_url, *prefix;
	char client_id[64];
	int exit_code;
	bool finishing;
	uv_timer_t deadline;
	ctl_timeout_fn *on_deadline;
	uv_signal_t sigint, sigterm;
	bool signals_on;
	struct tr_bus *bus;
	struct tr_redis *redis;
	void *cmd; /* the running command's own state */
};

/* The whole tool: returns the process exit code. */
int ctl_main(int argc, char **argv);

/* A command: argv[0] is the command name; returns the process exit code. */
typedef int ctl_cmd_fn(int argc, char **argv);

struct ctl_command {
	const char *name;
	const char *args;    /* one-line synopsis after the name */
	const char *summary; /* one line */
	const char *help;    /* the rest of its --help text */
	ctl_cmd_fn *run;
	bool needs_env;
};

int ctl_check(int argc, char **argv);
int ctl_rooms(int argc, char **argv);
int ctl_status(int argc, char **argv);
int ctl_tail(int argc, char **argv);
int ctl_send(int argc, char **argv);
int ctl_health(int argc, char **argv);

/* Help: the command's usage on out. Returns code (0 for --help on stdout, 64 on errors). */
int ctl_usage(const char *cmd, FILE *out, int code);
/* True if argv[1..] holds -h or --help before any "--". */
bool ctl_wants_help(int argc, char **argv);

/* ---- running a command on the loop (ctl_loop.c) ---- */

/* Reads the configuration and sets up the loop: TR_EXIT_OK, then ctl_run must follow; or
 * TR_EXIT_CONFIG after logging every problem, with nothing to release. */
int ctl_init(struct ctl *c);
/* Creates and starts the bus with these subscriptions and callbacks (c as arg). */
int ctl_bus_start(struct ctl *c, const char *const *subs, size_t n_subs, tr_bus_msg_fn *on_msg,
                  tr_bus_state_fn *on_state, tr_bus_acked_fn *on_acked);
int ctl_redis_start(struct ctl *c, tr_redis_state_fn *on_state);
/* (Re)arms the one deadline timer. */
void ctl_deadline(struct ctl *c, unsigned ms, ctl_timeout_fn *fn);
/* SIGINT/SIGTERM end the command with exit code 0. */
void ctl_signals(struct ctl *c);
/* Runs the loop until ctl_finish has closed everything, frees it all; returns the exit code. */
int ctl_run(struct ctl *c);
/* Ends the command: closes the bus (letting acks drain), Redis, timers and signals. Once. */
void ctl_finish(struct ctl *c, int code);
/* "trestle-ctl: " + message on stderr, then ctl_finish(c, code). */
void ctl_fail(struct ctl *c, int code, const char *fmt, ...) TR_PRINTF(3, 4);

/* The URL with its password masked, for messages; newly allocated. */
char *ctl_url_safe(const char *url);

/* ---- output (ctl_fmt.c): pure functions ---- */

/* "2024-11-25 06:40:01Z" (seconds) or "2024-11-25T06:40:01.123Z" (iso, milliseconds), UTC. */
void ctl_fmt_time(char out[64], int64_t ms, bool iso);
/* s made safe for one terminal line: control characters and invalid UTF-8 escaped (\n, \t,
 * \xHH), at most max bytes of input used ("..." appended when cut). quote: wrap in double
 * quotes when empty or holding a space or a quote. Newly allocated. */
char *ctl_fmt_field(const char *s, size_t len, size_t max, bool quote);
/* The network implied by a connector instance name: up to its first '-'. Newly allocated. */
char *ctl_network_of(const char *connector);
/* Random lower-case hex, 2*n characters, NUL-terminated in out (2*n+1 bytes). */
void ctl_random_hex(char *out, size_t n);

/* A table printed with aligned columns; cells are sanitised with ctl_fmt_field. */
struct ctl_table {
	size_t ncols, nrows;
	char **cells; /* row-major, nrows * ncols */
};
void ctl_table_init(struct ctl_table *t, size_t ncols);
/* Adds a row of ncols cells (NULL shows as "-"). */
void ctl_table_add(struct ctl_table *t, const char *const *cols);
/* Prints the rows; columns padded to their widest cell, the last one not padded. */
void ctl_table_print(const struct ctl_table *t, FILE *out);
void ctl_table_cleanup(struct ctl_table *t);

#endif
