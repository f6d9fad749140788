/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fl-messages.h"

/* fl_protocol.fbs as descriptors: one row per field, in slot order. Keep the
 * two in step (only ever append); tests/test-fbs-python.py reads every field
 * of every table through code that flatc generates from the .fbs.
 *
 * Each row checks at compile time that the struct member has the C type its
 * kind is decoded into. */

#define TYPE_CHECKED_OFFSET(T, m, type)                                                         \
        (offsetof(T, m) + 0 * sizeof(struct {                                                   \
                _Static_assert(__builtin_types_compatible_p(typeof(((T *) 0)->m), type),        \
                               #T "." #m " does not have type " #type);                         \
                int dummy_;                                                                     \
        }))

#define ROW(T, wire, k, req, m, type, count, sub)                                              \
        { .name = wire, .kind = k, .required = req, .offset = TYPE_CHECKED_OFFSET(T, m, type),  \
          .count_offset = count, .table = sub }

#define COUNT_OF(T, c) TYPE_CHECKED_OFFSET(T, c, size_t)

#define BOOL(T, m)        ROW(T, #m, FL_FIELD_BOOL, false, m, bool, FL_NO_COUNT, NULL)
#define BYTE(T, m)        ROW(T, #m, FL_FIELD_BYTE, false, m, uint8_t, FL_NO_COUNT, NULL)
#define INT(T, m)         ROW(T, #m, FL_FIELD_INT, false, m, int32_t, FL_NO_COUNT, NULL)
#define FLOAT(T, m)       ROW(T, #m, FL_FIELD_FLOAT, false, m, float, FL_NO_COUNT, NULL)
#define STRING(T, m)      ROW(T, #m, FL_FIELD_STRING, false, m, const char *, FL_NO_COUNT, NULL)
#define STRING_REQ(T, m)  ROW(T, #m, FL_FIELD_STRING, true, m, const char *, FL_NO_COUNT, NULL)
#define BYTES(T, m)       ROW(T, #m, FL_FIELD_BYTES, false, m, const uint8_t *, COUNT_OF(T, n_##m), NULL)
#define FLOATS(T, m)      ROW(T, #m, FL_FIELD_FLOATS, false, m, const float *, COUNT_OF(T, n_##m), NULL)
#define STRINGS(T, m)     ROW(T, #m, FL_FIELD_STRINGS, false, m, const char **, COUNT_OF(T, n_##m), NULL)
#define TABLE(T, m, S, s) ROW(T, #m, FL_FIELD_TABLE, false, m, S *, FL_NO_COUNT, &fl_type_##s)
#define TABLES(T, m, S, s) ROW(T, #m, FL_FIELD_TABLES, false, m, S *, COUNT_OF(T, n_##m), &fl_type_##s)

#define DEFINE_TABLE(T, id, wire, ...)                                  \
        static const FlField id##_fields[] = { __VA_ARGS__ };           \
        const FlTableType fl_type_##id = {                              \
                .name = wire,                                           \
                .size = sizeof(T),                                      \
                .fields = id##_fields,                                  \
                .n_fields = ELEMENTSOF(id##_fields),                    \
        }

DEFINE_TABLE(FlFeatureMap, feature_map, "FeatureMap",
        ROW(FlFeatureMap, "weight_fullname", FL_FIELD_STRING, true, name, const char *,
            COUNT_OF(FlFeatureMap, name_len), NULL),
        ROW(FlFeatureMap, "data", FL_FIELD_FLOATS, true, data, const float *,
            COUNT_OF(FlFeatureMap, n), NULL));

DEFINE_TABLE(FlFeatureMapList, feature_map_list, "FeatureMapList",
        TABLES(FlFeatureMapList, feature_map, FlFeatureMap, feature_map));

DEFINE_TABLE(FlAggregation, aggregation, "Aggregation",
        BYTE(FlAggregation, type),
        FLOATS(FlAggregation, weights));

DEFINE_TABLE(FlEarlyStop, early_stop, "EarlyStop",
        BYTE(FlEarlyStop, early_stop_type),
        FLOAT(FlEarlyStop, weight),
        INT(FlEarlyStop, rounds));

DEFINE_TABLE(FlCipherPublicParams, cipher_public_params, "CipherPublicParams",
        INT(FlCipherPublicParams, t),
        BYTES(FlCipherPublicParams, p),
        INT(FlCipherPublicParams, g),
        BYTES(FlCipherPublicParams, prime),
        FLOAT(FlCipherPublicParams, dp_eps),
        FLOAT(FlCipherPublicParams, dp_delta),
        FLOAT(FlCipherPublicParams, dp_norm_clip),
        INT(FlCipherPublicParams, encrypt_type));

DEFINE_TABLE(FlFLPlan, fl_plan, "FLPlan",
        STRING(FlFLPlan, fl_name),
        INT(FlFLPlan, iterations),
        INT(FlFLPlan, epochs),
        TABLE(FlFLPlan, early_stop, FlEarlyStop, early_stop),
        INT(FlFLPlan, mini_batch),
        BOOL(FlFLPlan, shuffle),
        FLOAT(FlFLPlan, lr),
        TABLE(FlFLPlan, aggregation, FlAggregation, aggregation),
        BYTES(FlFLPlan, metrics),
        TABLE(FlFLPlan, cipher, FlCipherPublicParams, cipher_public_params));

DEFINE_TABLE(FlRequestFLJob, request_fl_job, "RequestFLJob",
        STRING(FlRequestFLJob, fl_name),
        STRING_REQ(FlRequestFLJob, fl_id),
        INT(FlRequestFLJob, iteration),
        INT(FlRequestFLJob, data_size),
        STRING(FlRequestFLJob, timestamp),
        BYTES(FlRequestFLJob, sign_data),
        STRING(FlRequestFLJob, key_attestation),
        STRING(FlRequestFLJob, equip_cert),
        STRING(FlRequestFLJob, equip_ca_cert),
        STRING(FlRequestFLJob, root_cert));

DEFINE_TABLE(FlResponseFLJob, response_fl_job, "ResponseFLJob",
        INT(FlResponseFLJob, retcode),
        STRING(FlResponseFLJob, reason),
        INT(FlResponseFLJob, iteration),
        BOOL(FlResponseFLJob, is_selected),
        STRING(FlResponseFLJob, next_req_time),
        TABLE(FlResponseFLJob, fl_plan_config, FlFLPlan, fl_plan),
        TABLES(FlResponseFLJob, feature_map, FlFeatureMap, feature_map),
        STRING(FlResponseFLJob, timestamp));

DEFINE_TABLE(FlRequestUpdateModel, request_update_model, "RequestUpdateModel",
        STRING(FlRequestUpdateModel, fl_name),
        STRING_REQ(FlRequestUpdateModel, fl_id),
        INT(FlRequestUpdateModel, iteration),
        TABLES(FlRequestUpdateModel, feature_map, FlFeatureMap, feature_map),
        STRING(FlRequestUpdateModel, timestamp),
        BYTES(FlRequestUpdateModel, signature),
        FLOAT(FlRequestUpdateModel, upload_loss));

DEFINE_TABLE(FlResponseUpdateModel, response_update_model, "ResponseUpdateModel",
        INT(FlResponseUpdateModel, retcode),
        STRING(FlResponseUpdateModel, reason),
        TABLES(FlResponseUpdateModel, feature_map, FlFeatureMap, feature_map),
        STRING(FlResponseUpdateModel, next_req_time),
        STRING(FlResponseUpdateModel, timestamp));

DEFINE_TABLE(FlRequestGetModel, request_get_model, "RequestGetModel",
        STRING(FlRequestGetModel, fl_name),
        INT(FlRequestGetModel, iteration),
        STRING(FlRequestGetModel, timestamp));

DEFINE_TABLE(FlResponseGetModel, response_get_model, "ResponseGetModel",
        INT(FlResponseGetModel, retcode),
        STRING(FlResponseGetModel, reason),
        INT(FlResponseGetModel, iteration),
        TABLES(FlResponseGetModel, feature_map, FlFeatureMap, feature_map),
        STRING(FlResponseGetModel, timestamp));

DEFINE_TABLE(FlRequestPushMetrics, request_push_metrics, "RequestPushMetrics",
        FLOAT(FlRequestPushMetrics, loss),
        FLOAT(FlRequestPushMetrics, accuracy));

DEFINE_TABLE(FlResponsePushMetrics, response_push_metrics, "ResponsePushMetrics",
        INT(FlResponsePushMetrics, retcode));

DEFINE_TABLE(FlClientPublicKeys, client_public_keys, "ClientPublicKeys",
        STRING_REQ(FlClientPublicKeys, fl_id),
        BYTES(FlClientPublicKeys, c_pk),
        BYTES(FlClientPublicKeys, s_pk));

DEFINE_TABLE(FlClientShare, client_share, "ClientShare",
        STRING_REQ(FlClientShare, fl_id),
        BYTES(FlClientShare, share),
        INT(FlClientShare, index));

DEFINE_TABLE(FlRequestExchangeKeys, request_exchange_keys, "RequestExchangeKeys",
        STRING_REQ(FlRequestExchangeKeys, fl_id),
        BYTES(FlRequestExchangeKeys, c_pk),
        BYTES(FlRequestExchangeKeys, s_pk),
        INT(FlRequestExchangeKeys, iteration),
        STRING(FlRequestExchangeKeys, timestamp));

/* ResponseExchangeKeys and ResponseShareSecrets share a layout. */
#define SEC_AGG_RESPONSE                                \
        INT(FlResponseSecAgg, retcode),                 \
        STRING(FlResponseSecAgg, reason),               \
        STRING(FlResponseSecAgg, next_req_time),        \
        INT(FlResponseSecAgg, iteration)

DEFINE_TABLE(FlResponseExchangeKeys, response_exchange_keys, "ResponseExchangeKeys", SEC_AGG_RESPONSE);
DEFINE_TABLE(FlResponseShareSecrets, response_share_secrets, "ResponseShareSecrets", SEC_AGG_RESPONSE);

/* GetExchangeKeys, GetShareSecrets and GetClientList too. */
#define SEC_AGG_GET                                     \
        STRING_REQ(FlRequestSecAggGet, fl_id),          \
        INT(FlRequestSecAggGet, iteration),             \
        STRING(FlRequestSecAggGet, timestamp)

DEFINE_TABLE(FlGetExchangeKeys, get_exchange_keys, "GetExchangeKeys", SEC_AGG_GET);
DEFINE_TABLE(FlGetShareSecrets, get_share_secrets, "GetShareSecrets", SEC_AGG_GET);
DEFINE_TABLE(FlGetClientList, get_client_list, "GetClientList", SEC_AGG_GET);

DEFINE_TABLE(FlReturnExchangeKeys, return_exchange_keys, "ReturnExchangeKeys",
        INT(FlReturnExchangeKeys, retcode),
        INT(FlReturnExchangeKeys, iteration),
        TABLES(FlReturnExchangeKeys, remote_publickeys, FlClientPublicKeys, client_public_keys),
        STRING(FlReturnExchangeKeys, next_req_time));

DEFINE_TABLE(FlRequestShareSecrets, request_share_secrets, "RequestShareSecrets",
        STRING_REQ(FlRequestShareSecrets, fl_id),
        TABLES(FlRequestShareSecrets, encrypted_shares, FlClientShare, client_share),
        INT(FlRequestShareSecrets, iteration),
        STRING(FlRequestShareSecrets, timestamp));

DEFINE_TABLE(FlReturnShareSecrets, return_share_secrets, "ReturnShareSecrets",
        INT(FlReturnShareSecrets, retcode),
        INT(FlReturnShareSecrets, iteration),
        TABLES(FlReturnShareSecrets, encrypted_shares, FlClientShare, client_share),
        STRING(FlReturnShareSecrets, next_req_time));

DEFINE_TABLE(FlReturnClientList, return_client_list, "ReturnClientList",
        INT(FlReturnClientList, retcode),
        STRING(FlReturnClientList, reason),
        STRINGS(FlReturnClientList, clients),
        INT(FlReturnClientList, iteration),
        STRING(FlReturnClientList, next_req_time));

DEFINE_TABLE(FlSendReconstructSecret, send_reconstruct_secret, "SendReconstructSecret",
        STRING_REQ(FlSendReconstructSecret, fl_id),
        TABLES(FlSendReconstructSecret, reconstruct_secret_shares, FlClientShare, client_share),
        INT(FlSendReconstructSecret, iteration),
        STRING(FlSendReconstructSecret, timestamp));

DEFINE_TABLE(FlReconstructSecret, reconstruct_secret, "ReconstructSecret",
        INT(FlReconstructSecret, retcode),
        STRING(FlReconstructSecret, reason),
        INT(FlReconstructSecret, iteration),
        STRING(FlReconstructSecret, next_req_time));

const FlTableType *const fl_table_types[] = {
        &fl_type_feature_map,
        &fl_type_feature_map_list,
        &fl_type_aggregation,
        &fl_type_early_stop,
        &fl_type_cipher_public_params,
        &fl_type_fl_plan,
        &fl_type_request_fl_job,
        &fl_type_response_fl_job,
        &fl_type_request_update_model,
        &fl_type_response_update_model,
        &fl_type_request_get_model,
        &fl_type_response_get_model,
        &fl_type_request_push_metrics,
        &fl_type_response_push_metrics,
        &fl_type_client_public_keys,
        &fl_type_client_share,
        &fl_type_request_exchange_keys,
        &fl_type_response_exchange_keys,
        &fl_type_get_exchange_keys,
        &fl_type_return_exchange_keys,
        &fl_type_request_share_secrets,
        &fl_type_response_share_secrets,
        &fl_type_get_share_secrets,
        &fl_type_return_share_secrets,
        &fl_type_get_client_list,
        &fl_type_return_client_list,
        &fl_type_send_reconstruct_secret,
        &fl_type_reconstruct_secret,
};
const size_t fl_n_table_types = ELEMENTSOF(fl_table_types);
