/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-irc: bridges IRC channels (RFC 2812 + IRCv3) to the Trestle bus. See README.md. */
#include "connector.h"
#include "irc.h"

int main(int argc, char **argv)
{
	return tr_connector_main(&irc_connector, argc, argv);
}
