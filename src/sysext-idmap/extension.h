/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One extension image taken from discovery to "ready to be layered": dissected, mounted as
 * detached mounts, its extension-release found and checked against the host. */

#include <stdbool.h>

#include "dissect.h"
#include "extension-release.h"
#include "image.h"
#include "util.h"

typedef struct HostInfo {
        char *root;             /* NULL or "/" for the host */
        ReleaseFile *release;
        const char *scope;      /* "system" or "initrd" */
} HostInfo;

int host_info_load(const char *root, HostInfo *ret);
void host_info_done(HostInfo *h);

typedef struct Extension {
        Image *image;
        DissectedImage *dissected;
        ImageMounts mounts;
        ReleaseFile *release;
        char *release_path;
        bool compatible;
        char *reason;           /* why not compatible */
        bool reload_manager;    /* EXTENSION_RELOAD_MANAGER=1 */
} Extension;

Extension *extension_free(Extension *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(Extension *, extension_free);
void extension_array_free(Extension **v, size_t n);

typedef struct ExtensionOptions {
        const HostInfo *host;
        bool force;             /* compatible regardless of extension-release fields */
        bool mount;             /* false: dissect only (no extension-release for raw images) */
} ExtensionOptions;

/* Takes ownership of image (also on failure). A bad image (unreadable, corrupt, no
 * extension-release, ships os-release) is an error with a message naming it; an incompatible one
 * is returned with compatible=false and a reason. */
int extension_open(Image *image, const ExtensionOptions *o, Extension **ret);

/* The detached mount and subdirectory that hold `hierarchy` in this extension. -ENOENT if the
 * image does not provide it. */
int extension_hierarchy(const Extension *e, const char *hierarchy, int *ret_mnt_fd, char **ret_subdir, int *ret_dir_fd);
