/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the broker's files share (broker.c, broker-image.c, broker-store.c, broker-overlay.c). */

#include "broker.h"
#include "extension.h"

/* The directories whose root-owned images are the administrator's, relative to the root. */
extern const char * const broker_trusted_dirs[];

/* A detached clone of mount_fd (its whole tree if recursive), read-only, nodev, nosuid, and
 * idmapped with the target's namespace (none for a target without one). */
int broker_clone_for_target(int mount_fd, const BrokerTarget *t, bool recursive, int *ret_fd);
/* The same for the directory sub (NULL or "": the root) beneath mount_fd, opened beneath it
 * (-ENOENT, unrecorded, when it is not there). Where the kernel cannot clone a mount outside our
 * mount namespace (before 6.15: a detached pin), a block device file system's superblock is mounted
 * again by its device in a helper and the clone made there. */
int broker_clone_for_target_sub(int mount_fd, const char *sub, const BrokerTarget *t, bool recursive, int *ret_fd);

/* The name of the block device file system mount fd is on ("erofs", "squashfs", ...), or NULL. */
const char *broker_bdev_fs_name(int fd);
/* A detached private tmpfs (no path anyone else sees) holding a node "dev" for block device dev,
 * to be named through "/proc/self/fd/<*ret_dir_fd>/dev" (the host's /dev may lack the node, or be
 * someone else's). */
int broker_bdev_node(dev_t dev, int *ret_dir_fd);
/* A new plain detached mount of root's device (a pin's, or a dormant store entry's), checked to
 * have root's device and root inode: while the superblock lives, the kernel gives back that one. */
int broker_remount_superblock(const char *fstype, const struct stat *root, int *ret_fd);

/* Whether the image fd is the administrator's: a root-owned file directly inside one of the
 * trusted directories under root, every component root's and not writable by others, and the
 * path still naming this very inode. 1 yes; 0 no with *ret_why; negative errno. *ret_path (may be
 * NULL) gets the path the kernel has for fd. */
int broker_image_fd_trusted(const char *root, int fd, const struct stat *st, char **ret_path, char **ret_why);

/* Open the caller's image fd as an Extension judged by the broker's rules (trust, policies);
 * not mounted. ret_trusted/ret_why/ret_policy may be NULL. */
int broker_extension_open(const BrokerConfig *cfg, const BrokerCaller *who, int image_fd, const char *caller_policy,
                          Extension **ret, bool *ret_trusted, char **ret_why, char **ret_policy);

/* Mount the partitions of e (dissected, trust checked) that are not in the store: their plain
 * mounts go into plain_fds[PARTITION_ROOT/USR] (a store hit is a dup of the pinned fd, else a new
 * superblock mount, new[d] = true); keys[d] the store key or NULL. */
int broker_extension_mount(Extension *e, const BrokerConfig *cfg, bool trusted, const struct stat *st,
                           BrokerLayerStore *store, int plain_fds[2], bool is_new[2], char *keys[2]);
