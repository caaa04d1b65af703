/* fuzz_manifest.c — libFuzzer driver for manifest.json verification: arbitrary bytes as the
 * manifest of a version directory holding one small model.onnx must verify or fail with a
 * message, never crash, leak, read outside the directory or hang on huge claimed sizes.
 * Build: CC=clang cmake -S . -B build-fuzz -DFERRY_FUZZ=ON -DFERRY_WERROR=OFF
 *        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_SANITIZE="address;undefined"
 *        && cmake --build build-fuzz --target fuzz_manifest
 * Run:   build-fuzz/fuzz_manifest -max_total_time=600 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/manifest.h"

static char dir[64];

/* One version directory for the whole run: REPO/m/1 with a model.onnx, so manifests that
 * name it correctly reach the hashing code. */
static void setup(void)
{
    char base[] = "/tmp/ferry-fuzz-manifest-XXXXXX";
    if (!mkdtemp(base)) abort();
    snprintf(dir, sizeof dir, "%s/1", base);
    if (mkdir(dir, 0755) != 0) abort();
    char path[128];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fputs("model bytes", f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) setup();
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, FY_MANIFEST_NAME);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    ferry_status rc = fy_manifest_verify(dir);
    if (rc != FERRY_OK && !ferry_last_error()[0]) abort(); /* a failure must say why */
    return 0;
}
