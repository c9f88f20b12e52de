/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* sysext.conf text: config_parse_text() must return 0 or -EBADMSG (-ENOMEM aside), a failure must
 * leave one clean message naming the file, and every assignment handed out must have a valid key,
 * a value without control characters, and a line number within the input. */

#include "config.h"
#include "fuzz.h"

typedef struct Bounds {
        unsigned lines;
} Bounds;

static int check_assignment(const char *file, unsigned line, const char *section, const char *key, const char *value,
                            void *userdata) {
        const Bounds *b = userdata;

        FUZZ_ASSERT(line >= 1 && line <= b->lines, "line %u of %u", line, b->lines);
        FUZZ_ASSERT(!isempty(key) && !strpbrk(key, " \t=[]") && !string_has_cc(key), "bad key '%s'", key);
        FUZZ_ASSERT(value && !string_has_cc(value), "bad value");
        FUZZ_ASSERT(value[0] != ' ' && value[0] != '\t', "value not stripped: '%s'", value);
        FUZZ_ASSERT(!section || (!isempty(section) && !string_has_cc(section)), "bad section");
        FUZZ_ASSERT(streq(file, "fuzz.conf"), "file name");
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Bounds b = { .lines = 1 };
        int r;

        if (size > CONFIG_FILE_MAX)
                return -1;
        for (size_t i = 0; i < size; i++)
                if (data[i] == '\n')
                        b.lines++;
        sx_clear_error();
        r = config_parse_text("fuzz.conf", (const char *) data, size, check_assignment, &b);
        fuzz_check_error_message();
        FUZZ_ASSERT(r == 0 || r == -EBADMSG || r == -ENOMEM, "unexpected error %d", r);
        FUZZ_ASSERT(r != -EBADMSG || (sx_last_error() && startswith(sx_last_error(), "fuzz.conf")),
                    "error without the file name: %s", strna(sx_last_error()));
        return 0;
}
