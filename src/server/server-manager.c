/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "server-identity.h"
#include "server-manager.h"
#include "server-metrics.h"
#include "util.h"

int manager_new(Manager **ret, const FlConfig *c, unsigned index) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->config = c;
        m->index = index;
        m->count = c->local_server_num;
        m->port = (uint16_t) (c->fl_server_port + index);
        snprintf(m->scheduler, sizeof m->scheduler, "%s:%u", c->scheduler_ip, c->scheduler_port);
        srandom((unsigned) (getpid() ^ now_usec(CLOCK_MONOTONIC)));

        r = sd_event_new(&m->event);
        if (r < 0)
                return r;
        r = server_link_new(&m->link, m);
        if (r < 0)
                return r;
        r = server_sync_init(&m->sync, m);
        if (r < 0)
                return r;
        r = update_log_new(&m->updates, m, c->durable_updates);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* The link first: closing it tells the scheduler we are gone, and
         * answers the devices still waiting for it. */
        server_link_free(m->link);
        m->link = NULL;
        server_sync_done(&m->sync);
        pending_clear(m);
        m->updates = update_log_free(m->updates);
        server_metrics_stop(m);
        http_server_free(m->http);
        allreduce_free(m->allreduce);
        cluster_trust_free(m->trust);
        training_done(&m->training);
        aggregate_free(m->aggregate);
        server_model_done(&m->model);
        server_model_done(&m->previous_model);
        if (m->store)
                sqlite3_close_v2(m->store);
        free(m->store_path);
        sd_event_unref(m->event);
        free(m->node_id);
        free(m->address);
        free(m);
        return NULL;
}

void manager_status(Manager *m, const char *format, ...) {
        _cleanup_free_ char *text = NULL;
        va_list ap;
        int k;

        va_start(ap, format);
        k = vasprintf(&text, format, ap);
        va_end(ap);
        if (k < 0)
                return;
        log_debug("Status: %s", text);
        (void) sd_notifyf(false, "STATUS=%s", text);
}

void manager_exit(Manager *m, int status) {
        if (m->exiting)
                return;
        m->exiting = true;
        m->exit_code = status;
        (void) sd_notify(false, "STOPPING=1");
        (void) sd_event_exit(m->event, 0);
}

void manager_link_lost(Manager *m) {
        pending_fail_all(m);
        manager_training_link_lost(m);
        manager_sync_link_lost(m);
}

void manager_link_changed(Manager *m) {
        ServerLink *l = m->link;
        const char *state = strna(cluster_state_to_string(l->view.cluster_state));
        char rank[16];

        if (!l->registered)
                return;         /* the link said why */
        snprintf(rank, sizeof rank, "%u", l->rank);
        (void) log_set_field("FL_RANK", rank);

        if (!m->announced) {
                /* MindSpore's scripts wait for this line: registered and serving, once. */
                m->announced = true;
                log_info("Server started successfully.");
                (void) sd_notify(false, "READY=1");
        }
        if (l->view.cluster_state == _CLUSTER_STATE_INVALID)
                manager_status(m, "Rank %u, waiting for the cluster state; serving devices on port %u.",
                               l->rank, m->port);
        else if (l->leaving)
                manager_status(m, "Rank %u, leaving the cluster (scale-in): no new devices; finishing iteration %u "
                               "on port %u.", l->rank, m->training.current.iteration, m->port);
        else if (m->sync.announced && !m->sync.in_sync)
                manager_status(m, "Rank %u, cluster %s; waiting for the cluster's model of iteration %u from a peer; "
                               "devices get the safemode answer on port %u.", l->rank, state,
                               m->sync.model_iteration, m->port);
        else
                manager_status(m, "Rank %u, cluster %s (%zu of %u servers alive); serving devices on port %u.",
                               l->rank, state, server_members_alive(&l->view), l->view.server_num, m->port);
        manager_sync_members_changed(m);
        server_report_flush(m);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received SIG%s, stopping the server on port %u.", sigabbrev_np((int) si->ssi_signo), m->port);
        manager_exit(m, EXIT_SUCCESS);
        return 0;
}

int manager_reload(Manager *m) {
        int r;

        (void) sd_notify(false, "RELOADING=1");
        r = cluster_trust_reload(m->trust);
        if (r >= 0 && cluster_trust_tls(m->trust))
                r = http_server_set_tls(m->http, cluster_trust_tls(m->trust));
        if (r >= 0 && cluster_trust_tls(m->trust) && m->metrics_http)
                r = http_server_set_tls(m->metrics_http, cluster_trust_tls(m->trust));
        if (r >= 0 && m->address)
                cluster_trust_check_name(m->trust, m->address, "advertise_ip");
        (void) sd_notify(false, "READY=1");
        return r;
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received SIGHUP: reloading the TLS material and the cluster secret (port %u).", m->port);
        (void) manager_reload(m);
        return 0;
}

static int manager_setup_loop(Manager *m) {
        sigset_t mask;
        int r;

        /* sd-event takes signals through a signalfd: they must be blocked. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(negative_errno(), "Failed to block SIGTERM, SIGINT and SIGHUP: %m");
        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, on_reload_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGTERM, SIGINT and SIGHUP: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");
        return 0;
}

static int manager_check_config(Manager *m) {
        const FlConfig *c = m->config;
        struct in6_addr a;

        if (inet_pton(AF_INET, c->scheduler_ip, &a) != 1 && inet_pton(AF_INET6, c->scheduler_ip, &a) != 1)
                return log_error_errno(-EINVAL, "Invalid scheduler_ip '%s': use a numeric IPv4 or IPv6 address.",
                                       c->scheduler_ip);
        return 0;
}

int manager_start(Manager *m) {
        const FlConfig *c = m->config;
        const char *peer_ip;
        int r;

        (void) log_set_field("FL_ROLE", "SERVER");
        r = manager_check_config(m);
        if (r < 0)
                return r;
        r = manager_setup_loop(m);
        if (r < 0)
                return r;
        r = cluster_trust_new(&m->trust, m->event, c);
        if (r < 0)
                return r;

        /* The listeners bind the advertised address unless told otherwise. */
        r = server_identity_address(c->advertise_ip, c->scheduler_ip, &m->address);
        if (r < 0)
                return r;
        /* The port first: only the process that owns it may use its node-id file. */
        r = manager_http_start(m);
        if (r < 0)
                return r;
        r = server_identity_node_id(c->node_id, getenv("MS_NODE_ID"), conf_state_dir(c), m->port, m->index,
                                    m->count, &m->node_id);
        if (r < 0)
                return r;
        (void) log_set_field("FL_NODE_ID", m->node_id);
        cluster_trust_check_name(m->trust, m->address, "advertise_ip");
        if (cluster_trust_tls(m->trust)) {
                /* A peer's model comes over its HTTPS device port, checked as the peer port is. */
                r = http_client_set_tls(m->sync.http, c->ssl.ca_cert_path, c->ssl.crl_path);
                if (r < 0)
                        return log_oom();
        }

        r = manager_load_model(m);
        if (r < 0)
                return r;
        peer_ip = server_identity_bind_address("tcp_server_ip", c->tcp_server_ip, m->address);
        r = allreduce_new(&m->allreduce, m->event, peer_ip, 0, SERVER_ALLREDUCE_TIMEOUT_USEC);
        if (r < 0)
                return log_error_errno(r, "Failed to listen for the all-reduce of the peer servers on %s: %m%s",
                                       peer_ip, r == -EADDRNOTAVAIL ? " (no interface of this host has that "
                                       "address; set tcp_server_ip, 0.0.0.0 for every address)" : "");
        r = allreduce_set_trust(m->allreduce, m->trust);
        if (r < 0)
                return log_oom();
        r = server_metrics_start(m);
        if (r < 0)
                return r;

        log_info("Serving devices on %s port %u%s as node %s, advertised as %s; peers reach this server on %s port %u%s.",
                 c->fl_server_ip ?: m->address, m->port, cluster_trust_tls(m->trust) ? " (HTTPS)" : "", m->node_id,
                 m->address, peer_ip, allreduce_port(m->allreduce), cluster_trust_tls(m->trust) ? " (TLS)" :
                 cluster_trust_has_secret(m->trust) ? " (with the cluster secret)" : "");
        server_link_start(m->link);
        return 0;
}

int manager_run(Manager *m) {
        int r;

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "The event loop failed: %m"), EXIT_FAILURE;
        return m->exit_code;
}
