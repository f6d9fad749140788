/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster-secret.h"
#include "util.h"

#define REFUSE(r, ...) (snprintf(error, size, __VA_ARGS__), (r))
#define PROOF_LABEL "flcluster cluster secret v1"

ClusterSecret *cluster_secret_free(ClusterSecret *s) {
        if (!s)
                return NULL;
        if (s->bytes) {
                explicit_bzero(s->bytes, s->size);
                free(s->bytes);
        }
        free(s);
        return NULL;
}

static int secret_new(const void *bytes, size_t n, ClusterSecret **ret) {
        ClusterSecret *s = calloc(1, sizeof *s);

        if (!s)
                return -ENOMEM;
        s->bytes = malloc(n);
        if (!s->bytes) {
                free(s);
                return -ENOMEM;
        }
        memcpy(s->bytes, bytes, n);
        s->size = n;
        *ret = s;
        return 0;
}

int cluster_secret_load(const char *path, ClusterSecret **ret, char *error, size_t size) {
        _cleanup_free_ char *text = NULL;
        ClusterSecret *s;
        struct stat st;
        size_t n;
        int r;

        r = read_full_file(path, &text, &n, CLUSTER_SECRET_MAX + 64);
        if (r == -EFBIG)
                return REFUSE(r, "cluster_secret_file %s is larger than %u bytes.", path, CLUSTER_SECRET_MAX);
        if (r < 0)
                return REFUSE(r, "Cannot read cluster_secret_file %s: %s.", path, strerror(-r));
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ' || text[n - 1] == '\t'))
                n--;
        if (n < CLUSTER_SECRET_MIN || n > CLUSTER_SECRET_MAX) {
                explicit_bzero(text, n);
                return REFUSE(-EINVAL, "The secret in cluster_secret_file %s is %zu bytes; it needs %u to %u "
                              "(e.g. head -c 32 /dev/urandom | base64 > %s).", path, n, CLUSTER_SECRET_MIN,
                              CLUSTER_SECRET_MAX, path);
        }
        r = secret_new(text, n, &s);
        explicit_bzero(text, n);
        if (r < 0)
                return REFUSE(r, "Out of memory.");
        s->world_readable = stat(path, &st) >= 0 && (st.st_mode & S_IROTH);
        *ret = s;
        return 0;
}

int cluster_secret_dup(const ClusterSecret *s, ClusterSecret **ret) {
        return secret_new(s->bytes, s->size, ret);
}

int cluster_secret_nonce(uint8_t ret[static CLUSTER_NONCE_SIZE]) {
        return gnutls_rnd(GNUTLS_RND_NONCE, ret, CLUSTER_NONCE_SIZE) < 0 ? -EIO : 0;
}

int cluster_secret_proof(const ClusterSecret *s, char side, const uint8_t client_nonce[static CLUSTER_NONCE_SIZE],
                         const uint8_t server_nonce[static CLUSTER_NONCE_SIZE], uint8_t ret[static CLUSTER_PROOF_SIZE]) {
        uint8_t msg[sizeof PROOF_LABEL + 1 + 2 * CLUSTER_NONCE_SIZE];
        size_t n = 0;

        if (side != 'C' && side != 'S')
                return -EINVAL;
        memcpy(msg, PROOF_LABEL, sizeof PROOF_LABEL);   /* with its NUL */
        n += sizeof PROOF_LABEL;
        msg[n++] = (uint8_t) side;
        memcpy(msg + n, client_nonce, CLUSTER_NONCE_SIZE);
        n += CLUSTER_NONCE_SIZE;
        memcpy(msg + n, server_nonce, CLUSTER_NONCE_SIZE);
        n += CLUSTER_NONCE_SIZE;
        return gnutls_hmac_fast(GNUTLS_MAC_SHA256, s->bytes, s->size, msg, n, ret) < 0 ? -EIO : 0;
}

bool cluster_secret_check(const ClusterSecret *s, char side, const uint8_t client_nonce[static CLUSTER_NONCE_SIZE],
                          const uint8_t server_nonce[static CLUSTER_NONCE_SIZE], const uint8_t *proof, size_t size) {
        uint8_t want[CLUSTER_PROOF_SIZE];
        uint8_t diff = 0;

        if (size != CLUSTER_PROOF_SIZE || cluster_secret_proof(s, side, client_nonce, server_nonce, want) < 0)
                return false;
        for (size_t i = 0; i < CLUSTER_PROOF_SIZE; i++)
                diff |= want[i] ^ proof[i];
        explicit_bzero(want, sizeof want);
        return diff == 0;
}
