/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "util.h"

/* The size in bytes a filesystem claims for itself, read from its superblock: libblkid (2.38)
 * identifies filesystems but does not report their size. fstype is as libblkid names it (squashfs,
 * erofs, ext4, btrfs, xfs); the filesystem occupies [offset, offset+limit) of fd. Errors are recorded
 * with sx_error() naming path and, for partno > 0, the GPT partition. -EOPNOTSUPP for other types. */
int superblock_fs_size(const char *path, int partno, int fd, uint64_t offset, uint64_t limit, const char *fstype,
                       uint64_t *ret_size);
