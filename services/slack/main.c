/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-slack: bridges one Slack workspace over Socket Mode (services/slack/README.md). */
#include "connector.h"

extern const struct tr_connector slack_connector;

int main(int argc, char **argv)
{
	return tr_connector_main(&slack_connector, argc, argv);
}
