/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "scheduler-job-params.h"
#include "scheduler-manager.h"
#include "store.h"

/* The job's knobs while it runs: newInstance (new hyper-parameters from the
 * next iteration boundary on, the iteration count restarting at 1, as
 * MindSpore does), queryInstance, and enabling or disabling the rounds.
 * The job in force and a staged one are kept in the database, so a
 * restarted scheduler keeps what the operator set. */

static int job_save(Manager *m, const char *key, const Job *job) {
        _cleanup_(json_object_putp) json_object *o = job ? job_to_json(job) : NULL;

        return store_meta_set(m->db, key, o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "");
}

static int job_load(Manager *m, const char *key, Job *ret, bool *ret_found) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *text = NULL;
        char error[256];
        JobParams p;
        int r;

        *ret_found = false;
        r = store_meta_get(m->db, key, &text);
        if (r < 0 || isempty(text))
                return r;
        r = json_parse_object(text, strlen(text), &o);
        if (r >= 0)
                r = job_params_from_json(&p, o, error, sizeof error);
        if (r < 0)
                return log_error_errno(-EUCLEAN, "The %s stored in %s is damaged: %s", key, m->db_path,
                                       r == -EBADMSG ? "not JSON" : error);
        job_params_apply(ret, &m->job, &p);
        *ret_found = true;
        return 0;
}

int instance_setup(Manager *m) {
        _cleanup_free_ char *enabled = NULL;
        bool found;
        Job job;
        int r;

        r = job_load(m, "job", &job, &found);
        if (r < 0)
                return r;
        if (found)
                m->job = job;
        r = job_load(m, "pending_job", &m->pending_job, &m->has_pending_job);
        if (r < 0)
                return r;
        r = store_meta_get(m->db, "fl_enabled", &enabled);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", m->db_path);
        m->fl_disabled = enabled && streq(enabled, "0");
        return 0;
}

int instance_reset(Manager *m) {
        int r;

        r = store_meta_set(m->db, "job", "");
        if (r >= 0)
                r = store_meta_set(m->db, "pending_job", "");
        if (r >= 0)
                r = store_meta_set(m->db, "fl_enabled", "1");
        return r;
}

bool instance_take_pending(Manager *m) {
        int r;

        if (!m->has_pending_job)
                return false;
        m->job = m->pending_job;
        m->has_pending_job = false;
        r = job_save(m, "job", &m->job);
        if (r >= 0)
                r = job_save(m, "pending_job", NULL);
        if (r < 0)
                log_error_errno(r, "Failed to store the new instance in %s, running it anyway: %m", m->db_path);
        return true;
}

int instance_new(Manager *m, const JobParams *params, char *error, size_t size) {
        Job job;
        int r;

        if (m->state != CLUSTER_READY) {
                snprintf(error, size, "The cluster is not in CLUSTER_READY; retry when it is.");
                return -EBUSY;
        }
        job_params_apply(&job, &m->job, params);

        /* Durable before it is acknowledged. */
        r = job_save(m, "pending_job", &job);
        if (r < 0) {
                snprintf(error, size, "The scheduler could not store the new instance.");
                return log_error_errno(r, "Failed to store the new instance in %s: %m", m->db_path);
        }
        m->pending_job = job;
        m->has_pending_job = true;
        log_notice("New instance requested: it starts at the next iteration boundary, from iteration 1.");
        training_apply_pending(m);
        return 0;
}

json_object *instance_query(Manager *m) {
        json_object *o = job_to_json(&m->job);

        /* The learning rate in force, also when it is the optimizer's default. */
        (void) optimizer_params_to_json(&m->job.optimizer, o, false);
        json_object_object_add(o, "iteration", json_object_new_int64(m->iteration.number));
        json_object_object_add(o, "fl_enabled", json_object_new_boolean(!m->fl_disabled));
        json_object_object_add(o, "new_instance_pending", json_object_new_boolean(m->has_pending_job));
        if (m->has_pending_job)
                json_object_object_add(o, "pending", job_to_json(&m->pending_job));
        return o;
}

int instance_set_enabled(Manager *m, bool enable, char *error, size_t size) {
        int r;

        if (enable == !m->fl_disabled)
                return 0;
        r = store_meta_set(m->db, "fl_enabled", enable ? "1" : "0");
        if (r < 0) {
                snprintf(error, size, "The scheduler could not store the change.");
                return log_error_errno(r, "Failed to store fl_enabled in %s: %m", m->db_path);
        }
        m->fl_disabled = !enable;
        log_notice("The training job is %s by the operator.", enable ? "enabled" : "disabled");
        training_on_enabled(m);
        return 0;
}
