/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "client-plot.h"
#include "macro.h"
#include "util.h"

#define CSV_MAX ((size_t) 64 * 1024 * 1024)
#define CSV_ROWS_MAX 10000000U
#define FIELDS_MAX 32

/* ---- the CSV ---- */

/* Splits line at commas in place; fields are trimmed of spaces and \r. */
static size_t split(char *line, char *fields[static FIELDS_MAX]) {
        size_t n = 0;

        for (char *p = line;;) {
                char *comma = strchr(p, ','), *end;

                if (comma)
                        *comma = '\0';
                while (*p == ' ' || *p == '\t')
                        p++;
                end = p + strlen(p);
                while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
                        *--end = '\0';
                if (n == FIELDS_MAX)
                        return n + 1;   /* too many */
                fields[n++] = p;
                if (!comma)
                        return n;
                p = comma + 1;
        }
}

#define REFUSE(...) (snprintf(error, error_size, __VA_ARGS__), -EBADMSG)

int plot_read_csv(const char *path, PlotRow **ret, size_t *ret_n, char *error, size_t error_size) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ PlotRow *rows = NULL;
        char *fields[FIELDS_MAX], *line, *save = NULL;
        size_t n = 0, allocated = 0, n_fields = 0, lineno = 0;
        int col_iteration = -1, col_accuracy = -1, col_loss = -1, r;

        r = read_full_file(path, &text, NULL, CSV_MAX);
        if (r < 0) {
                snprintf(error, error_size, "%s", strerror(-r));
                return r;
        }
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                size_t k;

                lineno++;
                if (line[strspn(line, " \t\r")] == '\0')
                        continue;
                k = split(line, fields);
                if (k > FIELDS_MAX)
                        return REFUSE("line %zu: more than %d fields", lineno, FIELDS_MAX);

                if (col_iteration < 0) {
                        for (size_t i = 0; i < k; i++) {
                                if (streq(fields[i], "iteration"))
                                        col_iteration = (int) i;
                                else if (streq(fields[i], "test_accuracy"))
                                        col_accuracy = (int) i;
                                else if (streq(fields[i], "test_loss"))
                                        col_loss = (int) i;
                        }
                        if (col_iteration < 0 || col_accuracy < 0 || col_loss < 0)
                                return REFUSE("line %zu: the header must name iteration, test_accuracy and test_loss "
                                              "(fl-client train --csv writes them)", lineno);
                        n_fields = k;
                        continue;
                }
                if (k != n_fields)
                        return REFUSE("line %zu: %zu fields, the header has %zu", lineno, k, n_fields);
                /* An iteration train --eval-every did not evaluate: nothing to draw. */
                if (isempty(fields[col_accuracy]) && isempty(fields[col_loss]))
                        continue;
                if (n == CSV_ROWS_MAX)
                        return REFUSE("more than %u rows", CSV_ROWS_MAX);
                if (n == allocated) {
                        size_t want = MAX(allocated * 2, (size_t) 64);
                        PlotRow *a = realloc(rows, want * sizeof *a);

                        if (!a)
                                return -ENOMEM;
                        rows = a;
                        allocated = want;
                }
                if (safe_atou32(fields[col_iteration], &rows[n].iteration) < 0)
                        return REFUSE("line %zu: iteration '%.40s' is not a number", lineno, fields[col_iteration]);
                if (safe_atod(fields[col_accuracy], &rows[n].accuracy) < 0 || !isfinite(rows[n].accuracy) ||
                    rows[n].accuracy < 0 || rows[n].accuracy > 1)
                        return REFUSE("line %zu: test_accuracy '%.40s' is not a number from 0 to 1", lineno,
                                      fields[col_accuracy]);
                if (safe_atod(fields[col_loss], &rows[n].loss) < 0 || !isfinite(rows[n].loss) || rows[n].loss < 0)
                        return REFUSE("line %zu: test_loss '%.40s' is not a number of 0 or more", lineno,
                                      fields[col_loss]);
                n++;
        }
        if (col_iteration < 0)
                return REFUSE("no header line");
        if (n == 0)
                return REFUSE("no rows after the header");
        *ret = TAKE_PTR(rows);
        *ret_n = n;
        return 0;
}

/* ---- the picture ---- */

typedef struct Frame {
        double left, right, top, bottom;        /* the plot area, in pixels */
        double x0, x1, loss_max;
} Frame;

static double px_x(const Frame *f, double x) {
        return f->left + (x - f->x0) / (f->x1 - f->x0) * (f->right - f->left);
}

static double px_accuracy(const Frame *f, double a) {
        return f->bottom - a * (f->bottom - f->top);
}

static double px_loss(const Frame *f, double l) {
        return f->bottom - l / f->loss_max * (f->bottom - f->top);
}

/* A "nice" step for about n ticks over span. */
static double nice_step(double span, unsigned n) {
        double raw = span / n, mag = pow(10, floor(log10(raw))), steps[] = { 1, 2, 2.5, 5, 10 };

        for (size_t i = 0; i < ELEMENTSOF(steps); i++)
                if (span / (steps[i] * mag) <= n)
                        return steps[i] * mag;
        return 10 * mag;
}

static void text_at(cairo_t *cr, double x, double y, const char *s, double align_x, double align_y) {
        cairo_text_extents_t e;

        cairo_text_extents(cr, s, &e);
        cairo_move_to(cr, x - e.width * align_x - e.x_bearing, y + e.height * align_y);
        cairo_show_text(cr, s);
}

static void draw_axes(cairo_t *cr, const Frame *f, double font) {
        char label[32];
        double step;

        cairo_set_line_width(cr, 1);
        cairo_set_font_size(cr, font);
        /* Accuracy, left: 0-100 % with a grid. */
        for (int pct = 0; pct <= 100; pct += 20) {
                double y = px_accuracy(f, pct / 100.0);

                cairo_set_source_rgb(cr, 0.88, 0.89, 0.91);
                cairo_move_to(cr, f->left, y);
                cairo_line_to(cr, f->right, y);
                cairo_stroke(cr);
                cairo_set_source_rgb(cr, 0.18, 0.49, 0.2);
                snprintf(label, sizeof label, "%d%%", pct);
                text_at(cr, f->left - 6, y, label, 1, 0.5);
        }
        /* Loss, right. */
        step = nice_step(f->loss_max, 5);
        cairo_set_source_rgb(cr, 0.51, 0.31, 0.87);
        for (double v = 0; v <= f->loss_max + step * 1e-9; v += step) {
                snprintf(label, sizeof label, "%.*f", step < 0.1 ? 2 : step < 1 ? 1 : 0, v);
                text_at(cr, f->right + 6, px_loss(f, v), label, 0, 0.5);
        }
        /* Iterations, below. */
        step = MAX(1, round(nice_step(f->x1 - f->x0, 10)));
        cairo_set_source_rgb(cr, 0.3, 0.33, 0.38);
        for (double v = ceil(f->x0 / step) * step; v <= f->x1 + 1e-9; v += step) {
                snprintf(label, sizeof label, "%.0f", v);
                text_at(cr, px_x(f, v), f->bottom + 6, label, 0.5, 1);
        }
        cairo_move_to(cr, f->left, f->top);
        cairo_line_to(cr, f->left, f->bottom);
        cairo_line_to(cr, f->right, f->bottom);
        cairo_line_to(cr, f->right, f->top);
        cairo_stroke(cr);
}

typedef double (*px_y_t)(const Frame *f, double v);

/* One line per run: a row whose iteration does not grow starts another. */
static void draw_series(cairo_t *cr, const Frame *f, const PlotRow *rows, size_t n, bool accuracy, double scale) {
        px_y_t y = accuracy ? px_accuracy : px_loss;

        if (accuracy)
                cairo_set_source_rgb(cr, 0.18, 0.49, 0.2);
        else
                cairo_set_source_rgb(cr, 0.51, 0.31, 0.87);
        cairo_set_line_width(cr, 2 * scale);
        for (size_t i = 0; i < n; i++) {
                double v = accuracy ? rows[i].accuracy : rows[i].loss;

                if (i == 0 || rows[i].iteration <= rows[i - 1].iteration)
                        cairo_move_to(cr, px_x(f, rows[i].iteration), y(f, v));
                else
                        cairo_line_to(cr, px_x(f, rows[i].iteration), y(f, v));
        }
        cairo_stroke(cr);
        for (size_t i = 0; i < n; i++) {
                double v = accuracy ? rows[i].accuracy : rows[i].loss;

                cairo_arc(cr, px_x(f, rows[i].iteration), y(f, v), 3 * scale, 0, 2 * M_PI);
                cairo_fill(cr);
        }
}

static void draw_legend(cairo_t *cr, const Frame *f, double font, double scale) {
        static const struct {
                const char *label;
                double r, g, b;
        } items[] = {
                { "test accuracy (left)", 0.18, 0.49, 0.2 },
                { "test loss (right)", 0.51, 0.31, 0.87 },
        };
        double x = f->left + 12 * scale, y = f->top + 14 * scale;

        cairo_set_font_size(cr, font);
        for (size_t i = 0; i < ELEMENTSOF(items); i++, y += font * 1.5) {
                cairo_set_source_rgb(cr, items[i].r, items[i].g, items[i].b);
                cairo_set_line_width(cr, 2 * scale);
                cairo_move_to(cr, x, y);
                cairo_line_to(cr, x + 24 * scale, y);
                cairo_stroke(cr);
                cairo_set_source_rgb(cr, 0.11, 0.14, 0.19);
                text_at(cr, x + 30 * scale, y, items[i].label, 0, 0.35);
        }
}

typedef struct Buffer {
        uint8_t *data;
        size_t size, allocated;
} Buffer;

static cairo_status_t buffer_write(void *closure, const unsigned char *data, unsigned int length) {
        Buffer *b = closure;

        if (b->size + length > b->allocated) {
                size_t want = MAX(b->allocated * 2, b->size + length + 65536);
                uint8_t *p = realloc(b->data, want);

                if (!p)
                        return CAIRO_STATUS_NO_MEMORY;
                b->data = p;
                b->allocated = want;
        }
        memcpy(b->data + b->size, data, length);
        b->size += length;
        return CAIRO_STATUS_SUCCESS;
}

int plot_write_png(const PlotRow *rows, size_t n, const char *title, unsigned width, unsigned height,
                   const char *path) {
        _cleanup_free_ uint8_t *png = NULL;
        Buffer b = {};
        cairo_surface_t *surface;
        cairo_status_t status;
        cairo_t *cr;
        double scale = width / 800.0, font = MAX(9.0, 12 * scale);
        Frame f;

        if (n == 0 || width < 200 || width > 8000 || height < 200 || height > 8000)
                return -EINVAL;
        f = (Frame) {
                .left = 60 * scale, .right = width - 60 * scale,
                .top = 40 * scale, .bottom = height - 40 * scale,
                .x0 = rows[0].iteration, .x1 = rows[0].iteration,
        };
        for (size_t i = 0; i < n; i++) {
                f.x0 = MIN(f.x0, (double) rows[i].iteration);
                f.x1 = MAX(f.x1, (double) rows[i].iteration);
                f.loss_max = MAX(f.loss_max, rows[i].loss);
        }
        if (f.x1 - f.x0 < 1) {
                f.x0 -= 0.5;
                f.x1 += 0.5;
        }
        f.loss_max = f.loss_max > 0 ? f.loss_max * 1.1 : 1;

        surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int) width, (int) height);
        cr = cairo_create(surface);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

        draw_axes(cr, &f, font);
        draw_series(cr, &f, rows, n, false, scale);
        draw_series(cr, &f, rows, n, true, scale);
        draw_legend(cr, &f, font, scale);
        cairo_set_source_rgb(cr, 0.11, 0.14, 0.19);
        cairo_set_font_size(cr, font * 1.25);
        text_at(cr, width / 2.0, 14 * scale, title, 0.5, 1);
        cairo_set_font_size(cr, font);
        text_at(cr, (f.left + f.right) / 2, height - 6 * scale, "iteration", 0.5, 0);

        status = cairo_status(cr);
        cairo_destroy(cr);
        if (status == CAIRO_STATUS_SUCCESS)
                status = cairo_surface_write_to_png_stream(surface, buffer_write, &b);
        cairo_surface_destroy(surface);
        png = b.data;
        if (status == CAIRO_STATUS_NO_MEMORY)
                return -ENOMEM;
        if (status != CAIRO_STATUS_SUCCESS)
                return -EIO;
        /* Whole or not at all: a viewer watching the file never sees half a picture. */
        return write_data_atomic(path, png, b.size);
}
