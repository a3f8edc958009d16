/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* libFuzzer harness for the v1 bus decoders (common/event.c), the parsers of everything a
 * service reads from MQTT. Each input goes through every decoder; a decoded event must encode,
 * and (unless the re-encoding is over the payload limit) decode again to the same struct. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void tr_fuzz_check(bool cond)
{
	if (!cond)
		abort();
}

static bool tr_fuzz_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void tr_fuzz_event(const uint8_t *data, size_t size, bool want_dest)
{
	struct tr_event ev, again;
	char err[TR_ERR_LEN];
	char *out = NULL;
	if (tr_event_decode(data, size, want_dest, &ev, err) != TR_OK) {
		/* A failed decode leaves nothing behind and always says why. */
		tr_fuzz_check(ev.json == NULL && ev.id == NULL && err[0] != '\0');
		return;
	}
	tr_fuzz_check(tr_event_validate(&ev, want_dest, err) == TR_OK);
	int rc = tr_event_encode(&ev, &out, err);
	/* Re-encoding may grow past the limit (reals such as 1e-7 print longer); nothing else
	 * may fail for an event that decoded. */
	tr_fuzz_check(rc == TR_OK || rc == TR_E_TOOBIG);
	if (rc == TR_OK) {
		tr_fuzz_check(strlen(out) <= TR_EVENT_MAX_PAYLOAD);
		tr_fuzz_check(tr_event_decode(out, strlen(out), want_dest, &again, err) == TR_OK);
		tr_fuzz_check(again.type == ev.type && again.ts == ev.ts &&
		              again.n_attachments == ev.n_attachments &&
		              again.removed == ev.removed && again.has_dest == ev.has_dest);
		tr_fuzz_check(tr_fuzz_str_eq(again.id, ev.id) &&
		              tr_fuzz_str_eq(again.channel, ev.channel) &&
		              tr_fuzz_str_eq(again.text, ev.text) &&
		              tr_fuzz_str_eq(again.author.id, ev.author.id) &&
		              tr_fuzz_str_eq(again.dest.channel, ev.dest.channel));
		tr_event_cleanup(&again);
		free(out);
	}
	tr_event_cleanup(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[TR_ERR_LEN];
	char *out = NULL;

	tr_fuzz_event(data, size, false);
	tr_fuzz_event(data, size, true);

	struct tr_ack ack;
	if (tr_ack_decode(data, size, &ack, err) == TR_OK) {
		tr_fuzz_check(tr_ack_encode(&ack, &out) == TR_OK);
		struct tr_ack again;
		tr_fuzz_check(tr_ack_decode(out, strlen(out), &again, err) == TR_OK);
		tr_fuzz_check(again.ok == ack.ok && tr_fuzz_str_eq(again.id, ack.id));
		tr_ack_cleanup(&again);
		free(out);
		tr_ack_cleanup(&ack);
	}

	struct tr_status st;
	if (tr_status_decode(data, size, &st, err) == TR_OK) {
		tr_fuzz_check(tr_status_encode(&st, &out) == TR_OK);
		struct tr_status again;
		tr_fuzz_check(tr_status_decode(out, strlen(out), &again, err) == TR_OK);
		tr_fuzz_check(again.state == st.state && again.since == st.since);
		tr_status_cleanup(&again);
		free(out);
		tr_status_cleanup(&st);
	}

	char **channels = NULL;
	size_t n = 0;
	if (tr_channels_decode(data, size, &channels, &n, err) == TR_OK) {
		tr_fuzz_check(channels[n] == NULL);
		int rc = tr_channels_encode((const char *const *)channels, n, &out);
		tr_fuzz_check(rc == TR_OK || rc == TR_E_TOOBIG);
		if (rc == TR_OK) {
			char **again = NULL;
			size_t n2 = 0;
			tr_fuzz_check(tr_channels_decode(out, strlen(out), &again, &n2, err) ==
			              TR_OK);
			tr_fuzz_check(n2 == n);
			tr_channels_free(again);
			free(out);
		}
		tr_channels_free(channels);
	}
	return 0;
}
