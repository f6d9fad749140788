/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "flctl-backend.h"
#include "flctl-args.h"

/* flctl tls init --dir DIR --hosts ADDR[,ADDR...] [--force | --keep-ca]:
 * a cluster's TLS material, made with GnuTLS (tls-issue.h) and needing no
 * scheduler. DIR/ca.pem and DIR/ca-key.pem are a new CA (or, with
 * --keep-ca, the one already there); DIR/node.pem and DIR/node-key.pem one
 * certificate for every node, naming the given addresses, good as TLS
 * server and client certificate. Nothing that exists is overwritten
 * without --force. */

/* --dir and --hosts given and well-formed (a usage error otherwise). */
int check_tls_init(const FlctlOptions *o, int argc, char *argv[]);
int verb_tls_init(Backend *b, const FlctlOptions *o, int argc, char *argv[]);

/* "10.0.0.5,fl.example.org" into its entries: each an IP address or a DNS
 * name, none twice, 1 to TLS_INIT_HOSTS_MAX of them. Logs usage errors. */
#define TLS_INIT_HOSTS_MAX 64
int tls_init_parse_hosts(const char *s, char ***ret, size_t *ret_n);
