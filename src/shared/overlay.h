/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Detached layers and the read-only overlay built on them.
 *
 * Preferred path (Linux ≥ 6.8): every layer is handed to overlayfs as a file descriptor
 * (fsconfig(FSCONFIG_SET_FD, "lowerdir+")), so no layer is ever attached anywhere.
 * Fallback (older kernels, or SYSEXT_IDMAP_FORCE_PATH_LAYERS=1): a child process in a private
 * mount namespace attaches the layers in a staging tmpfs, creates the overlays by path and sends
 * the detached overlay mounts back; its namespace (and the staging mounts) die with it, so the
 * caller's mount table never shows them. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "util.h"

/* One lower layer: the directory `subdir` (relative, "" for the root) of a detached mount. */
typedef struct Layer {
        int mnt_fd;             /* detached mount (image mount, metadata tmpfs, base clone) */
        char *subdir;           /* e.g. "usr", "opt", "" */
        int dir_fd;             /* O_PATH fd of subdir inside mnt_fd, for the fd path */
} Layer;

/* All layers of one hierarchy, top first: metadata, extensions newest first, base last. */
typedef struct OverlaySpec {
        const char *hierarchy;  /* for messages */
        uint64_t mount_attrs;   /* extra MOUNT_ATTR_* for the overlay mount (NODEV always, NOSUID for untrusted
                                 * layers, NOEXEC for --noexec=yes) */
        Layer *layers;
        size_t n_layers;
        /* A writable merge (--mutable=): upperdir and workdir (dir_fd ≥ 0). mnt_fd ≥ 0 says the directory
         * lies in a detached mount (the ephemeral tmpfs) that the staging fallback must attach first;
         * mnt_fd < 0, a directory in an attached file system. upper.dir_fd < 0: a read-only overlay. */
        Layer upper, work;
        const char *options;    /* extra overlayfs options, checked by overlay_options_check(); NULL = none */
        const char *source;     /* the mount source mountinfo shows: the image class ("sysext", "confext"); NULL = "sysext" */
} OverlaySpec;

/* What systemd-sysext (v262) gives a writable merge unless $SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS
 * says otherwise. */
#define OVERLAY_MUTABLE_OPTIONS "redirect_dir=on,noatime,metacopy=off,index=off"

/* A comma-separated overlayfs option string as $SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS carries it:
 * overlayfs options (key or key=value) and the per-mount flags noatime, relatime, strictatime,
 * nodiratime, nosuid, nodev, noexec. Refused (-EINVAL, with a message naming the option): the
 * layers (lowerdir, lowerdir+, datadir+, upperdir, workdir) and source, which sysext-idmap decides,
 * and ro, rw, suid, dev, exec, which would undo --mutable=, --noexec= or nodev/nosuid. The string
 * is not otherwise judged: the kernel refuses what overlayfs does not know, at merge time. */
int overlay_options_check(const char *options);

/* Apply MOUNT_ATTR_RDONLY, extra attributes (MOUNT_ATTR_NOSUID, _NODEV, _NOEXEC) and, if
 * userns_fd ≥ 0, MOUNT_ATTR_IDMAP to a detached mount. what names the image in errors; fstype is
 * used to suggest erofs where the kernel cannot idmap. */
int mount_make_idmapped(int mnt_fd, int userns_fd, uint64_t extra_attrs, const char *what, const char *fstype);

/* A detached, writable tmpfs whose root has the mode and ownership of `like` (so the merged
 * hierarchy's root looks as before). */
int meta_layer_make(const struct stat *like, int *ret_fd);

/* Does this kernel's overlayfs take layers as file descriptors ("lowerdir+", Linux 6.7+)? 1 yes, 0 no
 * (also with the force_path_layers test hook). Needs the right to mount in the current mount
 * namespace (an ordinary user: in a mount namespace its own user namespace owns). */
int overlay_fd_layers_supported(void);

/* Build the overlays for n specs. ret_fds[i] receives a detached, read-only overlay mount.
 * *ret_path_fallback says whether the staging fallback was used. Nothing is left behind on failure. */
int overlays_make(const OverlaySpec *specs, size_t n, int *ret_fds, bool *ret_path_fallback);

/* Close n detached mounts (fds[i] < 0 are skipped; every fds[i] is -EBADF afterwards). The last
 * close of each detached mount tree dissolves it, and every dissolution waits for an RCU grace
 * period (namespace_unlock()): 128 image mounts cost 128 grace periods at exit. Where the kernel
 * can attach a detached mount inside another detached tree (Linux 6.15+), they are all moved below
 * one private tmpfs first, and the whole tree is dissolved by one close; elsewhere (EINVAL) each is
 * closed as before. Only for mounts nothing else is to be done with (the overlays hold their own
 * private clones of their layers) and that no other process still uses: moving a mount acts on it
 * for every holder of the fd, a forked child too. */
void mounts_dissolve(int *fds, size_t n);

/* Attach a detached mount onto target (an O_PATH fd of the mount point), on top of it or, with
 * beneath, directly beneath the mount on top (MOVE_MOUNT_BENEATH). */
int mount_attach(int mnt_fd, int target_fd, bool beneath);

/* A detached clone of the hierarchy with every sysext overlay on top of it peeled off (at most
 * MAX_STACKED_MERGES), computed in a private mount namespace of a child (the caller's mounts are
 * untouched). path is absolute. */
#define MAX_STACKED_MERGES 64
int hierarchy_open_base(const char *path, int *ret_fd);
