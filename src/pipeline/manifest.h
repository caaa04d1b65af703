/* manifest.h — REPO/NAME/N/manifest.json: what ferry publish writes and what ferry verify and
 * ferry serve check before trusting a version directory (DESIGN.md).
 *
 *   {"format": 1, "model": "mnist", "version": 3, "created": "2026-11-23T10:00:00Z",
 *    "files": [{"path": "model.onnx", "size": 431234, "sha256": "<64 hex>"}, ...],
 *    "source": {"git_commit": "<40 hex>", "dirty": false},       (when published from git)
 *    "metrics": {...}, "profile": {...}}                          (from a validation report)
 *
 * Paths are relative to the version directory, '/'-separated, without "." or ".." parts. */
#ifndef FERRY_PIPELINE_MANIFEST_H
#define FERRY_PIPELINE_MANIFEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/ferry.h"

#define FY_MANIFEST_NAME "manifest.json"

/* SHA-256 of a file as 64 lowercase hex digits plus NUL; also returns its size. */
ferry_status fy_sha256_file(const char *path, char hex[65], long long *size);

/* Writes DIR/manifest.json for the files already in DIR (paths relative to DIR, model.onnx
 * among them): hashes each, adds created (UTC now), and the optional source/metrics/profile
 * objects (borrowed, not stolen), then fsyncs the manifest. */
ferry_status fy_manifest_write(const char *dir, const char *model, int64_t version,
                               const char *const *files, int n_files, json_t *source,
                               json_t *metrics, json_t *profile);

/* Current UTC time as "2026-11-23T10:00:00Z" (with_ms adds ".123" before the Z). */
void fy_utc_now(char *buf, size_t cap, int with_ms);

/* Checks DIR/manifest.json: it parses, it lists model.onnx, every file it lists is a regular
 * file inside DIR with that size and hash, DIR holds no file the manifest does not list, and
 * "version" (if present) matches a numeric DIR name. FERRY_OK when it verifies; FERRY_E_IO
 * when there is no manifest.json (the caller decides whether an unmanifested directory is
 * acceptable); FERRY_E_PARSE when it is malformed or any file is missing, truncated, altered or
 * unlisted (ferry_last_error names every such file). */
ferry_status fy_manifest_verify(const char *dir);

#endif
