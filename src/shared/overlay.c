/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <sched.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "mountapi.h"
#include "overlay.h"

#define OVERLAY_SOURCE "sysext"         /* what systemd-sysext shows as the mount source */
#define MAX_PASSED_FDS 64

int mount_make_idmapped(int mnt_fd, int userns_fd, uint64_t extra_attrs, const char *what, const char *fstype) {
        struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY | extra_attrs };
        int r;

        if (userns_fd >= 0) {
                a.attr_set |= MOUNT_ATTR_IDMAP;
                a.userns_fd = (uint64_t) userns_fd;
        }
        if (sys_mount_setattr(mnt_fd, "", AT_EMPTY_PATH, &a, sizeof(a)) >= 0)
                return 0;
        r = negative_errno();
        if (r == -ENOSYS)
                return sx_error(r, "%s: the kernel lacks mount_setattr() (Linux 5.12 or newer is needed)", what);
        if (userns_fd >= 0 && r == -EINVAL)
                return sx_error(r, "%s: the kernel cannot idmap %s file systems; build the image as erofs, or use --idmap=identity",
                                what, fstype ?: "this kind of");
        return sx_error(r, "%s: failed to make the layer %s: %s", what,
                        userns_fd >= 0 ? "idmapped and read-only" : "read-only", strerror(-r));
}

static int fsconfig_string(int fs, const char *key, const char *value) {
        return sys_fsconfig(fs, FSCONFIG_SET_STRING, key, value, 0) < 0 ? negative_errno() : 0;
}

int meta_layer_make(const struct stat *like, int *ret_fd) {
        _cleanup_close_ int fs = -EBADF;
        char mode[16], uid[16], gid[16];
        int mnt, r;

        fs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0)
                return sx_error(negative_errno(), "failed to create the metadata layer: fsopen(tmpfs): %s", strerror(errno));
        snprintf(mode, sizeof(mode), "0%o", (unsigned) (like->st_mode & 07777));
        snprintf(uid, sizeof(uid), "%u", (unsigned) like->st_uid);
        snprintf(gid, sizeof(gid), "%u", (unsigned) like->st_gid);
        if ((r = fsconfig_string(fs, "mode", mode)) < 0 || (r = fsconfig_string(fs, "uid", uid)) < 0 ||
            (r = fsconfig_string(fs, "gid", gid)) < 0 || (r = fsconfig_string(fs, "size", "4m")) < 0 ||
            (r = fsconfig_string(fs, "nr_inodes", "1024")) < 0 ||
            (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 && (r = negative_errno()) < 0)) {
                _cleanup_free_ char *msg = fs_context_messages(fs);
                return sx_error(r, "failed to create the metadata layer: %s", msg ?: strerror(-r));
        }
        mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        if (mnt < 0)
                return sx_error(negative_errno(), "failed to create the metadata layer: fsmount: %s", strerror(errno));
        *ret_fd = mnt;
        return 0;
}

static int overlay_fail(int r, int fs, const OverlaySpec *s, const char *step) {
        _cleanup_free_ char *msg = fs_context_messages(fs);

        return sx_error(r, "%s: failed to %s the overlay: %s", s->hierarchy, step, msg ?: strerror(-r));
}

static int overlay_finish(int fs, const OverlaySpec *s, int *ret_fd) {
        int mnt;

        if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return overlay_fail(negative_errno(), fs, s, "create");
        mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | (unsigned) s->mount_attrs);
        if (mnt < 0)
                return overlay_fail(negative_errno(), fs, s, "mount");
        *ret_fd = mnt;
        return 0;
}

static int overlay_open(const OverlaySpec *s, int *ret_fs) {
        int fs = sys_fsopen("overlay", FSOPEN_CLOEXEC);

        if (fs < 0)
                return sx_error(negative_errno(), "%s: overlayfs is not available: %s", s->hierarchy, strerror(errno));
        if (fsconfig_string(fs, "source", OVERLAY_SOURCE) < 0 ||
            sys_fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0) {
                int r = overlay_fail(negative_errno(), fs, s, "configure");
                safe_close(fs);
                return r;
        }
        *ret_fs = fs;
        return 0;
}

/* -EOPNOTSUPP: this kernel's overlayfs does not take layers as file descriptors. */
static int overlay_make_fd(const OverlaySpec *s, int *ret_fd) {
        _cleanup_close_ int fs = -EBADF;
        int r;

        r = overlay_open(s, &fs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_layers; i++) {
                if (sys_fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, s->layers[i].dir_fd) >= 0)
                        continue;
                r = negative_errno();
                /* The first layer is always our metadata tmpfs, so a refusal there is about fd
                 * layers: EINVAL from an overlayfs that has the new API but no "lowerdir+" (6.5–6.7),
                 * EOPNOTSUPP from a legacy fs context, which takes no fds at all (before 6.5). */
                if (i == 0 && (r == -EINVAL || r == -EOPNOTSUPP)) {
                        _cleanup_free_ char *msg = fs_context_messages(fs);
                        sx_debug("overlayfs refused a layer fd (%s: %s), using the staging fallback",
                                 strerror(-r), strna(msg));
                        return -EOPNOTSUPP;
                }
                return overlay_fail(r, fs, s, "add a layer to");
        }
        return overlay_finish(fs, s, ret_fd);
}

typedef struct FallbackContext {
        const OverlaySpec *specs;
        size_t n;
        const char *staging;
} FallbackContext;

/* Attach a detached mount below the staging directory once, remembering where. */
static int stage_mount(int stage_fd, int mnt_fd, int *staged, size_t *n_staged, size_t *ret_index) {
        char name[24];

        for (size_t i = 0; i < *n_staged; i++)
                if (staged[i] == mnt_fd) {
                        *ret_index = i;
                        return 0;
                }
        if (*n_staged >= MAX_PASSED_FDS * 8)
                return -E2BIG;
        snprintf(name, sizeof(name), "%zu", *n_staged);
        if (sys_mkdirat(stage_fd, name, 0700) < 0 ||
            sys_move_mount(mnt_fd, "", stage_fd, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return negative_errno();
        staged[*n_staged] = mnt_fd;
        *ret_index = (*n_staged)++;
        return 0;
}

static int fallback_one(const OverlaySpec *s, int stage_fd, int *staged, size_t *n_staged, int *ret_fd) {
        _cleanup_close_ int fs = -EBADF;
        _cleanup_free_ char *lowerdir = NULL;
        int r;

        for (size_t i = 0; i < s->n_layers; i++) {
                _cleanup_free_ char *sub = NULL, *j = NULL;
                size_t idx;
                int d;

                r = stage_mount(stage_fd, s->layers[i].mnt_fd, staged, n_staged, &idx);
                if (r < 0)
                        return sx_error(r, "%s: failed to stage a layer: %s", s->hierarchy, strerror(-r));
                if (asprintf_safe(&sub, "%zu/%s", idx, strempty(s->layers[i].subdir)) < 0)
                        return -ENOMEM;
                /* Never re-resolve image paths: hand overlayfs the very directory by magic link. The
                 * fd stays open until the child exits, after the overlay is created. */
                d = openat_beneath(stage_fd, sub, O_PATH | O_DIRECTORY, false);
                if (d < 0)
                        return sx_error(d, "%s: staged layer %s vanished: %s", s->hierarchy, sub, strerror(-d));
                if (asprintf_safe(&j, "%s%s/proc/self/fd/%d", strempty(lowerdir), lowerdir ? ":" : "", d) < 0)
                        return -ENOMEM;
                free(lowerdir);
                lowerdir = TAKE_PTR(j);
        }
        r = overlay_open(s, &fs);
        if (r < 0)
                return r;
        if (fsconfig_string(fs, "lowerdir", lowerdir) < 0)
                return overlay_fail(negative_errno(), fs, s, "configure");
        return overlay_finish(fs, s, ret_fd);
}

static int fallback_in_child(void *userdata, int *ret_fds, size_t max_fds) {
        FallbackContext *c = userdata;
        _cleanup_close_ int tmp = -EBADF, tmp_mnt = -EBADF, stage_fd = -EBADF;
        int staged[MAX_PASSED_FDS * 8];
        size_t n_staged = 0;
        int r;

        if (c->n > max_fds)
                return -E2BIG;
        /* A private tmpfs as staging area: this namespace is a private copy, nothing propagates. */
        tmp = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (tmp < 0 || sys_fsconfig(tmp, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return sx_error(negative_errno(), "failed to create the staging area: %s", strerror(errno));
        tmp_mnt = sys_fsmount(tmp, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
        if (tmp_mnt < 0 || sys_move_mount(tmp_mnt, "", AT_FDCWD, c->staging, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return sx_error(negative_errno(), "failed to attach the staging area %s: %s", c->staging, strerror(errno));
        stage_fd = open(c->staging, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (stage_fd < 0)
                return negative_errno();
        for (size_t i = 0; i < c->n; i++) {
                r = fallback_one(&c->specs[i], stage_fd, staged, &n_staged, &ret_fds[i]);
                if (r < 0) {
                        for (size_t k = 0; k < i; k++)
                                safe_close(ret_fds[k]);
                        return r;
                }
        }
        return (int) c->n;
}

int overlays_make(const OverlaySpec *specs, size_t n, int *ret_fds, bool *ret_path_fallback) {
        static int fd_layers_work = -1;        /* cached feature probe */
        _cleanup_free_ char *staging = NULL;
        int fds[MAX_PASSED_FDS], r;
        size_t done = 0;

        if (n > MAX_PASSED_FDS)
                return -E2BIG;
        if (!TEST_HOOK(force_path_layers, false) && fd_layers_work != 0) {
                for (; done < n; done++) {
                        r = overlay_make_fd(&specs[done], &fds[done]);
                        if (r == -EOPNOTSUPP) {
                                fd_layers_work = 0;
                                break;
                        }
                        if (r < 0)
                                goto fail;
                        fd_layers_work = 1;
                }
                if (done == n) {
                        memcpy(ret_fds, fds, n * sizeof(int));
                        *ret_path_fallback = false;
                        return 0;
                }
        }
        for (size_t i = 0; i < done; i++)
                fds[i] = safe_close(fds[i]);
        done = 0;

        staging = strjoin(sx_runtime_dir(), "/staging");
        if (!staging)
                return -ENOMEM;
        r = mkdir_p(staging, 0700);
        if (r < 0)
                return sx_error(r, "failed to create %s: %s", staging, strerror(-r));
        FallbackContext c = { .specs = specs, .n = n, .staging = staging };
        r = run_in_private_mntns(fallback_in_child, &c, fds, n);
        if (r < 0)
                return r;
        if ((size_t) r != n) {
                for (int i = 0; i < r; i++)
                        safe_close(fds[i]);
                return sx_error(-EIO, "the staging helper returned %d of %zu overlays", r, n);
        }
        memcpy(ret_fds, fds, n * sizeof(int));
        *ret_path_fallback = true;
        return 0;
fail:
        for (size_t i = 0; i < done; i++)
                safe_close(fds[i]);
        return r;
}

int mount_attach(int mnt_fd, int target_fd, bool beneath) {
        unsigned flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;

        if (beneath)
                flags |= MOVE_MOUNT_BENEATH;
        return sys_move_mount(mnt_fd, "", target_fd, "", flags) < 0 ? negative_errno() : 0;
}

int is_sysext_mount(int dir_fd) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        unsigned ma, mi;
        struct stat st;
        int r;

        fd = openat_beneath(dir_fd, ".systemd-sysext/dev", O_RDONLY | O_NONBLOCK | O_NOCTTY, false);
        if (fd == -ENOENT || fd == -ENOTDIR)
                return 0;
        if (fd < 0)
                return fd;
        r = read_full_fd(fd, 64, &buf, NULL);
        if (r < 0)
                return r == -EFBIG || r == -EBADFD ? 0 : r;
        if (sscanf(buf, "%u:%u", &ma, &mi) != 2)
                return 0;
        if (fstat(dir_fd, &st) < 0)
                return negative_errno();
        return major(st.st_dev) == ma && minor(st.st_dev) == mi;
}

static int base_in_child(void *userdata, int *ret_fds, size_t max_fds) {
        const char *path = userdata;

        /* Peel off sysext overlays (ours or systemd's) in this private copy of the namespace. */
        for (unsigned i = 0; i < 64; i++) {
                _cleanup_close_ int d = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                int r;

                if (d < 0)
                        return sx_error(negative_errno(), "%s: %s", path, strerror(errno));
                r = is_sysext_mount(d);
                if (r < 0)
                        return sx_error(r, "%s: cannot read merge markers: %s", path, strerror(-r));
                if (r == 0)
                        break;
                d = safe_close(d);
                if (sys_umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        return sx_error(negative_errno(), "%s: cannot look beneath the merged overlay: %s", path, strerror(errno));
        }
        ret_fds[0] = sys_open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (ret_fds[0] < 0)
                return sx_error(negative_errno(), "%s: cannot clone the hierarchy: %s", path, strerror(errno));
        return 1;
}

int hierarchy_open_base(const char *path, int *ret_fd) {
        int fd, r;

        r = run_in_mntns(-EBADF, RUN_AS_MNTNS_OWNER, base_in_child, (void *) path, &fd, 1);
        if (r < 0)
                return r;
        if (r != 1)
                return -EIO;
        *ret_fd = fd;
        return 0;
}

/* ---- a child in a private mount namespace that passes fds back ---- */

typedef struct ChildReply {
        int r;
        char message[2048];
} ChildReply;

/* Join the owner of our mount namespace if it is not our user namespace. */
static int join_mntns_owner(void) {
        _cleanup_close_ int mnt = -EBADF, owner = -EBADF;
        struct stat a, b;

        mnt = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (mnt < 0)
                return negative_errno();
        owner = ioctl(mnt, NS_GET_USERNS);
        if (owner < 0)
                return negative_errno();
        if (fstat(owner, &a) < 0 || stat("/proc/self/ns/user", &b) < 0)
                return negative_errno();
        if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
                return 0;
        return sys_setns(owner, CLONE_NEWUSER) < 0 ? negative_errno() : 1;
}

/* Enter the namespace the function is to run in: the target, or a private copy of ours. */
static int child_enter(int mntns_fd, RunFlags flags) {
        int r;

        if (mntns_fd >= 0) {
                if (sys_setns(mntns_fd, CLONE_NEWNS) < 0 || chdir("/") < 0)
                        return sx_error(negative_errno(), "cannot join the target mount namespace: %s", strerror(errno));
                return 0;
        }
        if (flags & RUN_AS_MNTNS_OWNER) {
                r = join_mntns_owner();
                if (r < 0)
                        return sx_error(r, "cannot join the user namespace owning our mount namespace: %s", strerror(-r));
        }
        if (sys_unshare(CLONE_NEWNS) < 0)
                return sx_error(negative_errno(), "cannot create a private mount namespace: %s", strerror(errno));
        /* Nothing done in the copy may propagate back. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return sx_error(negative_errno(), "cannot make the private mount namespace private: %s", strerror(errno));
        return 0;
}

static void child_run(int sock, int mntns_fd, RunFlags flags, PrivateNsFunc fn, void *userdata, size_t max_fds) {
        int fds[MAX_PASSED_FDS];
        ChildReply reply = {};
        char cbuf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)] = {};
        struct iovec iov = { .iov_base = &reply, .iov_len = sizeof(reply) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        reply.r = child_enter(mntns_fd, flags);
        if (reply.r >= 0)
                reply.r = fn(userdata, fds, max_fds);
        if (reply.r < 0 && sx_last_error())
                copy_message(reply.message, sizeof(reply.message), sx_last_error());
        if (reply.r > 0) {
                mh.msg_control = cbuf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t) reply.r);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t) reply.r);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t) reply.r);
        }
        _exit(sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? 1 : 0);
}

int run_in_mntns(int mntns_fd, RunFlags flags, PrivateNsFunc fn, void *userdata, int *ret_fds, size_t max_fds) {
        char cbuf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)] = {};
        ChildReply reply = {};
        struct iovec iov = { .iov_base = &reply, .iov_len = sizeof(reply) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        int sk[2], n = 0;
        ssize_t k;
        pid_t pid;

        if (max_fds > MAX_PASSED_FDS)
                return -E2BIG;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sk) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                safe_close(sk[0]);
                safe_close(sk[1]);
                return negative_errno();
        }
        if (pid == 0) {
                safe_close(sk[0]);
                child_run(sk[1], mntns_fd, flags, fn, userdata, max_fds);
        }
        safe_close(sk[1]);
        do
                k = recvmsg(sk[0], &mh, MSG_CMSG_CLOEXEC);
        while (k < 0 && errno == EINTR);
        safe_close(sk[0]);
        (void) waitpid(pid, NULL, 0);
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); k > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                        n = (int) ((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                        memcpy(ret_fds, CMSG_DATA(cm), sizeof(int) * (size_t) n);
                }
        if (k != (ssize_t) sizeof(reply)) {
                for (int i = 0; i < n; i++)
                        safe_close(ret_fds[i]);
                return sx_error(-EIO, "helper process in a private mount namespace died");
        }
        if (reply.r < 0) {
                reply.message[sizeof(reply.message) - 1] = 0;
                return sx_error(reply.r, "%s", reply.message[0] ? reply.message : strerror(-reply.r));
        }
        if (n != reply.r) {
                for (int i = 0; i < n; i++)
                        safe_close(ret_fds[i]);
                return sx_error(-EIO, "helper process passed %d of %d file descriptors", n, reply.r);
        }
        return n;
}
