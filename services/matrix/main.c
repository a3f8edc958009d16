/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-matrix: `trestle-matrix` runs the connector; `trestle-matrix registration` prints the
 * appservice registration YAML for the homeserver admin. */
#include <string.h>
#include "matrix.h"

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "registration") == 0)
		return matrix_registration_main();
	return tr_connector_main(&matrix_connector, argc, argv);
}
