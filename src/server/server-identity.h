/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* Who a server is, decided once at start.
 *
 * The node id of local server `index` (of `count` started by one command) on
 * device port `port`: explicit_id (--node_id), else env_id ($MS_NODE_ID),
 * each suffixed "-<index>" when count > 1; else the id kept in
 * <state_dir>/node-id-<port>, a UUID made on first use, so that a restarted
 * server gets its rank back. Logs what is wrong (a bad $MS_NODE_ID, a file
 * that holds no node id, an unwritable state directory) and returns -errno. */
int server_identity_node_id(const char *explicit_id, const char *env_id, const char *state_dir,
                            uint16_t port, unsigned index, unsigned count, char **ret);

/* The address the scheduler and the peers are told: advertise_ip if given,
 * 127.0.0.1 when the scheduler is on loopback (127.0.0.0/8), else the first
 * non-loopback IPv4 address of the host. Logs why when there is none. */
int server_identity_address(const char *advertise_ip, const char *scheduler_ip, char **ret);

/* The address a listener binds: its option (fl_server_ip, tcp_server_ip)
 * if given, else the advertised address - never every interface unless
 * asked for (0.0.0.0, ::). Peers and flctl reach a server at its advertised
 * address: a bind address that is neither it nor a wildcard is warned
 * about, naming the option. */
const char *server_identity_bind_address(const char *option, const char *value, const char *advertised);
