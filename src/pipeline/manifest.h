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

#include <stddef.h>

#include "ferry/ferry.h"

#define FY_MANIFEST_NAME "manifest.json"

/* SHA-256 of a file as 64 lowercase hex digits plus NUL; also returns its size. */
ferry_status fy_sha256_file(const char *path, char hex[65], long long *size);

/* Checks DIR/manifest.json: it parses, and every file it lists exists inside DIR with that size
 * and hash. FERRY_OK when it verifies; FERRY_E_IO when there is no manifest.json (the caller
 * decides whether an unmanifested directory is acceptable); FERRY_E_PARSE when it is malformed
 * or any file is missing, truncated or altered (ferry_last_error names every such file). */
ferry_status fy_manifest_verify(const char *dir);

#endif
