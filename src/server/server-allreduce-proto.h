/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "util.h"
#include "wire-protocol.h"

/* The frames between servers for the ring all-reduce (server-allreduce.c).
 * Framing is wire.h's; the types start at _WIRE_PEER_FIRST. Every link is
 * one TCP connection from a server to its right neighbour in the ring, made
 * for one operation: data flows left to right, acknowledgements right to
 * left. Integers in the binary payloads are little-endian, like the doubles,
 * so that a little-endian host sends its vector without conversion.
 *
 * ALLREDUCE_HELLO (connector -> acceptor, first frame, JSON)
 *     {"iteration":u, "position":u, "rank":u, "node_id":s, "n_ring":u, "n":u64}
 *     position is the sender's index in the ring, rank and node_id its
 *     identity there, n the length of its vector. The acceptor holds the
 *     connection (without reading more) until allreduce_start() for that
 *     iteration, then answers ACCEPT, or ABORT when the HELLO is not from
 *     its left neighbour of that ring or does not agree on n_ring and n.
 *
 * ALLREDUCE_ACCEPT (acceptor -> connector, JSON)
 *     {"iteration":u, "window":u64}
 *     data may flow now; window is how many elements the acceptor lets be
 *     in flight (sent but not acknowledged). Nothing is sent before it, so
 *     no server ever buffers data for an operation that has not started.
 *
 * ALLREDUCE_DATA (connector -> acceptor, binary)
 *     u32 iteration | u32 step | u64 offset | count x f64
 *     count = (length - 16) / 8 >= 1 elements of the vector starting at
 *     element offset. Step t (0 <= t < 2(n_ring-1)) carries segment
 *     (sender - t) mod n_ring; steps below n_ring-1 are added (reduce-
 *     scatter), the others copied (all-gather). Within a step the chunks
 *     come in order, without gaps or overlaps, inside the step's segment.
 *
 * ALLREDUCE_ACK (acceptor -> connector, binary)
 *     u32 iteration | u32 zero | u64 consumed
 *     consumed is the running total of elements received and applied in
 *     this operation; it never decreases. The operation ends for a sender
 *     when every element it sent has been acknowledged.
 *
 * ALLREDUCE_ABORT (either way, JSON, then the sender closes)
 *     {"error":s, "errno":u}
 *     the HELLO was refused, or the operation failed (errno is why, e.g.
 *     ETIMEDOUT), so the whole ring fails fast with the same cause instead
 *     of waiting for its deadlines. */

enum {
        ALLREDUCE_HELLO = _WIRE_PEER_FIRST,
        ALLREDUCE_ACCEPT,
        ALLREDUCE_DATA,
        ALLREDUCE_ACK,
        ALLREDUCE_ABORT,
};

/* 1 MiB of doubles per data frame: large enough that the per-frame costs
 * vanish, small enough that a step's chunks pipeline around the ring. */
#define ALLREDUCE_CHUNK_ELEMENTS (128U * 1024U)
/* What a receiver lets be in flight towards it. */
#define ALLREDUCE_WINDOW_ELEMENTS (8U * ALLREDUCE_CHUNK_ELEMENTS)
#define ALLREDUCE_DATA_HEADER_SIZE 16
#define ALLREDUCE_ACK_SIZE 16
/* The largest frame a peer may send: room for chunks 4x ours, so that a
 * later version may send larger ones to us. */
#define ALLREDUCE_FRAME_MAX (4U * 1024U * 1024U)
#define ALLREDUCE_CONTROL_MAX 4096U
/* Rings larger than this are refused (bounds the per-step bookkeeping). */
#define ALLREDUCE_RING_MAX 4096U

typedef struct AllReduceHello {
        uint32_t iteration;
        uint32_t position;
        uint32_t rank;
        uint32_t n_ring;
        uint64_t n;
        char node_id[NODE_ID_MAX];
} AllReduceHello;

typedef struct AllReduceData {
        uint32_t iteration;
        uint32_t step;
        uint64_t offset;
        size_t count;
        const uint8_t *values;   /* count little-endian doubles, unaligned */
} AllReduceData;

int allreduce_hello_to_json(const AllReduceHello *h, json_object **ret);
/* -EBADMSG for anything but a well-formed, plausible HELLO. */
int allreduce_hello_parse(const uint8_t *payload, size_t size, AllReduceHello *ret);

int allreduce_accept_to_json(uint32_t iteration, uint64_t window, json_object **ret);
int allreduce_accept_parse(const uint8_t *payload, size_t size, uint32_t *ret_iteration, uint64_t *ret_window);

int allreduce_abort_to_json(int error, const char *text, json_object **ret);
/* Returns the negative errno the peer gave (-ECONNREFUSED if it gave none
 * that is plausible) and copies its text, truncated, into text ("?" if it
 * sent none). */
int allreduce_abort_parse(const uint8_t *payload, size_t size, char *text, size_t text_size);

void allreduce_data_header_encode(uint8_t out[static ALLREDUCE_DATA_HEADER_SIZE], uint32_t iteration,
                                  uint32_t step, uint64_t offset);
/* Checks only the framing: header present, whole doubles, at least one. */
int allreduce_data_parse(const uint8_t *payload, size_t size, AllReduceData *ret);

void allreduce_ack_encode(uint8_t out[static ALLREDUCE_ACK_SIZE], uint32_t iteration, uint64_t consumed);
int allreduce_ack_parse(const uint8_t *payload, size_t size, uint32_t *ret_iteration, uint64_t *ret_consumed);

/* The doubles of a data frame into and out of the vector. */
void allreduce_values_store(uint8_t *dst, const double *src, size_t count);
void allreduce_values_add(double *dst, const uint8_t *src, size_t count);
void allreduce_values_copy(double *dst, const uint8_t *src, size_t count);

/* The ring's split of n elements into n_ring nearly equal segments: the
 * first n % n_ring segments have one element more. */
static inline uint64_t allreduce_segment_start(uint64_t n, size_t n_ring, size_t segment) {
        return segment * (n / n_ring) + MIN(segment, n % n_ring);
}

static inline uint64_t allreduce_segment_length(uint64_t n, size_t n_ring, size_t segment) {
        return n / n_ring + (segment < n % n_ring ? 1 : 0);
}

/* Step t of the ring's 2(n_ring-1): the segment position self sends, and the
 * one it receives (which it sends on in step t+1). */
static inline size_t allreduce_step_send_segment(size_t n_ring, size_t self, size_t step) {
        return (self + 2 * n_ring - step) % n_ring;
}

static inline size_t allreduce_step_recv_segment(size_t n_ring, size_t self, size_t step) {
        return (self + 2 * n_ring - step - 1) % n_ring;
}
