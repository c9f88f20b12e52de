/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* verity-setup.c: everything that calls libcryptsetup, built only when meson found it: loading
 * the hash tree's superblock, the userspace check of a whole data area, dm-verity activation,
 * reuse and removal. verity.c decides what to open and how; this file only does it. Without
 * libcryptsetup the stubs below stand in: verity_setup_supported() fails with a message, and
 * nothing else is reached. With it, libcryptsetup.so.12 is dlopen()ed in verity_setup_supported()
 * (and verity_setup_deactivate()): a missing library fails there with one message naming it, and
 * callers already cope with its failing. */

#include "verity-internal.h"

/* A verity setup in progress: loop devices for hash and data, and the libcryptsetup context. */
typedef struct VeritySetup VeritySetup;

#if HAVE_LIBCRYPTSETUP
/* 0 if verity can be set up here, else a negative errno with a message naming label. Call it
 * before any other verity_setup_*(). */
int verity_setup_supported(const char *label);

/* Whether dm-verity activation is possible here (device-mapper present and usable; cached). */
bool verity_setup_kernel_available(void);

/* Loads the superblock from the hash tree, then attaches exactly the data area it covers (a data
 * partition larger than the hash tree must not expose unverified bytes). userspace_check: prepare
 * for verity_setup_check() rather than activation. */
int verity_setup_new(const char *label, const VerityArea *data, const VerityArea *hash, size_t root_hash_size,
                     bool userspace_check, VeritySetup **ret);
VeritySetup *verity_setup_free(VeritySetup *v);

/* Reads every data and hash block and compares the tree up to root_hash; -EBADMSG if it differs. */
int verity_setup_check(const char *label, VeritySetup *v, const uint8_t *root_hash, size_t root_hash_size);

/* A new O_RDONLY fd of the data loop device (the bytes verity_setup_check() checked). */
int verity_setup_data_fd(VeritySetup *v);

/* Activates (or reuses) the dm-verity device for image m and records its name in res; returns an
 * O_RDONLY fd of /dev/mapper/NAME in *ret_fd. */
int verity_setup_activate(const DissectedImage *m, const VerityData *v, VeritySetup *vs, VerityResult *res, int *ret_fd);

/* Removes dm device name now, or marks it for removal with its last user (deferred). */
int verity_setup_deactivate(const char *name, bool deferred);
#else
static inline int verity_setup_supported(const char *label) {
        return sx_error(-EOPNOTSUPP, "%s: built without libcryptsetup, cannot check verity", label);
}

static inline bool verity_setup_kernel_available(void) {
        return false;
}

static inline int verity_setup_new(const char *label, const VerityArea *data, const VerityArea *hash,
                                   size_t root_hash_size, bool userspace_check, VeritySetup **ret) {
        return -EOPNOTSUPP;
}

static inline VeritySetup *verity_setup_free(VeritySetup *v) {
        assert(!v);
        return NULL;
}

static inline int verity_setup_check(const char *label, VeritySetup *v, const uint8_t *root_hash, size_t root_hash_size) {
        return -EOPNOTSUPP;
}

static inline int verity_setup_data_fd(VeritySetup *v) {
        return -EOPNOTSUPP;
}

static inline int verity_setup_activate(const DissectedImage *m, const VerityData *v, VeritySetup *vs, VerityResult *res,
                                        int *ret_fd) {
        return -EOPNOTSUPP;
}

static inline int verity_setup_deactivate(const char *name, bool deferred) {
        return -EOPNOTSUPP;
}
#endif

DEFINE_TRIVIAL_CLEANUP_FUNC(VeritySetup *, verity_setup_free);
