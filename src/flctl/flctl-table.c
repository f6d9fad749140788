/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "flctl-table.h"

#define TABLE_GAP 2     /* blanks between columns: a UUID next to a role stays readable */

struct Table {
        size_t n_columns;
        size_t n_cells;         /* header included, always a multiple of n_columns */
        char **cells;
};

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_new(Table **ret, const char *const *headers, size_t n_columns) {
        _cleanup_(table_freep) Table *t = NULL;
        int r;

        if (n_columns == 0)
                return -EINVAL;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->n_columns = n_columns;
        r = table_add_row(t, headers, n_columns);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

int table_add_row(Table *t, const char *const *cells, size_t n_cells) {
        char **grown;

        if (n_cells != t->n_columns)
                return -EINVAL;
        grown = reallocarray(t->cells, t->n_cells + n_cells, sizeof *grown);
        if (!grown)
                return -ENOMEM;
        t->cells = grown;

        for (size_t i = 0; i < n_cells; i++) {
                char *c = strdup(cells[i] ?: "");
                if (!c)
                        return -ENOMEM;         /* the cells copied so far stay owned */
                t->cells[t->n_cells++] = c;
        }
        return 0;
}

int table_format(const Table *t, char **ret) {
        _cleanup_free_ size_t *width = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        /* A partly added row would shift every later cell into the wrong column. */
        if (t->n_cells % t->n_columns != 0)
                return -EINVAL;

        width = calloc(t->n_columns, sizeof *width);
        if (!width)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_cells; i++)
                width[i % t->n_columns] = MAX(width[i % t->n_columns], strlen(t->cells[i]));

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_cells; i++) {
                size_t column = i % t->n_columns;

                if (column + 1 == t->n_columns)
                        fprintf(f, "%s\n", t->cells[i]);
                else
                        fprintf(f, "%-*s%*s", (int) width[column], t->cells[i], TABLE_GAP, "");
        }
        if (fclose(f) != 0)
                return -ENOMEM;

        *ret = TAKE_PTR(buf);
        return 0;
}
