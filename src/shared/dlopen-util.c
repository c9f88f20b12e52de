/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dlfcn.h>

#include "dlopen-util.h"

static void clear_symbols(const DlopenSymbol *syms, size_t n) {
        for (size_t i = 0; i < n; i++)
                *syms[i].fn = NULL;
}

int dlopen_many(void **handle, const char *soname, const char *purpose, const DlopenSymbol *syms, size_t n) {
        void *dl;

        assert(handle && soname && purpose && (syms || n == 0));
        if (*handle)
                return 0;
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
