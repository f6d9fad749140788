/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "macro.h"

static inline void json_object_putp(json_object **p) {
        if (*p)
                json_object_put(*p);
}

/* Typed, bounded getters for JSON that came from the network: each returns
 * -EBADMSG when the key is missing or of the wrong type. */
int json_get_string(json_object *o, const char *key, const char **ret);
int json_get_u32(json_object *o, const char *key, uint32_t *ret);
int json_get_u64(json_object *o, const char *key, uint64_t *ret);
int json_get_bool(json_object *o, const char *key, bool *ret);
/* Parses a whole buffer that must hold exactly one JSON object. */
int json_parse_object(const char *buf, size_t size, json_object **ret);
