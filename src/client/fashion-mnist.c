/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "fashion-mnist.h"
#include "log.h"

#define IDX_MAGIC_LABELS 0x00000801u    /* unsigned byte, 1 dimension */
#define IDX_MAGIC_IMAGES 0x00000803u    /* unsigned byte, 3 dimensions */
#define RAW_PIXELS (FASHION_MNIST_RAW_SIDE * FASHION_MNIST_RAW_SIDE)
#define IMAGES_PER_CHUNK 512u

static void gzclosep(gzFile *f) {
        if (*f)
                (void) gzclose(*f);
}

Dataset *dataset_free(Dataset *d) {
        if (!d)
                return NULL;
        free(d->images);
        free(d->labels);
        free(d);
        return NULL;
}

static int gz_open(const char *path, gzFile *ret) {
        _cleanup_close_ int fd = -EBADF;
        gzFile f;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        f = gzdopen(fd, "rb");
        if (!f)
                return -ENOMEM;
        TAKE_FD(fd);                    /* gzclose() closes it now */
        (void) gzbuffer(f, 128 * 1024);
        *ret = f;
        return 0;
}

static int gz_error(gzFile f, const char *path) {
        int errnum;
        const char *msg = gzerror(f, &errnum);

        if (errnum == Z_ERRNO)
                return errno > 0 ? -errno : -EIO;
        if (errnum == Z_MEM_ERROR)
                return -ENOMEM;
        log_debug("%s: %s", path, strna(msg));
        return -EBADMSG;
}

static bool gz_failed(gzFile f) {
        int errnum;

        (void) gzerror(f, &errnum);
        return errnum != Z_OK;
}

/* Exactly n bytes, or an error: a short file is malformed, not a short read. */
static int gz_read_exact(gzFile f, const char *path, void *buf, size_t n) {
        uint8_t *p = buf;

        while (n > 0) {
                unsigned chunk = (unsigned) MIN(n, (size_t) (INT_MAX / 2));
                int k = gzread(f, p, chunk);

                if (k < 0)
                        return gz_error(f, path);
                if (k == 0) {
                        if (gz_failed(f))
                                return gz_error(f, path);
                        log_debug("%s: truncated, %zu bytes missing", path, n);
                        return -EBADMSG;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* After the last record: nothing more, and the gzip trailer (CRC, length)
 * checks out, which zlib verifies only when it reaches the end. */
static int gz_expect_eof(gzFile f, const char *path) {
        uint8_t extra;
        int k;

        k = gzread(f, &extra, 1);
        if (k < 0)
                return gz_error(f, path);
        if (k > 0) {
                log_debug("%s: trailing data after the last record", path);
                return -EBADMSG;
        }
        return gz_failed(f) ? gz_error(f, path) : 0;
}

static uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static int read_labels(const char *path, uint8_t **ret, size_t *ret_n) {
        _cleanup_(gzclosep) gzFile f = NULL;
        _cleanup_free_ uint8_t *labels = NULL;
        uint8_t header[8];
        uint32_t magic, n;
        int r;

        r = gz_open(path, &f);
        if (r < 0)
                return r;
        r = gz_read_exact(f, path, header, sizeof(header));
        if (r < 0)
                return r;
        magic = be32(header);
        n = be32(header + 4);
        if (magic != IDX_MAGIC_LABELS || n == 0 || n > FASHION_MNIST_MAX_COUNT) {
                log_debug("%s: not an idx1 label file of at most %u labels (magic 0x%08x, count %u)",
                          path, FASHION_MNIST_MAX_COUNT, magic, n);
                return -EBADMSG;
        }

        labels = malloc(n);
        if (!labels)
                return -ENOMEM;
        r = gz_read_exact(f, path, labels, n);
        if (r < 0)
                return r;
        r = gz_expect_eof(f, path);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < n; i++)
                if (labels[i] >= FASHION_MNIST_CLASSES) {
                        log_debug("%s: label %u of record %u is not a class", path, labels[i], i);
                        return -EBADMSG;
                }

        *ret = TAKE_PTR(labels);
        *ret_n = n;
        return 0;
}

static void pad_and_normalise(const uint8_t *raw, const float lut[static 256], float *out) {
        const size_t side = FASHION_MNIST_SIDE, pad = FASHION_MNIST_PAD;

        for (size_t i = 0; i < FASHION_MNIST_PIXELS; i++)
                out[i] = lut[0];
        for (size_t y = 0; y < FASHION_MNIST_RAW_SIDE; y++) {
                float *row = out + (y + pad) * side + pad;

                for (size_t x = 0; x < FASHION_MNIST_RAW_SIDE; x++)
                        row[x] = lut[raw[y * FASHION_MNIST_RAW_SIDE + x]];
        }
}

static int read_images(const char *path, size_t expected, float *images) {
        _cleanup_(gzclosep) gzFile f = NULL;
        _cleanup_free_ uint8_t *raw = NULL;
        uint8_t header[16];
        uint32_t magic, n, rows, cols;
        float lut[256];
        int r;

        r = gz_open(path, &f);
        if (r < 0)
                return r;
        r = gz_read_exact(f, path, header, sizeof(header));
        if (r < 0)
                return r;
        magic = be32(header);
        n = be32(header + 4);
        rows = be32(header + 8);
        cols = be32(header + 12);
        if (magic != IDX_MAGIC_IMAGES || rows != FASHION_MNIST_RAW_SIDE || cols != FASHION_MNIST_RAW_SIDE) {
                log_debug("%s: not an idx3 file of 28x28 images (magic 0x%08x, %ux%u)", path, magic, rows, cols);
                return -EBADMSG;
        }
        if (n != expected) {
                log_debug("%s: %u images for %zu labels", path, n, expected);
                return -EBADMSG;
        }

        for (size_t v = 0; v < 256; v++)
                lut[v] = ((float) v / 255.0f - FASHION_MNIST_MEAN) / FASHION_MNIST_STD;

        raw = malloc((size_t) IMAGES_PER_CHUNK * RAW_PIXELS);
        if (!raw)
                return -ENOMEM;
        for (size_t done = 0; done < n;) {
                size_t k = MIN((size_t) IMAGES_PER_CHUNK, n - done);

                r = gz_read_exact(f, path, raw, k * RAW_PIXELS);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < k; i++)
                        pad_and_normalise(raw + i * RAW_PIXELS, lut,
                                          images + (done + i) * FASHION_MNIST_PIXELS);
                done += k;
        }
        return gz_expect_eof(f, path);
}

int fashion_mnist_load_files(Dataset **ret, const char *images_path, const char *labels_path) {
        _cleanup_(dataset_freep) Dataset *d = NULL;
        void *p;
        int r;

        if (!ret || !images_path || !labels_path)
                return -EINVAL;

        d = calloc(1, sizeof(Dataset));
        if (!d)
                return -ENOMEM;
        r = read_labels(labels_path, &d->labels, &d->n);
        if (r < 0)
                return r;
        /* The count is bounded by FASHION_MNIST_MAX_COUNT: no overflow. */
        if (posix_memalign(&p, 64, d->n * FASHION_MNIST_PIXELS * sizeof(float)) != 0)
                return -ENOMEM;
        d->images = p;
        r = read_images(images_path, d->n, d->images);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(d);
        return 0;
}

int fashion_mnist_load(Dataset **ret, const char *dir, FashionMnistSplit split) {
        const char *prefix = split == FASHION_MNIST_TRAIN ? "train" : "t10k";
        char images[PATH_MAX], labels[PATH_MAX];

        if (!dir || (split != FASHION_MNIST_TRAIN && split != FASHION_MNIST_TEST))
                return -EINVAL;
        if (snprintf(images, sizeof(images), "%s/%s-images-idx3-ubyte.gz", dir, prefix) >= (int) sizeof(images) ||
            snprintf(labels, sizeof(labels), "%s/%s-labels-idx1-ubyte.gz", dir, prefix) >= (int) sizeof(labels))
                return -ENAMETOOLONG;
        return fashion_mnist_load_files(ret, images, labels);
}
