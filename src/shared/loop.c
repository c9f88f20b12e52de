/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Read-only loop devices over a byte range of a file. This kernel has no GPT partition scanning and no
 * device-mapper, so each partition of a disk image becomes its own loop device with lo_offset and
 * lo_sizelimit. LOOP_CONFIGURE sets fd, offset, size and flags in one ioctl, so there is no window in
 * which a half-configured (e.g. writable, or whole-file) device is visible to others. */

#include <assert.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>

#include "loop.h"
#include "mountapi.h"

/* Another process may grab the device LOOP_CTL_GET_FREE gave us before we configure it. */
#define LOOP_CONFIGURE_ATTEMPTS 64

LoopDevice *loop_device_free(LoopDevice *d) {
        if (!d)
                return NULL;
        /* Autoclear: the kernel detaches the device once this was the last opener and no
         * superblock holds it. */
        safe_close(d->fd);
        free(d->node);
        free(d);
        return NULL;
}

/* Try once: get a free device number, open it, configure it. -EBUSY means "lost a race, retry". */
static int loop_configure_one(int control_fd, const struct loop_config *config, int *ret_nr, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        char node[STRLEN("/dev/loop") + 12];
        int nr;

        nr = ioctl(control_fd, LOOP_CTL_GET_FREE);
        if (nr < 0)
                return negative_errno();
        (void) snprintf(node, sizeof(node), "/dev/loop%i", nr);
        fd = open(node, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                /* The node may not have shown up yet, or someone removed the device: try another. */
                return errno == ENOENT || errno == ENXIO ? -EBUSY : negative_errno();
        if (ioctl(fd, LOOP_CONFIGURE, config) < 0)
                return negative_errno();
        *ret_nr = nr;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Checks after configuration; the caller detaches the device if this fails. */
static int loop_verify(int fd, uint64_t want_size) {
        uint64_t got;

        if (ioctl(fd, BLKGETSIZE64, &got) < 0)
                return negative_errno();
        /* The kernel silently clamps lo_sizelimit to what the backing file has, and some kernels
         * ignored the limit in LOOP_CONFIGURE; either way the device would not be what we asked for. */
        if (got != want_size)
                return sx_error(-ENXIO, "loop device has %" PRIu64 " bytes, expected %" PRIu64, got, want_size);
        return 0;
}

int loop_device_make(int image_fd, uint64_t offset, uint64_t size, LoopDevice **ret) {
        _cleanup_close_ int control_fd = -EBADF, fd = -EBADF;
        _cleanup_(loop_device_freep) LoopDevice *d = NULL;
        uint64_t backing;
        int r, nr = -1;

        assert(image_fd >= 0);
        assert(ret);
        r = fd_get_size(image_fd, &backing);
        if (r < 0)
                return r;
        if (offset >= backing || (size > 0 && size > backing - offset))
                return sx_error(-ENXIO, "range %" PRIu64 "+%" PRIu64 " lies beyond the end of the backing file (%" PRIu64 " bytes)",
                                offset, size, backing);
        if (size == 0)
                size = backing - offset;

        struct loop_config config = {
                .fd = (uint32_t) image_fd,
                .block_size = 0,
                .info = {
                        .lo_offset = offset,
                        .lo_sizelimit = size,
                        .lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                },
        };

        control_fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (control_fd < 0)
                return negative_errno();

        /* One fault point for all attempts: a race lost to another process must not shift the
         * numbering of the steps after it (test-faults lists them in one run, fails each in another). */
        if (FAULT("loop-configure") < 0)
                return negative_errno();
        r = -EBUSY;
        for (unsigned attempt = 0; attempt < LOOP_CONFIGURE_ATTEMPTS && r == -EBUSY; attempt++)
                r = loop_configure_one(control_fd, &config, &nr, &fd);
        if (r < 0)
                return r;

        r = loop_verify(fd, size);
        if (r < 0) {
                /* Autoclear would do it on close too, but only if nobody else (udev, blkid) has it
                 * open: detach explicitly so no device is left behind. */
                (void) ioctl(fd, LOOP_CLR_FD);
                return r;
        }

        d = calloc(1, sizeof(*d));
        if (d) {
                *d = (LoopDevice) { .fd = -EBADF, .nr = nr, .offset = offset, .size = size };
                if (asprintf_safe(&d->node, "/dev/loop%i", nr) < 0)
                        d = loop_device_free(d);
        }
        if (!d) {
                (void) ioctl(fd, LOOP_CLR_FD);
                return -ENOMEM;
        }
        d->fd = TAKE_FD(fd);
        *ret = TAKE_PTR(d);
        return 0;
}
