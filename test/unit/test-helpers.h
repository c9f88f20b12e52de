/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Minimal test harness shared by the unit tests written on top of the library. */

#include <stdio.h>

static int test_failed = 0;

#define CHECK(cond, ...)                                        \
        do {                                                    \
                if (cond) {                                     \
                        printf("ok: ");                         \
                } else {                                        \
                        printf("FAIL: ");                       \
                        test_failed = 1;                        \
                }                                               \
                printf(__VA_ARGS__);                            \
                printf("\n");                                   \
        } while (0)

static inline int test_result(void) {
        printf("%s\n", test_failed ? "FAILED" : "all passed");
        return test_failed ? 1 : 0;
}
