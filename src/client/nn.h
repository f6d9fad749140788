/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* The layers LeNet-5 is made of, forward and backward, on OpenBLAS.
 *
 * Convolutional activations are laid out [channel][batch][height][width]
 * ("CBHW"): with the whole batch's patches side by side in one im2col
 * matrix, a convolution of a batch is a single sgemm whose output is
 * already CBHW. Dense activations are [batch][features], row-major. All
 * convolutions are "valid", stride 1, with a square kernel. Every function
 * overwrites its outputs. */

/* in [c][b][h][w] -> col [c*k*k][b*oh*ow], oh = h - k + 1, ow = w - k + 1. */
void nn_im2col(const float *in, size_t c, size_t b, size_t h, size_t w, size_t k, float *col);
/* The adjoint of nn_im2col: in gets the sum of every patch entry it fed. */
void nn_col2im(const float *col, size_t c, size_t b, size_t h, size_t w, size_t k, float *in);

/* out[cout][n] = weight[cout][kdim] * col[kdim][n] */
void nn_conv_forward(const float *weight, const float *col, size_t cout, size_t kdim, size_t n, float *out);
/* dweight = dout * col^T; then, if dcol, dcol = weight^T * dout. dcol may be
 * col itself (it is written after col's last use). */
void nn_conv_backward(const float *weight, const float *col, const float *dout, size_t cout, size_t kdim,
                      size_t n, float *dweight, float *dcol);

/* out = relu(maxpool 2x2 stride 2 (in)) over `planes` planes of h x w (h, w
 * even); argmax is the winner's position in its window (0..3, row-major).
 * Max then ReLU equals ReLU then max, on a quarter of the elements. */
void nn_maxpool2_relu_forward(const float *in, size_t planes, size_t h, size_t w, float *out, uint8_t *argmax);
/* din: dout routed to each window's winner if the output was positive, zero
 * elsewhere. */
void nn_maxpool2_relu_backward(const float *dout, const float *out, const uint8_t *argmax, size_t planes,
                               size_t h, size_t w, float *din);

/* [c][b][s] <-> [b][c*s]: CBHW to the flattened NCHW a dense layer reads
 * (MindSpore's Flatten order, channel-major within an example). */
void nn_cbs_to_bcs(const float *in, size_t c, size_t b, size_t s, float *out);
void nn_bcs_to_cbs(const float *in, size_t c, size_t b, size_t s, float *out);

/* y[b][out] = x[b][in] * weight[out][in]^T + bias[out] */
void nn_dense_forward(const float *x, const float *weight, const float *bias, size_t b, size_t in, size_t out,
                      float *y);
/* dweight = dy^T x, dbias = column sums of dy, and if dx: dx = dy * weight. */
void nn_dense_backward(const float *x, const float *weight, const float *dy, size_t b, size_t in, size_t out,
                       float *dweight, float *dbias, float *dx);

void nn_relu_forward(float *y, size_t n);
/* dy *= (y > 0), with y the ReLU's output. */
void nn_relu_backward(const float *y, float *dy, size_t n);

/* Softmax cross-entropy of b examples. Returns the sum of the b losses
 * (natural log); if dlogits, it gets (softmax - onehot) * scale (scale = 1/b
 * for the gradient of the mean). ret_correct (optional) counts examples
 * whose largest logit (first, on ties) is the label. */
double nn_softmax_xent(const float *logits, const uint8_t *labels, size_t b, size_t classes, float scale,
                       float *dlogits, size_t *ret_correct);
