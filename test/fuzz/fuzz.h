/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared helpers for the libFuzzer harnesses. Each harness defines LLVMFuzzerTestOneInput(); a
 * violated property prints what went wrong and abort()s, which libFuzzer reports as a crash. */

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond, ...)                                                          \
        do {                                                                            \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__,     \
                                __LINE__, #cond);                                       \
                        fprintf(stderr, __VA_ARGS__);                                   \
                        fputc('\n', stderr);                                            \
                        abort();                                                        \
                }                                                                       \
        } while (0)

/* The input as a NUL-terminated string (inputs with an embedded NUL are cut there, like a C
 * caller would see them). Caller frees. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);

        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = 0;
        return s;
}

/* Text shown to users must not smuggle terminal escapes: no control characters but TAB and line
 * breaks (os-release values may legitimately hold those), and valid UTF-8. */
static inline bool fuzz_text_is_clean(const char *s) {
        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if ((c < ' ' && c != '\t' && c != '\n' && c != '\r') || c == 127)
                        return false;
        }
        return utf8_is_valid(s);
}

/* Error messages end up on terminals and in the journal: whatever bytes an input carries, the
 * recorded message must be clean. */
static inline void fuzz_check_error_message(void) {
        const char *e = sx_last_error();

        if (!e)
                return;
        FUZZ_ASSERT(fuzz_text_is_clean(e), "error message with control characters or invalid UTF-8: %s", e);
}

/* Split the input at the first n-1 occurrences of the byte 0x00 into n NUL-terminated parts
 * (missing parts are ""). parts[] gets malloc'd strings, caller frees each. */
static inline void fuzz_split(const uint8_t *data, size_t size, char **parts, size_t n) {
        size_t start = 0;

        for (size_t i = 0; i < n; i++) {
                size_t e = start;

                if (i + 1 < n)
                        while (e < size && data[e] != 0)
                                e++;
                else
                        e = size;
                parts[i] = fuzz_strndup(data + (start < size ? start : size), start < size ? e - start : 0);
                start = e < size ? e + 1 : size;
        }
}
