/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Test hooks: switches the test suite uses to reach fallback paths and failure points. They exist
 * only in a build configured with -Dtest_hooks=true (SYSEXT_IDMAP_TEST_HOOKS=1), and only the CLI's
 * main() fills them, from its environment (src/sysext-idmap/test-hooks-env.c; unit tests and
 * fuzzers set the fields directly). Library code never reads
 * an environment variable: it runs inside PAM stacks of setuid programs (su) and, later, a daemon,
 * where the environment belongs to the user being logged in. A default build has none of this;
 * every accessor below is then a constant. */

#include <stdbool.h>

typedef struct TestHooks {
        const char *runtime_dir;        /* SYSEXT_IDMAP_RUNTIME_DIR: lock, staging, pick locks */
        const char *verity_dirs;        /* SYSEXT_IDMAP_VERITY_DIRS: replaces the verity.d list */
        bool force_path_layers;         /* SYSEXT_IDMAP_FORCE_PATH_LAYERS=1: the staging fallback */
        bool no_beneath;                /* SYSEXT_IDMAP_NO_BENEATH=1: refresh by unmerge + merge */
        bool force_attached_submounts;  /* SYSEXT_IDMAP_ATTACHED_SUBMOUNTS=1: carry sub-mounts as before Linux 6.15 */
        bool force_clone_by_remount;    /* unit tests only: the broker clones its pins as before Linux 6.15 */
} TestHooks;

#if SYSEXT_IDMAP_TEST_HOOKS
extern TestHooks test_hooks;
/* Fault injection: fail the target-th step (1-based, counted across forked children) that goes
 * through a mountapi.h wrapper with EIO; list prints every step. target <= 0 and !list: off. */
void test_hooks_arm_faults(long target, bool list);
bool fault_inject(const char *step);
#define TEST_HOOK(field, fallback) (test_hooks.field ? test_hooks.field : (fallback))
#else
static inline bool fault_inject(const char *step) {
        return false;
}
#define TEST_HOOK(field, fallback) (fallback)
#endif
