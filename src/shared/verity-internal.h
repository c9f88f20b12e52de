/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the verity-*.c files share and callers of verity.h need not see. No library beyond libc:
 * verity-sig.h (OpenSSL) and verity-setup.h (libcryptsetup) hold what needs one. */

#include <assert.h>

#include "verity.h"

/* SHA-256 and up; a root hash must at least fill the two partition UUIDs. */
#define ROOT_HASH_MIN 16U
#define ROOT_HASH_MAX 64U

/* A byte range of a file or block device: a data area or a hash tree. */
typedef struct VerityArea {
        int fd;
        uint64_t offset, size;
} VerityArea;

static inline bool verity_is_data_designator(PartitionDesignator d) {
        return d == PARTITION_ROOT || d == PARTITION_USR;
}

/* The verity (hash tree) partition belonging to data partition d. */
static inline PartitionDesignator verity_partition_of(PartitionDesignator d) {
        assert(verity_is_data_designator(d));
        return d == PARTITION_ROOT ? PARTITION_ROOT_VERITY : PARTITION_USR_VERITY;
}

/* The verity signature partition belonging to data partition d. */
static inline PartitionDesignator verity_sig_partition_of(PartitionDesignator d) {
        assert(verity_is_data_designator(d));
        return d == PARTITION_ROOT ? PARTITION_ROOT_VERITY_SIG : PARTITION_USR_VERITY_SIG;
}

/* verity-roothash.c: calls fn for each trusted certificate file (*.crt) in the verity.d
 * directories below root (or the test hook's list): the first directory having a name wins it,
 * a symlink to /dev/null masks it, a directory that cannot be opened is skipped. Stops at, and
 * returns, the first negative value fn returns. dir_fd is valid only during the call. */
typedef int (*VerityCertFileFn)(int dir_fd, const char *dir, const char *name, void *userdata);
int verity_cert_files_foreach(const char *root, VerityCertFileFn fn, void *userdata);
