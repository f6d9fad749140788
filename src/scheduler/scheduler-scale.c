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
 * contiguous again. Any rank may leave, rank 0 included. */

#define SCALE_TIMEOUT_USEC (120 * USEC_PER_SEC)

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

static void scale_end(Manager *m) {
        m->scaling = _CLUSTER_STATE_INVALID;
        (void) sd_event_source_set_enabled(m->scale_timer, SD_EVENT_OFF);
        (void) manager_update_state(m, true);
}

static int scale_save_server_num(Manager *m) {
        int r = scheduler_store_save_cluster(m->db, m->state, m->registry.server_num);

        if (r < 0)
                log_error_errno(r, "Failed to store server_num=%u in %s: %m", m->registry.server_num, m->db_path);
        return r;
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

int scale_out(Manager *m, json_object *body, char *error, size_t size) {
        json_object *v;
        int64_t k;
        int r;

        if (json_object_object_get_ex(body, "worker_num", &v) &&
            (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 0))
                return scale_refuse(error, size, -EINVAL, "The worker_num must be 0: workers are not supported.");
        if (!json_object_object_get_ex(body, "server_num", &v) || !json_object_is_type(v, json_type_int))
                return scale_refuse(error, size, -EINVAL, "The server_num must be a positive integer.");
        k = json_object_get_int64(v);
        if (k <= 0)
                return scale_refuse(error, size, -EINVAL, "The server_num must be a positive integer.");
        if (k > 4096 - (int64_t) m->registry.server_num)
                return scale_refuse(error, size, -EINVAL, "The server_num %" PRIi64 " would make more than 4096 servers.", k);
        r = scale_check_ready(m, error, size);
        if (r < 0)
                return r;

        m->scale_from = m->registry.server_num;
        m->registry.server_num += (uint32_t) k;
        m->scaling = CLUSTER_SCALE_OUT;
        m->scale_started_usec = now_usec(CLOCK_MONOTONIC);
        r = manager_update_state(m, true);      /* stores server_num with the state */
        if (r < 0) {
                m->registry.server_num = m->scale_from;
                m->scaling = _CLUSTER_STATE_INVALID;
                (void) manager_update_state(m, true);
                return scale_refuse(error, size, r, "The scheduler could not store the scale-out.");
        }
        (void) sd_event_source_set_time_relative(m->scale_timer, scale_timeout(m));
        (void) sd_event_source_set_enabled(m->scale_timer, SD_EVENT_ONESHOT);
        log_notice("Scaling out from %u to %u servers: start the new ones with --server_num=%u within %" PRIu64 "s.",
                   m->scale_from, m->registry.server_num, m->registry.server_num, scale_timeout(m) / USEC_PER_SEC);
        return 0;
}

void scale_check(Manager *m) {
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
        scale_end(m);
}

static void scale_out_rollback(Manager *m) {
        uint32_t target = m->registry.server_num;

        log_warning("Scale-out to %u servers did not complete within %" PRIu64 "s: rolling back to %u servers.",
                    target, scale_timeout(m) / USEC_PER_SEC, m->scale_from);
        for (uint32_t rank = m->scale_from; rank < target; rank++) {
                Node *n = registry_find_rank(&m->registry, rank);

                if (n)
                        scale_remove_node(m, n, "scale-out rolled back");
        }
        m->registry.server_num = m->scale_from;
        (void) scale_save_server_num(m);
        scale_end(m);
}

/* ---- scale-in ---- */

int scale_in(Manager *m, json_object *body, char *error, size_t size) {
        json_object *ids;
        size_t n, leaving = 0;
        int r;

        if (!json_object_object_get_ex(body, "node_ids", &ids) || !json_object_is_type(ids, json_type_array))
                return scale_refuse(error, size, -EINVAL, "The node_ids must be an array of node ids.");
        n = json_object_array_length(ids);
        if (n == 0)
                return scale_refuse(error, size, -EINVAL, "The node ids should not be empty.");
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(ids, i);
                const char *id = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;

                if (!id || !registry_find(&m->registry, id))
                        return scale_refuse(error, size, -EINVAL, "The node id:%s is illegal.",
                                            id ?: json_object_to_json_string(v));
        }
        r = scale_check_ready(m, error, size);
        if (r < 0)
                return r;

        /* Count distinct ids: a name given twice leaves once. */
        for (size_t i = 0; i < m->registry.n_nodes; i++)
                for (size_t j = 0; j < n; j++)
                        if (streq(m->registry.nodes[i]->node_id, json_object_get_string(json_object_array_get_idx(ids, j)))) {
                                leaving++;
                                break;
                        }
        if (leaving >= m->registry.n_nodes)
                return scale_refuse(error, size, -EINVAL, "Scaling in every server is refused: at least one must stay.");

        for (size_t j = 0; j < n; j++)
                registry_find(&m->registry, json_object_get_string(json_object_array_get_idx(ids, j)))->leaving = true;
        m->scale_from = m->registry.server_num;
        m->scaling = CLUSTER_SCALE_IN;
        m->scale_started_usec = now_usec(CLOCK_MONOTONIC);
        log_notice("Scaling in %zu of %u servers: they stop admitting devices and leave at the end of the iteration.",
                   leaving, m->registry.server_num);
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

void scale_on_boundary(Manager *m) {
        size_t gone = 0;
        int r;

        if (m->scaling != CLUSTER_SCALE_IN)
                return;
        if (m->iteration.number > 0 && m->iteration.phase != ITERATION_FINISHED &&
            (m->iteration.admissions.n_entries > 0 || m->iteration.phase == ITERATION_AGGREGATING))
                return;  /* devices are in this iteration: its end aggregates the leavers' updates */

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
        (void) scale_save_server_num(m);
        log_notice("Scale-in complete in %.1fs: %zu servers left, %u remain.",
                   (double) (now_usec(CLOCK_MONOTONIC) - m->scale_started_usec) / USEC_PER_SEC, gone,
                   m->registry.server_num);
        scale_end(m);
}

static int scale_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->scaling == CLUSTER_SCALE_OUT)
                scale_out_rollback(m);
        return 0;
}

int scale_setup(Manager *m) {
        int r;

        m->scaling = _CLUSTER_STATE_INVALID;
        r = sd_event_add_time(m->event, &m->scale_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, scale_on_timer, m);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(m->scale_timer, SD_EVENT_OFF);
}

void scale_done(Manager *m) {
        m->scale_timer = sd_event_source_disable_unref(m->scale_timer);
}
