/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "util.h"

/* Dissection of an extension image: a directory, a bare filesystem image, or a GPT disk image
 * following the Discoverable Partitions Specification. Partition tables and filesystems are probed
 * with libblkid; partitions are opened as loop devices with offset and size limit. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-id128.h>

#include "image.h"
#include "loop.h"

typedef enum PartitionDesignator {
        PARTITION_ROOT,
        PARTITION_USR,
        PARTITION_ROOT_VERITY,
        PARTITION_USR_VERITY,
        PARTITION_ROOT_VERITY_SIG,
        PARTITION_USR_VERITY_SIG,
        _PARTITION_DESIGNATOR_MAX,
        _PARTITION_DESIGNATOR_INVALID = -EINVAL,
} PartitionDesignator;

const char *partition_designator_to_string(PartitionDesignator d);
PartitionDesignator partition_designator_from_string(const char *s);

typedef enum DissectKind {
        DISSECT_DIRECTORY,
        DISSECT_FILESYSTEM,     /* bare filesystem image: shows as a single root partition */
        DISSECT_GPT,
        _DISSECT_KIND_MAX,
} DissectKind;

const char *dissect_kind_to_string(DissectKind k);

/* The architecture this build prefers, as systemd names it ("x86-64", "arm64", …); partitions of
 * its secondary architecture ("x86" on x86-64) are used only if no native one exists. */
const char *dissect_native_architecture(void);

typedef struct DissectedPartition {
        bool found;             /* selected for use. A partition with the no-auto flag is recorded
                                 * (no_auto=true, details filled) but never found=true. */
        int partno;             /* 1-based GPT entry number, 0 for a bare filesystem */
        sd_id128_t type_uuid;
        sd_id128_t uuid;        /* partition UUID (GPT), or SD_ID128_NULL */
        char *label;            /* GPT partition label */
        char *fstype;           /* probed: squashfs, erofs, ext4, btrfs, xfs; NULL for verity/sig */
        char *architecture;     /* as systemd names it, from the type UUID; NULL if not arch specific */
        uint64_t offset;        /* in bytes, within the image file */
        uint64_t size;          /* in bytes */
        uint64_t gpt_flags;
        bool read_only;         /* SD_GPT_FLAG_READ_ONLY */
        bool no_auto;           /* SD_GPT_FLAG_NO_AUTO */
        bool growfs;            /* SD_GPT_FLAG_GROWFS */
} DissectedPartition;

typedef struct DissectedImage {
        char *path;
        char *name;             /* image name (for messages and extension-release lookup) */
        DissectKind kind;
        int fd;                 /* O_RDONLY|O_CLOEXEC fd of the image file, or O_PATH|O_DIRECTORY fd */
        uint64_t size;          /* image file size in bytes */
        char *table_uuid;       /* GPT disk UUID */
        DissectedPartition partitions[_PARTITION_DESIGNATOR_MAX];
        /* Set by the caller before mounting: never mount the file itself (erofs on 6.12+), always a
         * block device, so that the superblock can be found again by its device (the broker's store). */
        bool block_device_only;
} DissectedImage;

DissectedImage *dissected_image_free(DissectedImage *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(DissectedImage *, dissected_image_free);

/* Dissect without mounting (usable unprivileged for files we can read). Errors name the file:
 * "foo.raw: GPT partition 3 extends beyond the end of the image" etc. */
int dissect_image(const Image *image, DissectedImage **ret);
/* Same on an already open fd of a regular file (used by fuzzers/tests on in-memory images via
 * memfd). name is used in messages. */
int dissect_image_fd(int fd, const char *path, const char *name, DissectedImage **ret);

/* The detached mounts of one image. Nothing here is attached anywhere. */
typedef struct ImageMounts {
        int root_fd;            /* detached mount of the root partition / fs / directory clone, or -EBADF */
        int usr_fd;             /* detached mount of the usr partition, or -EBADF */
} ImageMounts;

void image_mounts_done(ImageMounts *m);
#define IMAGE_MOUNTS_NULL ((ImageMounts) { .root_fd = -EBADF, .usr_fd = -EBADF })

/* Hook for trust (verity): given the dissected image and the designator about to be mounted,
 * return the block device to mount from (fd on it) instead of a plain loop device, or -EOPNOTSUPP
 * to let dissect use a plain read-only loop device. NULL = always plain. */
typedef int (*DissectOpenPartition)(const DissectedImage *m, PartitionDesignator d, void *userdata,
                                    int *ret_block_fd);

/* Mount the image read-only as detached mounts (fsopen/fsmount over loop devices, or
 * open_tree(OPEN_TREE_CLONE) of a directory). Loop devices are autoclear: they go away with the
 * last mount. A bare erofs image with nothing to verify is mounted from the file itself where the
 * kernel can (file-backed erofs, 6.12+), without a loop device. ret untouched on failure. */
int dissected_image_mount(const DissectedImage *m, DissectOpenPartition open_partition, void *userdata,
                          ImageMounts *ret);

/* Open the directory for hierarchy (e.g. "/usr", "/opt") inside the mounted image as an
 * O_PATH|O_DIRECTORY fd, resolving strictly beneath the image (a symlink pointing outside is
 * refused with -EXDEV). Returns -ENOENT if the image has no such hierarchy. */
int image_mounts_open_hierarchy(const ImageMounts *m, const char *hierarchy, int *ret_fd);
