/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Loading a heavy library only when a verb needs it (as systemd does for libcryptsetup): the
 * binary links none of libcryptsetup, libcrypto and libsystemd, so --version, list and a merge
 * of unprotected images start without the ~15 shared objects they pull in. Each user keeps its
 * own function pointers (sym_NAME, typed with typeof(NAME) from the library's header) and one
 * handle; the first call loads the library and resolves every symbol, later calls return at
 * once. Not thread-safe: the CLI and the PAM module are single-threaded. */

#include <assert.h>

#include "util.h"

typedef struct DlopenSymbol {
        void **fn;
        const char *name;
} DlopenSymbol;

#define DLSYM(name) { (void **) &sym_##name, #name }

/* Loads soname (a full soname such as "libcryptsetup.so.12": the one the headers we built against
 * describe) into *handle and resolves syms[0..n). Once loaded, returns 0 at once. Fails with
 * -EOPNOTSUPP and one message naming the library, what it is needed for, and the loader's reason;
 * nothing stays loaded then, and the next call tries again. Refuses with -EPERM if "/" is no longer
 * the root directory the process started with (a chroot or a joined mount namespace): the library
 * would come from a file system someone else controls. Load before joining, as merge does (the
 * host side dissects and verifies; only the hierarchy side joins a target). */
int dlopen_many(void **handle, const char *soname, const char *purpose, const DlopenSymbol *syms, size_t n);
