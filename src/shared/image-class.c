/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>

#include "image-class.h"
#include "mountapi.h"

static const char * const sysext_search_dirs[] = {
        "etc/extensions",
        "run/extensions",
        "var/lib/extensions",
        NULL,
};

/* systemd-confext(8): no /etc/confexts, although issue 13 names it: an /etc that is itself merged
 * from confexts cannot be where they are found. */
static const char * const confext_search_dirs[] = {
        "run/confexts",
        "var/lib/confexts",
        "usr/lib/confexts",
        "usr/local/lib/confexts",
        NULL,
};

static const ImageClassInfo image_class_table[_IMAGE_CLASS_MAX] = {
        [IMAGE_CLASS_SYSEXT] = {
                .name = "sysext",
                .program = "sysext-idmap",
                .what = "system extension images",
                .where = "/usr/ and /opt/",
                .search_dirs = sysext_search_dirs,
                .release_dir = "usr/lib/extension-release.d",
                .release_dir_in_usr = "lib/extension-release.d",
                .scope_key = "SYSEXT_SCOPE",
                .level_key = "SYSEXT_LEVEL",
                .meta_dir = ".systemd-sysext",
                .list_file = "extensions",
                .default_hierarchies = "/usr:/opt",
                .hierarchies_env = "SYSTEMD_SYSEXT_HIERARCHIES",
                /* Device nodes never work through /usr; setuid binaries and executables do. */
                .overlay_attrs = MOUNT_ATTR_NODEV,
        },
        [IMAGE_CLASS_CONFEXT] = {
                .name = "confext",
                .program = "confext-idmap",
                .what = "configuration extension images",
                .where = "/etc/",
                .search_dirs = confext_search_dirs,
                .release_dir = "etc/extension-release.d",
                .scope_key = "CONFEXT_SCOPE",
                .level_key = "CONFEXT_LEVEL",
                .meta_dir = ".systemd-confext",
                .list_file = "confexts",
                .default_hierarchies = "/etc",
                .hierarchies_env = "SYSTEMD_CONFEXT_HIERARCHIES",
                /* Configuration is data: nothing in /etc runs from an extension (systemd's default). */
                .overlay_attrs = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                .default_image_policy = "root=verity+signed+encrypted+unprotected+absent",
        },
};

const ImageClassInfo *image_class_info(ImageClass c) {
        assert(c >= 0 && c < _IMAGE_CLASS_MAX);
        return &image_class_table[c];
}

ImageClass image_class_from_string(const char *s) {
        for (ImageClass c = 0; c < _IMAGE_CLASS_MAX; c++)
                if (s && streq(s, image_class_table[c].name))
                        return c;
        return _IMAGE_CLASS_INVALID;
}

ImageClass image_class_from_program(const char *argv0) {
        const char *base = argv0 ? strrchr(argv0, '/') : NULL;

        base = base ? base + 1 : argv0;
        for (ImageClass c = 0; c < _IMAGE_CLASS_MAX; c++)
                if (base && streq(base, image_class_table[c].program))
                        return c;
        return IMAGE_CLASS_SYSEXT;
}
