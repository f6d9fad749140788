/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "scheduler-job-params.h"

static const struct {
        const char *key;
        JobParam bit;
} job_param_keys[] = {
        { "fl_name",                      JOB_PARAM_FL_NAME },
        { "fl_iteration_num",             JOB_PARAM_FL_ITERATION_NUM },
        { "start_fl_job_threshold",       JOB_PARAM_START_FL_JOB_THRESHOLD },
        { "start_fl_job_time_window",     JOB_PARAM_START_FL_JOB_TIME_WINDOW },
        { "update_model_ratio",           JOB_PARAM_UPDATE_MODEL_RATIO },
        { "update_model_time_window",     JOB_PARAM_UPDATE_MODEL_TIME_WINDOW },
        { "global_iteration_time_window", JOB_PARAM_GLOBAL_ITERATION_TIME_WINDOW },
        { "client_epoch_num",             JOB_PARAM_CLIENT_EPOCH_NUM },
        { "client_batch_size",            JOB_PARAM_CLIENT_BATCH_SIZE },
        { "client_learning_rate",         JOB_PARAM_CLIENT_LEARNING_RATE },
        { "server_optimizer",             JOB_PARAM_SERVER_OPTIMIZER },
        { "server_learning_rate",         JOB_PARAM_SERVER_LEARNING_RATE },
        { "server_momentum",              JOB_PARAM_SERVER_MOMENTUM },
        { "server_beta1",                 JOB_PARAM_SERVER_BETA1 },
        { "server_beta2",                 JOB_PARAM_SERVER_BETA2 },
        { "server_tau",                   JOB_PARAM_SERVER_TAU },
        { "fedprox_mu",                   JOB_PARAM_FEDPROX_MU },
};

static JobParam job_param_from_key(const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(job_param_keys); i++)
                if (streq(job_param_keys[i].key, key))
                        return job_param_keys[i].bit;
        return 0;
}

int job_params_from_json(JobParams *ret, json_object *o, char *error, size_t size) {
        _cleanup_(conf_done) FlConfig scratch = {};
        JobParams p = {};
        int r;

        if (!json_object_is_type(o, json_type_object)) {
                snprintf(error, size, "The hyper-parameters must be a JSON object.");
                return -EINVAL;
        }
        /* conf.c is the one place that knows each key's type and range. */
        r = conf_init(&scratch);
        if (r < 0) {
                snprintf(error, size, "Out of memory.");
                return r;
        }
        json_object_object_foreach(o, key, value) {
                JobParam bit = job_param_from_key(key);

                if (bit == 0) {
                        snprintf(error, size, "The key %s is not a hyper-parameter newInstance can change.", key);
                        return -EINVAL;
                }
                r = conf_apply_json_value(&scratch, key, value, error, size);
                if (r < 0)
                        return r;
                p.set |= bit;
        }
        r = job_from_config(&p.values, &scratch);
        if (r == -ENAMETOOLONG) {
                snprintf(error, size, "The fl_name is too long (at most %zu bytes).", sizeof p.values.fl_name - 1);
                return -EINVAL;
        }
        if (r < 0) {
                snprintf(error, size, "The server optimizer's parameters are out of range.");
                return -EINVAL;
        }
        *ret = p;
        return 0;
}

void job_params_apply(Job *ret, const Job *base, const JobParams *p) {
        const Job *v = &p->values;
        Job job = *base;

        if (p->set & JOB_PARAM_FL_NAME)
                memcpy(job.fl_name, v->fl_name, sizeof job.fl_name);
        if (p->set & JOB_PARAM_FL_ITERATION_NUM)
                job.fl_iteration_num = v->fl_iteration_num;
        if (p->set & JOB_PARAM_START_FL_JOB_THRESHOLD)
                job.start_fl_job_threshold = v->start_fl_job_threshold;
        if (p->set & JOB_PARAM_START_FL_JOB_TIME_WINDOW)
                job.start_fl_job_time_window = v->start_fl_job_time_window;
        if (p->set & JOB_PARAM_UPDATE_MODEL_RATIO)
                job.update_model_ratio = v->update_model_ratio;
        if (p->set & JOB_PARAM_UPDATE_MODEL_TIME_WINDOW)
                job.update_model_time_window = v->update_model_time_window;
        if (p->set & JOB_PARAM_GLOBAL_ITERATION_TIME_WINDOW)
                job.global_iteration_time_window = v->global_iteration_time_window;
        if (p->set & JOB_PARAM_CLIENT_EPOCH_NUM)
                job.client_epoch_num = v->client_epoch_num;
        if (p->set & JOB_PARAM_CLIENT_BATCH_SIZE)
                job.client_batch_size = v->client_batch_size;
        if (p->set & JOB_PARAM_CLIENT_LEARNING_RATE)
                job.client_learning_rate = v->client_learning_rate;
        if ((p->set & JOB_PARAM_SERVER_OPTIMIZER) && v->optimizer.kind != base->optimizer.kind) {
                job.optimizer.kind = v->optimizer.kind;
                /* An Adam rate is no FedAvgM rate. */
                job.optimizer.learning_rate = 0;
        }
        if (p->set & JOB_PARAM_SERVER_LEARNING_RATE)
                job.optimizer.learning_rate = v->optimizer.learning_rate;
        if (p->set & JOB_PARAM_SERVER_MOMENTUM)
                job.optimizer.momentum = v->optimizer.momentum;
        if (p->set & JOB_PARAM_SERVER_BETA1)
                job.optimizer.beta1 = v->optimizer.beta1;
        if (p->set & JOB_PARAM_SERVER_BETA2)
                job.optimizer.beta2 = v->optimizer.beta2;
        if (p->set & JOB_PARAM_SERVER_TAU)
                job.optimizer.tau = v->optimizer.tau;
        if (p->set & JOB_PARAM_FEDPROX_MU)
                job.fedprox_mu = v->fedprox_mu;
        *ret = job;
}
