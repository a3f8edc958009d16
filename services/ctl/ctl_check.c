/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl check FILE: validates a rooms file with the router's own parser. */
#include <stdio.h>
#include <string.h>
#include "ctl.h"
#include "rooms.h"

int ctl_check(int argc, char **argv)
{
	const char *file = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0 && i + 1 < argc && !file) {
			file = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "trestle-ctl check: unknown option '%s'\n", argv[i]);
			return ctl_usage("check", stderr, CTL_EXIT_USAGE);
		} else if (!file) {
			file = argv[i];
		} else {
			fprintf(stderr, "trestle-ctl check: one FILE only\n");
			return ctl_usage("check", stderr, CTL_EXIT_USAGE);
		}
	}
	if (!file) {
		fprintf(stderr, "trestle-ctl check: FILE is missing\n");
		return ctl_usage("check", stderr, CTL_EXIT_USAGE);
	}
	struct tr_rooms r;
	struct tr_buf errors;
	/* Enough for thousands of lines; past it the file is hopeless anyway. */
	tr_buf_init(&errors, 1024 * 1024);
	int rc = tr_rooms_load(file, &r, &errors);
	if (rc != TR_OK) {
		fputs(tr_buf_str(&errors), stderr);
		tr_buf_cleanup(&errors);
		return TR_EXIT_CONFIG;
	}
	size_t eps = 0;
	for (size_t i = 0; i < r.n_rooms; i++)
		eps += r.rooms[i].n_eps;
	/* Always plural: scripts match this line. */
	printf("%s: ok (%zu rooms, %zu endpoints)\n", file, r.n_rooms, eps);
	tr_rooms_cleanup(&r);
	tr_buf_cleanup(&errors);
	return TR_EXIT_OK;
}
