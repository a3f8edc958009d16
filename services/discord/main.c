/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-discord: bridges Discord channels (Gateway v10 in, webhooks out). */
#include "discord.h"

int main(int argc, char **argv)
{
	return tr_connector_main(&discord_connector, argc, argv);
}
