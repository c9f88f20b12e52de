/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dlfcn.h>

#include "dlopen-util.h"

/* The root directory this process started with (see dlopen-util.h). */
static struct stat start_root;
static bool start_root_known;

__attribute__((constructor)) static void remember_start_root(void) {
        start_root_known = stat("/", &start_root) >= 0;
}

/* The loader resolves a soname in the file system of the current root: after a chroot, or a
 * setns() into another process's mount namespace, that is someone else's file, and it would run as
 * us. A private or slave copy of our own namespace keeps the same root and the same files. */
static int check_root(const char *soname) {
        struct stat st;

        if (!start_root_known || stat("/", &st) < 0)
                return sx_error(-EPERM, "%s: cannot tell whether this is still the root we started in; not loading it", soname);
        if (st.st_dev != start_root.st_dev || st.st_ino != start_root.st_ino)
                return sx_error(-EPERM, "%s would be loaded from another root (a namespace we joined); refusing", soname);
        return 0;
}

static void clear_symbols(const DlopenSymbol *syms, size_t n) {
        for (size_t i = 0; i < n; i++)
                *syms[i].fn = NULL;
}

int dlopen_many(void **handle, const char *soname, const char *purpose, const DlopenSymbol *syms, size_t n) {
        void *dl;
        int r;

        assert(handle && soname && purpose && (syms || n == 0));
        if (*handle)
                return 0;
        r = check_root(soname);
        if (r < 0)
                return r;
        /* RTLD_NODELETE: the code stays mapped while pointers to it exist (as in systemd). */
        dl = dlopen(soname, RTLD_NOW | RTLD_NODELETE | RTLD_LOCAL);
        if (!dl)
                return sx_error(-EOPNOTSUPP, "%s is needed %s, but cannot be loaded: %s", soname, purpose,
                                strna(dlerror()));
        for (size_t i = 0; i < n; i++) {
                *syms[i].fn = dlsym(dl, syms[i].name);
                if (!*syms[i].fn) {
                        clear_symbols(syms, i);
                        (void) dlclose(dl);
                        return sx_error(-EOPNOTSUPP, "%s is needed %s, but has no symbol %s", soname, purpose,
                                        syms[i].name);
                }
        }
        *handle = dl;
        return 0;
}
