/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fbs.h"
#include "macro.h"

/* The device protocol's messages (design/device-protocol.md,
 * src/shared/fl_protocol.fbs) as C structs, with one generic codec driven by
 * a descriptor per table (fl-messages-schema.c).
 *
 * Decoding: fl_<table>_decode(buf, size, &msg, reason) fills msg, which the
 * caller owns (usually on the stack), and verifies every field the table
 * has, including nested tables. Strings, byte vectors and float vectors
 * POINT INTO buf: they are valid as long as buf is, and buf must not change.
 * Strings are NUL-terminated and contain no other NUL (refused otherwise).
 * Sub-tables, vectors of tables and of strings are allocated: release them
 * with fl_<table>_done(&msg) (also fine after a failed decode, and on a
 * zeroed struct). Absent fields are 0 / false / NULL with count 0.
 * Returns 0; -EBADMSG with a short reason (for the RequestError answer) when
 * the buffer is not a valid instance of the table; -ENOMEM; -EINVAL when buf
 * is not 4-byte aligned in memory (a caller bug: use malloc()ed buffers).
 * A buffer of another table is refused only when its fields do not fit this
 * one's types: FlatBuffers do not say which table they hold.
 *
 * A hostile buffer may make entries of a decoded vector alias each other
 * (FlatBuffers allow shared objects): check names against the expected
 * model before trusting counts or summing data.
 *
 * Encoding: fl_<table>_encode(&msg, &buf, &size) builds a buffer with the
 * "FLJ0" identifier into a new malloc()ed buffer. NULL strings, vectors and
 * sub-tables are left out; a non-NULL vector with count 0 is written empty.
 * FlFeatureMap.name_len may be left 0 (strlen() is used). Scalars equal to 0
 * are left out, which readers take as 0. Returns 0, -ENOMEM, -E2BIG, or
 * -EINVAL when a required field is missing. */

#define FL_FILE_IDENTIFIER "FLJ0"
#define FL_REASON_MAX 128

typedef enum FlResponseCode {
        FL_SUCCEED = 200,
        FL_SUC_NOT_READY = 201,
        FL_REPEAT_REQUEST = 202,
        FL_SUC_NOT_MATCH = 204,
        FL_OUT_OF_TIME = 300,
        FL_NOT_SELECTED = 301,
        FL_REQUEST_ERROR = 400,
        FL_SYSTEM_ERROR = 500,
} FlResponseCode;

/* The protocol's name of a retcode ("SUCCEED", "OutOfTime", ...), or NULL. */
const char *fl_retcode_to_string(int32_t retcode);

typedef enum FlAggregationType {
        FL_AGGREGATION_FED_AVG = 0,
        FL_AGGREGATION_FED_ADAM = 1,
        FL_AGGREGATION_FED_ADAGRAG = 2,
        FL_AGGREGATION_FED_META = 3,
        FL_AGGREGATION_QFFL = 4,
} FlAggregationType;

typedef enum FlMetrics {
        FL_METRICS_ACCURACY = 0,
        FL_METRICS_PRECISION = 1,
        FL_METRICS_RECALL = 2,
        FL_METRICS_AUC = 3,
        FL_METRICS_F1 = 4,
        FL_METRICS_FBETA = 5,
} FlMetrics;

typedef enum FlEarlyStopType {
        FL_EARLY_STOP_LOSS_DIFF = 0,
        FL_EARLY_STOP_LOSS_ABS = 1,
        FL_EARLY_STOP_WEIGHT_DIFF = 2,
} FlEarlyStopType;

/* ---- Tables, members in slot order --------------------------------------- */

typedef struct FlFeatureMap {
        const char *name;               /* weight_fullname, required */
        size_t name_len;
        const float *data;              /* required */
        size_t n;
} FlFeatureMap;

typedef struct FlFeatureMapList {
        FlFeatureMap *feature_map;
        size_t n_feature_map;
} FlFeatureMapList;

typedef struct FlAggregation {
        uint8_t type;                   /* FlAggregationType */
        const float *weights;
        size_t n_weights;
} FlAggregation;

typedef struct FlEarlyStop {
        uint8_t early_stop_type;        /* FlEarlyStopType */
        float weight;
        int32_t rounds;
} FlEarlyStop;

typedef struct FlCipherPublicParams {
        int32_t t;
        const uint8_t *p;
        size_t n_p;
        int32_t g;
        const uint8_t *prime;
        size_t n_prime;
        float dp_eps;
        float dp_delta;
        float dp_norm_clip;
        int32_t encrypt_type;
} FlCipherPublicParams;

typedef struct FlFLPlan {
        const char *fl_name;
        int32_t iterations;
        int32_t epochs;
        FlEarlyStop *early_stop;
        int32_t mini_batch;
        bool shuffle;
        float lr;
        FlAggregation *aggregation;
        const uint8_t *metrics;         /* FlMetrics */
        size_t n_metrics;
        FlCipherPublicParams *cipher;
} FlFLPlan;

typedef struct FlRequestFLJob {
        const char *fl_name;
        const char *fl_id;              /* required */
        int32_t iteration;
        int32_t data_size;
        const char *timestamp;
        const uint8_t *sign_data;
        size_t n_sign_data;
        const char *key_attestation;
        const char *equip_cert;
        const char *equip_ca_cert;
        const char *root_cert;
} FlRequestFLJob;

typedef struct FlResponseFLJob {
        int32_t retcode;
        const char *reason;
        int32_t iteration;
        bool is_selected;
        const char *next_req_time;
        FlFLPlan *fl_plan_config;
        FlFeatureMap *feature_map;
        size_t n_feature_map;
        const char *timestamp;
} FlResponseFLJob;

typedef struct FlRequestUpdateModel {
        const char *fl_name;
        const char *fl_id;              /* required */
        int32_t iteration;
        FlFeatureMap *feature_map;
        size_t n_feature_map;
        const char *timestamp;
        const uint8_t *signature;
        size_t n_signature;
        float upload_loss;
} FlRequestUpdateModel;

typedef struct FlResponseUpdateModel {
        int32_t retcode;
        const char *reason;
        FlFeatureMap *feature_map;
        size_t n_feature_map;
        const char *next_req_time;
        const char *timestamp;
} FlResponseUpdateModel;

typedef struct FlRequestGetModel {
        const char *fl_name;
        int32_t iteration;
        const char *timestamp;
} FlRequestGetModel;

typedef struct FlResponseGetModel {
        int32_t retcode;
        const char *reason;
        int32_t iteration;
        FlFeatureMap *feature_map;
        size_t n_feature_map;
        const char *timestamp;
} FlResponseGetModel;

typedef struct FlRequestPushMetrics {
        float loss;
        float accuracy;
} FlRequestPushMetrics;

typedef struct FlResponsePushMetrics {
        int32_t retcode;
} FlResponsePushMetrics;

typedef struct FlClientPublicKeys {
        const char *fl_id;              /* required */
        const uint8_t *c_pk;
        size_t n_c_pk;
        const uint8_t *s_pk;
        size_t n_s_pk;
} FlClientPublicKeys;

typedef struct FlClientShare {
        const char *fl_id;              /* required */
        const uint8_t *share;
        size_t n_share;
        int32_t index;
} FlClientShare;

typedef struct FlRequestExchangeKeys {
        const char *fl_id;              /* required */
        const uint8_t *c_pk;
        size_t n_c_pk;
        const uint8_t *s_pk;
        size_t n_s_pk;
        int32_t iteration;
        const char *timestamp;
} FlRequestExchangeKeys;

/* ResponseExchangeKeys, ResponseShareSecrets */
typedef struct FlResponseSecAgg {
        int32_t retcode;
        const char *reason;
        const char *next_req_time;
        int32_t iteration;
} FlResponseSecAgg;
typedef FlResponseSecAgg FlResponseExchangeKeys;
typedef FlResponseSecAgg FlResponseShareSecrets;

/* GetExchangeKeys, GetShareSecrets, GetClientList */
typedef struct FlRequestSecAggGet {
        const char *fl_id;              /* required */
        int32_t iteration;
        const char *timestamp;
} FlRequestSecAggGet;
typedef FlRequestSecAggGet FlGetExchangeKeys;
typedef FlRequestSecAggGet FlGetShareSecrets;
typedef FlRequestSecAggGet FlGetClientList;

typedef struct FlReturnExchangeKeys {
        int32_t retcode;
        int32_t iteration;
        FlClientPublicKeys *remote_publickeys;
        size_t n_remote_publickeys;
        const char *next_req_time;
} FlReturnExchangeKeys;

typedef struct FlRequestShareSecrets {
        const char *fl_id;              /* required */
        FlClientShare *encrypted_shares;
        size_t n_encrypted_shares;
        int32_t iteration;
        const char *timestamp;
} FlRequestShareSecrets;

typedef struct FlReturnShareSecrets {
        int32_t retcode;
        int32_t iteration;
        FlClientShare *encrypted_shares;
        size_t n_encrypted_shares;
        const char *next_req_time;
} FlReturnShareSecrets;

typedef struct FlReturnClientList {
        int32_t retcode;
        const char *reason;
        const char **clients;
        size_t n_clients;
        int32_t iteration;
        const char *next_req_time;
} FlReturnClientList;

typedef struct FlSendReconstructSecret {
        const char *fl_id;              /* required */
        FlClientShare *reconstruct_secret_shares;
        size_t n_reconstruct_secret_shares;
        int32_t iteration;
        const char *timestamp;
} FlSendReconstructSecret;

typedef struct FlReconstructSecret {
        int32_t retcode;
        const char *reason;
        int32_t iteration;
        const char *next_req_time;
} FlReconstructSecret;

/* ---- Descriptors: the schema as data ------------------------------------- */

typedef enum FlFieldKind {
        FL_FIELD_BOOL,          /* bool */
        FL_FIELD_BYTE,          /* uint8_t (byte enums) */
        FL_FIELD_INT,           /* int32_t */
        FL_FIELD_FLOAT,         /* float */
        FL_FIELD_STRING,        /* const char *, in place (+ size_t length if count_offset) */
        FL_FIELD_BYTES,         /* const uint8_t * + size_t count, in place */
        FL_FIELD_FLOATS,        /* const float * + size_t count, in place */
        FL_FIELD_STRINGS,       /* const char ** + size_t count, array allocated */
        FL_FIELD_TABLE,         /* struct *, allocated */
        FL_FIELD_TABLES,        /* struct * + size_t count, array allocated */
} FlFieldKind;

#define FL_NO_COUNT SIZE_MAX

typedef struct FlTableType FlTableType;

typedef struct FlField {
        const char *name;       /* as in the schema */
        FlFieldKind kind;
        bool required;
        size_t offset;          /* of the member */
        size_t count_offset;    /* of the size_t count or length, or FL_NO_COUNT */
        const FlTableType *table;
} FlField;

struct FlTableType {
        const char *name;       /* as in the schema */
        size_t size;            /* of the struct */
        const FlField *fields;  /* fields[i] is slot i */
        size_t n_fields;
};

extern const FlTableType *const fl_table_types[];
extern const size_t fl_n_table_types;
const FlTableType *fl_table_type_by_name(const char *name);

/* ---- The codec ------------------------------------------------------------ */

int fl_message_decode(const FlTableType *type, const void *buf, size_t size, void *ret, char *reason);
/* ident: FL_FILE_IDENTIFIER or NULL for none. */
int fl_message_encode(const FlTableType *type, const void *msg, const char *ident, uint8_t **ret, size_t *ret_size);
void fl_message_done(const FlTableType *type, void *msg);

#define FL_DEFINE_MESSAGE(T, name)                                                              \
        extern const FlTableType fl_type_##name;                                                \
        static inline int fl_##name##_decode(const void *buf, size_t size, T *ret, char *reason) { \
                return fl_message_decode(&fl_type_##name, buf, size, ret, reason);              \
        }                                                                                       \
        static inline int fl_##name##_encode(const T *msg, uint8_t **ret, size_t *ret_size) {   \
                return fl_message_encode(&fl_type_##name, msg, FL_FILE_IDENTIFIER, ret, ret_size); \
        }                                                                                       \
        static inline void fl_##name##_done(T *msg) {                                           \
                fl_message_done(&fl_type_##name, msg);                                          \
        }

FL_DEFINE_MESSAGE(FlFeatureMap, feature_map)
FL_DEFINE_MESSAGE(FlFeatureMapList, feature_map_list)
FL_DEFINE_MESSAGE(FlAggregation, aggregation)
FL_DEFINE_MESSAGE(FlEarlyStop, early_stop)
FL_DEFINE_MESSAGE(FlCipherPublicParams, cipher_public_params)
FL_DEFINE_MESSAGE(FlFLPlan, fl_plan)
FL_DEFINE_MESSAGE(FlRequestFLJob, request_fl_job)
FL_DEFINE_MESSAGE(FlResponseFLJob, response_fl_job)
FL_DEFINE_MESSAGE(FlRequestUpdateModel, request_update_model)
FL_DEFINE_MESSAGE(FlResponseUpdateModel, response_update_model)
FL_DEFINE_MESSAGE(FlRequestGetModel, request_get_model)
FL_DEFINE_MESSAGE(FlResponseGetModel, response_get_model)
FL_DEFINE_MESSAGE(FlRequestPushMetrics, request_push_metrics)
FL_DEFINE_MESSAGE(FlResponsePushMetrics, response_push_metrics)
FL_DEFINE_MESSAGE(FlClientPublicKeys, client_public_keys)
FL_DEFINE_MESSAGE(FlClientShare, client_share)
FL_DEFINE_MESSAGE(FlRequestExchangeKeys, request_exchange_keys)
FL_DEFINE_MESSAGE(FlResponseExchangeKeys, response_exchange_keys)
FL_DEFINE_MESSAGE(FlGetExchangeKeys, get_exchange_keys)
FL_DEFINE_MESSAGE(FlReturnExchangeKeys, return_exchange_keys)
FL_DEFINE_MESSAGE(FlRequestShareSecrets, request_share_secrets)
FL_DEFINE_MESSAGE(FlResponseShareSecrets, response_share_secrets)
FL_DEFINE_MESSAGE(FlGetShareSecrets, get_share_secrets)
FL_DEFINE_MESSAGE(FlReturnShareSecrets, return_share_secrets)
FL_DEFINE_MESSAGE(FlGetClientList, get_client_list)
FL_DEFINE_MESSAGE(FlReturnClientList, return_client_list)
FL_DEFINE_MESSAGE(FlSendReconstructSecret, send_reconstruct_secret)
FL_DEFINE_MESSAGE(FlReconstructSecret, reconstruct_secret)
