/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <json-c/json.h>
#include <string.h>

#include "flctl-safetensors.h"
#include "json-util.h"

/* LeNet-5's shapes, as src/client/lenet5.c has them; kept here too so that
 * flctl does not link the trainer (and OpenBLAS) for eight lines. */
static const struct {
        const char *name;
        size_t n_dims;
        size_t dims[4];
} lenet5_shapes[] = {
        { "conv1.weight", 4, { 6, 1, 5, 5 } },
        { "conv2.weight", 4, { 16, 6, 5, 5 } },
        { "fc1.weight", 2, { 120, 400 } },
        { "fc1.bias", 1, { 120 } },
        { "fc2.weight", 2, { 84, 120 } },
        { "fc2.bias", 1, { 84 } },
        { "fc3.weight", 2, { 10, 84 } },
        { "fc3.bias", 1, { 10 } },
};

static size_t shape_size(size_t i) {
        size_t n = 1;

        for (size_t d = 0; d < lenet5_shapes[i].n_dims; d++)
                n *= lenet5_shapes[i].dims[d];
        return n;
}

static bool model_is_lenet5(const Model *m) {
        if (m->n_tensors != ELEMENTSOF(lenet5_shapes))
                return false;
        for (size_t i = 0; i < m->n_tensors; i++)
                if (!streq(m->tensors[i].name, lenet5_shapes[i].name) || m->tensors[i].size != shape_size(i))
                        return false;
        return true;
}

static bool name_is_valid(const char *s) {
        if (isempty(s) || streq(s, "__metadata__"))
                return false;
        for (; *s; s++)
                if (*s < 0x20 || *s > 0x7e)
                        return false;
        return true;
}

/* Adds v (which may be NULL after a failed allocation) to o under key; v is
 * released on failure. */
static int add_member(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_int(json_object *array, size_t v) {
        json_object *i = json_object_new_int64((int64_t) v);

        if (!i)
                return -ENOMEM;
        if (json_object_array_add(array, i) < 0) {
                json_object_put(i);
                return -ENOMEM;
        }
        return 0;
}

static int tensor_entry(const Tensor *t, const size_t *dims, size_t n_dims, size_t from, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *shape, *offsets;

        if (!o || add_member(o, "dtype", json_object_new_string("F32")) < 0)
                return -ENOMEM;
        shape = json_object_new_array();
        if (add_member(o, "shape", shape) < 0)
                return -ENOMEM;
        for (size_t d = 0; d < n_dims; d++)
                if (add_int(shape, dims[d]) < 0)
                        return -ENOMEM;
        offsets = json_object_new_array();
        if (add_member(o, "data_offsets", offsets) < 0 ||
            add_int(offsets, from) < 0 || add_int(offsets, from + t->size * sizeof(float)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

static int build_header(const Model *m, const char *const *metadata, json_object **ret) {
        _cleanup_(json_object_putp) json_object *h = json_object_new_object();
        bool lenet5 = model_is_lenet5(m);
        json_object *meta;
        size_t at = 0;
        int r;

        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_tensors; i++) {
                const Tensor *t = m->tensors + i;
                json_object *entry;

                if (!name_is_valid(t->name) || json_object_object_get_ex(h, t->name, NULL))
                        return -EINVAL;
                r = lenet5 ? tensor_entry(t, lenet5_shapes[i].dims, lenet5_shapes[i].n_dims, at, &entry)
                           : tensor_entry(t, &t->size, 1, at, &entry);
                if (r < 0)
                        return r;
                if (add_member(h, t->name, entry) < 0)
                        return -ENOMEM;
                at += t->size * sizeof(float);
        }

        if (metadata && metadata[0]) {
                meta = json_object_new_object();
                if (add_member(h, "__metadata__", meta) < 0)
                        return -ENOMEM;
                for (size_t i = 0; metadata[i] && metadata[i + 1]; i += 2)
                        if (add_member(meta, metadata[i], json_object_new_string(metadata[i + 1])) < 0)
                                return -ENOMEM;
        }

        *ret = TAKE_PTR(h);
        return 0;
}

int safetensors_encode(const Model *m, const char *const *metadata, uint8_t **ret, size_t *ret_size) {
        _cleanup_(json_object_putp) json_object *header = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t json_len, header_len, total;
        const char *json;
        uint64_t le;
        uint8_t *p;
        int r;

        if (!m || !ret || !ret_size)
                return -EINVAL;

        r = build_header(m, metadata, &header);
        if (r < 0)
                return r;
        json = json_object_to_json_string_ext(header, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!json)
                return -ENOMEM;
        json_len = strlen(json);
        /* Spaces up to a multiple of 8, so that the data starts aligned. */
        header_len = (json_len + 7) / 8 * 8;
        total = 8 + header_len + model_total_size(m) * sizeof(float);

        buf = malloc(total);
        if (!buf)
                return -ENOMEM;
        le = htole64((uint64_t) header_len);
        memcpy(buf, &le, 8);
        memcpy(buf + 8, json, json_len);
        memset(buf + 8 + json_len, ' ', header_len - json_len);

        p = buf + 8 + header_len;
        for (size_t i = 0; i < m->n_tensors; i++)
                for (size_t k = 0; k < m->tensors[i].size; k++) {
                        uint32_t bits;

                        memcpy(&bits, &m->tensors[i].data[k], 4);
                        bits = htole32(bits);
                        memcpy(p, &bits, 4);
                        p += 4;
                }

        *ret = TAKE_PTR(buf);
        *ret_size = total;
        return 0;
}
