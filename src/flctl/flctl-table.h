/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "macro.h"

/* Column-aligned text for people. Cells are plain ASCII by the time they get
 * here (the reply parser rejects anything else), so strlen() is the width. */

typedef struct Table Table;

int table_new(Table **ret, const char *const *headers, size_t n_columns);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* n_cells must equal the table's column count; the strings are copied. */
int table_add_row(Table *t, const char *const *cells, size_t n_cells);

/* The whole table, header first, one line per row; the last column is not
 * padded, so lines carry no trailing blanks unless that cell is empty. */
int table_format(const Table *t, char **ret);
