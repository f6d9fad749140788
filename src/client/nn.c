/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nn.h"

/* The copies below are rows of ow floats: a few dozen bytes. With ow a
 * compile-time constant they become inline vector moves rather than a
 * memcpy() call each, which matters at ~50,000 rows per batch; LeNet-5's
 * two sizes get their own instances. */
static inline __attribute__((always_inline)) void im2col_impl(const float *in, size_t c, size_t b, size_t h,
                                                               size_t w, size_t k, size_t ow, float *col) {
        size_t oh = h - k + 1;

        /* Row (ci, ky, kx) of col holds, for every example and output
         * pixel, the input pixel that kernel tap meets: oh rows of ow
         * contiguous floats each, straight copies. */
        for (size_t ci = 0; ci < c; ci++)
                for (size_t ky = 0; ky < k; ky++)
                        for (size_t kx = 0; kx < k; kx++) {
                                float *dst = col + ((ci * k + ky) * k + kx) * b * oh * ow;

                                for (size_t bi = 0; bi < b; bi++) {
                                        const float *plane = in + (ci * b + bi) * h * w;

                                        for (size_t y = 0; y < oh; y++, dst += ow)
                                                memcpy(dst, plane + (y + ky) * w + kx, ow * sizeof(float));
                                }
                        }
}

void nn_im2col(const float *in, size_t c, size_t b, size_t h, size_t w, size_t k, float *col) {
        size_t ow = w - k + 1;

        if (ow == 28)
                im2col_impl(in, c, b, h, w, k, 28, col);
        else if (ow == 10)
                im2col_impl(in, c, b, h, w, k, 10, col);
        else
                im2col_impl(in, c, b, h, w, k, ow, col);
}

static inline __attribute__((always_inline)) void col2im_impl(const float *col, size_t c, size_t b, size_t h,
                                                               size_t w, size_t k, size_t ow, float *in) {
        size_t oh = h - k + 1;

        memset(in, 0, c * b * h * w * sizeof(float));
        for (size_t ci = 0; ci < c; ci++)
                for (size_t ky = 0; ky < k; ky++)
                        for (size_t kx = 0; kx < k; kx++) {
                                const float *src = col + ((ci * k + ky) * k + kx) * b * oh * ow;

                                for (size_t bi = 0; bi < b; bi++) {
                                        float *plane = in + (ci * b + bi) * h * w;

                                        for (size_t y = 0; y < oh; y++, src += ow) {
                                                float *dst = plane + (y + ky) * w + kx;

                                                for (size_t x = 0; x < ow; x++)
                                                        dst[x] += src[x];
                                        }
                                }
                        }
}

void nn_col2im(const float *col, size_t c, size_t b, size_t h, size_t w, size_t k, float *in) {
        size_t ow = w - k + 1;

        if (ow == 10)
                col2im_impl(col, c, b, h, w, k, 10, in);
        else
                col2im_impl(col, c, b, h, w, k, ow, in);
}

void nn_conv_forward(const float *weight, const float *col, size_t cout, size_t kdim, size_t n, float *out) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) cout, (int) n, (int) kdim,
                    1.0f, weight, (int) kdim, col, (int) n, 0.0f, out, (int) n);
}

void nn_conv_backward(const float *weight, const float *col, const float *dout, size_t cout, size_t kdim,
                      size_t n, float *dweight, float *dcol) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) cout, (int) kdim, (int) n,
                    1.0f, dout, (int) n, col, (int) n, 0.0f, dweight, (int) kdim);
        if (dcol)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) kdim, (int) n, (int) cout,
                            1.0f, weight, (int) kdim, dout, (int) n, 0.0f, dcol, (int) n);
}

void nn_maxpool2_relu_forward(const float *in, size_t planes, size_t h, size_t w, float *out, uint8_t *argmax) {
        size_t oh = h / 2, ow = w / 2;

        /* Branch-free: the winner of a window is data, and branching on it
         * mispredicts half the time. Ties go to the first in row-major order
         * (only a strictly larger value displaces an earlier one). */
        for (size_t p = 0; p < planes; p++)
                for (size_t y = 0; y < oh; y++) {
                        const float *r0 = in + (p * h + 2 * y) * w, *r1 = r0 + w;
                        float *o = out + (p * oh + y) * ow;
                        uint8_t *a = argmax + (p * oh + y) * ow;

                        for (size_t x = 0; x < ow; x++) {
                                float v0 = r0[2 * x], v1 = r0[2 * x + 1], v2 = r1[2 * x], v3 = r1[2 * x + 1];
                                unsigned top_right = v1 > v0, bottom_right = v3 > v2, lower, mask;
                                float top = top_right ? v1 : v0, bottom = bottom_right ? v3 : v2, m;

                                lower = bottom > top;
                                mask = -lower;
                                m = lower ? bottom : top;
                                o[x] = m > 0.0f ? m : 0.0f;
                                a[x] = (uint8_t) (2 * lower + ((bottom_right & mask) | (top_right & ~mask)));
                        }
                }
}

void nn_maxpool2_relu_backward(const float *dout, const float *out, const uint8_t *argmax, size_t planes,
                               size_t h, size_t w, float *din) {
        size_t oh = h / 2, ow = w / 2;

        for (size_t p = 0; p < planes; p++)
                for (size_t y = 0; y < oh; y++) {
                        float *r0 = din + (p * h + 2 * y) * w, *r1 = r0 + w;
                        size_t at = (p * oh + y) * ow;

                        for (size_t x = 0; x < ow; x++) {
                                float g = out[at + x] > 0.0f ? dout[at + x] : 0.0f;
                                unsigned i = argmax[at + x];

                                r0[2 * x] = i == 0 ? g : 0.0f;
                                r0[2 * x + 1] = i == 1 ? g : 0.0f;
                                r1[2 * x] = i == 2 ? g : 0.0f;
                                r1[2 * x + 1] = i == 3 ? g : 0.0f;
                        }
                }
}

void nn_cbs_to_bcs(const float *in, size_t c, size_t b, size_t s, float *out) {
        for (size_t ci = 0; ci < c; ci++)
                for (size_t bi = 0; bi < b; bi++)
                        memcpy(out + (bi * c + ci) * s, in + (ci * b + bi) * s, s * sizeof(float));
}

void nn_bcs_to_cbs(const float *in, size_t c, size_t b, size_t s, float *out) {
        for (size_t ci = 0; ci < c; ci++)
                for (size_t bi = 0; bi < b; bi++)
                        memcpy(out + (ci * b + bi) * s, in + (bi * c + ci) * s, s * sizeof(float));
}

void nn_dense_forward(const float *x, const float *weight, const float *bias, size_t b, size_t in, size_t out,
                      float *y) {
        for (size_t i = 0; i < b; i++)
                memcpy(y + i * out, bias, out * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) b, (int) out, (int) in,
                    1.0f, x, (int) in, weight, (int) in, 1.0f, y, (int) out);
}

void nn_dense_backward(const float *x, const float *weight, const float *dy, size_t b, size_t in, size_t out,
                       float *dweight, float *dbias, float *dx) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) out, (int) in, (int) b,
                    1.0f, dy, (int) out, x, (int) in, 0.0f, dweight, (int) in);
        memset(dbias, 0, out * sizeof(float));
        for (size_t i = 0; i < b; i++)
                for (size_t o = 0; o < out; o++)
                        dbias[o] += dy[i * out + o];
        if (dx)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) b, (int) in, (int) out,
                            1.0f, dy, (int) out, weight, (int) in, 0.0f, dx, (int) in);
}

void nn_relu_forward(float *y, size_t n) {
        for (size_t i = 0; i < n; i++)
                y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

void nn_relu_backward(const float *y, float *dy, size_t n) {
        for (size_t i = 0; i < n; i++)
                dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

double nn_softmax_xent(const float *logits, const uint8_t *labels, size_t b, size_t classes, float scale,
                       float *dlogits, size_t *ret_correct) {
        double loss = 0.0;
        size_t correct = 0;

        for (size_t i = 0; i < b; i++) {
                const float *z = logits + i * classes;
                size_t best = 0;
                double sum = 0.0;

                for (size_t j = 1; j < classes; j++)
                        if (z[j] > z[best])
                                best = j;
                for (size_t j = 0; j < classes; j++)
                        sum += exp((double) z[j] - (double) z[best]);
                /* log-sum-exp minus the label's logit, both shifted by the max */
                loss += log(sum) - ((double) z[labels[i]] - (double) z[best]);
                correct += best == labels[i];

                if (dlogits)
                        for (size_t j = 0; j < classes; j++) {
                                double pj = exp((double) z[j] - (double) z[best]) / sum;

                                dlogits[i * classes + j] = (float) ((pj - (j == labels[i])) * scale);
                        }
        }
        if (ret_correct)
                *ret_correct = correct;
        return loss;
}
