/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Discovery of extension images in the search path, resolved strictly inside --root. */

#include <assert.h>
#include <dirent.h>
#include <limits.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

#include "extension-release.h"
#include "image.h"
#include "mountapi.h"
#include "version.h"
#include "vpick.h"

#define IMAGE_NAME_MAX 255

static const char * const image_type_table[_IMAGE_TYPE_MAX] = {
        [IMAGE_DIRECTORY] = "directory",
        [IMAGE_RAW] = "raw",
        [IMAGE_BLOCK] = "block",
};

const char *image_type_to_string(ImageType t) {
        if (t < 0 || t >= _IMAGE_TYPE_MAX)
                return NULL;
        return image_type_table[t];
}

Image *image_free(Image *i) {
        if (!i)
                return NULL;
        free(i->name);
        free(i->version);
        free(i->path);
        free(i);
        return NULL;
}

Image *image_dup(const Image *i) {
        _cleanup_(image_freep) Image *c = calloc(1, sizeof(Image));

        if (!c)
                return NULL;
        *c = *i;
        c->name = strdup(i->name);
        c->version = i->version ? strdup(i->version) : NULL;
        c->path = strdup(i->path);
        if (!c->name || (i->version && !c->version) || !c->path)
                return NULL;
        return TAKE_PTR(c);
}

void image_array_free(Image **images, size_t n) {
        if (!images)
                return;
        for (size_t i = 0; i < n; i++)
                image_free(images[i]);
        free(images);
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

bool image_name_is_valid(const char *name) {
        return path_is_safe_component(name) && strlen(name) <= IMAGE_NAME_MAX && name[0] != '.' &&
                !string_has_cc(name) && utf8_is_valid(name);
}

int image_name_parse(const char *filename, bool is_dir, char **ret_name, char **ret_version) {
        _cleanup_free_ char *base = NULL, *name = NULL, *version = NULL;
        const char *us;

        /* The whole entry name must be sane, the version part included. */
        if (!image_name_is_valid(filename))
                return -EINVAL;
        if (is_dir)
                base = strdup(filename);
        else if (endswith(filename, ".sysext.raw"))     /* systemd names its classes' images so */
                base = strndup(filename, strlen(filename) - STRLEN(".sysext.raw"));
        else if (endswith(filename, ".confext.raw"))
                base = strndup(filename, strlen(filename) - STRLEN(".confext.raw"));
        else if (endswith(filename, ".raw"))
                base = strndup(filename, strlen(filename) - STRLEN(".raw"));
        else
                return -EINVAL;
        if (!base)
                return -ENOMEM;

        us = strchr(base, '_');
        name = us ? strndup(base, (size_t) (us - base)) : strdup(base);
        if (!name)
                return -ENOMEM;
        if (!image_name_is_valid(name))
                return -EINVAL;
        if (us && us[1]) {
                version = strdup(us + 1);
                if (!version)
                        return -ENOMEM;
        }
        *ret_name = TAKE_PTR(name);
        if (ret_version)
                *ret_version = TAKE_PTR(version);
        return 0;
}

/* Block devices and masks need no suffix, but may carry one. */
static int image_name_parse_any(const char *filename, char **ret_name, char **ret_version) {
        int r = image_name_parse(filename, false, ret_name, ret_version);

        if (r == -EINVAL)
                r = image_name_parse(filename, true, ret_name, ret_version);
        return r;
}

static ImageType image_type_from_mode(mode_t m) {
        if (S_ISDIR(m))
                return IMAGE_DIRECTORY;
        if (S_ISREG(m))
                return IMAGE_RAW;
        if (S_ISBLK(m))
                return IMAGE_BLOCK;
        return _IMAGE_TYPE_INVALID;
}

static int image_name_for_type(const char *filename, ImageType t, char **ret_name, char **ret_version) {
        if (t == IMAGE_BLOCK)
                return image_name_parse_any(filename, ret_name, ret_version);
        return image_name_parse(filename, t == IMAGE_DIRECTORY, ret_name, ret_version);
}

static uint64_t block_size_at(int fd) {
        _cleanup_close_ int bfd = -EBADF;
        char p[64];
        uint64_t size = 0;

        /* Reopen the O_PATH fd; never re-resolve the name. */
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        bfd = open(p, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (bfd < 0 || ioctl(bfd, BLKGETSIZE64, &size) < 0)
                return 0;
        return size;
}

static int image_new(const char *name, const char *version, const char *path, ImageType t, bool masked,
                     const struct stat *st, int fd, Image **ret) {
        _cleanup_(image_freep) Image *i = NULL;

        i = calloc(1, sizeof(Image));
        if (!i)
                return -ENOMEM;
        i->name = strdup(name);
        i->version = version ? strdup(version) : NULL;
        i->path = strdup(path);
        if (!i->name || (version && !i->version) || !i->path)
                return -ENOMEM;
        i->type = t;
        i->masked = masked;
        if (st) {
                i->mtime_usec = timespec_to_usec(&st->st_mtim);
                if (t == IMAGE_RAW)
                        i->size = (uint64_t) st->st_size;
                else if (t == IMAGE_BLOCK && fd >= 0)
                        i->size = block_size_at(fd);
        }
        *ret = TAKE_PTR(i);
        return 0;
}

/* ---- versioned directories (vpick.h) ---- */

typedef struct VpickBest {
        VpickCandidate c;
        char *name;
        int fd;                 /* O_PATH, opened beneath the root like any other entry */
        struct stat st;
} VpickBest;

static void vpick_best_done(VpickBest *b) {
        vpick_candidate_done(&b->c);
        free(b->name);
        safe_close(b->fd);
}

/* One entry of a .v directory: opened beneath the root (a symlink in it cannot lead out of the root,
 * which is a home directory for the PAM module's user images), kept if it beats the best so far. */
static int vdir_consider(int root_fd, const char *rel, const char *fn, const char *base, bool raw_only, VpickBest *best) {
        _cleanup_free_ char *p = strjoin(rel, "/", fn);
        _cleanup_close_ int fd = -EBADF;
        VpickCandidate c;
        struct stat st;
        int r;

        if (!p)
                return -ENOMEM;
        fd = openat_beneath(root_fd, p, O_PATH, true);
        if (fd < 0 || fstat(fd, &st) < 0) {
                sx_debug("%s: cannot open, ignoring", p);
                return 0;
        }
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                return 0;
        r = vpick_parse(fn, S_ISDIR(st.st_mode), base, raw_only, native_architecture(), &c);
        if (r <= 0) {
                if (r == 0)
                        sx_debug("%s: not a usable version of '%s' on this machine, ignoring", p, base);
                return r;
        }
        if (best->name && vpick_compare(&c, fn, &best->c, best->name) <= 0) {
                vpick_candidate_done(&c);
                return 0;
        }
        vpick_best_done(best);
        *best = (VpickBest) { .c = c, .name = strdup(fn), .fd = TAKE_FD(fd), .st = st };
        return best->name ? 0 : -ENOMEM;
}

/* NAME.v/ or NAME.raw.v/: the image NAME, at the best version in it. 1 and an image, 0 if there is
 * none for this machine (a notice-free skip, as systemd's "without matching entry"). */
static int image_from_vdir(int root_fd, const char *rel, const char *fn, Image **ret) {
        _cleanup_(vpick_best_done) VpickBest best = { .fd = -EBADF };
        _cleanup_free_ char *base = NULL, *path = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        bool raw_only;
        int dfd, r;

        r = vpick_dir_pattern(fn, &base, &raw_only);
        if (r == -ENOMEM)
                return r;
        dfd = r < 0 ? r : openat_beneath(root_fd, rel, O_RDONLY | O_DIRECTORY, true);
        if (dfd < 0) {
                sx_debug("%s: not a versioned directory (%s), ignoring", rel, strerror(-dfd));
                return 0;
        }
        d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return -ENOMEM;
        }
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.' && (r = vdir_consider(root_fd, rel, de->d_name, base, raw_only, &best)) < 0)
                        return r;
        if (!best.name) {
                sx_debug("%s: versioned directory without an entry for this machine, ignoring", rel);
                return 0;
        }
        r = fd_get_path(best.fd, &path);
        if (r < 0)
                return r;
        r = image_new(base, best.c.version, path, image_type_from_mode(best.st.st_mode), false, &best.st, best.fd, ret);
        return r < 0 ? r : 1;
}

/* An explicitly named NAME.v/ (merge, dissect): the pick is made as in discovery, with the
 * directory holding it as the root its entries may not leave. */
static int image_from_path_vdir(const char *path, char *copy, char *fn, Image **ret) {
        _cleanup_close_ int parent_fd = -EBADF;
        int r;

        if (fn == copy)
                parent_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        else {
                fn[-1] = 0;
                parent_fd = open(fn - 1 == copy ? "/" : copy, O_PATH | O_DIRECTORY | O_CLOEXEC);
        }
        if (parent_fd < 0)
                return sx_error(negative_errno(), "%s: cannot open its directory: %m", path);
        r = image_from_vdir(parent_fd, fn, fn, ret);
        if (r == 0)
                return sx_error(-ENOENT, "%s: versioned directory without a version for this machine", path);
        return r < 0 ? sx_error_fallback(r, "%s: %m", path) : 0;
}

int image_from_path(const char *path, Image **ret) {
        _cleanup_free_ char *copy = NULL, *name = NULL, *version = NULL, *resolved = NULL;
        _cleanup_close_ int fd = -EBADF;
        char *fn;
        struct stat st;
        ImageType t;
        char *e;

        if (isempty(path))
                return sx_error(-EINVAL, "empty image path");
        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot open: %m", path);
        if (fstat(fd, &st) < 0)
                return sx_error(negative_errno(), "%s: cannot stat: %m", path);
        t = image_type_from_mode(st.st_mode);
        if (t < 0)
                return sx_error(-EMEDIUMTYPE, "%s: not a directory, regular file or block device", path);

        /* The name comes from the path as given (a symlink's name, not its target's), like systemd. */
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        for (e = copy + strlen(copy); e > copy + 1 && e[-1] == '/'; e--)
                e[-1] = 0;
        fn = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
        if (t == IMAGE_DIRECTORY && endswith(fn, VPICK_DIR_SUFFIX))
                return image_from_path_vdir(path, copy, fn, ret);
        if (t == IMAGE_RAW && !endswith(fn, ".raw"))
                return sx_error(-EMEDIUMTYPE, "%s: regular file without .raw suffix, not an extension image", path);
        if (image_name_for_type(fn, t, &name, &version) < 0)
                return sx_error(-EINVAL, "%s: invalid image name", path);

        resolved = realpath(path, NULL);
        if (!resolved)
                return sx_error(negative_errno(), "%s: cannot resolve path: %m", path);
        return image_new(name, version, resolved, t, false, &st, fd, ret);
}

/* ---- discovery ---- */

typedef struct ImageList {
        Image **images;
        size_t n;
} ImageList;

static Image *image_list_find(const ImageList *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->images[i]->name, name))
                        return l->images[i];
        return NULL;
}

static int image_list_add(ImageList *l, Image *i) {
        Image **n = reallocarray(l->images, l->n + 1, sizeof(Image *));

        if (!n) {
                image_free(i);
                return -ENOMEM;
        }
        n[l->n++] = i;
        l->images = n;
        return 0;
}

/* Within one directory: a mask beats everything, otherwise the highest version wins. */
static bool image_beats(const Image *a, const Image *b) {
        if (a->masked != b->masked)
                return a->masked;
        return version_compare(a->version, b->version) > 0;
}

static int image_list_merge(ImageList *l, ImageList *dir, size_t n_before) {
        for (size_t i = 0; i < dir->n; i++) {
                Image *img = TAKE_PTR(dir->images[i]);
                int r;

                /* Names claimed by an earlier search directory stay with it. */
                bool earlier = false;
                for (size_t j = 0; j < n_before; j++)
                        if (streq(l->images[j]->name, img->name))
                                earlier = true;
                if (earlier) {
                        sx_debug("%s: shadowed by an image of the same name earlier in the search path", img->path);
                        image_free(img);
                        continue;
                }
                r = image_list_add(l, img);
                if (r < 0)
                        return r;
        }
        dir->n = 0;
        return 0;
}

static bool dir_is_empty_at(int fd) {
        _cleanup_(closedirp) DIR *d = NULL;
        char p[64];
        int dfd;

        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return false;
        d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return false;
        }
        for (struct dirent *de; (de = readdir(d));)
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        return false;
        return true;
}

static bool stat_is_dev_null(const struct stat *st) {
        return S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3);
}

/* Looks at one entry of a search directory. Returns 1 and an Image, or 0 if it is not an image. */
static int image_from_entry(const char *root, int root_fd, int dfd, const char *dir, const char *fn, Image **ret) {
        _cleanup_free_ char *rel = NULL, *name = NULL, *version = NULL, *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        char target[16];
        struct stat st;
        ssize_t n;
        ImageType t;
        bool masked;
        int r;

        rel = strjoin(dir, "/", fn);
        if (!rel)
                return -ENOMEM;
        if (endswith(fn, VPICK_DIR_SUFFIX))
                return image_from_vdir(root_fd, rel, fn, ret);
        /* A symlink to /dev/null masks; check the link text, since the root may have no /dev. */
        n = readlinkat(dfd, fn, target, sizeof(target) - 1);
        masked = n == STRLEN("/dev/null") && memcmp(target, "/dev/null", STRLEN("/dev/null")) == 0;

        /* Follow symlinks, but never out of the root. */
        fd = openat_beneath(root_fd, rel, O_PATH, true);
        if (fd < 0 && !masked) {
                sx_debug("%s: cannot open (%s), ignoring", rel, strerror(-fd));
                return 0;
        }
        if (fd >= 0 && fstat(fd, &st) < 0)
                return negative_errno();
        if (fd >= 0 && stat_is_dev_null(&st))
                masked = true;
        t = fd >= 0 ? image_type_from_mode(st.st_mode) : _IMAGE_TYPE_INVALID;
        if (t == IMAGE_DIRECTORY && dir_is_empty_at(fd))
                masked = true;
        /* Something that claims to be an image but cannot be one (a FIFO or device node named
         * x.raw) is not silently passed over: the administrator put it there for a reason. It is
         * discovered as a raw image, which dissection refuses without opening it for reading, so a
         * merge leaves it out with a notice naming it and merges the rest (issue 13, point 3).
         * Other names are simply not ours. */
        bool claims_image = endswith(fn, ".raw") || t == IMAGE_DIRECTORY;
        if (!masked && t < 0) {
                if (!endswith(fn, ".raw") || fn[0] == '.') {
                        sx_debug("%s: not a directory, regular file or block device, ignoring", rel);
                        return 0;
                }
                t = IMAGE_RAW;
        }
        if (claims_image && fn[0] != '.' && (string_has_cc(fn) || !utf8_is_valid(fn))) {
                _cleanup_free_ char *p = path_join_root(root, rel);
                return sx_error(-EINVAL, "%s: invalid image name (control characters or invalid UTF-8)", strna(p));
        }

        r = masked ? image_name_parse_any(fn, &name, &version) : image_name_for_type(fn, t, &name, &version);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                sx_debug("%s: not a valid extension image name, ignoring", rel);
                return 0;
        }
        if (fd >= 0 && !masked)
                r = fd_get_path(fd, &path);     /* the resolved location, inside the root */
        else
                r = (path = path_join_root(root, rel)) ? 0 : -ENOMEM;
        if (r < 0)
                return r;
        r = image_new(name, version, path, t < 0 ? IMAGE_RAW : t, masked, fd >= 0 ? &st : NULL, fd, ret);
        return r < 0 ? r : 1;
}

static int image_discover_dir(const char *root, int root_fd, const char *dir, ImageList *out) {
        _cleanup_(closedirp) DIR *d = NULL;
        int dfd;

        dfd = openat_beneath(root_fd, dir, O_RDONLY | O_DIRECTORY, true);
        if (dfd == -ENOENT || dfd == -ENOTDIR)
                return 0;
        if (dfd < 0)
                return sx_error(dfd, "/%s: cannot open search directory: %m", dir);
        d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return -ENOMEM;
        }
        for (struct dirent *de; (de = readdir(d));) {
                Image *img = NULL, *old;
                int r;

                if (de->d_name[0] == '.')       /* hidden entries, "." and ".." */
                        continue;
                r = image_from_entry(root, root_fd, dirfd(d), dir, de->d_name, &img);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                old = image_list_find(out, img->name);
                if (!old) {
                        r = image_list_add(out, img);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (image_beats(img, old)) {
                        /* swap contents so the list keeps its pointer */
                        Image tmp = *old;
                        *old = *img;
                        *img = tmp;
                }
                sx_debug("%s: superseded by %s in the same directory", img->path, old->path);
                image_free(img);
        }
        return 0;
}

static int image_cmp(const void *a, const void *b) {
        const Image *x = *(Image * const *) a, *y = *(Image * const *) b;
        int r = version_compare(x->name, y->name);

        return r != 0 ? r : strcmp(x->name, y->name);
}

int image_discover(const char *root, Image ***ret_images, size_t *ret_n) {
        return image_discover_in(root, image_class_info(IMAGE_CLASS_SYSEXT)->search_dirs, ret_images, ret_n);
}

int image_discover_in(const char *root, const char * const *dirs, Image ***ret_images, size_t *ret_n) {
        ImageList l = {};
        _cleanup_close_ int root_fd = -EBADF;
        int r = 0;

        root_fd = open(isempty(root) ? "/" : root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                return sx_error(negative_errno(), "%s: cannot open root directory: %m",
                                isempty(root) ? "/" : root);

        for (size_t i = 0; dirs[i]; i++) {
                ImageList dir = {};
                size_t n_before = l.n;

                r = image_discover_dir(root, root_fd, dirs[i], &dir);
                if (r >= 0)
                        r = image_list_merge(&l, &dir, n_before);
                image_array_free(dir.images, dir.n);
                if (r < 0)
                        break;
        }
        if (r < 0) {
                image_array_free(l.images, l.n);
                return r;
        }
        if (l.n > 0)
                qsort(l.images, l.n, sizeof(Image *), image_cmp);
        *ret_images = l.images;
        *ret_n = l.n;
        return 0;
}

/* The directory an image lies in: its path up to the last '/' ("/" for an image at the top). */
static char *image_parent(const Image *img) {
        char *dir = strdup(img->path), *slash;

        if (dir && (slash = strrchr(dir, '/')))
                *(slash == dir ? slash + 1 : slash) = 0;
        return dir;
}

/* Is dir a NAME.v directory right inside parent? */
static bool vdir_in(const char *dir, const char *parent) {
        size_t n = strlen(parent);

        return strncmp(dir, parent, n) == 0 && dir[n] == '/' && !strchr(dir + n + 1, '/') &&
                endswith(dir, VPICK_DIR_SUFFIX);
}

int image_is_root_controlled(const Image *img, const char *system_dir, char **ret_why) {
        _cleanup_free_ char *dir = image_parent(img), *target = NULL, *canonical = realpath(system_dir, NULL);
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        assert(img);
        assert(system_dir);
        assert(ret_why);
        if (!dir)
                return -ENOMEM;
        /* A version picked from a .v directory lies one level further down: that directory must be
         * root's too, then it counts as lying in system_dir. */
        if (canonical && vdir_in(dir, canonical)) {
                r = path_is_root_controlled(dir, NULL, ret_why);
                if (r < 0)
                        return asprintf_safe(ret_why, "cannot check who may change it: %s", strerror(-r)) < 0 ? -ENOMEM : 0;
                if (r == 0)
                        return 0;
                dir[strlen(canonical)] = 0;
        }
        if (!canonical || !streq(dir, canonical))
                return asprintf_safe(ret_why, "it is reached through a symlink out of %s", system_dir) < 0 ? -ENOMEM : 0;
        r = path_is_root_controlled(dir, NULL, ret_why);
        if (r > 0) {
                fd = open(img->path, O_PATH | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0)
                        r = negative_errno();
                else if ((r = fd_get_path(fd, &target)) >= 0)
                        r = path_is_root_controlled(target, &st, ret_why);
        }
        if (r < 0)
                return asprintf_safe(ret_why, "cannot check who may change it: %s", strerror(-r)) < 0 ? -ENOMEM : 0;
        return r;
}
