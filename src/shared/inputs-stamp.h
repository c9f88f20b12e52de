/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A cheap fingerprint of what a discovered merge reads before it mounts anything: the search
 * directories and every entry in them (images, sidecars, NAME.idmap overrides, NAME.v/ versions),
 * the host's os-release and the trusted certificates, each by stat (device, inode, mode, owner,
 * size, mtime, ctime), plus the options that shape the merge. If it is unchanged, so is every
 * image the merge would open, and refresh can skip without dissecting or mounting anything; any
 * doubt (a changed stat, a touched file) only costs the full comparison by image identity. */

#include <json-c/json.h>
#include <stdbool.h>

#include "util.h"

typedef struct InputsStampSources {
        const char * const *dirs;       /* relative to the root: search directories, read one level into NAME.v/ */
        const char * const *files;      /* relative to the root: single files or directories (by stat only) */
} InputsStampSources;

/* Takes ownership of options (also on failure). Unreadable or absent paths are recorded as such. */
int inputs_stamp_new(const char *root, const InputsStampSources *src, json_object *options, json_object **ret);
bool inputs_stamp_equal(json_object *recorded, json_object *now);
