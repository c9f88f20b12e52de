/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The broker's layer store as the source of a trusted image's partitions, for root front ends (the
 * PAM module, merge --namespace-of): when sysext-idmapd runs, they take plain (not idmapped)
 * detached clones of its one shared superblock per image instead of mounting each image again, so
 * N sessions on one image cost one loop device and one page cache, not N.
 *
 * The local engine keeps every decision (image policy, signatures, extension-release, markers):
 * the broker only mounts, and is held to what was decided. It is asked with a policy naming, for
 * each partition, exactly the protection the engine chose, and what it returns must be the
 * partitions dissect selected (designator, file system type, offset and size). Never for an image
 * a user controls (those keep their private copy or verity here), never for a directory. */

#include <stdbool.h>

#include "extension.h"

/* One per merge (merge.c), asked for each image in turn. */
typedef struct LayerProvider {
        const char *broker;             /* the broker's socket (borrowed); NULL = never */
        bool gone;                      /* nobody listened, not root, or wedged: not asked again */
} LayerProvider;

/* An ExtensionProvideFunc (userdata: a LayerProvider): 1 and *ret the clones of the broker's
 * mounts of every partition e uses (verity results recorded as checked by the broker); 0 if e is
 * not for the broker (user controlled, a directory, a verity mode other than auto, not root) or
 * nobody listens (silently: mount it here); a negative errno with a message if the broker failed
 * or is not root's (the caller mounts it here and says so). *ret untouched unless 1. */
int layer_provider_mount(Extension *e, const ExtensionOptions *o, void *userdata, ImageMounts *ret);
