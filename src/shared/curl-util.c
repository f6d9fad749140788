/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "curl-util.h"

void curl_body_done(CurlBody *b) {
        free(b->data);
        b->data = NULL;
        b->size = b->allocated = 0;
}

size_t curl_body_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        CurlBody *b = userdata;
        size_t n = size * nmemb;        /* libcurl promises size == 1 */
        size_t max = b->max ?: CURL_BODY_MAX_DEFAULT;

        if (n > max - b->size) {
                b->too_large = true;
                return 0;
        }
        if (b->size + n + 1 > b->allocated) {
                size_t want = MIN(MAX(MAX(b->allocated * 2, b->size + n + 1), (size_t) 4096), max + 1);
                uint8_t *p = realloc(b->data, want);

                if (!p)
                        return 0;
                b->data = p;
                b->allocated = want;
        }
        memcpy(b->data + b->size, ptr, n);
        b->size += n;
        b->data[b->size] = 0;
        return n;
}

int curl_use_ca(CURL *c, const char *cafile) {
        if (curl_easy_setopt(c, CURLOPT_CAINFO, cafile) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_CAPATH, NULL) != CURLE_OK)
                return -EIO;
        return 0;
}
