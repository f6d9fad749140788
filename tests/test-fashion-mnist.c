/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <cmocka.h>

#include "fashion-mnist.h"
#include "log.h"

#define RAW 784

static char tmpdir[] = "/tmp/test-fashion-mnist-XXXXXX";
static char images_path[PATH_MAX], labels_path[PATH_MAX];

static void be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static void write_gz(const char *path, const void *data, size_t n) {
        gzFile f = gzopen(path, "wb");

        assert_non_null(f);
        if (n > 0)
                assert_int_equal(gzwrite(f, data, (unsigned) n), (int) n);
        assert_int_equal(gzclose(f), Z_OK);
}

/* An idx1 label file and an idx3 image file; the knobs break one thing each. */
typedef struct Knobs {
        uint32_t label_magic, image_magic, label_count, image_count, rows, cols;
        size_t labels_written, images_written; /* records actually present */
        size_t trailing;                        /* extra bytes after the images */
        uint8_t bad_label;                      /* if nonzero, the last label */
} Knobs;

static Knobs good_knobs(void) {
        return (Knobs) {
                .label_magic = 0x801, .image_magic = 0x803, .label_count = 3, .image_count = 3,
                .rows = 28, .cols = 28, .labels_written = 3, .images_written = 3,
        };
}

static void write_pair(const Knobs *k) {
        _cleanup_free_ uint8_t *lab = calloc(8 + k->labels_written, 1);
        _cleanup_free_ uint8_t *img = calloc(16 + k->images_written * RAW + k->trailing, 1);

        assert_non_null(lab);
        assert_non_null(img);
        be32(lab, k->label_magic);
        be32(lab + 4, k->label_count);
        for (size_t i = 0; i < k->labels_written; i++)
                lab[8 + i] = (uint8_t) (i % 10);
        if (k->bad_label && k->labels_written > 0)
                lab[8 + k->labels_written - 1] = k->bad_label;

        be32(img, k->image_magic);
        be32(img + 4, k->image_count);
        be32(img + 8, k->rows);
        be32(img + 12, k->cols);
        for (size_t i = 0; i < k->images_written; i++) {
                uint8_t *p = img + 16 + i * RAW;

                p[0] = 255;                     /* top left */
                p[RAW - 1] = (uint8_t) (100 + i); /* bottom right */
        }
        write_gz(labels_path, lab, 8 + k->labels_written);
        write_gz(images_path, img, 16 + k->images_written * RAW + k->trailing);
}

static int load(void) {
        _cleanup_(dataset_freep) Dataset *d = NULL;
        int r = fashion_mnist_load_files(&d, images_path, labels_path);

        assert_true(r < 0 ? d == NULL : d != NULL);
        return r;
}

static int setup(void **state) {
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(images_path, sizeof(images_path), "%s/images.gz", tmpdir);
        snprintf(labels_path, sizeof(labels_path), "%s/labels.gz", tmpdir);
        return 0;
}

static int teardown(void **state) {
        (void) unlink(images_path);
        (void) unlink(labels_path);
        (void) rmdir(tmpdir);
        return 0;
}

static float norm(float raw) {
        return (raw / 255.0f - FASHION_MNIST_MEAN) / FASHION_MNIST_STD;
}

static void test_small_valid(void **state) {
        _cleanup_(dataset_freep) Dataset *d = NULL;
        Knobs k = good_knobs();

        write_pair(&k);
        assert_int_equal(fashion_mnist_load_files(&d, images_path, labels_path), 0);
        assert_int_equal(d->n, 3);
        assert_int_equal(d->labels[2], 2);
        for (size_t i = 0; i < 3; i++) {
                const float *img = dataset_image(d, i);

                /* Padding: two rows and columns of background all round. */
                assert_true(img[0] == norm(0));
                assert_true(img[FASHION_MNIST_PIXELS - 1] == norm(0));
                assert_true(img[1 * 32 + 1] == norm(0));
                assert_true(img[2 * 32 + 2] == norm(255));
                assert_true(img[29 * 32 + 29] == norm((float) (100 + i)));
                assert_true(img[29 * 32 + 30] == norm(0));
        }
}

static void test_malformed(void **state) {
        static const struct {
                const char *what;
                Knobs k;
        } cases[] = {
                { "label magic", { 0x803, 0x803, 3, 3, 28, 28, 3, 3, 0, 0 } },
                { "image magic", { 0x801, 0x801, 3, 3, 28, 28, 3, 3, 0, 0 } },
                { "rows", { 0x801, 0x803, 3, 3, 27, 28, 3, 3, 0, 0 } },
                { "cols", { 0x801, 0x803, 3, 3, 28, 32, 3, 3, 0, 0 } },
                { "counts disagree", { 0x801, 0x803, 3, 2, 28, 28, 3, 2, 0, 0 } },
                { "no records", { 0x801, 0x803, 0, 0, 28, 28, 0, 0, 0, 0 } },
                { "count over the limit", { 0x801, 0x803, 200000, 200000, 28, 28, 3, 3, 0, 0 } },
                { "labels truncated", { 0x801, 0x803, 3, 3, 28, 28, 2, 3, 0, 0 } },
                { "images truncated", { 0x801, 0x803, 3, 3, 28, 28, 3, 2, 0, 0 } },
                { "trailing bytes", { 0x801, 0x803, 3, 3, 28, 28, 3, 3, 1, 0 } },
                { "label out of range", { 0x801, 0x803, 3, 3, 28, 28, 3, 3, 0, 10 } },
                { "huge label", { 0x801, 0x803, 3, 3, 28, 28, 3, 3, 0, 255 } },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r;

                write_pair(&cases[i].k);
                r = load();
                if (r != -EBADMSG)
                        fail_msg("%s: got %d, expected -EBADMSG", cases[i].what, r);
        }

        /* A file too short for its header. */
        write_gz(labels_path, "\0\0\x08", 3);
        assert_int_equal(load(), -EBADMSG);
}

static void rewrite_file(const char *path, size_t keep, ssize_t flip) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        FILE *f;

        assert_int_equal(stat(path, &st), 0);
        buf = malloc(st.st_size);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(buf, 1, st.st_size, f), (size_t) st.st_size);
        fclose(f);
        if (flip >= 0)
                buf[(size_t) flip % st.st_size] ^= 0x5a;
        f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, MIN(keep, (size_t) st.st_size), f), MIN(keep, (size_t) st.st_size));
        fclose(f);
}

static void test_corrupt_gzip(void **state) {
        Knobs k = good_knobs();
        struct stat st;

        /* The gzip trailer's CRC no longer matches. */
        write_pair(&k);
        assert_int_equal(stat(images_path, &st), 0);
        rewrite_file(images_path, SIZE_MAX, st.st_size - 6);
        assert_int_equal(load(), -EBADMSG);

        /* A flipped byte inside the deflate stream. */
        write_pair(&k);
        assert_int_equal(stat(images_path, &st), 0);
        rewrite_file(images_path, SIZE_MAX, st.st_size / 2);
        assert_int_equal(load(), -EBADMSG);

        /* The compressed file cut short. */
        write_pair(&k);
        assert_int_equal(stat(images_path, &st), 0);
        rewrite_file(images_path, (size_t) st.st_size - 12, -1);
        assert_int_equal(load(), -EBADMSG);

        /* Missing. */
        (void) unlink(images_path);
        write_pair(&k);
        (void) unlink(labels_path);
        assert_int_equal(load(), -ENOENT);
}

static bool have_dataset(void) {
        return access(FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) >= 0 &&
               access(FASHION_MNIST_DIR "/train-labels-idx1-ubyte.gz", R_OK) >= 0 &&
               access(FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) >= 0 &&
               access(FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz", R_OK) >= 0;
}

static void test_real_dataset(void **state) {
        _cleanup_(dataset_freep) Dataset *train = NULL, *test = NULL;
        size_t per_class[FASHION_MNIST_CLASSES] = {};
        double sum = 0.0, sum2 = 0.0;

        if (!have_dataset())
                skip();

        assert_int_equal(fashion_mnist_load(&train, FASHION_MNIST_DIR, FASHION_MNIST_TRAIN), 0);
        assert_int_equal(fashion_mnist_load(&test, FASHION_MNIST_DIR, FASHION_MNIST_TEST), 0);
        assert_int_equal(train->n, 60000);
        assert_int_equal(test->n, 10000);

        for (size_t i = 0; i < train->n; i++) {
                const float *img = dataset_image(train, i);

                assert_true(train->labels[i] < FASHION_MNIST_CLASSES);
                per_class[train->labels[i]]++;
                for (size_t y = 2; y < 30; y++)
                        for (size_t x = 2; x < 30; x++) {
                                sum += img[y * 32 + x];
                                sum2 += (double) img[y * 32 + x] * img[y * 32 + x];
                        }
        }
        for (size_t c = 0; c < FASHION_MNIST_CLASSES; c++)
                assert_int_equal(per_class[c], 6000);
        for (size_t i = 0; i < test->n; i++)
                assert_true(test->labels[i] < FASHION_MNIST_CLASSES);

        /* The normalisation constants are the training set's: the 28x28
         * area comes out with mean 0 and deviation 1. */
        {
                double n = 60000.0 * 784.0, mean = sum / n, sd = sqrt(sum2 / n - mean * mean);

                print_message("normalised training pixels: mean %.4f, sd %.4f\n", mean, sd);
                assert_true(fabs(mean) < 0.01);
                assert_true(fabs(sd - 1.0) < 0.01);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_small_valid),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_corrupt_gzip),
                cmocka_unit_test(test_real_dataset),
        };

        int r;

        log_set_max_level(LOG_DEBUG);
        r = cmocka_run_group_tests(tests, setup, teardown);
        /* Without Debian's dataset-fashion-mnist the synthetic files are
         * still checked, but automake is told the program skipped (77), so
         * the missing package does not pass unnoticed. */
        if (r == 0 && !have_dataset()) {
                fprintf(stderr, "%s not installed: real-data test skipped\n", FASHION_MNIST_DIR);
                return 77;
        }
        return r;
}
