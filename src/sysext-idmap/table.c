/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>

#include "table.h"
#include "util.h"

void table_done(Table *t) {
        for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
                free(t->cells[i]);
        free(t->cells);
        t->cells = NULL;
        t->n_rows = 0;
}

int table_add_row(Table *t, char **row) {
        char **c = NULL;
        size_t i;

        for (i = 0; i < t->n_cols && row[i]; i++)
                ;
        if (i == t->n_cols)
                c = reallocarray(t->cells, (t->n_rows + 1) * t->n_cols, sizeof(char *));
        if (!c) {
                for (i = 0; i < t->n_cols; i++)
                        free(row[i]);
                return -ENOMEM;
        }
        memcpy(c + t->n_rows * t->n_cols, row, t->n_cols * sizeof(char *));
        t->cells = c;
        t->n_rows++;
        return 0;
}

/* Columns are counted in characters (code points), not bytes: cells carry "…". */
static size_t text_width(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                n += ((unsigned char) *s & 0xC0) != 0x80;
        return n;
}

void table_print(const Table *t, bool legend) {
        size_t w[16] = {};

        assert(t->n_cols <= ELEMENTSOF(w));
        for (size_t c = 0; c < t->n_cols; c++) {
                w[c] = text_width(t->header[c]);
                for (size_t r = 0; r < t->n_rows; r++)
                        if (text_width(t->cells[r * t->n_cols + c]) > w[c])
                                w[c] = text_width(t->cells[r * t->n_cols + c]);
        }
        for (size_t r = legend ? 0 : 1; r <= t->n_rows; r++)
                for (size_t c = 0; c < t->n_cols; c++) {
                        const char *cell = r == 0 ? t->header[c] : t->cells[(r - 1) * t->n_cols + c];

                        if (c + 1 == t->n_cols)
                                printf("%s\n", cell);
                        else
                                printf("%s%*s ", cell, (int) (w[c] - text_width(cell)), "");
                }
}
