/* classify.c — the smallest complete use of libferry: load a model, read one .npy input, run,
 * print the most likely class. Build: part of the CMake build (example_classify).
 * Usage: example_classify MODEL.onnx INPUT.npy */
#include <stdio.h>

#include "ferry/ferry.h"

static const char *const fashion_classes[10] = {
    "T-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal",      "shirt",   "sneaker",  "bag",   "ankle boot",
};

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.onnx INPUT.npy\n", argv[0]);
        return 2;
    }
    ferry_model *model = NULL;
    ferry_session *session = NULL;
    ferry_value *input = NULL, *output = NULL;
    int rc = 1;
    ferry_io_info in_info;
    if (ferry_model_load(argv[1], &model) != FERRY_OK ||
        ferry_model_input(model, 0, &in_info) != FERRY_OK ||
        ferry_session_create(model, &(ferry_session_options){.threads = 1}, &session) != FERRY_OK ||
        ferry_tensor_load(argv[2], &input) != FERRY_OK ||
        ferry_session_run(session, 1, &in_info.name, &input, &output) != FERRY_OK) {
        fprintf(stderr, "error: %s\n", ferry_last_error());
        goto out;
    }
    /* the model returns logits [1, classes]; the session owns nothing we must keep */
    const float *logits = ferry_tensor_cdata(output);
    int64_t n = ferry_tensor_count(output), best = 0;
    for (int64_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    printf("class %lld", (long long)best);
    if (n == 10) printf(" (%s)", fashion_classes[best]);
    printf(", logit %.4f\n", logits[best]);
    rc = 0;
out:
    ferry_value_free(input);
    ferry_value_free(output);
    ferry_session_free(session);
    ferry_model_free(model);
    return rc;
}
