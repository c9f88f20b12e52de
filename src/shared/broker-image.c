/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <assert.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "broker-internal.h"
#include "image-class.h"
#include "mountapi.h"
#include "namespace.h"
#include "verity.h"

const char * const broker_trusted_dirs[] = {
        "etc/extensions", "run/extensions", "var/lib/extensions", "usr/lib/extensions", "usr/local/lib/extensions",
        "etc/confexts", "run/confexts", "var/lib/confexts", "usr/lib/confexts", "usr/local/lib/confexts",
        NULL,
};

/* The file systems a pinned superblock can be mounted again by its device (what images carry). */
const char *broker_bdev_fs_name(int fd) {
        static const struct { unsigned long magic; const char *name; } fs[] = {
                { EROFS_SUPER_MAGIC_V1, "erofs" }, { SQUASHFS_MAGIC, "squashfs" }, { EXT4_SUPER_MAGIC, "ext4" },
                { XFS_SUPER_MAGIC, "xfs" }, { BTRFS_SUPER_MAGIC, "btrfs" }, { MSDOS_SUPER_MAGIC, "vfat" },
        };
        struct statfs sf;

        if (fstatfs(fd, &sf) < 0)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(fs); i++)
                if ((unsigned long) sf.f_type == fs[i].magic)
                        return fs[i].name;
        return NULL;
}

typedef struct Remount {
        const char *fstype, *sub, *staging;
        struct stat root;               /* of the pinned mount: its device and root inode */
} Remount;

/* In a private mount namespace: a new mount of the pinned superblock (by its device), attached at
 * the staging directory so that open_tree() may clone the subtree, and the clone passed back. */
static int remount_in_child(void *userdata, int *ret_fds, size_t max_fds) {
        const Remount *m = userdata;
        _cleanup_close_ int mnt = -EBADF, top = -EBADF, dir = -EBADF;
        int r;

        if (max_fds < 1)
                return -E2BIG;
        r = broker_remount_superblock(m->fstype, &m->root, &mnt);
        if (r < 0)
                return r;
        if (sys_move_mount(mnt, "", AT_FDCWD, m->staging, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return sx_error(negative_errno(), "cannot attach the mount at %s: %m", m->staging);
        top = open(m->staging, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (top < 0)
                return negative_errno();
        dir = isempty(m->sub) ? TAKE_FD(top) : openat_beneath(top, m->sub, O_PATH | O_DIRECTORY, false);
        if (dir < 0)
                return sx_error(dir, "cannot open %s in the image: %m", m->sub);
        ret_fds[0] = sys_open_tree(dir, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        return ret_fds[0] < 0 ? sx_error(negative_errno(), "cannot clone the mount: %m") : 1;
}

/* 1 and *ret_fd: a clone made that way; 0: not possible for this mount. Kernels before 6.15 clone no mount outside the caller's mount namespace, so neither the store's
 * detached pins nor their subtrees: a new mount of the pinned superblock (by its block device) is
 * made and cloned in a helper instead. The same superblock: one loop device, one page cache. */
static int clone_by_remount(int mount_fd, const char *sub, int *ret_fd) {
        _cleanup_free_ char *staging = NULL;
        Remount m = { .sub = sub };
        int fd, r;

        m.fstype = broker_bdev_fs_name(mount_fd);
        if (!m.fstype || fstat(mount_fd, &m.root) < 0 || major(m.root.st_dev) == 0)
                return 0;               /* no block device file system: the clone's own error stands */
        r = sx_staging_dir_make(&staging);
        if (r < 0)
                return r;
        m.staging = staging;
        r = run_in_private_mntns(remount_in_child, &m, &fd, 1);
        if (r < 0)
                return r;
        if (r != 1)
                return -EIO;
        *ret_fd = fd;
        return 1;
}

int broker_bdev_node(dev_t dev, int *ret_dir_fd) {
        _cleanup_close_ int tfs = -EBADF, tmp = -EBADF;

        tfs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (tfs < 0 || sys_fsconfig(tfs, FSCONFIG_SET_STRING, "mode", "0700", 0) < 0 ||
            sys_fsconfig(tfs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return sx_error(negative_errno(), "cannot create a private tmpfs for a device node: %m");
        tmp = sys_fsmount(tfs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        if (tmp < 0 || mknodat(tmp, "dev", S_IFBLK | 0600, dev) < 0)
                return sx_error(negative_errno(), "cannot make a node for device %u:%u: %m", major(dev), minor(dev));
        *ret_dir_fd = TAKE_FD(tmp);
        return 0;
}

/* The mount is what a pin is: a detached read-only nodev mount of the superblock. */
int broker_remount_superblock(const char *fstype, const struct stat *root, int *ret_fd) {
        _cleanup_close_ int tmp = -EBADF, fs = -EBADF, mnt = -EBADF;
        char node[STRLEN("/proc/self/fd//dev") + 12];
        struct stat st;
        int r;

        r = broker_bdev_node(root->st_dev, &tmp);
        if (r < 0)
                return r;
        (void) snprintf(node, sizeof(node), "/proc/self/fd/%i/dev", tmp);
        fs = sys_fsopen(fstype, FSOPEN_CLOEXEC);
        if (fs < 0 || sys_fsconfig(fs, FSCONFIG_SET_STRING, "source", node, 0) < 0 ||
            sys_fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 || sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return sx_error(negative_errno(), "cannot mount %s from device %u:%u again: %m", fstype,
                                major(root->st_dev), minor(root->st_dev));
        mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV);
        if (mnt < 0 || fstat(mnt, &st) < 0)
                return sx_error(negative_errno(), "cannot mount %s from device %u:%u again: %m", fstype,
                                major(root->st_dev), minor(root->st_dev));
        if (st.st_dev != root->st_dev || st.st_ino != root->st_ino)
                return sx_error(-ESTALE, "device %u:%u gave another file system than the pinned one",
                                major(root->st_dev), minor(root->st_dev));
        *ret_fd = TAKE_FD(mnt);
        return 0;
}

int broker_clone_for_target_sub(int mount_fd, const char *sub, const BrokerTarget *t, bool recursive, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF, dir = -EBADF;
        int userns_fd = broker_target_userns_fd(t), r;
        struct mount_attr attr = {
                .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | (userns_fd >= 0 ? MOUNT_ATTR_IDMAP : 0),
                .userns_fd = userns_fd >= 0 ? (uint64_t) userns_fd : 0,
        };

        if (!isempty(sub)) {
                dir = openat_beneath(mount_fd, sub, O_PATH | O_DIRECTORY, /* in_root= */ false);
                if (dir == -ENOENT)
                        return dir;     /* the caller's to judge */
                if (dir < 0)
                        return sx_error(dir, "cannot open %s in the image: %m", sub);
        }
        if (TEST_HOOK(force_clone_by_remount, false) && !recursive)
                fd = (errno = EINVAL, -1);
        else
                fd = sys_open_tree(dir >= 0 ? dir : mount_fd, "",
                                   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0));
        if (fd < 0) {
                int k;
                r = negative_errno();
                k = r == -EINVAL && !recursive ? clone_by_remount(mount_fd, sub, &fd) : 0;
                if (k == 0)
                        return sx_error(r, "cannot clone the mount: %m");
                if (k < 0)
                        return sx_error_prefix(k, "cannot clone the mount by mounting its device again");
        }
        if (sys_mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) < 0)
                return sx_error(negative_errno(), "cannot make the clone read-only, nodev, nosuid%s: %m",
                                userns_fd >= 0 ? " and idmapped into the caller's namespace" : "");
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int broker_clone_for_target(int mount_fd, const BrokerTarget *t, bool recursive, int *ret_fd) {
        return broker_clone_for_target_sub(mount_fd, NULL, t, recursive, ret_fd);
}

int broker_image_fd_trusted(const char *root, int fd, const struct stat *st, char **ret_path, char **ret_why) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = fd_get_path(fd, &path);
        if (r < 0)
                return sx_error(r, "cannot tell the image fd's path: %m");
        r = 0;
        for (const char * const *d = broker_trusted_dirs; *d && r == 0; d++) {
                _cleanup_free_ char *dir = path_join_root(root, *d);
                const char *rest;
                if (!dir)
                        return -ENOMEM;
                rest = startswith_ptr(path, dir);
                if (!rest || rest[0] != '/' || !path_is_safe_component(rest + 1))
                        continue;
                /* The same inode by that path, and only root could have put it there. */
                r = path_is_root_controlled(path, st, ret_why);
                if (r < 0)
                        return sx_error(r, "%s: cannot check who may change it: %m", path);
                if (r == 0)
                        break;
        }
        if (r == 0 && !*ret_why && asprintf_safe(ret_why, "%s does not lie in a system extension directory", path) < 0)
                return -ENOMEM;
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return r;
}

/* An Image naming the caller's fd by its magic link: dissect reopens that very inode (never a path
 * the caller chose), with the caller's file access rights where ExtensionOptions say so. */
static int image_for_fd(int fd, const char *real_path, const struct stat *st, Image **ret) {
        _cleanup_(image_freep) Image *img = calloc(1, sizeof(Image));
        const char *base = real_path ? strrchr(real_path, '/') : NULL;

        if (!img)
                return -ENOMEM;
        if (!base || image_name_parse(base + 1, false, &img->name, &img->version) < 0) {
                img->version = NULL;
                img->name = strdup("image");
        }
        if (!img->name || asprintf_safe(&img->path, "/proc/self/fd/%i", fd) < 0)
                return -ENOMEM;
        img->type = S_ISBLK(st->st_mode) ? IMAGE_BLOCK : IMAGE_RAW;
        img->size = (uint64_t) st->st_size;
        img->mtime_usec = timespec_to_usec(&st->st_mtim);
        *ret = TAKE_PTR(img);
        return 0;
}

/* The policy an image is judged by: the administrator's for trusted ones, signed-only for the rest
 * (unless the administrator allows unsigned ones), each intersected with the caller's. */
static int effective_policy(const BrokerConfig *cfg, bool trusted, const ImagePolicy *caller, ImagePolicy **ret) {
        _cleanup_image_policy_ ImagePolicy *base = NULL;
        int r;

        const ImagePolicy *admin = trusted ? cfg->trusted_policy : NULL;

        /* (NULL is the sysext default, not "anything": without a caller's policy, a copy of ours.) */
        if (trusted || cfg->allow_unsigned_untrusted)
                return image_policy_intersect(admin, caller ?: admin, ret);
        r = image_policy_from_string("root=signed+absent:usr=signed+absent:=unused+absent", &base);
        if (r < 0)
                return r;
        return image_policy_intersect(base, caller ?: base, ret);
}

#ifndef PIDFS_MAGIC
#define PIDFS_MAGIC 0x50494446
#endif

/* Kernel interfaces that show regular files: a namespace, a pidfd, /proc/PID/mem or environ. The
 * image is reopened by its magic link, and such a file reopened by root opens what its inode names
 * now (the memory of a setuid program that pid has since executed): never an image, never opened. */
static bool fs_is_pseudo(int fd) {
        static const long pseudo[] = {
                PROC_SUPER_MAGIC, SYSFS_MAGIC, NSFS_MAGIC, PIDFS_MAGIC, ANON_INODE_FS_MAGIC, DEBUGFS_MAGIC,
                TRACEFS_MAGIC, SECURITYFS_MAGIC, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, BPF_FS_MAGIC,
                EFIVARFS_MAGIC,
        };
        struct statfs sfs;

        if (fstatfs(fd, &sfs) < 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(pseudo); i++)
                if ((long) sfs.f_type == pseudo[i])
                        return true;
        return false;
}

static int image_fd_check(const BrokerCaller *who, int fd, struct stat *ret_st) {
        if (fstat(fd, ret_st) < 0)
                return sx_error(negative_errno(), "cannot stat the image fd: %m");
        if (S_ISBLK(ret_st->st_mode) && who->uid != 0)
                return sx_error(-EACCES, "only root may have a block device mounted");
        if (!S_ISREG(ret_st->st_mode) && !S_ISBLK(ret_st->st_mode))
                return sx_error(-EBADFD, "the image fd is not a regular file%s", who->uid == 0 ? " or block device" : "");
        if (S_ISREG(ret_st->st_mode) && (ret_st->st_size <= 0 || fs_is_pseudo(fd)))
                return sx_error(-EBADFD, "the image fd is not an image file (%s)",
                                ret_st->st_size <= 0 ? "empty" : "a kernel interface file");
        return 0;
}

static int judge_image(const BrokerConfig *cfg, const BrokerCaller *who, int fd, const struct stat *st, bool *ret_trusted,
                       char **ret_path, char **ret_why) {
        int r;

        *ret_why = NULL;
        if (who->uid == 0) {
                /* Root could mount it itself: its images are as trusted as the administrator's. */
                *ret_trusted = true;
                return fd_get_path(fd, ret_path) < 0 ? (*ret_path = NULL, 0) : 0;
        }
        r = broker_image_fd_trusted(cfg->root, fd, st, ret_path, ret_why);
        if (r < 0)
                return r;
        *ret_trusted = r > 0;
        return 0;
}

/* The library named the image by the magic link we gave it: name the file instead. */
static int message_rename(int r, const char *from, const char *to) {
        _cleanup_free_ char *msg = strdup(strna(sx_last_error()));
        const char *at = msg && from ? strstr(msg, from) : NULL;

        if (!msg)
                return r;
        if (!at)
                return sx_error(r, "%s: %s", to, msg);
        return sx_error(r, "%.*s%s%s", (int) (at - msg), msg, to, at + strlen(from));
}

int broker_extension_open(const BrokerConfig *cfg, const BrokerCaller *who, int image_fd, const char *caller_policy,
                          Extension **ret, bool *ret_trusted, char **ret_why, char **ret_policy) {
        _cleanup_image_policy_ ImagePolicy *caller = NULL, *policy = NULL;
        _cleanup_free_ char *path = NULL, *why = NULL;
        Image *img = NULL;
        struct stat st;
        bool trusted = false;
        int r;

        if ((r = image_fd_check(who, image_fd, &st)) < 0 || (r = judge_image(cfg, who, image_fd, &st, &trusted, &path, &why)) < 0)
                return r;
        if (caller_policy && (r = image_policy_from_string(caller_policy, &caller)) < 0)
                return sx_error_prefix(r, "the caller's image policy");
        r = effective_policy(cfg, trusted, caller, &policy);
        if (r < 0)
                return r;
        ExtensionOptions o = {
                .image_class = IMAGE_CLASS_SYSEXT,
                .policy = policy,
                .verity_mode = VERITY_MODE_AUTO,
                .verity_root = cfg->root,
                .open_as_user = who->uid != 0,
                .uid = who->uid,
                .gid = who->gid,
                .user_controlled = !trusted && !cfg->allow_unsigned_untrusted,
                .user_controlled_why = why,
                .private_copy_max = cfg->private_copy_max,
        };
        r = image_for_fd(image_fd, path, &st, &img);
        if (r < 0)
                return r;
        _cleanup_free_ char *magic = strdup(img->path);
        r = extension_open(img, &o, ret);
        if (r < 0)
                /* extension_open() says -EPERM for what the policy refuses. */
                return message_rename(r == -EPERM ? -ERFKILL : r, magic, path ?: "image");
        if (ret_trusted)
                *ret_trusted = trusted;
        if (ret_policy && image_policy_to_string(policy, true, ret_policy) < 0)
                *ret_policy = NULL;
        if (ret_why)
                *ret_why = TAKE_PTR(why);
        return 0;
}

/* Whether only root can change the image's bytes: a block device (only root may bring one), or a
 * file whose path leads through root's directories to this inode. Root may have any image mounted,
 * a user's too (trusted, as root's own mounts of it are), but not served to others from the file. */
static bool image_root_controlled(const Extension *e, const struct stat *st) {
        _cleanup_free_ char *path = NULL, *why = NULL;

        if (S_ISBLK(st->st_mode))
                return true;
        if (!e->dissected || fd_get_path(e->dissected->fd, &path) < 0)
                return false;
        return path_is_root_controlled(path, st, &why) > 0;
}

/* The store key of partition d: its verified root hash (the same bytes whoever brings them), or
 * for the administrator's images the file's identity; NULL: not shared. stable: the bytes served
 * cannot change (a sealed private copy, or a file only root can change); a trusted image of a
 * root caller that a user could rewrite is served to that caller alone. */
static int partition_key(const Extension *e, PartitionDesignator d, bool trusted, bool stable, const struct stat *st,
                         char **ret) {
        const VerityData *v = e->verity ? verity_settings_get(e->verity, d) : NULL;
        const DissectedPartition *p = &e->dissected->partitions[d];

        *ret = NULL;
        if (!stable)
                return 0;
        if ((e->use[d] == PARTITION_POLICY_VERITY || e->use[d] == PARTITION_POLICY_SIGNED) && v && v->root_hash) {
                _cleanup_free_ char *hex = verity_hexmem(v->root_hash, v->root_hash_size);
                *ret = hex ? strjoin("verity:", hex) : NULL;
                return *ret ? 0 : -ENOMEM;
        }
        if (!trusted)
                return 0;
        /* ctime too: a rewrite in place that keeps size and mtime (cp + touch -r) still moves it,
         * and nobody can set it back. */
        return asprintf_safe(ret, "file:%" PRIu64 ":%" PRIu64 ":%" PRIu64 ":%" PRIu64 ":%" PRIu64 ":%i",
                             (uint64_t) st->st_dev, (uint64_t) st->st_ino, (uint64_t) st->st_size,
                             (uint64_t) st->st_mtim.tv_sec * UINT64_C(1000000000) + (uint64_t) st->st_mtim.tv_nsec,
                             (uint64_t) st->st_ctim.tv_sec * UINT64_C(1000000000) + (uint64_t) st->st_ctim.tv_nsec, p->partno);
}

static int mount_missing(Extension *e, const BrokerConfig *cfg, bool trusted, int plain_fds[2], bool is_new[2]) {
        int r;

        e->verity_ctx = VERITY_CONTEXT_INIT(e->verity, VERITY_MODE_AUTO);
        /* Someone other than root may write it: serve what was checked, not the file. */
        e->verity_ctx.private_copy = !trusted;
        e->verity_ctx.private_copy_max = cfg->private_copy_max;
        r = dissected_image_mount(e->dissected, verity_open_partition, &e->verity_ctx, &e->mounts);
        if (r < 0)
                return r;
        r = verity_context_relinquish(&e->verity_ctx);
        if (r < 0)
                return r;
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                int *fd = d == PARTITION_ROOT ? &e->mounts.root_fd : &e->mounts.usr_fd;
                if (*fd >= 0 && plain_fds[d] < 0) {
                        plain_fds[d] = TAKE_FD(*fd);
                        is_new[d] = true;
                }
        }
        return 0;
}

#define DEVICE_WALK_DEPTH_MAX 64U

/* 1 if the tree below dir_fd (a directory fd, consumed) holds a device node other than an
 * overlayfs whiteout (a character device 0:0). */
static int tree_has_device_nodes(int dir_fd, unsigned depth) {
        struct dirent *de;
        DIR *d;
        int r = 0;

        if (depth > DEVICE_WALK_DEPTH_MAX) {
                safe_close(dir_fd);
                return sx_error(-ELOOP, "directories nested more than %u deep", DEVICE_WALK_DEPTH_MAX);
        }
        d = fdopendir(dir_fd);
        if (!d) {
                r = negative_errno();
                safe_close(dir_fd);
                return r;
        }
        while (r == 0 && (errno = 0, de = readdir(d))) {
                struct stat st;
                int sub;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = negative_errno();
                        break;
                }
                if ((S_ISCHR(st.st_mode) && st.st_rdev != 0) || S_ISBLK(st.st_mode))
                        r = 1;
                else if (S_ISDIR(st.st_mode)) {
                        sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        r = sub < 0 ? negative_errno() : tree_has_device_nodes(sub, depth + 1);
                }
        }
        if (r == 0 && errno != 0)
                r = negative_errno();
        closedir(d);
        return r;
}

/* Device nodes are never served: a caller owns its clone of a mount and can clear nodev on it
 * (the kernel locks mount flags only when it copies a whole namespace into a less privileged
 * one, not on open_tree()), and a node's owner appears as the caller's root through the mapping.
 * Checked once per new superblock: a store entry has passed. systemd-sysext mounts /usr nodev, so
 * an extension's device nodes never worked anyway. */
static int refuse_device_nodes(const Extension *e, const int plain_fds[2], const bool is_new[2]) {
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                int fd, r;

                if (!is_new[d] || plain_fds[d] < 0)
                        continue;
                fd = openat(plain_fds[d], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0)
                        return sx_error(negative_errno(), "image '%s': cannot read the file system: %m", e->image->name);
                r = tree_has_device_nodes(fd, 0);
                if (r < 0)
                        return sx_error(r, "image '%s': cannot check the file system for device nodes: %m", e->image->name);
                if (r > 0)
                        return sx_error(-EPERM, "image '%s' contains device nodes; the broker serves no device nodes",
                                        e->image->name);
        }
        return 0;
}

int broker_extension_mount(Extension *e, const BrokerConfig *cfg, bool trusted, const struct stat *st,
                           BrokerLayerStore *store, int plain_fds[2], bool is_new[2], char *keys[2]) {
        bool was_found[2] = {}, missing = false;
        /* Untrusted images are served from a sealed private copy (mount_missing()). */
        bool stable = !trusted || image_root_controlled(e, st);
        int r = 0;

        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                const char *fstype = NULL;
                struct stat root;
                int pinned = -EBADF;
                was_found[d] = e->dissected->partitions[d].found;
                if (!was_found[d])
                        continue;
                if ((r = partition_key(e, d, trusted, stable, st, &keys[d])) < 0)
                        break;
                if (store && keys[d] && broker_store_lookup(store, keys[d], &pinned) > 0) {
                        plain_fds[d] = fcntl(pinned, F_DUPFD_CLOEXEC, 3);
                        if (plain_fds[d] < 0) {
                                r = negative_errno();
                                break;
                        }
                        e->dissected->partitions[d].found = false;     /* shared: not mounted again */
                } else if (store && keys[d] && broker_store_lookup_dormant(store, keys[d], &root, &fstype) > 0 &&
                           broker_remount_superblock(fstype, &root, &plain_fds[d]) >= 0) {
                        /* its superblock back from the device the store holds: pinned again */
                        is_new[d] = true;
                        e->dissected->partitions[d].found = false;
                } else {
                        sx_clear_error();
                        missing = true;
                }
        }
        /* a superblock the store keeps must be on a block device: only so can a gc that finds it in
         * use only through overlays keep it findable (broker_store_gc()) */
        e->dissected->block_device_only = store && (keys[PARTITION_ROOT] || keys[PARTITION_USR]);
        if (r >= 0 && missing)
                r = mount_missing(e, cfg, trusted, plain_fds, is_new);
        if (r >= 0)
                r = refuse_device_nodes(e, plain_fds, is_new);
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++)
                e->dissected->partitions[d].found = was_found[d];
        return r;
}

void broker_image_result_done(BrokerImageResult *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_partitions; i++) {
                BrokerPartition *p = &r->partitions[i];
                safe_close(p->mount_fd);
                safe_close(p->new_pinned_fd);
                free(p->fstype);
                free(p->roothash);
                free(p->store_key);
        }
        free(r->image_name);
        free(r->policy_used);
        free(r->trust);
        free(r->trust_reason);
        *r = (BrokerImageResult) {};
}

/* One partition of the result: the clone for the caller, and the plain mount for the store if new. */
static int result_add(BrokerImageResult *res, const Extension *e, PartitionDesignator d, int *plain, bool is_new,
                      char **key, const BrokerTarget *t, BrokerLayerStore *store) {
        const DissectedPartition *p = &e->dissected->partitions[d];
        const VerityData *v = e->verity ? verity_settings_get(e->verity, d) : NULL;
        BrokerPartition *bp = &res->partitions[res->n_partitions];
        int r;

        *bp = (BrokerPartition) {
                .designator = partition_designator_to_string(d), .mount_fd = -EBADF, .new_pinned_fd = -EBADF,
                .offset = p->offset, .size = p->size, .uuid = p->uuid, .growfs = p->growfs, .read_only = p->read_only,
                .partno = e->dissected->kind == DISSECT_GPT ? p->partno : -1,
        };
        res->n_partitions++;
        if (!(bp->fstype = strdup(strna(p->fstype))))
                return -ENOMEM;
        if (v && v->root_hash && e->use[d] != PARTITION_POLICY_UNPROTECTED && !(bp->roothash = verity_hexmem(v->root_hash, v->root_hash_size)))
                return -ENOMEM;
        r = broker_clone_for_target(*plain, t, false, &bp->mount_fd);
        if (r < 0)
                return r;
        bp->store_key = TAKE_PTR(*key);
        if (!is_new || !bp->store_key)
                return 0;
        if (store) {
                int dup = fcntl(*plain, F_DUPFD_CLOEXEC, 3);
                if (dup < 0 || (r = broker_store_insert(store, bp->store_key, dup)) < 0)
                        return dup < 0 ? negative_errno() : r;
        }
        bp->new_pinned_fd = TAKE_FD(*plain);
        return 0;
}

static int result_meta(BrokerImageResult *res, const Extension *e, bool trusted, char **why, char **policy) {
        uint64_t size = 0;

        (void) fd_get_size(e->dissected->fd, &size);
        res->image_size = size;
        res->trusted = trusted;
        res->trust_reason = TAKE_PTR(*why);
        res->policy_used = TAKE_PTR(*policy);
        res->image_name = strdup(e->image->name);
        res->trust = strdup(extension_trust_summary(e));
        return res->image_name && res->trust ? 0 : -ENOMEM;
}

int broker_mount_image(const BrokerConfig *cfg, const BrokerCaller *who, BrokerTarget *target,
                       int image_fd, const char *caller_policy, BrokerLayerStore *store,
                       BrokerImageResult *ret) {
        _cleanup_(extension_freep) Extension *e = NULL;
        _cleanup_free_ char *why = NULL, *policy = NULL;
        _cleanup_(broker_image_result_done) BrokerImageResult res = {};
        char *keys[2] = {};
        int plain[2] = { -EBADF, -EBADF };
        bool is_new[2] = {}, trusted = false;
        struct stat st;
        int r;

        assert(cfg && who && ret);
        if (!target && who->uid != 0)
                return sx_error(-EACCES, "without a user namespace only root may mount");
        r = broker_extension_open(cfg, who, image_fd, caller_policy, &e, &trusted, &why, &policy);
        if (r < 0)
                return r;
        if (fstat(image_fd, &st) < 0)
                return negative_errno();
        r = broker_extension_mount(e, cfg, trusted, &st, store, plain, is_new, keys);
        for (PartitionDesignator d = PARTITION_ROOT; r >= 0 && d <= PARTITION_USR; d++)
                if (plain[d] >= 0)
                        r = result_add(&res, e, d, &plain[d], is_new[d], &keys[d], target, store);
        if (r >= 0 && res.n_partitions == 0)
                r = sx_error(-EMEDIUMTYPE, "%s: no root or usr partition to mount", e->image->name);
        if (r >= 0)
                r = result_meta(&res, e, trusted, &why, &policy);
        for (int d = 0; d < 2; d++) {
                safe_close(plain[d]);
                free(keys[d]);
        }
        if (r < 0)
                return r;
        *ret = res;
        res = (BrokerImageResult) {};
        return 0;
}
