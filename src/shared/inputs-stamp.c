/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "inputs-stamp.h"

/* What changes in a file (or directory) that refresh must notice: replaced (dev, ino), rewritten
 * (size, mtime) or touched in any other way (ctime: chmod, chown, xattrs such as
 * user.verity.roothash, a rename of the entry itself). A directory's mtime changes when an entry
 * is added, removed or renamed, so a new image, a removed one, a new sidecar or a new NAME.idmap
 * all change the stamp of the search directory that holds them. */
static json_object *stat_json(const struct stat *st) {
        char s[96];

        snprintf(s, sizeof(s), "%u:%u %llu %o %u:%u %lld %lld.%09ld %lld.%09ld",
                 major(st->st_dev), minor(st->st_dev), (unsigned long long) st->st_ino,
                 (unsigned) st->st_mode, (unsigned) st->st_uid, (unsigned) st->st_gid,
                 (long long) st->st_size, (long long) st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                 (long long) st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
        return json_object_new_string(s);
}

static int add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        return json_object_object_add(o, key, v) < 0 ? -ENOMEM : 0;
}

#define STAMP_CONTENT_MAX (64U * 1024U)

/* A small file by its content: os-release and the certificates may be seen through a merged /usr,
 * whose device and inode numbers change with every merge while the bytes do not. */
static json_object *content_json(int dir_fd, const char *name) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r;

        r = name ? read_full_file_at(dir_fd, name, STAMP_CONTENT_MAX, &buf, &size) :
                   read_full_fd(dir_fd, STAMP_CONTENT_MAX, &buf, &size);
        if (r < 0)
                return json_object_new_string(r == -ENOENT ? "absent" : "unreadable");
        return json_object_new_string_len(buf, (int) size);
}

/* path (relative to root_fd) as it is now: a regular file by content, a directory by the names
 * and contents of its regular files, or "absent". Symlinks are followed inside the root. */
static int stamp_path(int root_fd, const char *path, json_object *o) {
        _cleanup_close_ int fd = openat_beneath(root_fd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, true);
        struct dirent *de;
        json_object *d;
        struct stat st;
        DIR *dir;
        int r = 0;

        if (fd < 0)
                return add(o, path, json_object_new_string(fd == -ENOENT || fd == -ENOTDIR ? "absent" : "unreadable"));
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return add(o, path, S_ISREG(st.st_mode) ? content_json(fd, NULL) : json_object_new_string("special"));
        d = json_object_new_object();
        r = add(o, path, d);
        if (r < 0)
                return r;
        dir = fdopendir(fd);
        if (!dir)
                return -errno;
        fd = -EBADF;    /* owned by dir now */
        while (r >= 0 && (errno = 0, de = readdir(dir)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        r = add(d, de->d_name, content_json(dirfd(dir), de->d_name));
        if (r >= 0 && errno != 0)
                r = -errno;
        closedir(dir);
        return r;
}

/* What a symlink in a search directory points to, by stat (an image may be a symlink). */
static int stamp_target(int root_fd, const char *path, json_object *o) {
        _cleanup_free_ char *key = strjoin(path, " ->");
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (!key)
                return -ENOMEM;
        fd = openat_beneath(root_fd, path, O_PATH, true);
        if (fd < 0 || fstat(fd, &st) < 0)
                return add(o, key, json_object_new_string("unresolvable"));
        return add(o, key, stat_json(&st));
}

/* A search directory: itself and every entry in it, one level into NAME.v/ directories (vpick). */
static int stamp_dir(int root_fd, const char *dir, int depth, json_object *o) {
        _cleanup_close_ int fd = openat_beneath(root_fd, dir, O_RDONLY | O_DIRECTORY, true);
        struct dirent *de;
        struct stat st;
        DIR *d;
        int r = 0;

        if (fd < 0)
                return add(o, dir, json_object_new_string(fd == -ENOENT || fd == -ENOTDIR ? "absent" : "unreadable"));
        if (fstat(fd, &st) < 0)
                return -errno;
        r = add(o, dir, stat_json(&st));
        if (r < 0)
                return r;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -EBADF;    /* owned by d now */
        while (r >= 0 && (errno = 0, de = readdir(d))) {
                _cleanup_free_ char *sub = NULL;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                sub = strjoin(dir, "/", de->d_name);
                if (!sub) {
                        r = -ENOMEM;
                        break;
                }
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = add(o, sub, json_object_new_string("vanished"));
                        continue;
                }
                if (depth > 0 && S_ISDIR(st.st_mode) && endswith(de->d_name, ".v"))
                        r = stamp_dir(root_fd, sub, depth - 1, o);
                else if (S_ISLNK(st.st_mode))   /* the link and what it points to */
                        r = add(o, sub, stat_json(&st)) ?: stamp_target(root_fd, sub, o);
                else
                        r = add(o, sub, stat_json(&st));
        }
        if (r >= 0 && errno != 0)
                r = -errno;
        closedir(d);
        return r;
}

int inputs_stamp_new(const char *root, const InputsStampSources *src, json_object *options, json_object **ret) {
        _cleanup_close_ int root_fd = -EBADF;
        json_object *o = NULL, *files = NULL;
        int r;

        assert(src && options && ret);
        root_fd = open(root ?: "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0) {
                json_object_put(options);
                return -errno;
        }
        o = json_object_new_object();
        files = json_object_new_object();
        r = o && files ? 0 : -ENOMEM;
        for (const char * const *p = src->dirs; r >= 0 && p && *p; p++)
                r = stamp_dir(root_fd, *p, 1, files);
        for (const char * const *p = src->files; r >= 0 && p && *p; p++)
                r = stamp_path(root_fd, *p, files);
        if (r >= 0)
                r = add(o, "options", options);
        else
                json_object_put(options);
        if (r >= 0)
                r = add(o, "files", files);
        else
                json_object_put(files);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

bool inputs_stamp_equal(json_object *recorded, json_object *now) {
        json_object *reparsed;
        bool equal;

        if (!recorded || !now)
                return false;
        /* Through the text form, as markers_meta_identity_equal() compares: numbers parsed back
         * must compare equal to the ones built here. */
        reparsed = json_tokener_parse(json_object_to_json_string_ext(now, JSON_C_TO_STRING_PLAIN));
        equal = reparsed && json_object_equal(recorded, reparsed);
        json_object_put(reparsed);
        return equal;
}
