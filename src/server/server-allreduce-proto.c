/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "server-allreduce-proto.h"

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, sizeof v);
}

static void put_le64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, sizeof v);
}

static uint32_t get_le32(const uint8_t *p) {
        uint32_t v;

        memcpy(&v, p, sizeof v);
        return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p) {
        uint64_t v;

        memcpy(&v, p, sizeof v);
        return le64toh(v);
}

static int json_add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int allreduce_hello_to_json(const AllReduceHello *h, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o ||
            json_add(o, "iteration", json_object_new_int64(h->iteration)) < 0 ||
            json_add(o, "position", json_object_new_int64(h->position)) < 0 ||
            json_add(o, "rank", json_object_new_int64(h->rank)) < 0 ||
            json_add(o, "node_id", json_object_new_string(h->node_id)) < 0 ||
            json_add(o, "n_ring", json_object_new_int64(h->n_ring)) < 0 ||
            json_add(o, "n", json_object_new_int64((int64_t) h->n)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int allreduce_hello_parse(const uint8_t *payload, size_t size, AllReduceHello *ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        AllReduceHello h = {};
        const char *node_id;

        if (size > ALLREDUCE_CONTROL_MAX || json_parse_object((const char *) payload, size, &o) < 0)
                return -EBADMSG;
        if (json_get_u32(o, "iteration", &h.iteration) < 0 ||
            json_get_u32(o, "position", &h.position) < 0 ||
            json_get_u32(o, "rank", &h.rank) < 0 ||
            json_get_u32(o, "n_ring", &h.n_ring) < 0 ||
            json_get_u64(o, "n", &h.n) < 0 ||
            json_get_string(o, "node_id", &node_id) < 0)
                return -EBADMSG;
        /* A ring of one never connects; a position outside the ring is not one. */
        if (h.n_ring < 2 || h.n_ring > ALLREDUCE_RING_MAX || h.position >= h.n_ring ||
            h.n > SIZE_MAX / sizeof(double) || !node_id_is_valid(node_id))
                return -EBADMSG;
        strcpy(h.node_id, node_id);   /* node_id_is_valid() bounds it by NODE_ID_MAX */
        *ret = h;
        return 0;
}

int allreduce_accept_to_json(uint32_t iteration, uint64_t window, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o ||
            json_add(o, "iteration", json_object_new_int64(iteration)) < 0 ||
            json_add(o, "window", json_object_new_int64((int64_t) window)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int allreduce_accept_parse(const uint8_t *payload, size_t size, uint32_t *ret_iteration, uint64_t *ret_window) {
        _cleanup_(json_object_putp) json_object *o = NULL;

        if (size > ALLREDUCE_CONTROL_MAX || json_parse_object((const char *) payload, size, &o) < 0)
                return -EBADMSG;
        if (json_get_u32(o, "iteration", ret_iteration) < 0 || json_get_u64(o, "window", ret_window) < 0)
                return -EBADMSG;
        return 0;
}

int allreduce_abort_to_json(int error, const char *text, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o ||
            json_add(o, "error", json_object_new_string(text)) < 0 ||
            json_add(o, "errno", json_object_new_int64(abs(error))) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int allreduce_abort_parse(const uint8_t *payload, size_t size, char *text, size_t text_size) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *s = NULL;
        uint32_t e = 0;

        if (size <= ALLREDUCE_CONTROL_MAX && json_parse_object((const char *) payload, size, &o) >= 0) {
                (void) json_get_string(o, "error", &s);
                (void) json_get_u32(o, "errno", &e);
        }
        /* Printed in our log: keep only what is safe to print. */
        snprintf(text, text_size, "%s", s ?: "?");
        for (char *p = text; *p; p++)
                if ((unsigned char) *p < ' ' || (unsigned char) *p >= 0x7f)
                        *p = '?';
        return e > 0 && e < 4096 ? -(int) e : -ECONNREFUSED;
}

void allreduce_data_header_encode(uint8_t out[static ALLREDUCE_DATA_HEADER_SIZE], uint32_t iteration,
                                  uint32_t step, uint64_t offset) {
        put_le32(out, iteration);
        put_le32(out + 4, step);
        put_le64(out + 8, offset);
}

int allreduce_data_parse(const uint8_t *payload, size_t size, AllReduceData *ret) {
        if (size <= ALLREDUCE_DATA_HEADER_SIZE || (size - ALLREDUCE_DATA_HEADER_SIZE) % sizeof(double) != 0)
                return -EBADMSG;
        *ret = (AllReduceData) {
                .iteration = get_le32(payload),
                .step = get_le32(payload + 4),
                .offset = get_le64(payload + 8),
                .count = (size - ALLREDUCE_DATA_HEADER_SIZE) / sizeof(double),
                .values = payload + ALLREDUCE_DATA_HEADER_SIZE,
        };
        return 0;
}

void allreduce_ack_encode(uint8_t out[static ALLREDUCE_ACK_SIZE], uint32_t iteration, uint64_t consumed) {
        put_le32(out, iteration);
        put_le32(out + 4, 0);
        put_le64(out + 8, consumed);
}

int allreduce_ack_parse(const uint8_t *payload, size_t size, uint32_t *ret_iteration, uint64_t *ret_consumed) {
        if (size != ALLREDUCE_ACK_SIZE || get_le32(payload + 4) != 0)
                return -EBADMSG;
        *ret_iteration = get_le32(payload);
        *ret_consumed = get_le64(payload + 8);
        return 0;
}

/* The doubles travel as their IEEE-754 bits in little-endian order: on
 * little-endian hosts these loops compile to plain copies and adds. */
static double get_double(const uint8_t *p) {
        uint64_t bits = get_le64(p);
        double d;

        memcpy(&d, &bits, sizeof d);
        return d;
}

void allreduce_values_store(uint8_t *dst, const double *src, size_t count) {
#if __BYTE_ORDER == __LITTLE_ENDIAN
        memcpy(dst, src, count * sizeof(double));
#else
        for (size_t i = 0; i < count; i++) {
                uint64_t bits;

                memcpy(&bits, &src[i], sizeof bits);
                put_le64(dst + i * sizeof(double), bits);
        }
#endif
}

void allreduce_values_add(double *dst, const uint8_t *src, size_t count) {
        for (size_t i = 0; i < count; i++)
                dst[i] += get_double(src + i * sizeof(double));
}

void allreduce_values_copy(double *dst, const uint8_t *src, size_t count) {
#if __BYTE_ORDER == __LITTLE_ENDIAN
        memcpy(dst, src, count * sizeof(double));
#else
        for (size_t i = 0; i < count; i++)
                dst[i] = get_double(src + i * sizeof(double));
#endif
}
