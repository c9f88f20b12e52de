/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The CLI's main() only, in a test build: fill the library's test hooks (test-hooks.h) from the
 * SYSEXT_IDMAP_* variables. SYSEXT_IDMAP_FAULT=N fails the N-th step that goes through a
 * mountapi.h wrapper with EIO, SYSEXT_IDMAP_FAULT_LIST=1 prints every step. */
void test_hooks_from_environment(void);
