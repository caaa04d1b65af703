/* test_dataset.c — the dataset readers on real files (Fashion-MNIST IDX .gz, NumPy-written .npz)
 * and hand-built bytes (IDX element types, CSV), fitting to model inputs, and malformed input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/dataset.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static char data_dir[1024];

static const char *fixture(const char *name)
{
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", data_dir, name);
    return path;
}

static void reads_fashion_mnist_idx_gz(void **state)
{
    ferry_value *x = NULL, *y = NULL, *lab = NULL;
    assert_int_equal(ferry_dataset_load(FMNIST "t10k-images-idx3-ubyte.gz", NULL, &x, &lab),
                     FERRY_OK);
    assert_null(lab);
    assert_int_equal(ferry_tensor_dtype(x), FERRY_DTYPE_U8);
    assert_int_equal(ferry_tensor_rank(x), 3);
    assert_true(ferry_tensor_dims(x)[0] == 10000 && ferry_tensor_dims(x)[1] == 28 &&
                ferry_tensor_dims(x)[2] == 28);
    assert_int_equal(ferry_dataset_load(FMNIST "t10k-labels-idx1-ubyte.gz", NULL, &y, NULL),
                     FERRY_OK);
    const uint8_t *l = ferry_tensor_cdata(y);
    assert_int_equal(ferry_tensor_count(y), 10000);
    assert_true(l[0] == 9 && l[1] == 2 && l[2] == 1 && l[3] == 1 && l[4] == 6);

    /* image 0 scaled by 1/255 and flattened is examples/fashion-mnist/ankle-boot.npy */
    char npy[1200];
    snprintf(npy, sizeof npy, "%s/../../../examples/fashion-mnist/ankle-boot.npy", data_dir);
    ferry_value *boot;
    assert_int_equal(ferry_tensor_load(npy, &boot), FERRY_OK);
    int64_t mlp_dims[] = {-1, 784};
    ferry_io_info mlp = {.name = "input", .dtype = FERRY_DTYPE_F32, .rank = 2, .dims = mlp_dims};
    double scale = ferry_dataset_default_scale(FERRY_DTYPE_U8, FERRY_DTYPE_F32);
    assert_true(fabs(scale - 1.0 / 255) < 1e-15);
    ferry_fit_options fo = {.scale = scale};
    ferry_value *fit;
    assert_int_equal(ferry_dataset_fit(x, 0, 1, &mlp, &fo, &fit), FERRY_OK);
    assert_int_equal(ferry_tensor_rank(fit), 2);
    assert_true(ferry_tensor_dims(fit)[0] == 1 && ferry_tensor_dims(fit)[1] == 784);
    const float *a = ferry_tensor_cdata(fit), *b = ferry_tensor_cdata(boot);
    for (int i = 0; i < 784; i++)
        assert_true(fabsf(a[i] - b[i]) < 1e-7f);
    ferry_value_free(fit);

    /* the CNN's [batch,1,28,28] and a batch in the middle */
    int64_t cnn_dims[] = {-1, 1, 28, 28};
    ferry_io_info cnn = {.name = "input", .dtype = FERRY_DTYPE_F32, .rank = 4, .dims = cnn_dims};
    assert_int_equal(ferry_dataset_fit(x, 9990, 64, &cnn, &fo, &fit), FERRY_OK);
    assert_true(ferry_tensor_dims(fit)[0] == 10 && ferry_tensor_dims(fit)[1] == 1);
    assert_true(fabsf(((const float *)ferry_tensor_cdata(fit))[5 * 784 + 400] -
                      ((const uint8_t *)ferry_tensor_cdata(x))[9995 * 784 + 400] / 255.0f) < 1e-6f);
    ferry_value_free(fit);

    /* a shape that does not fit says both shapes */
    int64_t bad_dims[] = {-1, 3, 32, 32};
    ferry_io_info bad = {.name = "input", .dtype = FERRY_DTYPE_F32, .rank = 4, .dims = bad_dims};
    assert_int_equal(ferry_dataset_fit(x, 0, 4, &bad, &fo, &fit), FERRY_E_SHAPE);
    assert_non_null(strstr(ferry_last_error(), "[28,28]"));
    assert_non_null(strstr(ferry_last_error(), "[3,32,32]"));

    /* slicing rows */
    ferry_value *s;
    assert_int_equal(ferry_dataset_slice(y, 9998, 10, &s), FERRY_OK);
    assert_int_equal(ferry_tensor_count(s), 2);
    assert_int_equal(((const uint8_t *)ferry_tensor_cdata(s))[0], l[9998]);
    ferry_value_free(s);
    ferry_value_free(boot);
    ferry_value_free(x);
    ferry_value_free(y);
}

static void reads_numpy_npz_stored_and_deflated(void **state)
{
    ferry_value *x, *y;
    /* several arrays: "x" is the default choice */
    assert_int_equal(ferry_dataset_load(fixture("small.npz"), NULL, &x, NULL), FERRY_OK);
    assert_int_equal(ferry_tensor_dtype(x), FERRY_DTYPE_F32);
    assert_true(ferry_tensor_dims(x)[0] == 4 && ferry_tensor_dims(x)[1] == 3);
    assert_true(((const float *)ferry_tensor_cdata(x))[11] == 11.0f / 4);
    ferry_dataset_options o = {.array = "y"};
    assert_int_equal(ferry_dataset_load(fixture("small.npz"), &o, &y, NULL), FERRY_OK);
    assert_int_equal(ferry_tensor_dtype(y), FERRY_DTYPE_I64);
    assert_true(((const int64_t *)ferry_tensor_cdata(y))[1] == 2);
    ferry_value_free(x);
    ferry_value_free(y);

    o.array = "labels.npy";
    assert_int_equal(ferry_dataset_load(fixture("small_deflate.npz"), &o, &y, NULL), FERRY_OK);
    assert_true(((const int64_t *)ferry_tensor_cdata(y))[3] == 2);
    ferry_value_free(y);
    o.array = "images";
    assert_int_equal(ferry_dataset_load(fixture("small_deflate.npz"), &o, &x, NULL), FERRY_OK);
    assert_int_equal(ferry_tensor_count(x), 64);
    assert_int_equal(((const uint8_t *)ferry_tensor_cdata(x))[63], 63);
    ferry_value_free(x);

    o.array = "nope";
    assert_int_equal(ferry_dataset_load(fixture("small_deflate.npz"), &o, &x, NULL),
                     FERRY_E_INVALID_ARG);
    assert_non_null(strstr(ferry_last_error(), "\"images\", \"labels\""));
    char *names;
    assert_int_equal(ferry_npz_list(fixture("small.npz"), &names), FERRY_OK);
    assert_string_equal(names, "x\ny");
    free(names);
}

/* Big-endian IDX bytes for a tensor of dims with the given type code and element size. */
static size_t make_idx(unsigned char *buf, int type, int rank, const uint32_t *dims,
                       const void *le_data, size_t esize, size_t count)
{
    size_t n = 0;
    buf[n++] = 0, buf[n++] = 0, buf[n++] = (unsigned char)type, buf[n++] = (unsigned char)rank;
    for (int i = 0; i < rank; i++)
        for (int b = 3; b >= 0; b--)
            buf[n++] = (unsigned char)(dims[i] >> (8 * b));
    for (size_t i = 0; i < count; i++)
        for (size_t b = 0; b < esize; b++)
            buf[n++] = ((const unsigned char *)le_data)[i * esize + esize - 1 - b];
    return n;
}

static void reads_every_idx_type(void **state)
{
    unsigned char buf[256];
    uint32_t dims[] = {2, 3};
    float f[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    double d[6] = {1e300, -2, 3, 4, 5, 6};
    int32_t i32[6] = {-70000, 1, 2, 3, 4, 5};
    int16_t i16[6] = {-300, 1, 2, 3, 4, 5};
    int8_t i8[6] = {-3, 1, 2, 3, 4, 5};
    struct {
        int type;
        const void *data;
        size_t esize;
        ferry_dtype dt;
        double first;
    } cases[] = {
        {0x0D, f, 4, FERRY_DTYPE_F32, 1.5},      {0x0E, d, 8, FERRY_DTYPE_F64, 1e300},
        {0x0C, i32, 4, FERRY_DTYPE_I32, -70000}, {0x0B, i16, 2, FERRY_DTYPE_I16, -300},
        {0x09, i8, 1, FERRY_DTYPE_I8, -3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = make_idx(buf, cases[c].type, 2, dims, cases[c].data, cases[c].esize, 6);
        ferry_value *t;
        assert_int_equal(ferry_dataset_parse(buf, n, "t.idx", NULL, &t, NULL), FERRY_OK);
        assert_int_equal(ferry_tensor_dtype(t), cases[c].dt);
        assert_true(ferry_tensor_dims(t)[0] == 2 && ferry_tensor_dims(t)[1] == 3);
        assert_memory_equal(ferry_tensor_cdata(t), cases[c].data, 6 * cases[c].esize);
        ferry_value_free(t);
        /* truncated by one byte, then with one byte too many */
        assert_int_equal(ferry_dataset_parse(buf, n - 1, "t.idx", NULL, &t, NULL), FERRY_E_PARSE);
        assert_non_null(strstr(ferry_last_error(), "truncated"));
        assert_int_equal(ferry_dataset_parse(buf, n + 1, "t.idx", NULL, &t, NULL), FERRY_E_PARSE);
    }
    size_t n = make_idx(buf, 0x0D, 2, dims, f, 4, 6);
    buf[2] = 0x0A;
    ferry_value *t;
    assert_int_equal(ferry_dataset_parse(buf, n, "t.idx", NULL, &t, NULL), FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "element type 0x0a"));
    /* a huge claimed shape is an error, not an allocation */
    uint32_t huge[] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    n = make_idx(buf, 0x08, 3, huge, f, 1, 0);
    assert_int_equal(ferry_dataset_parse(buf, n, "t-ubyte", NULL, &t, NULL), FERRY_E_PARSE);
}

static void reads_csv_with_header_and_label(void **state)
{
    const char *csv = "sepal,petal,label,width\n1.5, 2,0,3\n\"4\",5e-1,2,NaN\r\n\n7,8,1,9\n";
    ferry_value *x, *y;
    ferry_dataset_options o = {.label_column = "label"};
    assert_int_equal(ferry_dataset_parse(csv, strlen(csv), "iris.csv", &o, &x, &y), FERRY_OK);
    assert_int_equal(ferry_tensor_dtype(x), FERRY_DTYPE_F64);
    assert_true(ferry_tensor_dims(x)[0] == 3 && ferry_tensor_dims(x)[1] == 3);
    const double *v = ferry_tensor_cdata(x), *l = ferry_tensor_cdata(y);
    assert_true(v[0] == 1.5 && v[1] == 2 && v[2] == 3 && v[3] == 4 && v[4] == 0.5 && isnan(v[5]));
    assert_true(l[0] == 0 && l[1] == 2 && l[2] == 1);
    ferry_value_free(x);
    ferry_value_free(y);

    /* by index from the end, no header */
    const char *plain = "1;2;3\n4;5;6\n";
    o = (ferry_dataset_options){.label_column = "-1", .delimiter = ';'};
    assert_int_equal(ferry_dataset_parse(plain, strlen(plain), "p.csv", &o, &x, &y), FERRY_OK);
    assert_true(ferry_tensor_dims(x)[1] == 2 && ((const double *)ferry_tensor_cdata(y))[1] == 6);
    ferry_value_free(x);
    ferry_value_free(y);

    /* errors name the line and column */
    const char *ragged = "a,b\n1,2\n3\n";
    assert_int_equal(ferry_dataset_parse(ragged, strlen(ragged), "r.csv", NULL, &x, NULL),
                     FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "r.csv:3: 1 fields, the first row has 2"));
    const char *word = "a,b\n1,2\n3,x\n";
    assert_int_equal(ferry_dataset_parse(word, strlen(word), "w.csv", NULL, &x, NULL),
                     FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "w.csv:3: column 2 is not a number: \"x\""));
    o = (ferry_dataset_options){.label_column = "species"};
    assert_int_equal(ferry_dataset_parse(csv, strlen(csv), "iris.csv", &o, &x, &y),
                     FERRY_E_INVALID_ARG);
    assert_non_null(strstr(ferry_last_error(), "no column named \"species\""));
    assert_int_equal(ferry_dataset_parse("a,b\n", 4, "h.csv", NULL, &x, NULL), FERRY_E_PARSE);
}

static void rejects_malformed_files(void **state)
{
    ferry_value *x;
    unsigned char junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 37 + 11);
    assert_int_not_equal(ferry_dataset_parse(junk, sizeof junk, "j.npz", NULL, &x, NULL), FERRY_OK);
    assert_int_not_equal(ferry_dataset_parse(junk, sizeof junk, "j.npy", NULL, &x, NULL), FERRY_OK);
    assert_int_equal(ferry_dataset_parse(junk, sizeof junk, "j.bin", NULL, &x, NULL),
                     FERRY_E_UNSUPPORTED);
    /* a truncated gzip stream */
    FILE *f = fopen(FMNIST "t10k-labels-idx1-ubyte.gz", "rb");
    assert_non_null(f);
    unsigned char gz[2000];
    size_t n = fread(gz, 1, sizeof gz, f);
    fclose(f);
    assert_int_equal(ferry_dataset_parse(gz, n / 2, "l-idx1-ubyte.gz", NULL, &x, NULL),
                     FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "truncated"));
    /* every prefix of a real .npz fails cleanly */
    FILE *z = fopen(fixture("small_deflate.npz"), "rb");
    assert_non_null(z);
    unsigned char npz[4096];
    size_t zn = fread(npz, 1, sizeof npz, z);
    fclose(z);
    for (size_t cut = 0; cut < zn; cut += 7)
        assert_int_not_equal(ferry_dataset_parse(npz, cut, "c.npz", NULL, &x, NULL), FERRY_OK);
    assert_int_equal(ferry_dataset_load("/nonexistent/x.npy", NULL, &x, NULL), FERRY_E_IO);
    /* found by fuzz_dataset: an IDX header whose claimed size overflows 64 bits in the message */
    static const unsigned char overflow[] = {
        0,    0, 0x0b, 4, 0,    0,    0,    0x15, 0x26, 0x20, 1, 0,    0,    0,
        0xfe, 0, 0,    0, 0x15, 0x26, 0x20, 1,    0,    0,    0, 0xfe, 0xff, 0xff,
        0x97, 0, 0,    0, 0,    0xff, 0xff, 0x97, 0,    0,    0, 0};
    assert_int_equal(ferry_dataset_parse(overflow, sizeof overflow, "f.bin", NULL, &x, NULL),
                     FERRY_E_PARSE);
}

int main(void)
{
    snprintf(data_dir, sizeof data_dir, "%s", __FILE__);
    char *slash = strrchr(data_dir, '/');
    if (slash) *slash = '\0';
    strncat(data_dir, "/data", sizeof data_dir - strlen(data_dir) - 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_fashion_mnist_idx_gz),
        cmocka_unit_test(reads_numpy_npz_stored_and_deflated),
        cmocka_unit_test(reads_every_idx_type),
        cmocka_unit_test(reads_csv_with_header_and_label),
        cmocka_unit_test(rejects_malformed_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
