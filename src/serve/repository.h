/* repository.h — reading a ferry serve model repository from disk: which models and versions it
 * holds, each model's config.json (with defaults), its version policy and labels.json, and the
 * checks that keep a half-written version directory from being loaded (docs/serving-repository.md).
 *
 * Nothing here loads a model or keeps state between calls; manager.c decides what to do with
 * what these functions report. Every input comes from files users write, so every function
 * validates and reports a message instead of trusting it. */
#ifndef FERRY_SERVE_REPOSITORY_H
#define FERRY_SERVE_REPOSITORY_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/ferry.h"

#define SV_MAX_PREFERRED 8
#define SV_MAX_SPECIFIC  64
#define SV_MAX_LABELS    32
#define SV_LABEL_LEN     64

/* Defaults used when config.json does not say (documented in docs/serving-repository.md). */
#define SV_DEFAULT_AUTO_BATCH 32   /* max_batch_size when every input's dim 0 is symbolic */
#define SV_DEFAULT_QUEUE_SIZE 1024 /* limits.max_queue_size */
#define SV_DEFAULT_INSTANCES  1

typedef enum sv_policy_kind {
    SV_POLICY_LATEST = 0,
    SV_POLICY_ALL,
    SV_POLICY_SPECIFIC,
} sv_policy_kind;

/* A model's config.json merged with defaults. max_batch_size -1 means "not given: decide from
 * the model" (sv_config_resolve). */
typedef struct sv_model_config {
    int max_batch_size;
    int64_t max_queue_delay_us;
    int n_preferred;
    int preferred_batch_size[SV_MAX_PREFERRED];
    int instances;
    sv_policy_kind policy;
    int latest_num_versions;
    int n_specific;
    int64_t specific_versions[SV_MAX_SPECIFIC];
    int max_queue_size;
    int64_t timeout_ms; /* default per-request deadline; 0 = none */
    uint64_t text_hash; /* hash of the config.json bytes (0 when absent): a change reloads */
} sv_model_config;

/* Defaults only (no file). */
void sv_config_defaults(sv_model_config *c);
/* Reads MODEL_DIR/config.json if present (defaults otherwise). FERRY_E_PARSE with a message
 * naming the field when the file is malformed or a value is out of range; c then holds
 * defaults. */
ferry_status sv_config_load(const char *model_dir, sv_model_config *c);
/* Resolves max_batch_size against a loaded model: picks SV_DEFAULT_AUTO_BATCH when it was not
 * given and every input and output is a tensor whose dim 0 is symbolic, else 0; rejects an
 * explicit max_batch_size > 0 for a model without such a batch dimension. */
ferry_status sv_config_resolve(sv_model_config *c, const ferry_model *m);
/* The effective configuration as a JSON object text (malloc'd; the caller frees). */
char *sv_config_to_json(const sv_model_config *c, const char *model_name);

/* Which of the versions on disk the policy keeps (versions sorted ascending). Writes the
 * selected ones into sel (room for n) and returns how many. */
int sv_policy_select(const sv_model_config *c, const int64_t *versions, int n, int64_t *sel);

/* Directory listing helpers. Names and versions are malloc'd arrays the caller frees
 * (sv_free_names for names). Models are sorted by name, versions ascending. */
ferry_status sv_repo_list_models(const char *repo, char ***names, int *n);
void sv_free_names(char **names, int n);
/* Version directories: entries of MODEL_DIR named by a positive decimal integer that are
 * directories. Anything else (config.json, labels.json, "latest", "1.bak") is ignored. */
ferry_status sv_repo_list_versions(const char *model_dir, int64_t **versions, int *n);

/* labels.json: {"stable": 3, "canary": 4, "canary_weight": 0.1}. Integer members are labels;
 * other members (weights, notes) are ignored. No file = no labels. */
typedef struct sv_labels {
    int n;
    char name[SV_MAX_LABELS][SV_LABEL_LEN];
    int64_t version[SV_MAX_LABELS];
} sv_labels;
ferry_status sv_labels_load(const char *model_dir, sv_labels *out);

/* A fingerprint of a version directory: every file's relative path, size and mtime (ns),
 * recursively. Two equal fingerprints taken a poll apart mean nobody is writing into it. */
ferry_status sv_dir_fingerprint(const char *dir, uint64_t *out);

/* 64-bit FNV-1a, shared by the fingerprint and config hashing. */
uint64_t sv_hash_bytes(uint64_t h, const void *p, size_t n);
#define SV_HASH_SEED 1469598103934665603ull

#endif
