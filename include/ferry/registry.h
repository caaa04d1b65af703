/* ferry/registry.h — the model repository as the CLI and CI pipelines use it: publish a model as
 * an immutable numbered version, move labels (stable, canary...) between versions, roll back,
 * list and verify. Layout (DESIGN.md "Model repository"):
 *
 *   REPO/NAME/N/model.onnx        N = 1, 2, ...; external-data files beside it
 *   REPO/NAME/N/manifest.json     sha256 + size of every file, created, source, metrics, profile
 *   REPO/NAME/labels.json         {"stable": 3, "canary": 4, "canary_weight": 0.1}
 *   REPO/NAME/history.jsonl       one JSON object per change: time, user, host, action,
 *                                 version, label, previous, reason
 *   REPO/NAME/.lock               flock'd by every writer
 *   REPO/NAME/.tmp-*              a publish in progress (or killed); never a version
 *
 * Every call returns FERRY_OK or an error whose message is in ferry_last_error(). Where the
 * repository refuses an otherwise well-formed request (the version exists already, a version
 * does not verify, there is nothing to roll back to) *refused is set to 1, so a CLI can tell
 * "check failed" (exit 1) from "bad input" (exit 2). refused may be NULL. */
#ifndef FERRY_REGISTRY_H
#define FERRY_REGISTRY_H

#include <stdint.h>

#include "ferry/ferry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ferry_publish_options {
    const char *model;  /* path to the .onnx file; external-data files are found beside it */
    const char *repo;   /* repository root, created if missing */
    const char *name;   /* model name: [A-Za-z0-9._-]+, not "." or ".." */
    int64_t version;    /* 0: highest existing + 1 */
    const char *label;  /* optional: point this label at the new version */
    const char *report; /* optional: ferry validate JSON report ("metrics", "profile" kept) */
    const char *reason; /* optional: recorded in history.jsonl */
} ferry_publish_options;

/* Copies the model into REPO/NAME/N/ atomically and writes its manifest; *version gets N. */
ferry_status ferry_repo_publish(const ferry_publish_options *o, int64_t *version, int *refused);

/* Points label at version (which must exist and verify). *previous gets the label's former
 * version (0 if none). */
ferry_status ferry_repo_promote(const char *repo, const char *name, int64_t version,
                                const char *label, const char *reason, int64_t *previous,
                                int *refused);

/* Points the "canary" label at version and sets "canary_weight" (0..1: the share of unlabelled
 * requests ferry serve sends to the canary) in the same atomic change. */
ferry_status ferry_repo_promote_canary(const char *repo, const char *name, int64_t version,
                                       double weight, const char *reason, int64_t *previous,
                                       int *refused);

/* Moves label back to the version that held it before the current one (history.jsonl).
 * *from and *to get the versions. */
ferry_status ferry_repo_rollback(const char *repo, const char *name, const char *label,
                                 const char *reason, int64_t *from, int64_t *to, int *refused);

/* The version a label points at (FERRY_E_INVALID_ARG when the label is not set). */
ferry_status ferry_repo_resolve(const char *repo, const char *name, const char *label,
                                int64_t *version);

typedef struct ferry_repo_version {
    int64_t version;
    char created[40];  /* from the manifest, "" if unknown */
    char labels[256];  /* comma-separated labels pointing here, "" if none */
    long long size;    /* bytes of all files listed in the manifest, -1 if unknown */
    int verified;      /* 1 every hash matches, 0 it does not verify */
    char problem[512]; /* why it does not verify, "" when it does */
    double accuracy;   /* key metrics from the manifest, NaN when absent */
    double f1_macro;
    double latency_p95_ms;
    char git_commit[48]; /* "" when not published from git */
    int git_dirty;
    char *metrics_json; /* the manifest's "metrics" object as compact JSON, or NULL */
} ferry_repo_version;

/* Every version of REPO/NAME, ascending, each verified. Free with ferry_repo_versions_free. */
ferry_status ferry_repo_versions(const char *repo, const char *name, ferry_repo_version **out,
                                 int *n);
void ferry_repo_versions_free(ferry_repo_version *v, int n);

/* The model names in REPO (directories with a valid name), sorted. Free each and the array. */
ferry_status ferry_repo_names(const char *repo, char ***names, int *n);

/* Checks REPO/NAME/labels.json (if any): it parses, and every label names an existing version
 * directory. FERRY_E_PARSE lists each dangling label in ferry_last_error(). */
ferry_status ferry_repo_check_labels(const char *repo, const char *name);

/* Labels of REPO/NAME as compact JSON text ("{}" when none); free() it. */
ferry_status ferry_repo_labels_json(const char *repo, const char *name, char **json);

#ifdef __cplusplus
}
#endif

#endif
