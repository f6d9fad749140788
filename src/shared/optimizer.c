/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fl-messages.h"
#include "optimizer.h"
#include "util.h"

static const char *const kind_table[_OPTIMIZER_KIND_MAX] = {
        [OPTIMIZER_FEDAVG] = "fedavg",
        [OPTIMIZER_FEDAVGM] = "fedavgm",
        [OPTIMIZER_FEDADAM] = "fedadam",
        [OPTIMIZER_FEDYOGI] = "fedyogi",
        [OPTIMIZER_FEDADAGRAD] = "fedadagrad",
};

/* server_learning_rate when it is not given (docs/training.md says how they
 * were chosen: bench/bench-optimizers.py). */
static const double default_learning_rate[_OPTIMIZER_KIND_MAX] = {
        [OPTIMIZER_FEDAVG] = 1.0,
        [OPTIMIZER_FEDAVGM] = 0.1,      /* with momentum 0.9: an effective rate of 1 */
        [OPTIMIZER_FEDADAM] = 0.01,
        [OPTIMIZER_FEDYOGI] = 0.01,
        [OPTIMIZER_FEDADAGRAD] = 0.1,
};

const char *optimizer_kind_to_string(OptimizerKind k) {
        if (k < 0 || k >= _OPTIMIZER_KIND_MAX)
                return NULL;
        return kind_table[k];
}

OptimizerKind optimizer_kind_from_string(const char *s) {
        for (int i = 0; s && i < _OPTIMIZER_KIND_MAX; i++)
                if (streq(kind_table[i], s))
                        return (OptimizerKind) i;
        return _OPTIMIZER_KIND_INVALID;
}

double optimizer_default_learning_rate(OptimizerKind k) {
        if (k < 0 || k >= _OPTIMIZER_KIND_MAX)
                return 1.0;
        return default_learning_rate[k];
}

double optimizer_learning_rate(const OptimizerParams *p) {
        return p->learning_rate > 0 ? p->learning_rate : optimizer_default_learning_rate(p->kind);
}

bool optimizer_is_plain_fedavg(const OptimizerParams *p) {
        return p->kind == OPTIMIZER_FEDAVG && optimizer_learning_rate(p) == 1.0;
}

#define REFUSE(...) (snprintf(error, size, __VA_ARGS__), -ERANGE)

static bool in_unit_interval(double x) {
        return x >= 0 && x < 1;         /* false for NaN */
}

int optimizer_params_check(const OptimizerParams *p, char *error, size_t size) {
        if (!optimizer_kind_to_string(p->kind))
                return REFUSE("Invalid value for server_optimizer: use one of " OPTIMIZER_KIND_NAMES ".");
        /* 0 is the kind's default. */
        if (!(p->learning_rate >= 0 && p->learning_rate <= OPTIMIZER_LEARNING_RATE_MAX))
                return REFUSE("Invalid value for server_learning_rate: %g is outside [0, %g].", p->learning_rate,
                              OPTIMIZER_LEARNING_RATE_MAX);
        if (!in_unit_interval(p->momentum))
                return REFUSE("Invalid value for server_momentum: %g is outside [0, 1).", p->momentum);
        if (!in_unit_interval(p->beta1))
                return REFUSE("Invalid value for server_beta1: %g is outside [0, 1).", p->beta1);
        if (!in_unit_interval(p->beta2))
                return REFUSE("Invalid value for server_beta2: %g is outside [0, 1).", p->beta2);
        if (!(p->tau > 0 && p->tau <= OPTIMIZER_TAU_MAX))
                return REFUSE("Invalid value for server_tau: %g is outside (0, %g].", p->tau, OPTIMIZER_TAU_MAX);
        return 0;
}

int optimizer_params_to_json(const OptimizerParams *p, json_object *o, bool as_given) {
        const char *kind = optimizer_kind_to_string(p->kind);

        if (!kind || json_object_object_add(o, "server_optimizer", json_object_new_string(kind)) < 0)
                return -EINVAL;
        if (json_object_object_add(o, "server_learning_rate",
                                   json_object_new_double(as_given ? p->learning_rate : optimizer_learning_rate(p))) < 0)
                return -ENOMEM;
        if (json_object_object_add(o, "server_momentum", json_object_new_double(p->momentum)) < 0 ||
            json_object_object_add(o, "server_beta1", json_object_new_double(p->beta1)) < 0 ||
            json_object_object_add(o, "server_beta2", json_object_new_double(p->beta2)) < 0 ||
            json_object_object_add(o, "server_tau", json_object_new_double(p->tau)) < 0)
                return -ENOMEM;
        return 0;
}

static int get_double(json_object *o, const char *key, double *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        *ret = json_object_get_double(v);
        return 0;
}

int optimizer_params_from_json(json_object *o, OptimizerParams *p) {
        OptimizerParams q = *p;
        json_object *v;
        char error[128];

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (json_object_object_get_ex(o, "server_optimizer", &v)) {
                if (!json_object_is_type(v, json_type_string))
                        return -EBADMSG;
                q.kind = optimizer_kind_from_string(json_object_get_string(v));
        }
        if (get_double(o, "server_learning_rate", &q.learning_rate) < 0 ||
            get_double(o, "server_momentum", &q.momentum) < 0 ||
            get_double(o, "server_beta1", &q.beta1) < 0 ||
            get_double(o, "server_beta2", &q.beta2) < 0 ||
            get_double(o, "server_tau", &q.tau) < 0)
                return -EBADMSG;
        if (optimizer_params_check(&q, error, sizeof error) < 0)
                return -EBADMSG;
        *p = q;
        return 0;
}

uint8_t optimizer_plan_aggregation_type(const OptimizerParams *p, double fedprox_mu) {
        /* A 2.x branch goes here: FedAvg=0, FedProx=1 (fedprox_mu > 0), ... */
        switch (p->kind) {
        case OPTIMIZER_FEDADAM:
        case OPTIMIZER_FEDYOGI:         /* Adam with another second moment: 1.3 names no Yogi */
                return FL_AGGREGATION_FED_ADAM;
        case OPTIMIZER_FEDADAGRAD:
                return FL_AGGREGATION_FED_ADAGRAG;
        default:                        /* fedavg, fedavgm: averaging, with or without momentum */
                return FL_AGGREGATION_FED_AVG;
        }
}
