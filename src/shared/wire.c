/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "wire.h"

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

void wire_header_encode(uint8_t out[static WIRE_HEADER_SIZE], uint8_t type, uint32_t length) {
        put_be32(out, WIRE_MAGIC);
        out[4] = WIRE_VERSION;
        out[5] = type;
        out[6] = out[7] = 0;
        put_be32(out + 8, length);
}

int wire_header_decode(const uint8_t in[static WIRE_HEADER_SIZE], size_t max_length, WireHeader *ret) {
        uint32_t length;

        if (get_be32(in) != WIRE_MAGIC || in[4] != WIRE_VERSION || in[6] != 0 || in[7] != 0)
                return -EBADMSG;
        length = get_be32(in + 8);
        if (length > max_length)
                return -EMSGSIZE;
        *ret = (WireHeader) { .type = in[5], .length = length };
        return 0;
}

void wire_reader_init(WireReader *r, size_t max_length) {
        *r = (WireReader) { .max_length = max_length };
}

void wire_reader_done(WireReader *r) {
        free(r->payload);
        r->payload = NULL;
        r->header_have = r->payload_have = 0;
}

bool wire_reader_in_frame(const WireReader *r) {
        return r->header_have > 0 &&
                !(r->header_have == WIRE_HEADER_SIZE && r->payload_have == r->current.length);
}

int wire_reader_feed(WireReader *r, const uint8_t *data, size_t size, size_t *ret_consumed, bool *ret_done) {
        size_t used = 0, k;
        int q;

        *ret_done = false;

        /* The previous call handed out a complete frame: start afresh. */
        if (r->header_have == WIRE_HEADER_SIZE && r->payload_have == r->current.length) {
                free(r->payload);
                r->payload = NULL;
                r->header_have = r->payload_have = 0;
        }

        if (r->header_have < WIRE_HEADER_SIZE) {
                k = MIN(size, WIRE_HEADER_SIZE - r->header_have);
                memcpy(r->header + r->header_have, data, k);
                r->header_have += k;
                used += k;
                if (r->header_have < WIRE_HEADER_SIZE) {
                        *ret_consumed = used;
                        return 0;
                }
                q = wire_header_decode(r->header, r->max_length, &r->current);
                if (q < 0)
                        return q;
                /* One byte more than needed, so that an empty payload is a valid pointer. */
                r->payload = malloc((size_t) r->current.length + 1);
                if (!r->payload)
                        return -ENOMEM;
                r->payload_have = 0;
        }

        k = MIN(size - used, r->current.length - r->payload_have);
        memcpy(r->payload + r->payload_have, data + used, k);
        r->payload_have += k;
        used += k;

        if (r->payload_have == r->current.length) {
                r->payload[r->payload_have] = 0;
                *ret_done = true;
        }
        *ret_consumed = used;
        return 0;
}
