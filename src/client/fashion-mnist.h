/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* Fashion-MNIST as Debian's dataset-fashion-mnist package ships it: gzip
 * compressed idx files. Images come out as LeNet-5 wants them: 28x28
 * padded by 2 to 32x32, one channel, float, normalised per pixel as
 * (x / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD, the mean and standard
 * deviation of the 60,000 training pixels (the way MindSpore's LeNet
 * pipeline uses MNIST's 0.1307/0.3081). The 2-pixel border is the
 * normalised background (raw 0), so padding looks like more background.
 * (zlib also reads an uncompressed idx file as it is.) */

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define FASHION_MNIST_RAW_SIDE 28
#define FASHION_MNIST_PAD 2
#define FASHION_MNIST_SIDE (FASHION_MNIST_RAW_SIDE + 2 * FASHION_MNIST_PAD)
#define FASHION_MNIST_PIXELS (FASHION_MNIST_SIDE * FASHION_MNIST_SIDE)
#define FASHION_MNIST_CLASSES 10
#define FASHION_MNIST_MEAN 0.2860f
#define FASHION_MNIST_STD 0.3530f
/* More than any MNIST-format split (60,000); bounds what a header can make
 * us allocate. */
#define FASHION_MNIST_MAX_COUNT 100000u

typedef enum FashionMnistSplit {
        FASHION_MNIST_TRAIN,    /* train-*: 60,000 */
        FASHION_MNIST_TEST,     /* t10k-*: 10,000 */
} FashionMnistSplit;

typedef struct Dataset {
        size_t n;
        float *images;          /* n x FASHION_MNIST_PIXELS, 64-byte aligned */
        uint8_t *labels;        /* n, each < FASHION_MNIST_CLASSES */
} Dataset;

Dataset *dataset_free(Dataset *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(Dataset *, dataset_free);

static inline const float *dataset_image(const Dataset *d, size_t i) {
        return d->images + i * FASHION_MNIST_PIXELS;
}

/* dir/{train,t10k}-images-idx3-ubyte.gz and the matching labels file.
 * -ENOENT if absent; -EBADMSG for anything malformed: wrong magic or
 * dimensions, counts that disagree or exceed FASHION_MNIST_MAX_COUNT, a
 * label >= 10, a truncated file, trailing bytes, a corrupt gzip stream. */
int fashion_mnist_load(Dataset **ret, const char *dir, FashionMnistSplit split);
int fashion_mnist_load_files(Dataset **ret, const char *images_path, const char *labels_path);
