/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Built only with -Dtest_hooks=true: see test-hooks.h. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "test-hooks.h"

TestHooks test_hooks;

/* One counter for the process and every child it forks (helpers in private namespaces), so each
 * step number names exactly one step of the whole operation. */
static long fault_target;
static bool fault_list;
static long *fault_count;

static bool env_true(const char *name) {
        const char *e = secure_getenv(name);

        return e && (strcmp(e, "1") == 0 || strcmp(e, "yes") == 0 || strcmp(e, "true") == 0);
}

static const char *env_nonempty(const char *name) {
        const char *e = secure_getenv(name);

        return e && *e ? e : NULL;
}

void test_hooks_from_environment(void) {
        const char *e = env_nonempty("SYSEXT_IDMAP_FAULT");
        void *p;

        test_hooks = (TestHooks) {
                .runtime_dir = env_nonempty("SYSEXT_IDMAP_RUNTIME_DIR"),
                .verity_dirs = secure_getenv("SYSEXT_IDMAP_VERITY_DIRS"),
                .force_path_layers = env_true("SYSEXT_IDMAP_FORCE_PATH_LAYERS"),
                .no_beneath = env_true("SYSEXT_IDMAP_NO_BENEATH"),
        };
        fault_target = e ? strtol(e, NULL, 10) : 0;
        fault_list = env_true("SYSEXT_IDMAP_FAULT_LIST");
        if (fault_target <= 0 && !fault_list)
                return;
        p = mmap(NULL, sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        fault_count = p == MAP_FAILED ? NULL : p;
}

bool fault_inject(const char *step) {
        long n;

        if (!fault_count)
                return false;
        n = __atomic_add_fetch(fault_count, 1, __ATOMIC_SEQ_CST);
        if (fault_list)
                fprintf(stderr, "fault-point %ld %s\n", n, step);
        if (n != fault_target)
                return false;
        fprintf(stderr, "sysext-idmap: injected fault at step %ld (%s)\n", n, step);
        return true;
}
