/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared between server-allreduce.c (the ring's schedule) and
 * server-allreduce-peer.c (listener and connections). */

#include "cluster-trust.h"
#include "conn.h"
#include "refusals.h"
#include "server-allreduce-proto.h"
#include "server-allreduce.h"

/* Connections the listener holds at most (held HELLOs, half-open ones,
 * ones flushing a last frame, and the operation's two); beyond, the oldest
 * that is not the operation's own goes, so a flood cannot lock the left
 * neighbour out (it reconnects). */
#define ALLREDUCE_PEERS_MAX 16U
#define ALLREDUCE_TIMEOUT_DEFAULT_USEC (60U * USEC_PER_SEC)
/* A real peer sends its HELLO right after connecting. */
#define ALLREDUCE_HELLO_TIMEOUT_USEC (5U * USEC_PER_SEC)
/* How long a last frame (ABORT, final ACK) may take to flush. */
#define ALLREDUCE_LINGER_USEC (5U * USEC_PER_SEC)
#define ALLREDUCE_RETRY_FIRST_USEC (20U * USEC_PER_MSEC)
#define ALLREDUCE_RETRY_MAX_USEC (500U * USEC_PER_MSEC)
#define ALLREDUCE_ACCEPTS_PER_WAKEUP 16U
#define ALLREDUCE_EVICT_LOG_INTERVAL_USEC (10U * USEC_PER_SEC)
/* sd-event's default accuracy is 250 ms: too coarse for a deadline. */
#define ALLREDUCE_TIMER_ACCURACY_USEC USEC_PER_MSEC

typedef enum PeerState {
        PEER_WAIT_HELLO,        /* accepted by the listener, no HELLO yet */
        PEER_PENDING,           /* HELLO for an operation not started yet */
        PEER_LEFT,              /* the running operation's left neighbour */
        PEER_RIGHT_CONNECTING,  /* our HELLO to the right neighbour, no ACCEPT yet */
        PEER_RIGHT,             /* accepted: data flows to it */
        PEER_LINGER,            /* done with; flushing a last frame, then closed */
} PeerState;

typedef struct Peer Peer;
struct Peer {
        AllReduce *allreduce;
        Conn *conn;
        PeerState state;
        AllReduceHello hello;   /* valid from PEER_PENDING/PEER_LEFT on */
        Peer *prev, *next;      /* in AllReduce.peers, oldest first */
};

typedef struct Operation {
        bool running;           /* from allreduce_start() until done() */
        bool finished;          /* result known; done() is on its way */
        int error;
        uint32_t iteration;
        RingMember *ring;
        size_t n_ring, self, left_pos, right_pos;
        double *vec;
        size_t n;
        allreduce_done_t done;
        void *userdata;

        Peer *left, *right;     /* NULL once closed */
        bool adopted;           /* the left neighbour's HELLO was accepted */
        bool accepted;          /* the right neighbour accepted ours */

        size_t n_steps;         /* 2 (n_ring - 1) */
        uint64_t *recv_done;    /* per step: elements received and applied */
        uint64_t *sent_done;    /* per step: elements sent */
        size_t send_lo;         /* steps below are sent completely */
        uint64_t recv_total, send_total;
        uint64_t received, acked_to_left;
        uint64_t sent, acked;
        uint64_t window;        /* the right neighbour's */
        size_t chunk;           /* elements per data frame we send */

        sd_event_source *deadline;
        sd_event_source *retry;
        uint64_t retry_usec;
        unsigned attempts;
        uint64_t started_usec;  /* CLOCK_MONOTONIC, for the metrics */
} Operation;

struct AllReduce {
        sd_event *event;
        int listen_fd;
        sd_event_source *listen_source;
        sd_event_source *done_source;   /* defer: done() never runs inside our callers */
        uint16_t port;
        uint64_t timeout_usec;

        Peer *peers, *peers_tail;
        size_t n_peers;
        uint64_t evict_logged_usec;

        /* HELLOs for iterations before the last started one are stale. */
        bool started_once;
        uint32_t last_iteration;

        uint8_t *frame;         /* one outgoing data frame */
        Operation op;

        ClusterTrust *trust;    /* NULL: clear TCP, nothing asked */
        Refusals *refusals;
};

/* server-allreduce-peer.c */
int allreduce_listen(AllReduce *a, const char *bind_address, uint16_t port);
int peer_new(AllReduce *a, PeerState state, Peer **ret);
/* Detaches it from the operation too. Safe inside its own callbacks. */
void peer_free(Peer *p);
/* Closes after what is queued is flushed; may free p at once. */
void peer_linger(Peer *p);
/* Sends ABORT with error and text, then lingers; may free p at once. */
void peer_abort(Peer *p, int error, const char *text);
/* At allreduce_start(): drops stale held HELLOs, adopts the left one. */
void peers_start_iteration(AllReduce *a);
int peer_on_frame(Conn *c, uint8_t type, const uint8_t *payload, size_t size, void *userdata);
void peer_on_close(Conn *c, int error, void *userdata);

/* server-allreduce.c */
void op_adopt_left(AllReduce *a, Peer *p);
void op_schedule_retry(AllReduce *a, int error);
/* p has closed (it is freed here): retry, fail, or accept it as an end. */
void op_on_peer_closed(AllReduce *a, Peer *p, int error);
void op_on_left_frame(AllReduce *a, Peer *p, uint8_t type, const uint8_t *payload, size_t size);
void op_on_right_frame(AllReduce *a, Peer *p, uint8_t type, const uint8_t *payload, size_t size);
