/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <sys/stat.h>

#include "idmap-auto.h"

IdmapAutoOwner idmap_auto_classify(uint32_t uid) {
        if (uid == 0)
                return IDMAP_AUTO_OWNER_ROOT;
        if (uid >= FOREIGN_UID_BASE && uid - FOREIGN_UID_BASE < FOREIGN_UID_RANGE)
                return IDMAP_AUTO_OWNER_FOREIGN;
        if (uid >= IDMAP_AUTO_BUILDER_UID_MIN && uid != IDMAP_NOBODY_ID && uid <= IDMAP_ID_MAX)
                return IDMAP_AUTO_OWNER_BUILDER;
        return IDMAP_AUTO_OWNER_OTHER;
}

const char *idmap_auto_owner_to_string(IdmapAutoOwner o) {
        static const char * const names[] = {
                [IDMAP_AUTO_OWNER_ROOT] = "root",
                [IDMAP_AUTO_OWNER_FOREIGN] = "foreign",
                [IDMAP_AUTO_OWNER_BUILDER] = "builder",
                [IDMAP_AUTO_OWNER_OTHER] = "other",
        };
        return (size_t) o < ELEMENTSOF(names) ? names[o] : NULL;
}

/* The builder's range starting at id: 65536 ids, cut where ids end or the foreign range begins
 * (those ids are never the builder's). */
static IdmapExtent builder_extent(uint32_t id) {
        uint64_t end = (uint64_t) id + IDMAP_AUTO_BUILDER_RANGE;

        if (end > (uint64_t) IDMAP_ID_MAX + 1)
                end = (uint64_t) IDMAP_ID_MAX + 1;
        if (id < FOREIGN_UID_BASE && end > FOREIGN_UID_BASE)
                end = FOREIGN_UID_BASE;
        return (IdmapExtent) { .from = id, .to = 0, .count = (uint32_t) (end - id) };
}

int idmap_auto_for_owner(uint32_t uid, uint32_t gid, Idmap **ret) {
        assert(ret);
        switch (idmap_auto_classify(uid)) {
        case IDMAP_AUTO_OWNER_FOREIGN:
                return idmap_parse("foreign", ret);
        case IDMAP_AUTO_OWNER_BUILDER: {
                IdmapExtent u = builder_extent(uid), g = builder_extent(gid > IDMAP_ID_MAX ? 0 : gid);
                return idmap_from_extents(&u, 1, &g, 1, ret);
        }
        default:
                return idmap_parse("identity", ret);
        }
}

static int override_check(const char *path, int fd) {
        _cleanup_free_ char *why = NULL;
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return sx_error(negative_errno(), "%s: %m", path);
        if (!S_ISREG(st.st_mode))
                return sx_error(-EINVAL, "%s: the ID mapping override is not a regular file", path);
        r = path_is_root_controlled(path, &st, &why);
        if (r < 0)
                return sx_error(r, "%s: cannot check who may change the ID mapping override: %m", path);
        if (r == 0)
                return sx_error(-EPERM, "%s: ID mapping override refused: %s (only root may be able to change it)",
                                path, why);
        return 0;
}

static int override_parse(const char *path, char *text, size_t n, Idmap **ret) {
        _cleanup_(idmap_freep) Idmap *m = NULL;
        int r;

        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '\t'))
                text[--n] = 0;
        if (n == 0 || memchr(text, 0, n))
                return sx_error(-EINVAL, "%s: the ID mapping override holds no --idmap specification", path);
        r = idmap_parse(text, &m);
        if (r < 0)
                return sx_error_prefix(r, "%s", path);
        if (m->kind == IDMAP_USERNS || m->untrusted)
                return sx_error(-EINVAL, "%s: '%s' cannot be an override; write identity, foreign, auto or b|u|g: entries",
                                path, m->spec);
        *ret = TAKE_PTR(m);
        return 0;
}

int idmap_auto_read_override(const char *image_path, Idmap **ret) {
        _cleanup_free_ char *path = path_auxiliary(image_path, IDMAP_AUTO_OVERRIDE_SUFFIX), *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n;
        int r;

        assert(ret);
        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0 && errno == ELOOP)
                return sx_error(-ELOOP, "%s: the ID mapping override is a symlink; refusing to follow it", path);
        if (fd < 0)
                return sx_error(negative_errno(), "%s: %m", path);
        r = override_check(path, fd);
        if (r < 0)
                return r;
        r = read_full_fd(fd, IDMAP_AUTO_OVERRIDE_MAX, &text, &n);
        if (r == -EFBIG)
                return sx_error(r, "%s: the ID mapping override is larger than %d bytes", path, IDMAP_AUTO_OVERRIDE_MAX);
        if (r < 0)
                return sx_error(r, "%s: %m", path);
        r = override_parse(path, text, n, ret);
        return r < 0 ? r : 1;
}

void idmap_cache_done(IdmapCache *c) {
        for (size_t i = 0; c && i < c->n; i++)
                idmap_free(c->v[i]);
        if (c) {
                free(c->v);
                *c = (IdmapCache) {};
        }
}

int idmap_cache_add(IdmapCache *c, Idmap *m, Idmap **ret) {
        assert(c && m && ret);
        for (size_t i = 0; i < c->n; i++)
                if (idmap_equal(c->v[i], m)) {
                        idmap_free(m);
                        *ret = c->v[i];
                        return 0;
                }
        Idmap **v = reallocarray(c->v, c->n + 1, sizeof(Idmap *));
        if (!v) {
                idmap_free(m);
                return -ENOMEM;
        }
        c->v = v;
        c->v[c->n++] = m;
        *ret = m;
        return 0;
}

int idmap_auto_resolve(const char *image_path, int layer_fd, IdmapCache *cache, Idmap **ret) {
        _cleanup_(idmap_freep) Idmap *m = NULL;
        struct stat st;
        int r;

        assert(image_path && layer_fd >= 0 && cache && ret);
        r = idmap_auto_read_override(image_path, &m);
        if (r < 0)
                return r;
        if (r == 0 || idmap_is_auto(m)) {
                m = idmap_free(m);
                if (fstat(layer_fd, &st) < 0)
                        return sx_error(negative_errno(), "%s: cannot look up who owns the image's root directory: %m",
                                        image_path);
                r = idmap_auto_for_owner(st.st_uid, st.st_gid, &m);
                if (r < 0)
                        return r;
        }
        return idmap_cache_add(cache, TAKE_PTR(m), ret);
}
