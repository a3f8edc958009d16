/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl: the admin command line (see README.md). */
#include "ctl.h"

int main(int argc, char **argv)
{
	return ctl_main(argc, argv);
}
