/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* What every libcurl user of the project needs: a reply body collected into
 * memory with a hard limit (a server must not make us allocate at will). */

typedef struct CurlBody {
        uint8_t *data;          /* NUL-terminated for convenience, not counted in size */
        size_t size, allocated;
        size_t max;             /* 0: CURL_BODY_MAX_DEFAULT */
        bool too_large;
} CurlBody;

#define CURL_BODY_MAX_DEFAULT (16U * 1024U * 1024U)

void curl_body_done(CurlBody *b);
/* A CURLOPT_WRITEFUNCTION; CURLOPT_WRITEDATA is the CurlBody. Over the limit
 * it sets too_large and stops the transfer (CURLE_WRITE_ERROR). */
size_t curl_body_write(char *ptr, size_t size, size_t nmemb, void *userdata);

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup);

/* https:// peers are checked against the CA certificates in cafile (PEM)
 * only: not the system's store too (libcurl would also read its CA
 * directory, on every new connection). -EIO when libcurl refuses. */
int curl_use_ca(CURL *c, const char *cafile);
