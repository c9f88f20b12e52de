/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The CLI's output of list, dissect and status: text tables (table.h) or JSON (--json=). Reads no
 * option globals: main.c passes what the user asked for. */

#include <stdbool.h>
#include <stddef.h>

#include "extension.h"
#include "image.h"
#include "merge.h"
#include "policy.h"

typedef enum JsonMode { JSON_OFF, JSON_SHORT, JSON_PRETTY } JsonMode;

typedef struct OutputMode {
        JsonMode json;
        bool legend;            /* text: print the table headers (--no-legend clears it) */
} OutputMode;

/* One discovered image for list: ext is NULL if the image is masked or could not be opened (then
 * error says why). */
typedef struct ListEntry {
        Image *image;
        Extension *ext;
        char *error;
} ListEntry;

int list_print(const ListEntry *entries, size_t n, const OutputMode *mode);
/* policy: the image policy in force (shown in JSON); validate: dissect --validate (nothing mounted). */
int dissect_print(const Extension *e, const ImagePolicy *policy, bool validate, const OutputMode *mode);
int status_print(const HierarchyStatus *s, size_t n, const OutputMode *mode);
