/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "util.h"

/* Ring all-reduce of a vector of doubles among the servers of a cluster, over
 * TCP between the servers themselves (reduce-scatter, then all-gather; each
 * step's segment is sent in bounded chunks). Every server ends with the same
 * bytes: each segment is summed once, by its owner, and then copied.
 *
 * Each server owns one AllReduce, listening on its peer port for the whole
 * life of the process. For an iteration, the scheduler names the ring
 * (WIRE_AGGREGATE); each server connects to its right neighbour and accepts
 * its left one. A neighbour that connects before allreduce_start() for that
 * iteration is held (bounded) until it is called; it sends no data before
 * (server-allreduce-proto.h has the frames). Every operation has a
 * deadline; on any failure done() is called with a negative errno and the
 * vector's contents are unspecified. The cause is logged at warning level
 * where it is found, and passed around the ring, so every server fails
 * quickly with the same errno:
 *   -ETIMEDOUT     the deadline passed (a server never started, or stalled)
 *   -EBADMSG       a neighbour disagrees on the ring's or vector's length,
 *                  or broke the protocol
 *   -ECONNRESET    a neighbour went away in the middle
 *   -ESTALE        a neighbour has moved on to a later iteration
 *   -ECONNREFUSED  the right neighbour does not see us as its left one
 *   -ECANCELED     a neighbour called allreduce_cancel()
 *   -EKEYREJECTED, -EKEYEXPIRED, -EKEYREVOKED, -EACCES
 *                  the right neighbour's certificate or cluster secret was
 *                  refused, or it refused ours */

typedef struct AllReduce AllReduce;
typedef struct ClusterTrust ClusterTrust;

typedef struct RingMember {
        uint32_t rank;
        char node_id[NODE_ID_MAX];
        char address[64];
        uint16_t peer_port;
} RingMember;

/* vec has been reduced in place (error == 0), or the operation failed. */
typedef void (*allreduce_done_t)(AllReduce *a, int error, uint32_t iteration, void *userdata);

/* Listens on bind_address (NULL: any) and port (0: ephemeral).
 * timeout_usec is each operation's deadline, from allreduce_start() (0: one
 * minute). */
int allreduce_new(AllReduce **ret, sd_event *e, const char *bind_address, uint16_t port, uint64_t timeout_usec);
AllReduce *allreduce_free(AllReduce *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(AllReduce *, allreduce_free);

uint16_t allreduce_port(const AllReduce *a);

/* From now on every peer connection, both ways, carries TLS and/or the
 * cluster secret as trust says (cluster-trust.h; it must outlive a). A
 * connection that fails them is dropped; accepted ones are logged as
 * refusals (rate-limited), and a right neighbour that refuses us or that
 * we refuse fails the operation at once (-EKEYREJECTED, -EACCES...). */
int allreduce_set_trust(AllReduce *a, ClusterTrust *trust);

/* Sums vec (n doubles) element-wise across the ring. ring[self] is this
 * server. vec must stay valid until done is called (always asynchronously,
 * also for a ring of one). -EBUSY while another operation runs. */
int allreduce_start(AllReduce *a, uint32_t iteration, const RingMember *ring, size_t n_ring, size_t self,
                    double *vec, size_t n, allreduce_done_t done, void *userdata);

/* Abandons a running operation (done is not called). */
void allreduce_cancel(AllReduce *a);
