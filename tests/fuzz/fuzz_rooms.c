/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* libFuzzer harness for the rooms file parser: any input either parses, and then survives the
 * JSON round trip unchanged, or is refused with at least one "FILE:LINE: reason" line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "rooms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tr_rooms r;
	struct tr_buf errors;
	tr_buf_init(&errors, 64 * 1024);
	int rc = tr_rooms_parse((const char *)data, size, "fuzz.ini", &r, &errors);
	if (rc != TR_OK) {
		if (rc != TR_E_CONFIG || r.n_rooms || strncmp(tr_buf_str(&errors), "fuzz.ini:", 9))
			abort();
		goto out;
	}
	if (errors.len)
		abort();
	json_t *j = tr_rooms_to_json(&r);
	char *a = json_dumps(j, JSON_COMPACT);
	struct tr_rooms back;
	char err[TR_ERR_LEN];
	if (!a || tr_rooms_from_json(j, &back, err) != TR_OK)
		abort();
	json_t *j2 = tr_rooms_to_json(&back);
	char *b = json_dumps(j2, JSON_COMPACT);
	if (!b || strcmp(a, b) != 0)
		abort();
	size_t n = 0;
	const char **conns = tr_rooms_connectors(&back, &n);
	for (size_t i = 0; i < n; i++) {
		size_t nc = 0;
		const char **chans = tr_rooms_channels(&back, conns[i], &nc);
		if (nc == 0)
			abort();
		free(chans);
	}
	free(conns);
	free(a);
	free(b);
	json_decref(j);
	json_decref(j2);
	tr_rooms_cleanup(&back);
out:
	tr_rooms_cleanup(&r);
	tr_buf_cleanup(&errors);
	return 0;
}
