/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The TCP framing between flcluster nodes (servers <-> scheduler, server <->
 * server). Every frame is a 12-byte header in network byte order followed
 * by `length` bytes of payload:
 *
 *     u32 magic "FLC1"   u8 version   u8 type   u16 reserved (0)   u32 length
 *
 * Control frames carry one JSON object (see wire-protocol.h); bulk frames of
 * later protocol versions may carry raw bytes. A receiver refuses a bad
 * magic, an unknown version, a non-zero reserved field and any length above
 * its own limit before it reads a byte of the payload. */

#define WIRE_MAGIC UINT32_C(0x464C4331)
#define WIRE_VERSION 1
#define WIRE_HEADER_SIZE 12
#define WIRE_CONTROL_MAX (1024U * 1024U)

typedef struct WireHeader {
        uint8_t type;
        uint32_t length;
} WireHeader;

void wire_header_encode(uint8_t out[static WIRE_HEADER_SIZE], uint8_t type, uint32_t length);
/* -EBADMSG for a header that is not ours, -EMSGSIZE for a length over max. */
int wire_header_decode(const uint8_t in[static WIRE_HEADER_SIZE], size_t max_length, WireHeader *ret);

/* Reassembles frames from a byte stream, never holding more than one frame
 * of at most max_length bytes. */
typedef struct WireReader {
        uint8_t header[WIRE_HEADER_SIZE];
        size_t header_have;
        WireHeader current;
        uint8_t *payload;
        size_t payload_have;
        size_t max_length;
} WireReader;

void wire_reader_init(WireReader *r, size_t max_length);
void wire_reader_done(WireReader *r);
/* True while a frame has been started but not completed. */
bool wire_reader_in_frame(const WireReader *r);

/* Consumes up to size bytes from data; returns the number consumed. When a
 * whole frame is ready, *ret_done is set to true and the frame can be read
 * from r->current and r->payload until the next call. Negative errno on a
 * header that must be refused. */
int wire_reader_feed(WireReader *r, const uint8_t *data, size_t size, size_t *ret_consumed, bool *ret_done);
