#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Builds one image per service with the names and tags of deploy/images.env:
#   deploy/docker/build.sh [SERVICE...]     (default: every service that has a main.c)
# Needs a Docker engine; DOCKER=podman works too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=../images.env
. deploy/images.env
DOCKER=${DOCKER:-docker}
services=("$@")
if [ ${#services[@]} -eq 0 ]; then
	for s in $TRESTLE_SERVICES; do
		[ -f "services/$s/main.c" ] && services+=("$s")
	done
fi
for s in "${services[@]}"; do
	tag="$TRESTLE_IMAGE_PREFIX/$s:$TRESTLE_VERSION"
	echo "== $tag"
	"$DOCKER" build -f deploy/docker/Dockerfile --build-arg "SERVICE=$s" \
		--build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --build-arg "TRESTLE_VERSION=$TRESTLE_VERSION" \
		-t "$tag" .
done
