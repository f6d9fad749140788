/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "json-util.h"
#include "log.h"
#include "scheduler-manager.h"
#include "scheduler-store.h"
#include "store.h"
#include "wire-protocol.h"

/* Elastic scaling while training runs (management-api.md). Scale-out raises
 * server_num, admits the new servers, and is complete once each of them is
 * registered and holds the cluster's model (they fetch it from a peer and
 * say WIRE_SYNCED); training goes on meanwhile on the others. A scale-out
 * whose servers do not all come within scale_timeout is rolled back.
 * Scale-in marks the named servers leaving: they stop admitting devices but
 * keep the updates they acknowledged, which the end of the iteration
 * aggregates; then they are told to finish, and the ranks are made
 * contiguous again. Any rank may leave, rank 0 included.
 *
 * The running operation is stored before it is acknowledged, so that a
 * scheduler killed in its middle resumes it: a scale-out keeps its roll-back
 * deadline (Unix time, so the time left survives the restart), a scale-in its
 * leavers. It is one JSON value under one meta key, written and cleared in one
 * statement:
 *   {"kind":"CLUSTER_SCALE_OUT","scale_from":2,"started_ms":...,"deadline_ms":...}
 *   {"kind":"CLUSTER_SCALE_IN","scale_from":3,"started_ms":...,"leaving":["id",...]}
 * "" when none runs. */

#define SCALE_TIMEOUT_USEC (120 * USEC_PER_SEC)
#define SCALE_OPERATION_KEY "scale_operation"

bool node_in_sync(const Manager *m, const Node *n) {
        /* Only what a server said (WIRE_SYNCED) or computed (AGGREGATE_DONE). */
        return n->in_sync;
}

static uint64_t scale_timeout(const Manager *m) {
        /* Enough for servers to start and fetch a model; tests shorten node_timeout. */
        return MIN(SCALE_TIMEOUT_USEC, 4 * (uint64_t) m->config->node_timeout * USEC_PER_SEC);
}

static int scale_refuse(char *error, size_t size, int r, const char *format, ...) _printf_(4, 5);
static int scale_refuse(char *error, size_t size, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(error, size, format, ap);
        va_end(ap);
        return r;
}

static int scale_check_ready(Manager *m, char *error, size_t size) {
        if (m->scaling != _CLUSTER_STATE_INVALID)
                return scale_refuse(error, size, -EBUSY, "A %s is running; retry when it has finished.",
                                    m->scaling == CLUSTER_SCALE_OUT ? "scale-out" : "scale-in");
        if (m->state != CLUSTER_READY)
                return scale_refuse(error, size, -EBUSY, "The cluster is not in CLUSTER_READY; retry when it is.");
        return 0;
}

/* ---- the durable record of the running operation ---- */

static uint64_t scale_started_ms(const Manager *m) {
        uint64_t elapsed = (now_usec(CLOCK_MONOTONIC) - m->scale_started_usec) / USEC_PER_MSEC;

        return now_msec_realtime() - elapsed;
}

static int scale_operation_to_string(Manager *m, uint64_t deadline_ms, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        char *s;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "kind", json_object_new_string(cluster_state_to_string(m->scaling)));
        json_object_object_add(o, "scale_from", json_object_new_int64(m->scale_from));
        json_object_object_add(o, "started_ms", json_object_new_int64((int64_t) scale_started_ms(m)));
        if (m->scaling == CLUSTER_SCALE_OUT)
                json_object_object_add(o, "deadline_ms", json_object_new_int64((int64_t) deadline_ms));
        else {
                json_object *leaving = json_object_new_array();

                for (size_t i = 0; i < m->registry.n_nodes; i++)
                        if (m->registry.nodes[i]->leaving)
                                json_object_array_add(leaving, json_object_new_string(m->registry.nodes[i]->node_id));
                json_object_object_add(o, "leaving", leaving);
        }
        s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* A scale-out raises server_num: both go in one transaction, or neither. */
static int scale_store_begin(Manager *m, uint64_t deadline_ms) {
        _cleanup_free_ char *op = NULL;
        int r;

        r = scale_operation_to_string(m, deadline_ms, &op);
        if (r < 0)
                return r;
        if (m->scaling == CLUSTER_SCALE_IN)
                return store_meta_set(m->db, SCALE_OPERATION_KEY, op);

        r = store_begin(m->db);
        if (r < 0)
                return r;
        r = store_meta_set(m->db, SCALE_OPERATION_KEY, op);
        if (r >= 0)
                r = scheduler_store_save_cluster(m->db, m->scaling, m->registry.server_num);
        if (r < 0) {
                store_rollback(m->db);
                return r;
        }
        return store_commit(m->db);
}

/* The final server_num and the end of the operation, in one transaction. */
static int scale_store_end(Manager *m) {
        int r;

        r = store_begin(m->db);
        if (r < 0)
                return r;
        r = scheduler_store_save_cluster(m->db, m->state, m->registry.server_num);
        if (r >= 0)
                r = store_meta_set(m->db, SCALE_OPERATION_KEY, "");
        if (r < 0) {
                store_rollback(m->db);
                return r;
        }
        return store_commit(m->db);
}

static void scale_end(Manager *m) {
        int r;

        r = scale_store_end(m);
        if (r < 0)
                /* A restarted scheduler then finds the operation again and ends it again. */
                log_error_errno(r, "Failed to store the end of the %s (server_num=%u) in %s: %m",
                                m->scaling == CLUSTER_SCALE_OUT ? "scale-out" : "scale-in",
                                m->registry.server_num, m->db_path);
        m->scaling = _CLUSTER_STATE_INVALID;
        (void) sd_event_source_set_enabled(m->scale_timer, SD_EVENT_OFF);
        (void) manager_update_state(m, true);
}

static void scale_arm_timer(Manager *m, uint64_t deadline_ms) {
        (void) sd_event_source_set_time(m->scale_timer, deadline_ms * USEC_PER_MSEC);
        (void) sd_event_source_set_enabled(m->scale_timer, SD_EVENT_ONESHOT);
}

/* Forgets a server that leaves the cluster for good, telling it to stop. */
static void scale_remove_node(Manager *m, Node *n, const char *reason) {
        Link *l = n->link;
        char node_id[NODE_ID_MAX];
        uint32_t rank = n->rank;

        if (l) {
                /* It closes once it has stopped; that close is no loss any more. */
                l->node = NULL;
                n->link = NULL;
                (void) conn_send(l->conn, WIRE_FINISH, "{}", 2);
        }
        strcpy(node_id, n->node_id);
        manager_bus_emit_node(m, n, false, reason);
        (void) scheduler_store_delete_node(m->db, node_id);
        (void) registry_remove(&m->registry, node_id);
        log_notice("Server %s (rank %u) left the cluster: %s.", node_id, rank, reason);
}

/* ---- scale-out ---- */

int scale_out(Manager *m, uint32_t server_num, char *error, size_t size) {
        uint64_t deadline_ms;
        uint32_t k = server_num;
        int r;

        if (k == 0)
                return scale_refuse(error, size, -EINVAL, "The server_num must be a positive integer.");
        if (k > 4096 - m->registry.server_num)
                return scale_refuse(error, size, -EINVAL, "The server_num %" PRIu32 " would make more than 4096 servers.", k);
        r = scale_check_ready(m, error, size);
        if (r < 0)
                return r;

        m->scale_from = m->registry.server_num;
        m->registry.server_num += k;
        m->scaling = CLUSTER_SCALE_OUT;
        m->scale_started_usec = now_usec(CLOCK_MONOTONIC);
        deadline_ms = now_msec_realtime() + scale_timeout(m) / USEC_PER_MSEC;
        /* Durable before acknowledged: the operation, its deadline and the new server_num. */
        r = scale_store_begin(m, deadline_ms);
        if (r < 0) {
                log_error_errno(r, "Failed to store the scale-out to %u servers in %s: %m",
                                m->registry.server_num, m->db_path);
                m->registry.server_num = m->scale_from;
                m->scaling = _CLUSTER_STATE_INVALID;
                return scale_refuse(error, size, r, "The scheduler could not store the scale-out.");
        }
        (void) manager_update_state(m, true);
        scale_arm_timer(m, deadline_ms);
        log_notice("Scaling out from %u to %u servers: start the new ones with --server_num=%u within %" PRIu64 "s.",
                   m->scale_from, m->registry.server_num, m->registry.server_num, scale_timeout(m) / USEC_PER_SEC);
        metric_inc(m->metrics.scale_operations, "scale_out", "started");
        return 0;
}

void scale_check(Manager *m) {
        if (m->scaling == CLUSTER_SCALE_IN) {
                /* Resumed after a restart with the boundary behind us: the leavers
                 * go once they are back to be told so (or the timer gives up on
                 * them). Otherwise the boundary already ran, or is still ahead. */
                for (size_t i = 0; i < m->registry.n_nodes; i++) {
                        const Node *n = m->registry.nodes[i];

                        if (n->leaving && n->alive && !n->link)
                                return;
                }
                scale_on_boundary(m);
                return;
        }
        if (m->scaling != CLUSTER_SCALE_OUT)
                return;
        for (uint32_t rank = 0; rank < m->registry.server_num; rank++) {
                Node *n = registry_find_rank(&m->registry, rank);

                /* While no server reported a model there is none to fetch: then
                 * being registered is all a new server can do. */
                if (!n || !n->alive || !n->link || (!node_in_sync(m, n) && !isempty(m->model_checksum)))
                        return;
        }
        log_notice("Scale-out to %u servers complete in %.1fs: every server is registered and holds the model.",
                   m->registry.server_num,
                   (double) (now_usec(CLOCK_MONOTONIC) - m->scale_started_usec) / USEC_PER_SEC);
        metric_inc(m->metrics.scale_operations, "scale_out", "completed");
        scale_end(m);
}

static void scale_out_rollback(Manager *m) {
        uint32_t target = m->registry.server_num;

        log_warning("Scale-out to %u servers did not complete within %.0fs: rolling back to %u servers.",
                    target, (double) (now_usec(CLOCK_MONOTONIC) - m->scale_started_usec) / USEC_PER_SEC,
                    m->scale_from);
        metric_inc(m->metrics.scale_operations, "scale_out", "rolled_back");
        for (uint32_t rank = m->scale_from; rank < target; rank++) {
                Node *n = registry_find_rank(&m->registry, rank);

                if (n)
                        scale_remove_node(m, n, "scale-out rolled back");
        }
        m->registry.server_num = m->scale_from;
        scale_end(m);           /* stores server_num */
}

/* ---- scale-in ---- */

int scale_in(Manager *m, char *const *node_ids, size_t n, char *error, size_t size) {
        size_t leaving = 0;
        int r;

        if (n == 0)
                return scale_refuse(error, size, -EINVAL, "The node ids should not be empty.");
        for (size_t i = 0; i < n; i++)
                if (!node_ids[i] || !registry_find(&m->registry, node_ids[i]))
                        return scale_refuse(error, size, -EINVAL, "The node id:%s is illegal.", strna(node_ids[i]));
        r = scale_check_ready(m, error, size);
        if (r < 0)
                return r;

        /* Count distinct ids: a name given twice leaves once. */
        for (size_t i = 0; i < m->registry.n_nodes; i++)
                for (size_t j = 0; j < n; j++)
                        if (streq(m->registry.nodes[i]->node_id, node_ids[j])) {
                                leaving++;
                                break;
                        }
        if (leaving >= m->registry.n_nodes)
                return scale_refuse(error, size, -EINVAL, "Scaling in every server is refused: at least one must stay.");

        for (size_t j = 0; j < n; j++)
                registry_find(&m->registry, node_ids[j])->leaving = true;
        m->scale_from = m->registry.server_num;
        m->scaling = CLUSTER_SCALE_IN;
        m->scale_started_usec = now_usec(CLOCK_MONOTONIC);
        /* Durable before acknowledged: who leaves. */
        r = scale_store_begin(m, 0);
        if (r < 0) {
                log_error_errno(r, "Failed to store the scale-in in %s: %m", m->db_path);
                for (size_t i = 0; i < m->registry.n_nodes; i++)
                        m->registry.nodes[i]->leaving = false;
                m->scaling = _CLUSTER_STATE_INVALID;
                return scale_refuse(error, size, r, "The scheduler could not store the scale-in.");
        }
        log_notice("Scaling in %zu of %u servers: they stop admitting devices and leave at the end of the iteration.",
                   leaving, m->registry.server_num);
        metric_inc(m->metrics.scale_operations, "scale_in", "started");
        (void) manager_update_state(m, true);   /* the member lists tell the leavers */
        scale_on_boundary(m);                   /* now, if no iteration runs */
        return 0;
}

static int scale_compact_ranks(Manager *m) {
        Node *const *nodes = registry_sorted(&m->registry);
        int r;

        r = store_begin(m->db);
        if (r < 0)
                return r;
        /* In rank order every new rank is at most the old one and already vacated. */
        for (size_t i = 0; i < m->registry.n_nodes; i++) {
                Node *n = nodes[i];

                if (n->rank == i)
                        continue;
                log_info("Server %s: rank %u -> %zu.", n->node_id, n->rank, i);
                n->rank = (uint32_t) i;
                r = scheduler_store_save_node(m->db, n);
                if (r < 0) {
                        store_rollback(m->db);
                        return r;
                }
        }
        return store_commit(m->db);
}

/* Devices are in this iteration: its end aggregates the leavers' updates. */
static bool scale_boundary_ahead(const Manager *m) {
        return m->iteration.number > 0 && m->iteration.phase != ITERATION_FINISHED &&
                (m->iteration.admissions.n_entries > 0 || m->iteration.phase == ITERATION_AGGREGATING);
}

void scale_on_boundary(Manager *m) {
        size_t gone = 0;
        int r;

        if (m->scaling != CLUSTER_SCALE_IN || scale_boundary_ahead(m))
                return;

        for (size_t i = 0; i < m->registry.n_nodes; ) {
                Node *n = m->registry.nodes[i];

                if (!n->leaving) {
                        i++;
                        continue;
                }
                scale_remove_node(m, n, "scaled in");
                gone++;
        }
        m->registry.server_num = (uint32_t) m->registry.n_nodes;
        r = scale_compact_ranks(m);
        if (r < 0)
                log_error_errno(r, "Failed to store the new ranks in %s: %m", m->db_path);
        log_notice("Scale-in complete in %.1fs: %zu servers left, %u remain.",
                   (double) (now_usec(CLOCK_MONOTONIC) - m->scale_started_usec) / USEC_PER_SEC, gone,
                   m->registry.server_num);
        metric_inc(m->metrics.scale_operations, "scale_in", "completed");
        scale_end(m);           /* stores server_num */
}

static int scale_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->scaling == CLUSTER_SCALE_OUT)
                scale_out_rollback(m);
        else if (m->scaling == CLUSTER_SCALE_IN)
                scale_on_boundary(m);   /* resumed: the leavers that did not come back go without */
        return 0;
}

/* ---- resuming after a restart ---- */

static int scale_parse_operation(Manager *m, const char *s, uint64_t *ret_started_ms, uint64_t *ret_deadline_ms) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *leaving;
        const char *kind;
        uint64_t started_ms, deadline_ms = 0;
        uint32_t from;
        ClusterState k;

        if (json_parse_object(s, strlen(s), &o) < 0 || json_get_string(o, "kind", &kind) < 0 ||
            json_get_u32(o, "scale_from", &from) < 0 || json_get_u64(o, "started_ms", &started_ms) < 0)
                return -EUCLEAN;
        k = cluster_state_from_string(kind);
        if (k == CLUSTER_SCALE_OUT) {
                if (json_get_u64(o, "deadline_ms", &deadline_ms) < 0 || deadline_ms > UINT64_MAX / USEC_PER_MSEC)
                        return -EUCLEAN;
                if (from == 0 || from >= m->registry.server_num)
                        return -ESTALE;         /* the roll-back had stored server_num already */
        } else if (k == CLUSTER_SCALE_IN) {
                if (!json_object_object_get_ex(o, "leaving", &leaving) || !json_object_is_type(leaving, json_type_array))
                        return -EUCLEAN;
                /* All checked before any is marked: a refused record changes nothing. */
                for (size_t i = 0; i < json_object_array_length(leaving); i++)
                        if (!json_object_is_type(json_object_array_get_idx(leaving, i), json_type_string))
                                return -EUCLEAN;
                for (size_t i = 0; i < json_object_array_length(leaving); i++) {
                        /* One that already left before the restart is gone from the registry. */
                        Node *n = registry_find(&m->registry,
                                                json_object_get_string(json_object_array_get_idx(leaving, i)));

                        if (n)
                                n->leaving = true;
                }
        } else
                return -EUCLEAN;

        m->scaling = k;
        m->scale_from = from;
        *ret_started_ms = started_ms;
        *ret_deadline_ms = deadline_ms;
        return 0;
}

static int scale_resume(Manager *m) {
        _cleanup_free_ char *s = NULL;
        uint64_t started_ms, deadline_ms, now_ms = now_msec_realtime(), now_mono = now_usec(CLOCK_MONOTONIC), ago;
        size_t leaving = 0;
        int r;

        r = store_meta_get(m->db, SCALE_OPERATION_KEY, &s);
        if (r < 0)
                return log_error_errno(r, "Failed to read the running scale operation from %s: %m", m->db_path);
        if (isempty(s))
                return 0;
        if (m->registry.n_nodes == 0) {
                /* The cluster was started afresh (it had finished): nothing to resume. */
                r = store_meta_set(m->db, SCALE_OPERATION_KEY, "");
                if (r < 0)
                        return log_error_errno(r, "Failed to clear the scale operation in %s: %m", m->db_path);
                return 0;
        }

        r = scale_parse_operation(m, s, &started_ms, &deadline_ms);
        if (r < 0) {
                if (r == -ESTALE)
                        log_notice("The scale-out in %s had been rolled back already; forgetting it.", m->db_path);
                else
                        log_warning("The scale operation stored in %s cannot be read, ignoring it: %s", m->db_path, s);
                for (size_t i = 0; i < m->registry.n_nodes; i++)
                        m->registry.nodes[i]->leaving = false;
                r = store_meta_set(m->db, SCALE_OPERATION_KEY, "");
                if (r < 0)
                        return log_error_errno(r, "Failed to clear the scale operation in %s: %m", m->db_path);
                return 0;
        }

        ago = started_ms < now_ms ? now_ms - started_ms : 0;
        m->scale_started_usec = now_mono - MIN(ago * USEC_PER_MSEC, now_mono);

        if (m->scaling == CLUSTER_SCALE_OUT) {
                if (deadline_ms > now_ms)
                        log_notice("Resuming the scale-out from %u to %u servers started %.1fs ago: %.1fs left "
                                   "before it is rolled back.", m->scale_from, m->registry.server_num,
                                   (double) ago / 1000, (double) (deadline_ms - now_ms) / 1000);
                else
                        log_notice("Resuming the scale-out from %u to %u servers started %.1fs ago: its deadline "
                                   "passed %.1fs ago, rolling back now.", m->scale_from, m->registry.server_num,
                                   (double) ago / 1000, (double) (now_ms - deadline_ms) / 1000);
        } else {
                for (size_t i = 0; i < m->registry.n_nodes; i++)
                        if (m->registry.nodes[i]->leaving)
                                leaving++;
                if (scale_boundary_ahead(m))
                        log_notice("Resuming the scale-in of %zu of %zu servers started %.1fs ago: they leave at the "
                                   "end of iteration %u, however long it takes.", leaving, m->registry.n_nodes,
                                   (double) ago / 1000, m->iteration.number);
                else {
                        /* The boundary is behind us: the leavers get node_timeout to come
                         * back and be told to finish (scale_check), then go without. */
                        deadline_ms = now_ms + (uint64_t) m->config->node_timeout * 1000;
                        log_notice("Resuming the scale-in of %zu of %zu servers started %.1fs ago: no iteration "
                                   "holds devices, so they leave once reconnected, in at most %us.", leaving,
                                   m->registry.n_nodes, (double) ago / 1000, m->config->node_timeout);
                }
        }
        /* Past deadlines fire on the first turn of the loop, once everything is set up. */
        if (m->scaling == CLUSTER_SCALE_OUT || deadline_ms > 0)
                scale_arm_timer(m, deadline_ms);
        return manager_update_state(m, false);
}

int scale_setup(Manager *m) {
        int r;

        m->scaling = _CLUSTER_STATE_INVALID;
        /* Realtime: the deadline of a scale-out is stored as Unix time and outlives the process. */
        r = sd_event_add_time(m->event, &m->scale_timer, CLOCK_REALTIME, UINT64_MAX, 0, scale_on_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the scale timer: %m");
        (void) sd_event_source_set_enabled(m->scale_timer, SD_EVENT_OFF);
        return scale_resume(m);
}

void scale_done(Manager *m) {
        m->scale_timer = sd_event_source_disable_unref(m->scale_timer);
}
