/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "extension.h"

int host_info_load(const char *root, HostInfo *ret) {
        _cleanup_(release_file_freep) ReleaseFile *rel = NULL;
        _cleanup_free_ char *r_copy = NULL;
        int r;

        r = host_release_load(root, &rel);
        if (r < 0)
                return r;
        if (root) {
                r_copy = strdup(root);
                if (!r_copy)
                        return -ENOMEM;
        }
        *ret = (HostInfo) {
                .root = TAKE_PTR(r_copy),
                .release = TAKE_PTR(rel),
                .scope = host_scope(root),
        };
        return 0;
}

void host_info_done(HostInfo *h) {
        free(h->root);
        h->root = NULL;
        h->release = release_file_free(h->release);
}

Extension *extension_free(Extension *e) {
        if (!e)
                return NULL;
        image_mounts_done(&e->mounts);
        dissected_image_free(e->dissected);
        image_free(e->image);
        release_file_free(e->release);
        free(e->release_path);
        free(e->reason);
        free(e);
        return NULL;
}

void extension_array_free(Extension **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                extension_free(v[i]);
        free(v);
}

static bool parse_boolean_loose(const char *v) {
        return v && (streq(v, "1") || streq(v, "yes") || streq(v, "y") || streq(v, "true") || streq(v, "on"));
}

/* Library messages from the helpers may or may not name the image; make sure they do. */
static int fail_naming(int r, const Image *i) {
        const char *m = sx_last_error();
        _cleanup_free_ char *copy = m ? strdup(m) : NULL;

        if (copy && strstr(copy, i->path))
                return r;
        return sx_error(r, "%s: %s", i->path, copy ?: strerror(-r));
}

static int extension_read_release(Extension *e, const ExtensionOptions *o) {
        bool usr_only = e->mounts.usr_fd >= 0;
        int fd = usr_only ? e->mounts.usr_fd : e->mounts.root_fd;
        int r;

        r = image_has_os_release(fd, usr_only);
        if (r < 0)
                return fail_naming(r, e->image);
        if (r > 0)
                return sx_error(-EMEDIUMTYPE, "%s: image ships usr/lib/os-release; it is an OS image, not an extension",
                                e->image->path);
        r = extension_release_load(fd, usr_only, e->image->name, &e->release, &e->release_path);
        if (r < 0)
                return fail_naming(r, e->image);
        r = extension_release_check(e->image->name, e->release, o->host->release, o->host->scope, &e->reason);
        if (r < 0)
                return fail_naming(r, e->image);
        e->compatible = r > 0 || o->force;
        e->reload_manager = parse_boolean_loose(release_file_get(e->release, "EXTENSION_RELOAD_MANAGER"));
        return 0;
}

int extension_open(Image *image, const ExtensionOptions *o, Extension **ret) {
        _cleanup_(extension_freep) Extension *e = NULL;
        int r;

        e = calloc(1, sizeof(Extension));
        if (!e) {
                image_free(image);
                return -ENOMEM;
        }
        e->image = image;
        e->mounts = IMAGE_MOUNTS_NULL;
        r = dissect_image(e->image, &e->dissected);
        if (r < 0)
                return fail_naming(r, e->image);
        if (o->mount) {
                r = dissected_image_mount(e->dissected, NULL, NULL, &e->mounts);
                if (r < 0)
                        return fail_naming(r, e->image);
                r = extension_read_release(e, o);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(e);
        return 0;
}

int extension_hierarchy(const Extension *e, const char *hierarchy, int *ret_mnt_fd, char **ret_subdir, int *ret_dir_fd) {
        const char *rest = NULL;
        _cleanup_free_ char *sub = NULL;
        int mnt, r, dir_fd;

        if (e->mounts.usr_fd >= 0 && (rest = startswith_ptr(hierarchy, "/usr")) && (*rest == 0 || *rest == '/')) {
                mnt = e->mounts.usr_fd;
                sub = strdup(rest + (*rest == '/'));
        } else if (e->mounts.root_fd >= 0) {
                mnt = e->mounts.root_fd;
                sub = strdup(hierarchy + 1);
        } else
                return -ENOENT;
        if (!sub)
                return -ENOMEM;
        r = image_mounts_open_hierarchy(&e->mounts, hierarchy, &dir_fd);
        if (r < 0)
                return r == -ENOENT ? r : fail_naming(r, e->image);
        *ret_mnt_fd = mnt;
        *ret_subdir = TAKE_PTR(sub);
        *ret_dir_fd = dir_fd;
        return 0;
}
