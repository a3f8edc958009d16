/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-xmpp: bridges XMPP multi-user chat rooms (see README.md). */
#include "xmpp.h"

int main(int argc, char **argv)
{
	return tr_connector_main(&xmpp_connector, argc, argv);
}
