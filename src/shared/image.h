/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "util.h"

/* Discovery of extension images, as systemd-sysext does it: search directories in order, the
 * first directory that has a name wins it, empty directories and /dev/null symlinks mask, and a
 * NAME.v/ or NAME.raw.v/ directory is the image NAME at its best version for this machine (vpick.h). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

typedef enum ImageType {
        IMAGE_DIRECTORY,
        IMAGE_RAW,              /* a regular file: bare filesystem or GPT disk image (dissect tells) */
        IMAGE_BLOCK,            /* a block device */
        _IMAGE_TYPE_MAX,
        _IMAGE_TYPE_INVALID = -EINVAL,
} ImageType;

typedef struct Image {
        char *name;             /* image name: file name without .sysext.raw/.raw, cut at the first '_';
                                 * NAME of a NAME.v/ directory */
        char *version;          /* the part after the first '_' (without suffix), or NULL; the picked
                                 * VERSION of a .v directory */
        char *path;             /* absolute path as seen by this process (includes --root) */
        ImageType type;
        bool masked;            /* an empty directory or a symlink to /dev/null */
        bool no_symlinks;       /* path is canonical and must be opened without following any symlink */
        uint64_t mtime_usec;
        uint64_t size;
} Image;

Image *image_free(Image *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(Image *, image_free);
void image_array_free(Image **images, size_t n);
Image *image_dup(const Image *i);

const char *image_type_to_string(ImageType t);

/* Split a directory entry name into image name and version. Returns -EINVAL for names that are not
 * extension images (wrong suffix, empty name, control characters, '/' …). ret_version may be NULL;
 * is_dir: directories need no suffix. */
int image_name_parse(const char *filename, bool is_dir, char **ret_name, char **ret_version);
bool image_name_is_valid(const char *name);

/* Build an Image from an explicit path (CLI arguments: merge IMAGE…, dissect IMAGE); a NAME.v/ or
 * NAME.raw.v/ directory is its picked version, as in discovery. */
int image_from_path(const char *path, Image **ret);

/* Discover all system extension images below root (NULL = "/"). Masked names are included with masked=true, so that
 * list can show them; callers that merge skip them. The result is sorted by name (version_compare),
 * ascending, which is merge order (the last one ends up on top). */
int image_discover(const char *root, Image ***ret_images, size_t *ret_n);
/* The same over other search directories (relative to root, which confines their symlinks): a
 * class's (image-class.h), the PAM module's. */
int image_discover_in(const char *root, const char * const *dirs, Image ***ret_images, size_t *ret_n);

/* Whether img, found by discovery in system_dir, is the administrator's: only root can change it,
 * the directories leading to it, and, for an entry that resolves elsewhere, what it resolves to.
 * Only images lying in system_dir itself count (discovery gives resolved paths, whose hops cannot
 * be checked afterwards). 1 yes; 0 no, with *ret_why saying who else can ("it is reached through a
 * symlink out of /var/lib/extensions"); negative errno only for out of memory: an image that
 * cannot be checked is not trusted. Used by front ends that must tell trusted images from others
 * (the PAM module, the broker daemon). */
int image_is_root_controlled(const Image *img, const char *system_dir, char **ret_why);
