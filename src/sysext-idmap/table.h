/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A text table for the CLI's output: a header and rows of owned strings, printed with aligned
 * columns. */

#include <stdbool.h>
#include <stddef.h>

typedef struct Table {
        const char * const *header;
        size_t n_cols, n_rows;
        char **cells;           /* n_rows × n_cols */
} Table;

void table_done(Table *t);
/* Takes over the n_cols strings of row, also on failure; a NULL among them is a failed allocation
 * (-ENOMEM). */
int table_add_row(Table *t, char **row);
/* legend: print the header line too. */
void table_print(const Table *t, bool legend);
