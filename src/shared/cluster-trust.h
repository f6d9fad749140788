/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "cluster-secret.h"
#include "conf.h"
#include "conn.h"
#include "tls.h"

/* What a daemon proves to the other nodes and asks of them (docs/security.md):
 * its TLS material when enable_ssl is on, the cluster secret when
 * cluster_secret_file is set, or nothing. It owns the generation of
 * material in force, reads every file again on reload (SIGHUP) without
 * touching the connections that run, and warns in the journal, at start
 * and then every cert_check_interval_in_hour, about the certificates (and
 * the CRL) that pass their date within cert_expire_warning_time_in_day. */

typedef struct ClusterTrust ClusterTrust;

/* Logs what is wrong with the files, once, and returns -EINVAL for it. */
int cluster_trust_new(ClusterTrust **ret, sd_event *e, const FlConfig *c);
ClusterTrust *cluster_trust_free(ClusterTrust *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClusterTrust *, cluster_trust_free);

/* Reads the files again. On success what new connections get is the new
 * material (and secret); on failure the old stays, and why is logged. */
int cluster_trust_reload(ClusterTrust *t);

/* The material in force (NULL with TLS off); not a reference. */
TlsMaterial *cluster_trust_tls(const ClusterTrust *t);
bool cluster_trust_has_secret(const ClusterTrust *t);

/* Puts TLS and/or the secret on a connection just made (accepting) or
 * being made to peer_host (connecting). */
int cluster_trust_secure(ClusterTrust *t, Conn *c, bool accepting, const char *peer_host);

/* A warning when this node's certificate does not name host, the address
 * the other nodes reach it at (what: "scheduler_ip", "advertise_ip"). */
void cluster_trust_check_name(const ClusterTrust *t, const char *host, const char *what);

/* The expiry warnings, now (also run by the timer). */
void cluster_trust_check_expiry(ClusterTrust *t);
