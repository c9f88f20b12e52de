/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Image classes, as systemd names them: a system extension (sysext) extends /usr and /opt, a
 * configuration extension (confext) extends /etc. One table says everything that differs between
 * them, so discovery, the extension-release checks, the markers and the merge take a class and
 * never spell a path of their own. */

#include <stdint.h>

#include "util.h"

typedef enum ImageClass {
        IMAGE_CLASS_SYSEXT,             /* the zero value: a context that names no class is sysext */
        IMAGE_CLASS_CONFEXT,
        _IMAGE_CLASS_MAX,
        _IMAGE_CLASS_INVALID = -EINVAL,
} ImageClass;

typedef struct ImageClassInfo {
        const char *name;                       /* "sysext", "confext": --class=, overlay source */
        const char *program;                    /* the invocation name that selects it */
        const char *what;                       /* "system extension images" */
        const char *where;                      /* "/usr/ and /opt/" */
        const char * const *search_dirs;        /* relative to the root, in order of precedence */
        const char *release_dir;                /* in the image's root tree */
        const char *release_dir_in_usr;         /* the same in a usr-only tree, or NULL (none there) */
        const char *scope_key, *level_key;      /* SYSEXT_SCOPE / CONFEXT_SCOPE, …_LEVEL */
        const char *meta_dir;                   /* ".systemd-sysext": the marker directory */
        const char *list_file;                  /* the marker listing the merged images' names */
        const char *default_hierarchies;        /* colon-separated */
        const char *hierarchies_env;            /* the debugging override the CLI reads */
        uint64_t overlay_attrs;                 /* MOUNT_ATTR_* the overlay always gets */
        const char *default_image_policy;       /* NULL: policy.h's sysext default */
} ImageClassInfo;

const ImageClassInfo *image_class_info(ImageClass c);
ImageClass image_class_from_string(const char *s);
/* The class an invocation name selects ("confext-idmap", also as a path), else sysext. */
ImageClass image_class_from_program(const char *argv0);
