/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The cluster secret (cluster_secret_file): with TLS off, what keeps a stray
 * process on the network out of the scheduler port and the peer ports. Both
 * ends of a connection send a fresh random nonce, then prove that they know
 * the secret with an HMAC-SHA256 over both nonces and their side:
 *
 *     proof = HMAC-SHA256(secret, "flcluster cluster secret v1" 0x00 SIDE
 *                                 client_nonce server_nonce)
 *
 * SIDE is 'C' for the end that connected, 'S' for the one that accepted, so
 * a proof cannot be reflected back; each end's own nonce makes every proof
 * good for one connection only, so a recorded one cannot be replayed. The
 * frames are conn.c's (wire-protocol.h); docs/security.md says what this
 * does not protect against (an attacker on the path, after the proof). */

#define CLUSTER_SECRET_MIN 16U
#define CLUSTER_SECRET_MAX 4096U
#define CLUSTER_NONCE_SIZE 32U
#define CLUSTER_PROOF_SIZE 32U

typedef struct ClusterSecret {
        uint8_t *bytes;
        size_t size;
        bool world_readable;    /* the file is: worth a warning */
} ClusterSecret;

/* The file's contents without trailing white space; at least
 * CLUSTER_SECRET_MIN bytes. On refusal error says why (nothing is logged). */
int cluster_secret_load(const char *path, ClusterSecret **ret, char *error, size_t size);
ClusterSecret *cluster_secret_free(ClusterSecret *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClusterSecret *, cluster_secret_free);
int cluster_secret_dup(const ClusterSecret *s, ClusterSecret **ret);

int cluster_secret_nonce(uint8_t ret[static CLUSTER_NONCE_SIZE]);
/* side: 'C' (the connecting end) or 'S' (the accepting end). */
int cluster_secret_proof(const ClusterSecret *s, char side, const uint8_t client_nonce[static CLUSTER_NONCE_SIZE],
                         const uint8_t server_nonce[static CLUSTER_NONCE_SIZE], uint8_t ret[static CLUSTER_PROOF_SIZE]);
/* Compares in constant time. */
bool cluster_secret_check(const ClusterSecret *s, char side, const uint8_t client_nonce[static CLUSTER_NONCE_SIZE],
                          const uint8_t server_nonce[static CLUSTER_NONCE_SIZE], const uint8_t *proof, size_t size);
