/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Built only with -Dtest_hooks=true: see test-hooks.h. */

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "test-hooks.h"

TestHooks test_hooks;

/* One counter for the process and every child it forks (helpers in private namespaces), so each
 * step number names exactly one step of the whole operation. */
static long fault_target;
static bool fault_list;
static long *fault_count;

void test_hooks_arm_faults(long target, bool list) {
        void *p;

        fault_target = target;
        fault_list = list;
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
