/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Built only with -Dtest_hooks=true, into the CLI only: the library, the PAM module and the
 * daemon never read these variables. */

#include <stdlib.h>
#include <string.h>

#include "test-hooks.h"
#include "test-hooks-env.h"

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

        test_hooks = (TestHooks) {
                .runtime_dir = env_nonempty("SYSEXT_IDMAP_RUNTIME_DIR"),
                .verity_dirs = secure_getenv("SYSEXT_IDMAP_VERITY_DIRS"),
                .force_path_layers = env_true("SYSEXT_IDMAP_FORCE_PATH_LAYERS"),
                .no_beneath = env_true("SYSEXT_IDMAP_NO_BENEATH"),
                .force_attached_submounts = env_true("SYSEXT_IDMAP_ATTACHED_SUBMOUNTS"),
        };
        test_hooks_arm_faults(e ? strtol(e, NULL, 10) : 0, env_true("SYSEXT_IDMAP_FAULT_LIST"));
}
