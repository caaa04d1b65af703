/* registry.h — model repository internals shared inside libferry: name checks, label lookup
 * (ferry validate's --baseline REPO/NAME@LABEL, ferry serve's label routing) and locking. */
#ifndef FY_PIPELINE_REGISTRY_H
#define FY_PIPELINE_REGISTRY_H

#include <stdint.h>

#include "ferry/registry.h"

/* labels.json holds {"stable": 3, "canary": 4, ...} plus an optional "canary_weight" number. */
#define FY_LABELS_NAME  "labels.json"
#define FY_HISTORY_NAME "history.jsonl"
#define FY_LOCK_NAME    ".lock"
#define FY_TMP_PREFIX   ".tmp-"
#define FY_MAX_LABELS   32 /* what ferry serve routes per model */

/* A model or label name: 1..128 of [A-Za-z0-9._-], not "." or "..". */
int fy_repo_name_ok(const char *s);

/* A version directory name: a positive decimal integer without leading zeros. Returns the
 * number, or 0 when s is not one (temp dirs, labels.json...). */
int64_t fy_repo_version_of(const char *s);

/* The version REPO/NAME/labels.json gives label. FERRY_E_INVALID_ARG when the label is not set
 * (the message lists the labels there are), FERRY_E_IO when the model has no labels.json,
 * FERRY_E_PARSE when labels.json is malformed. */
ferry_status fy_repo_resolve_label(const char *repo, const char *name, const char *label,
                                   int64_t *version);

/* "REPO/NAME@LABEL" → the path of that version's model.onnx (malloc'd) and its version. A spec
 * without '@' is not a repository reference: FERRY_E_INVALID_ARG. A version whose manifest does
 * not verify is FERRY_E_PARSE (never compare against a tampered or corrupt baseline). */
ferry_status fy_repo_resolve_spec(const char *spec, char **model_path, int64_t *version);

#endif
