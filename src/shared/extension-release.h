/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "image-class.h"
#include "util.h"

/* os-release / extension-release parsing and systemd-sysext's compatibility rules. */

#include <stdbool.h>
#include <stddef.h>

/* A parsed env-style file: pairs of key/value as a NULL-terminated strv: k0, v0, k1, v1, … */
typedef struct ReleaseFile {
        char **pairs;
} ReleaseFile;

ReleaseFile *release_file_free(ReleaseFile *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(ReleaseFile *, release_file_free);

/* Parse os-release syntax (KEY=VALUE, shell-like quoting, comments). Refuses binary junk, lines over
 * 64 KiB and invalid keys with -EBADMSG and an error naming `what` and the line number. */
int release_file_parse(const char *what, const char *data, size_t size, ReleaseFile **ret);
const char *release_file_get(const ReleaseFile *f, const char *key);

/* Host release: --root's etc/os-release, else usr/lib/os-release. */
int host_release_load(const char *root, ReleaseFile **ret);
/* Host scope: "initrd" if root/etc/initrd-release exists, else "system". */
const char *host_scope(const char *root);

/* Find and parse the extension-release of an image of that class (usr/lib/extension-release.d or
 * etc/extension-release.d), given an fd to the image's root directory (the tree that contains usr/)
 * or, for a usr-only image, an fd to the usr tree (usr_only = true; a confext has none there).
 * Exact name first, else a single extension-release.* file whose xattr user.extension-release.strict
 * is "0"/false. Returns -ENOENT (with message) if there is none. ret_path may be NULL. */
int extension_release_load(int image_root_fd, bool usr_only, ImageClass class, const char *image_name,
                           ReleaseFile **ret, char **ret_path);

/* Does the image ship usr/lib/os-release (which makes it an OS, not an extension)? */
int image_has_os_release(int image_root_fd, bool usr_only);

/* systemd-sysext's checks, in its order: SYSEXT_SCOPE, ARCHITECTURE, ID (_any, ID_LIKE),
 * SYSEXT_LEVEL if both set else VERSION_ID (CONFEXT_SCOPE and CONFEXT_LEVEL for a confext). 1 = compatible, 0 = not (ret_reason says which field and
 * why, e.g. "ID=fedora does not match host ID=debian"), negative errno on error. */
int extension_release_check(ImageClass class, const char *image_name, const ReleaseFile *ext, const ReleaseFile *host,
                            const char *host_scope, char **ret_reason);

/* The native architecture as systemd names it (x86-64, arm64, …). */
const char *native_architecture(void);
