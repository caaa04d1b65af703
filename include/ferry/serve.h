/* serve.h — the public entry point of ferry serve: run the inference server on a model
 * repository until SIGTERM. Used by `ferry serve`; embedders can call it the same way. */
#ifndef FERRY_SERVE_H
#define FERRY_SERVE_H

#include "ferry/ferry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zero/NULL fields are "not set": they take the value from the config file (when one is given),
 * else the default shown. */
typedef struct ferry_serve_options {
    const char *repo;         /* model repository (REPO/NAME/N/model.onnx) */
    const char *default_repo; /* used when neither repo nor the config file names one */
    const char *host;         /* address to listen on; "127.0.0.1" */
    int port;                 /* 8000 */
    int threads;              /* HTTP threads; one per core */
    const char *config;       /* JSON file with any of: repo, host, port, threads, log_level,
                                 max_body_mb, poll_seconds, session_threads */
    const char *log_level;    /* "debug", "info", "warn" or "error"; "info" */
    double max_body_mb;       /* request bodies above this get 413; 64 */
    double poll_seconds;      /* repository rescan period; 2 (negative = never, SIGHUP only) */
    int session_threads;      /* threads per model run; ferry's default */
} ferry_serve_options;

/* Loads the repository, serves until SIGTERM or SIGINT (SIGHUP rescans the repository), then
 * stops accepting, drains in-flight requests and returns FERRY_OK. Errors (bad options, a port
 * in use, a missing repository) return a status with ferry_last_error() saying why. Blocks
 * SIGTERM, SIGINT and SIGHUP in the calling thread (and so in the threads it starts). */
ferry_status ferry_serve_run(const ferry_serve_options *opts);

#ifdef __cplusplus
}
#endif
#endif
