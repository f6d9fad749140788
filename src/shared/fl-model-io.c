/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fl-model-io.h"
#include "util.h"

int fl_model_to_feature_maps(const Model *m, FlFeatureMap **ret) {
        FlFeatureMap *maps;

        if (!m || !ret)
                return -EINVAL;

        maps = calloc(MAX(m->n_tensors, (size_t) 1), sizeof(FlFeatureMap));
        if (!maps)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_tensors; i++)
                maps[i] = (FlFeatureMap) {
                        .name = m->tensors[i].name,
                        .name_len = strlen(m->tensors[i].name),
                        .data = m->tensors[i].data,
                        .n = m->tensors[i].size,
                };

        *ret = maps;
        return 0;
}

int fl_model_from_feature_maps(const FlFeatureMap *maps, size_t n, Model **ret) {
        _cleanup_(model_freep) Model *m = NULL;
        _cleanup_free_ const char **names = NULL;
        _cleanup_free_ size_t *sizes = NULL;
        int r;

        if (!ret || (!maps && n > 0))
                return -EINVAL;

        names = calloc(MAX(n, (size_t) 1), sizeof(char *));
        sizes = calloc(MAX(n, (size_t) 1), sizeof(size_t));
        if (!names || !sizes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (isempty(maps[i].name) || maps[i].n == 0 || !maps[i].data)
                        return -EBADMSG;
                names[i] = maps[i].name;
                sizes[i] = maps[i].n;
        }

        /* model_new() refuses duplicate names with -EINVAL. */
        r = model_new(&m, names, sizes, n);
        if (r == -EINVAL)
                return -EBADMSG;
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                memcpy(m->tensors[i].data, maps[i].data, maps[i].n * sizeof(float));

        *ret = TAKE_PTR(m);
        return 0;
}

int fl_model_encode(const Model *m, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ FlFeatureMap *maps = NULL;
        FlFeatureMapList list;
        int r;

        r = fl_model_to_feature_maps(m, &maps);
        if (r < 0)
                return r;
        list = (FlFeatureMapList) {
                .feature_map = maps,
                .n_feature_map = m->n_tensors,
        };
        return fl_feature_map_list_encode(&list, ret, ret_size);
}

int fl_model_decode(const void *buf, size_t size, Model **ret) {
        _cleanup_(fl_feature_map_list_done) FlFeatureMapList list = {};
        size_t total = 0;
        int r;

        if (!ret)
                return -EINVAL;

        r = fl_feature_map_list_decode(buf, size, &list, NULL);
        if (r < 0)
                return r;

        /* Each float is stored once in an honest buffer; feature maps that
         * share one vector would make us copy far more than we were given. */
        for (size_t i = 0; i < list.n_feature_map; i++) {
                if (list.feature_map[i].n > size / sizeof(float) - total)
                        return -EBADMSG;
                total += list.feature_map[i].n;
        }

        return fl_model_from_feature_maps(list.feature_map, list.n_feature_map, ret);
}

int fl_model_load_file(const char *path, size_t max_size, Model **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;

        r = read_full_file(path, &buf, &size, max_size > 0 ? max_size : FL_MODEL_FILE_MAX);
        if (r < 0)
                return r;
        return fl_model_decode(buf, size, ret);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int fl_model_save_file(const char *path, const Model *m) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size;
        int r;

        if (!path || !m)
                return -EINVAL;

        r = fl_model_encode(m, &buf, &size);
        if (r < 0)
                return r;

        if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;

        r = write_all(fd, buf, size);
        if (r >= 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0))
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}
