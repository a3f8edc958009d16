/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* A minimal HTTP/1.1 server on the loop for /metrics and /healthz: GET and HEAD only, one
 * request per connection (Connection: close), request head at most 8 KiB, 10 s to send it. */
#ifndef TRESTLE_COMMON_HTTPD_H
#define TRESTLE_COMMON_HTTPD_H

#include <uv.h>
#include "buf.h"
#include "err.h"

/* Fills body (bounded at 4 MiB) and *content_type (a static string) for method/path; returns the
 * HTTP status code. Called on the loop; path excludes the query string. */
typedef int tr_httpd_handler_fn(void *arg, const char *method, const char *path,
                                struct tr_buf *body, const char **content_type);

struct tr_httpd;

/* Listens on addr ("host:port", IPv4 or [IPv6]). NULL with err filled on failure. */
struct tr_httpd *tr_httpd_start(uv_loop_t *loop, const char *addr, tr_httpd_handler_fn *fn,
                                void *arg, char err[TR_ERR_LEN]);
/* Stops listening and closes open connections; memory is freed in close callbacks. */
void tr_httpd_close(struct tr_httpd *h);

#endif
