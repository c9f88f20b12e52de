/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <inttypes.h>

#include "broker-internal.h"
#include "config.h"
#include "extension.h"
#include "mountapi.h"
#include "userns-check.h"
#include "verity.h"

struct BrokerTarget {
        int userns_fd;
        uid_t uid;
};

/* ---- configuration ---- */

static int config_assign(const char *file, unsigned line, const char *section, const char *key, const char *value,
                         void *userdata) {
        BrokerConfig *c = userdata;
        int r;

        if (!section || !streq(section, "Broker"))
                return 0;
        if (streq(key, "ImagePolicy")) {
                ImagePolicy *p = NULL;
                r = image_policy_from_string(value, &p);
                if (r < 0)
                        return sx_error_prefix(r, "%s:%u: ImagePolicy=", file, line);
                image_policy_free(c->trusted_policy);
                c->trusted_policy = p;
        } else if (streq(key, "AllowUnsignedUntrusted")) {
                r = parse_boolean(value);
                if (r < 0)
                        return sx_error(-EINVAL, "%s:%u: AllowUnsignedUntrusted=%s is not a boolean", file, line, value);
                c->allow_unsigned_untrusted = r;
        } else if (streq(key, "PrivateCopyMax")) {
                if (parse_size(value, &c->private_copy_max) < 0)
                        return sx_error(-EINVAL, "%s:%u: PrivateCopyMax=%s is not a size", file, line, value);
        }
        return 0;
}

int broker_config_load(const char *root, BrokerConfig *ret) {
        _cleanup_free_ char *path = path_join_root(root, BROKER_CONFIG_PATH), *text = NULL, *why = NULL;
        BrokerConfig c = { .private_copy_max = BROKER_PRIVATE_COPY_MAX_DEFAULT };
        size_t size = 0;
        int r;

        if (!path || (root && !(c.root = strdup(root))))
                return free(c.root), -ENOMEM;
        r = read_full_file_at(AT_FDCWD, path, CONFIG_FILE_MAX, &text, &size);
        if (r == -ENOENT) {
                *ret = c;
                return 0;
        }
        if (r < 0)
                r = sx_error(r, "%s: cannot read: %m", path);
        else if ((r = path_is_root_controlled(path, NULL, &why)) == 0)
                r = sx_error(-EPERM, "%s: refusing a configuration someone other than root may change: %s", path, why);
        if (r >= 0)
                r = config_parse_text(path, text, size, config_assign, &c);
        if (r < 0) {
                broker_config_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

void broker_config_done(BrokerConfig *c) {
        if (!c)
                return;
        c->trusted_policy = image_policy_free(c->trusted_policy);
        free(c->root);
        c->root = NULL;
}

/* ---- target ---- */

int broker_target_open(const BrokerCaller *who, int userns_fd, BrokerTarget **ret) {
        _cleanup_close_ int fd = userns_fd;
        BrokerTarget *t;
        int r;

        assert(who && ret);
        if (fd < 0 && who->uid != 0)
                return sx_error(-EACCES, "without a user namespace fd only root may mount");
        if (fd >= 0) {
                /* The subuid files are the host's, whatever --root says: they name the host's users. */
                r = userns_check_caller(fd, who->uid, who->gid, who->pid, who->pidfd, NULL);
                if (r < 0)
                        return r;
        }
        t = calloc(1, sizeof(BrokerTarget));
        if (!t)
                return -ENOMEM;
        *t = (BrokerTarget) { .userns_fd = TAKE_FD(fd), .uid = who->uid };
        *ret = t;
        return 0;
}

BrokerTarget *broker_target_free(BrokerTarget *t) {
        if (!t)
                return NULL;
        safe_close(t->userns_fd);
        free(t);
        return NULL;
}

int broker_target_userns_fd(const BrokerTarget *t) {
        return t ? t->userns_fd : -EBADF;
}

/* ---- MountDirectory ---- */

static bool stat_is_foreign(const struct stat *st) {
        return st->st_uid >= FOREIGN_UID_BASE && st->st_uid - FOREIGN_UID_BASE < FOREIGN_UID_RANGE &&
               st->st_gid >= FOREIGN_UID_BASE && st->st_gid - FOREIGN_UID_BASE < FOREIGN_UID_RANGE;
}

#define DIRECTORY_PARENT_LEVELS_MAX 16

static uint64_t mount_id_of(int fd) {
        struct statx sx;

        if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID))
                return 0;
        return sx.stx_mnt_id;
}

/* 1 the caller's directory, 2 foreign-owned below one of the caller's, else -EPERM. The walk up
 * stays on the directory's own mount: the ".." of a mount's root is wherever someone mounted it
 * (a bind mount of another user's foreign tree below the caller's directory). */
static int directory_ownership(int dir_fd, const struct stat *st, uid_t uid) {
        _cleanup_close_ int cur = -EBADF;
        struct stat cst = *st;
        uint64_t mnt = mount_id_of(dir_fd);

        if (uid == 0 || st->st_uid == uid)
                return stat_is_foreign(st) ? 2 : 1;
        cur = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        for (unsigned i = 0; cur >= 0 && mnt != 0 && i < DIRECTORY_PARENT_LEVELS_MAX && stat_is_foreign(&cst); i++) {
                struct stat pst;
                int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (up < 0 || fstat(up, &pst) < 0 || (pst.st_dev == cst.st_dev && pst.st_ino == cst.st_ino) ||
                    mount_id_of(up) != mnt) {
                        safe_close(up);
                        break;
                }
                safe_close(cur);
                cur = up;
                if (pst.st_uid == uid)
                        return 2;
                cst = pst;
        }
        return sx_error(-EPERM, "the directory is owned by uid %u, neither by the caller (uid %u) nor by the foreign range below a directory of the caller's",
                        (unsigned) st->st_uid, (unsigned) uid);
}

/* The outside id of the target's inside id 0, the extent's length in *ret_count. */
static int target_zero(const IdmapExtent *v, size_t n, uint32_t *ret_start, uint32_t *ret_count) {
        for (size_t i = 0; i < n; i++)
                if (v[i].from == 0) {
                        *ret_start = v[i].to;
                        *ret_count = v[i].count;
                        return 0;
                }
        return sx_error(-EINVAL, "the user namespace does not map its root user, so there is nothing to map the directory's owner to");
}

/* A helper namespace for the idmapped mount: "root" maps the caller's uid/gid to the target's
 * root, "foreign" the foreign range to the target's 0…65535. */
static int directory_idmap_userns(const BrokerCaller *who, const BrokerTarget *t, bool foreign, int *ret_fd) {
        _cleanup_free_ UsernsMaps *m = calloc(1, sizeof(UsernsMaps));
        uint32_t us = 0, uc = 0, gs = 0, gc = 0;
        int r;

        if (!m)
                return -ENOMEM;
        r = userns_read_maps_isolated(t->userns_fd, m);
        if (r < 0)
                return sx_error(r, "namespace: cannot read its maps: %m");
        if ((r = target_zero(m->uid, m->n_uid, &us, &uc)) < 0 || (r = target_zero(m->gid, m->n_gid, &gs, &gc)) < 0)
                return r;
        if (foreign && (uc < FOREIGN_UID_RANGE || gc < FOREIGN_UID_RANGE))
                return sx_error(-EINVAL, "mode foreign needs a user namespace mapping 0…65535 in one range");
        IdmapExtent u = foreign ? (IdmapExtent) { FOREIGN_UID_BASE, us, FOREIGN_UID_RANGE } : (IdmapExtent) { who->uid, us, 1 };
        IdmapExtent g = foreign ? (IdmapExtent) { FOREIGN_UID_BASE, gs, FOREIGN_UID_RANGE } : (IdmapExtent) { who->gid, gs, 1 };
        return userns_create(&u, 1, &g, 1, ret_fd);
}

static int directory_mode(const char *mode, int ownership, char *ret) {
        if (!mode || streq(mode, "auto"))
                *ret = ownership == 2 ? 'f' : 'r';
        else if (streq(mode, "identity") || streq(mode, "root") || streq(mode, "foreign"))
                *ret = mode[0];
        else
                return sx_error(-EINVAL, "mode=%s: unknown, expected auto, root, foreign or identity", mode);
        return 0;
}

int broker_mount_directory(const BrokerCaller *who, BrokerTarget *target, int dir_fd,
                           const char *mode, int *ret_mount_fd) {
        _cleanup_close_ int clone = -EBADF, helper = -EBADF;
        BrokerTarget plain = { .userns_fd = -EBADF, .uid = who->uid };
        struct stat st;
        char m = 0;
        int own, r;

        assert(who && ret_mount_fd);
        if (broker_target_userns_fd(target) < 0 && who->uid != 0)
                return sx_error(-EACCES, "without a user namespace only root may mount");
        if (fstat(dir_fd, &st) < 0)
                return sx_error(negative_errno(), "cannot stat the directory fd: %m");
        if (!S_ISDIR(st.st_mode))
                return sx_error(-EBADFD, "the directory fd is not a directory");
        own = directory_ownership(dir_fd, &st, who->uid);
        if (own < 0)
                return own;
        if ((r = directory_mode(mode, own, &m)) < 0)
                return r;
        if (m != 'i' && broker_target_userns_fd(target) >= 0) {
                r = directory_idmap_userns(who, target, m == 'f', &helper);
                if (r < 0)
                        return r;
        }
        plain.userns_fd = helper;
        /* The directory alone, not what is mounted below it: a submount is not the caller's (in
         * mode foreign, another user's foreign-owned tree mounted there would become the caller's). */
        r = broker_clone_for_target(dir_fd, &plain, /* recursive= */ false, &clone);
        plain.userns_fd = -EBADF;
        if (r < 0)
                return r;
        *ret_mount_fd = TAKE_FD(clone);
        return 0;
}
