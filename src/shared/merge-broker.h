/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* `merge` inside an unprivileged container: root of a user namespace that is not the initial one,
 * with the broker's socket bound in. The broker mounts the host's trusted extensions (or the given
 * images, which then need a signature) idmapped into the container's user namespace, and the
 * overlays are built and attached on the container's own /usr and /opt: its mount namespace only. */

#include <stdbool.h>

#include "merge.h"

/* Are we root of a user namespace other than the initial one? 1 yes, 0 no. */
int merge_broker_in_container(void);

/* merge_extensions() through the broker at socket (NULL = the default): c->images (opened here,
 * as the caller) or, without images, the host's trusted extensions; c->hierarchies. policy: the
 * caller's --image-policy= as given (NULL = none). --root=, --namespace-of=, --mutable= and
 * --idmap= do not apply (-EINVAL). -ENOTCONN: the broker is not running. */
int merge_broker_extensions(const MergeContext *c, const char *socket, const char *policy);
