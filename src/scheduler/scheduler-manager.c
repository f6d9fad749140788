/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "conn.h"
#include "json-util.h"
#include "log.h"
#include "scheduler-auth.h"
#include "scheduler-manager.h"
#include "scheduler-store.h"
#include "store.h"
#include "wire-protocol.h"

/* How long a finish waits for servers to acknowledge before it answers with
 * those that did, and how long the answer gets to leave before we exit. */
#define FINISH_TIMEOUT_USEC (20 * USEC_PER_SEC)
#define EXIT_LINGER_USEC (300 * USEC_PER_MSEC)

int manager_new(Manager **ret, const FlConfig *config) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->config = config;
        m->listen_fd = -EBADF;
        m->lock_fd = -EBADF;
        m->state = CLUSTER_STARTING;
        m->scaling = _CLUSTER_STATE_INVALID;
        registry_init(&m->registry, config->server_num);

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        while (m->links)
                link_free(m->links);
        for (size_t i = 0; i < m->n_finish_calls; i++)
                sd_bus_message_unref(m->finish_calls[i]);
        free(m->finish_calls);
        free(m->finish_requests);
        json_object_put(m->stopped);
        history_done(m);
        training_done(m);
        scale_done(m);
        http_server_free(m->http);
        auth_done(m);
        sd_event_source_disable_unref(m->listen_source);
        sd_event_source_disable_unref(m->expire_timer);
        sd_event_source_disable_unref(m->exit_timer);
        sd_event_source_disable_unref(m->finish_timer);
        safe_close(m->listen_fd);
        safe_close(m->lock_fd);
        cluster_trust_free(m->trust);
        refusals_free(m->refusals);
        sd_bus_flush_close_unref(m->bus);
        registry_done(&m->registry);
        scheduler_metrics_done(m);
        if (m->db)
                sqlite3_close_v2(m->db);
        free(m->db_path);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

int manager_save_node(Manager *m, const Node *n) {
        int r = scheduler_store_save_node(m->db, n);

        if (r < 0)
                log_error_errno(r, "Failed to store node %s in %s: %m", n->node_id, m->db_path);
        return r;
}

static json_object *member_json(const Node *n) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "rank", json_object_new_int64(n->rank));
        json_object_object_add(o, "node_id", json_object_new_string(n->node_id));
        json_object_object_add(o, "address", json_object_new_string(n->address));
        json_object_object_add(o, "fl_server_port", json_object_new_int64(n->fl_server_port));
        json_object_object_add(o, "alive", json_object_new_boolean(n->alive));
        json_object_object_add(o, "peer_port", json_object_new_int64(n->peer_port));
        json_object_object_add(o, "leaving", json_object_new_boolean(n->leaving));
        return o;
}

void manager_send_members(Manager *m, Link *only) {
        _cleanup_(json_object_putp) json_object *msg = json_object_new_object();
        json_object *members = json_object_new_array();
        Node *const *nodes = registry_sorted(&m->registry);

        for (size_t i = 0; i < m->registry.n_nodes; i++)
                json_object_array_add(members, member_json(nodes[i]));
        json_object_object_add(msg, "cluster_state", json_object_new_string(cluster_state_to_string(m->state)));
        json_object_object_add(msg, "server_num", json_object_new_int64(m->registry.server_num));
        json_object_object_add(msg, "members", members);

        for (Link *l = m->links; l; l = l->next) {
                if (!l->node || (only && l != only))
                        continue;
                /* A full queue means a stuck peer; its heartbeats time it out. */
                (void) conn_send_json(l->conn, WIRE_MEMBERS, msg);
        }
}

static ClusterState manager_compute_state(Manager *m) {
        if (m->finishing || m->state == CLUSTER_EXIT)
                return CLUSTER_EXIT;
        if (m->scaling != _CLUSTER_STATE_INVALID)
                return m->scaling;

        if (m->recovering) {
                bool all_back = true;

                for (size_t i = 0; i < m->registry.n_nodes; i++) {
                        if (!m->registry.nodes[i]->alive)
                                m->recovering = false;  /* someone did not come back */
                        if (!m->registry.nodes[i]->connected)
                                all_back = false;
                }
                if (all_back)
                        m->recovering = false;
                if (m->recovering)
                        return CLUSTER_SCHEDULER_RECOVERY;
        }
        return registry_state(&m->registry);
}

static void manager_notify_status(Manager *m) {
        (void) sd_notifyf(false, "STATUS=%s: %zu of %u servers alive.",
                          cluster_state_to_string(m->state), registry_alive_count(&m->registry),
                          m->registry.server_num);
}

int manager_update_state(Manager *m, bool force) {
        ClusterState s = manager_compute_state(m);
        int r;

        if (s != m->state) {
                char field[64];

                r = scheduler_store_save_cluster(m->db, s, m->registry.server_num);
                if (r < 0)
                        return log_error_errno(r, "Failed to store the cluster state in %s: %m", m->db_path);
                snprintf(field, sizeof field, "FL_CLUSTER_STATE=%s", cluster_state_to_string(s));
                log_struct(s == NODE_TIMEOUT ? LOG_WARNING : LOG_NOTICE, FIELDS(field),
                           "Cluster state %s -> %s (%zu of %u servers alive).",
                           cluster_state_to_string(m->state), cluster_state_to_string(s),
                           registry_alive_count(&m->registry), m->registry.server_num);
                m->state = s;
                manager_bus_emit_state(m);
                force = true;
        }
        if (force)
                manager_send_members(m, NULL);
        training_on_state(m);
        manager_notify_status(m);
        return 0;
}

static int manager_on_expire(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ Node **changed = NULL;
        size_t n;

        if (m->registry.n_nodes > 0) {
                changed = calloc(m->registry.n_nodes, sizeof *changed);
                if (!changed)
                        return log_oom();
                n = registry_expire(&m->registry, now_usec(CLOCK_MONOTONIC),
                                    (uint64_t) m->config->node_timeout * USEC_PER_SEC, changed);
                for (size_t i = 0; i < n; i++) {
                        log_warning("Server rank %u (node %s) has not been heard from for %us: declared dead.",
                                    changed[i]->rank, changed[i]->node_id, m->config->node_timeout);
                        (void) manager_save_node(m, changed[i]);
                        manager_bus_emit_node(m, changed[i], false, "timeout");
                        training_on_node_dead(m, changed[i]);
                }
                if (n > 0)
                        (void) manager_update_state(m, true);
        }

        (void) sd_event_source_set_time_relative(s, conf_heartbeat_usec(m->config));
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

json_object *manager_nodes_json(Manager *m) {
        json_object *a = json_object_new_array();
        Node *const *nodes = registry_sorted(&m->registry);

        for (size_t i = 0; i < m->registry.n_nodes; i++) {
                const Node *n = nodes[i];
                json_object *o = json_object_new_object();
                char rank[16];

                snprintf(rank, sizeof rank, "%u", n->rank);
                json_object_object_add(o, "node_id", json_object_new_string(n->node_id));
                json_object_object_add(o, "rank_id", json_object_new_string(rank));
                json_object_object_add(o, "role", json_object_new_string("SERVER"));
                json_object_object_add(o, "alive", json_object_new_boolean(n->alive));
                json_object_object_add(o, "address", json_object_new_string(n->address));
                json_object_object_add(o, "fl_server_port", json_object_new_int64(n->fl_server_port));
                json_object_object_add(o, "pid", json_object_new_int64(n->pid));
                json_object_object_add(o, "connected", json_object_new_boolean(n->connected));
                json_object_object_add(o, "leaving", json_object_new_boolean(n->leaving));
                json_object_object_add(o, "in_sync", json_object_new_boolean(node_in_sync(m, n)));
                json_object_array_add(a, o);
        }
        return a;
}

/* ---- finish ---- */

static json_object *stopped_entry(const char *role, const char *rank, const char *node_id, uint32_t pid) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "role", json_object_new_string(role));
        json_object_object_add(o, "rank_id", json_object_new_string(rank));
        json_object_object_add(o, "node_id", json_object_new_string(node_id));
        json_object_object_add(o, "pid", json_object_new_int64(pid));
        return o;
}

static int manager_on_exit_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        return sd_event_exit(m->event, 0);
}

static void manager_finish_complete(Manager *m) {
        if (m->exit_timer)
                return;  /* already answered */

        m->finish_timer = sd_event_source_disable_unref(m->finish_timer);
        json_object_array_add(m->stopped, stopped_entry("SCHEDULER", "", "scheduler", (uint32_t) getpid()));
        log_notice("Cluster finished: %zu servers stopped; the scheduler exits.",
                   json_object_array_length(m->stopped) - 1);

        for (size_t i = 0; i < m->n_finish_calls; i++) {
                (void) manager_bus_finish_reply(m, m->finish_calls[i]);
                m->finish_calls[i] = sd_bus_message_unref(m->finish_calls[i]);
        }
        m->n_finish_calls = 0;
        for (size_t i = 0; i < m->n_finish_requests; i++)
                (void) manager_rest_finish_reply(m, m->finish_requests[i]);
        m->n_finish_requests = 0;

        (void) sd_notify(false, "STOPPING=1\nSTATUS=Cluster finished.");
        /* Let the answers leave before the loop ends. */
        if (sd_event_add_time_relative(m->event, &m->exit_timer, CLOCK_MONOTONIC, EXIT_LINGER_USEC, 0,
                                       manager_on_exit_timer, m) < 0)
                (void) sd_event_exit(m->event, 0);
}

bool manager_finish_answered(const Manager *m) {
        return m->exit_timer;
}

void manager_finish_check(Manager *m) {
        if (!m->finishing)
                return;
        for (Link *l = m->links; l; l = l->next)
                if (l->node)
                        return;  /* still waiting for it */
        manager_finish_complete(m);
}

void manager_finish_node_stopped(Manager *m, Node *n, uint32_t pid) {
        char rank[16];

        if (!m->finishing || !n->link)
                return;
        snprintf(rank, sizeof rank, "%u", n->rank);
        json_object_array_add(m->stopped, stopped_entry("SERVER", rank, n->node_id, pid));
        log_info("Server rank %u (node %s, pid %u) stopped.", n->rank, n->node_id, pid);

        /* It is gone on purpose: forget the link so it is not waited for. */
        ((Link *) n->link)->node = NULL;
        n->link = NULL;
        n->connected = false;
        manager_finish_check(m);
}

static int manager_on_finish_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        for (Link *l = m->links; l; l = l->next)
                if (l->node)
                        log_warning("Server rank %u (node %s) did not acknowledge finish within %" PRIu64 "s.",
                                    l->node->rank, l->node->node_id, FINISH_TIMEOUT_USEC / USEC_PER_SEC);
        manager_finish_complete(m);
        return 0;
}

int manager_finish_begin(Manager *m) {
        int r;

        if (m->finishing)
                return 0;  /* join the running one */

        m->finishing = true;
        m->stopped = json_object_new_array();
        r = manager_update_state(m, false);
        if (r < 0)
                return r;
        log_notice("Finishing the cluster: stopping %zu connected servers.", registry_alive_count(&m->registry));

        for (Link *l = m->links; l; l = l->next) {
                if (!l->node)
                        continue;
                r = conn_send(l->conn, WIRE_FINISH, "{}", 2);
                if (r < 0)
                        log_warning_errno(r, "Failed to tell rank %u to finish, ignoring: %m", l->node->rank);
        }

        r = sd_event_add_time_relative(m->event, &m->finish_timer, CLOCK_MONOTONIC, FINISH_TIMEOUT_USEC, 0,
                                       manager_on_finish_timeout, m);
        if (r < 0)
                return r;
        manager_finish_check(m);
        return 0;
}

/* ---- start-up ---- */

static int manager_load(Manager *m) {
        ClusterState state = _CLUSTER_STATE_INVALID;
        uint32_t server_num = 0;
        int r;

        r = scheduler_store_load_cluster(m->db, &state, &server_num);
        if (r < 0)
                return log_error_errno(r, "Failed to read the cluster state from %s: %m", m->db_path);

        if (state == _CLUSTER_STATE_INVALID || state == CLUSTER_EXIT) {
                /* A new cluster, or the last one finished: start afresh. */
                r = scheduler_store_clear_nodes(m->db);
                if (r >= 0)
                        r = store_meta_set(m->db, "iteration", "0");
                if (r >= 0)
                        r = instance_reset(m);
                if (r >= 0)
                        r = store_meta_set(m->db, "model_checksum", "");
                if (r >= 0)
                        r = store_meta_set(m->db, "state_checksum", "");
                if (r < 0)
                        return log_error_errno(r, "Failed to reset %s: %m", m->db_path);
                return scheduler_store_save_cluster(m->db, CLUSTER_STARTING, m->registry.server_num);
        }

        if (server_num != m->config->server_num)
                log_notice("Resuming with server_num=%u from %s (the configuration says %u).",
                           server_num, m->db_path, m->config->server_num);
        m->registry.server_num = server_num;

        r = scheduler_store_load_nodes(m->db, &m->registry, now_usec(CLOCK_MONOTONIC));
        if (r < 0)
                return log_error_errno(r, "Failed to load the node registry from %s: %m", m->db_path);

        if (m->registry.n_nodes > 0) {
                m->recovering = true;
                m->state = CLUSTER_SCHEDULER_RECOVERY;
                log_notice("Resuming the cluster from %s: %zu known servers, waiting up to %us for them to reconnect.",
                           m->db_path, m->registry.n_nodes, m->config->node_timeout);
        }
        return scheduler_store_save_cluster(m->db, m->state, m->registry.server_num);
}

/* Two schedulers on one database would each believe they own the cluster. */
static int manager_lock_state_dir(Manager *m, const char *dir) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/scheduler.lock", dir) < 0)
                return log_oom();
        m->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
        if (m->lock_fd < 0)
                return log_error_errno(-errno, "Failed to open %s: %m", path);
        if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return log_error_errno(-EBUSY, "Another fl-schedulerd is using the state directory %s; refusing to start.", dir);
                return log_error_errno(-errno, "Failed to lock %s: %m", path);
        }
        return 0;
}

static int manager_on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received %s, exiting.", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1");
        return sd_event_exit(m->event, 0);
}

int manager_reload(Manager *m) {
        int r, k;

        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading the token file, the TLS material and the cluster secret.");
        r = auth_reload(m);
        /* TLS and the secret too, even when the token file did not load: each says why it failed. */
        k = cluster_trust_reload(m->trust);
        if (k >= 0 && cluster_trust_tls(m->trust))
                k = http_server_set_tls(m->http, cluster_trust_tls(m->trust));
        if (k >= 0)
                cluster_trust_check_name(m->trust, m->config->scheduler_ip, "scheduler_ip");
        if (r >= 0)
                r = k;
        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);
        return r;
}

static int manager_on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        log_info("Received SIGHUP: reloading.");
        (void) manager_reload(userdata);
        return 0;
}

int manager_start(Manager *m) {
        const char *dir = conf_state_dir(m->config);
        int r;

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create the state directory %s: %m", dir);
        r = manager_lock_state_dir(m, dir);
        if (r < 0)
                return r;
        r = conf_scheduler_db_path(m->config, &m->db_path);
        if (r < 0)
                return log_oom();
        r = mkdir_parents(m->db_path, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directory of %s: %m", m->db_path);
        r = scheduler_store_open(&m->db, m->db_path);
        if (r == -EUCLEAN)
                /* Nothing is deleted for the operator: the registry in it may still be wanted. */
                return log_error_errno(r, "The scheduler database %s is damaged or not an SQLite database; refusing "
                                       "to start. Move it away (with its -wal and -shm files, e.g. mv %s %s.damaged) "
                                       "and start fl-schedulerd again: it then starts a new registry and the "
                                       "servers register anew.", m->db_path, m->db_path, m->db_path);
        if (r < 0)
                return log_error_errno(r, "Failed to open the scheduler database %s: %m", m->db_path);
        r = manager_load(m);
        if (r < 0)
                return r;
        r = scheduler_metrics_setup(m);
        if (r < 0)
                return r;
        r = history_setup(m);
        if (r < 0)
                return r;
        r = training_setup(m);
        if (r < 0)
                return r;
        r = scale_setup(m);
        if (r < 0)
                return r;

        r = sd_event_add_signal(m->event, NULL, SIGTERM, manager_on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGTERM: %m");
        r = sd_event_add_signal(m->event, NULL, SIGINT, manager_on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGINT: %m");
        r = sd_event_add_signal(m->event, NULL, SIGHUP, manager_on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGHUP: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        r = auth_setup(m);
        if (r < 0)
                return r;
        r = cluster_trust_new(&m->trust, m->event, m->config);
        if (r < 0)
                return r;
        cluster_trust_check_name(m->trust, m->config->scheduler_ip, "scheduler_ip");
        r = refusals_new(&m->refusals, "the scheduler port");
        if (r < 0)
                return log_oom();
        r = link_listen(m);
        if (r < 0)
                return r;
        r = manager_rest_setup(m);
        if (r < 0)
                return r;
        r = manager_bus_setup(m);
        if (r < 0)
                log_warning_errno(r, "The D-Bus API is not available (%m); REST on port %u still is.",
                                  m->config->scheduler_manage_port);

        r = sd_event_add_time_relative(m->event, &m->expire_timer, CLOCK_MONOTONIC,
                                       conf_heartbeat_usec(m->config), 0, manager_on_expire, m);
        if (r < 0)
                return r;

        log_struct(LOG_INFO, FIELDS("FL_ROLE=SCHEDULER"),
                   "Scheduler started successfully: servers on %s:%u, REST on %s:%u (%s), server_num=%u, node_timeout=%us, state in %s, database %s%s.",
                   m->config->scheduler_ip, m->config->scheduler_port,
                   m->config->scheduler_manage_ip ?: m->config->scheduler_ip, m->config->scheduler_manage_port,
                   auth_enabled(m) ? "tokens required" : "no authentication",
                   m->registry.server_num, m->config->node_timeout, dir, m->db_path,
                   cluster_trust_tls(m->trust) ? "; TLS on every port (HTTPS for REST)" :
                   cluster_trust_has_secret(m->trust) ? "; servers prove the cluster secret" : "");
        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);
        return 0;
}

int manager_run(Manager *m) {
        return sd_event_loop(m->event);
}
