/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "util.h"

#include <stdint.h>

/* A read-only loop device over a range of a file. With autoclear, the kernel detaches it when the
 * last user (our fd, or the superblock mounted from it) goes away. */
typedef struct LoopDevice {
        int fd;                 /* O_RDONLY fd on /dev/loopN, or -EBADF */
        int nr;
        char *node;             /* /dev/loopN */
        uint64_t offset, size;
} LoopDevice;

LoopDevice *loop_device_free(LoopDevice *d);   /* closes the fd; autoclear does the rest */
DEFINE_TRIVIAL_CLEANUP_FUNC(LoopDevice *, loop_device_free);

/* size 0 = up to the end of the file. Uses LOOP_CONFIGURE (read-only, autoclear, direct I/O
 * off), retrying on races for free devices. */
int loop_device_make(int image_fd, uint64_t offset, uint64_t size, LoopDevice **ret);
