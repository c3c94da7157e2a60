/*
 * Embeds texts and one image file with the jclip C API and prints the
 * cosine similarity of each text with the image.
 *
 *   usage: embed [--expect FILE.npy] MODEL_DIR IMAGE [TEXT...]
 *
 * It then passes an invalid UTF-8 text on purpose and prints the status of
 * that call, which must be JCLIP_ERR_INVALID_UTF8.
 *
 * With --expect, it also compares every value with a float32 array of shape
 * [texts + 1, dim] (the texts, then the image) such as
 * `jclip embed --text ... --image IMAGE --format npy` writes, and exits
 * with status 1 when any value differs by more than 1e-6.
 */
#include <jclip.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest accepted difference from the expected embeddings. */
#define TOLERANCE 1e-6f

/* Prints the failed call with its status and message, and returns 1. */
static int report(const char *call, jclip_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", call, jclip_status_name(status), jclip_last_error());
    return 1;
}

/* Reads a whole file into a new buffer; returns NULL on failure. */
static unsigned char *read_file(const char *path, size_t *length) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return NULL;
    }
    unsigned char *data = NULL;
    if (fseek(file, 0, SEEK_END) == 0) {
        long size = ftell(file);
        if (size >= 0 && fseek(file, 0, SEEK_SET) == 0) {
            data = malloc(size > 0 ? (size_t)size : 1);
            if (data != NULL && fread(data, 1, (size_t)size, file) != (size_t)size) {
                free(data);
                data = NULL;
            }
            *length = (size_t)size;
        }
    }
    if (data == NULL) {
        fprintf(stderr, "%s: failed to read the file\n", path);
    }
    fclose(file);
    return data;
}

/*
 * Reads a version 1.0 .npy file of little-endian float32 values in C order
 * with a two-dimensional shape; returns NULL on failure.
 */
static float *read_npy(const char *path, size_t *rows, size_t *columns) {
    size_t length = 0;
    unsigned char *bytes = read_file(path, &length);
    if (bytes == NULL) {
        return NULL;
    }
    float *values = NULL;

    /* Layout: "\x93NUMPY", major 1, minor 0, header length (u16 LE), header text, data. */
    if (length < 10 || memcmp(bytes, "\x93NUMPY\x01\x00", 8) != 0) {
        fprintf(stderr, "%s: not a version 1.0 .npy file\n", path);
        goto done;
    }
    size_t header_length = (size_t)bytes[8] | (size_t)bytes[9] << 8;
    if (10 + header_length > length) {
        fprintf(stderr, "%s: truncated header\n", path);
        goto done;
    }
    char header[512];
    if (header_length >= sizeof header) {
        fprintf(stderr, "%s: header of %zu bytes is longer than expected\n", path, header_length);
        goto done;
    }
    memcpy(header, bytes + 10, header_length);
    header[header_length] = '\0';

    const char *shape = strstr(header, "'shape': (");
    if (strstr(header, "'descr': '<f4'") == NULL || strstr(header, "'fortran_order': False") == NULL ||
        shape == NULL || sscanf(shape, "'shape': (%zu, %zu)", rows, columns) != 2) {
        fprintf(stderr, "%s: expected a C-order float32 array of two dimensions, found %s\n", path, header);
        goto done;
    }

    size_t count = *rows * *columns;
    if (length - 10 - header_length != count * sizeof(float)) {
        fprintf(stderr, "%s: %zu data bytes, expected %zu\n", path, length - 10 - header_length,
                count * sizeof(float));
        goto done;
    }
    values = malloc(count > 0 ? count * sizeof(float) : 1);
    if (values != NULL) {
        /* NOTE: the data is little-endian, so this copy assumes a little-endian machine. */
        memcpy(values, bytes + 10 + header_length, count * sizeof(float));
    }
done:
    free(bytes);
    return values;
}

/*
 * Compares the embeddings (texts, then the image) with the expected array
 * and returns the number of values that differ by more than TOLERANCE.
 */
static size_t compare(const char *path, const float *texts, size_t text_count, const float *image,
                      size_t dim) {
    size_t rows = 0, columns = 0;
    float *expected = read_npy(path, &rows, &columns);
    if (expected == NULL) {
        return 1;
    }
    if (rows != text_count + 1 || columns != dim) {
        fprintf(stderr, "%s: shape [%zu, %zu], expected [%zu, %zu]\n", path, rows, columns,
                text_count + 1, dim);
        free(expected);
        return 1;
    }
    size_t mismatches = 0;
    float max_difference = 0.0f;
    for (size_t row = 0; row < rows; row++) {
        const float *actual = row < text_count ? texts + row * dim : image;
        for (size_t i = 0; i < dim; i++) {
            float difference = fabsf(actual[i] - expected[row * dim + i]);
            if (!(difference <= TOLERANCE)) {
                if (mismatches < 5) {
                    fprintf(stderr, "row %zu, value %zu: %.9g, expected %.9g\n", row, i, actual[i],
                            expected[row * dim + i]);
                }
                mismatches++;
            }
            if (difference > max_difference) {
                max_difference = difference;
            }
        }
    }
    printf("compared %zu values with %s: max difference %.3g, tolerance %.0e, %zu mismatches\n",
           rows * dim, path, max_difference, TOLERANCE, mismatches);
    free(expected);
    return mismatches;
}

int main(int argc, char **argv) {
    const char *expect = NULL;
    int arg = 1;
    if (arg + 1 < argc && strcmp(argv[arg], "--expect") == 0) {
        expect = argv[arg + 1];
        arg += 2;
    }
    if (argc - arg < 2) {
        fprintf(stderr, "usage: %s [--expect FILE.npy] MODEL_DIR IMAGE [TEXT...]\n", argv[0]);
        return 2;
    }
    const char *model_dir = argv[arg];
    const char *image_path = argv[arg + 1];
    size_t text_count = (size_t)(argc - arg - 2);
    char **text_args = argv + arg + 2;

    /* Zero selects the default of every option; only the struct size is required. */
    jclip_options options = {.size = sizeof(jclip_options)};
    jclip_model *model = NULL;
    jclip_status status = jclip_open(model_dir, &options, &model);
    if (status != JCLIP_OK) {
        return report("jclip_open", status);
    }

    size_t text_dim = 0, image_dim = 0;
    const char *isa = NULL;
    if ((status = jclip_text_dim(model, &text_dim)) != JCLIP_OK ||
        (status = jclip_image_dim(model, &image_dim)) != JCLIP_OK ||
        (status = jclip_isa(model, &isa)) != JCLIP_OK) {
        return report("reading the model's properties", status);
    }
    printf("jclip %s, kernel tier %s, text dim %zu, image dim %zu\n", jclip_version(), isa, text_dim,
           image_dim);

    /* Texts are (pointer, length) pairs; they need no NUL terminator. */
    jclip_text *texts = calloc(text_count + 1, sizeof *texts);
    float *text_embeddings = calloc(text_count * text_dim + 1, sizeof(float));
    float *image_embedding = calloc(image_dim + 1, sizeof(float));
    if (texts == NULL || text_embeddings == NULL || image_embedding == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < text_count; i++) {
        texts[i] = (jclip_text){.data = text_args[i], .length = strlen(text_args[i])};
    }
    status = jclip_embed_texts(model, texts, text_count, true, text_embeddings, text_count * text_dim);
    if (status != JCLIP_OK) {
        return report("jclip_embed_texts", status);
    }

    /* Images are passed as the bytes of the encoded file. */
    size_t image_length = 0;
    unsigned char *image_file = read_file(image_path, &image_length);
    if (image_file == NULL) {
        return 1;
    }
    jclip_image_bytes image = {.data = image_file, .length = image_length};
    status = jclip_embed_images(model, &image, 1, true, image_embedding, image_dim);
    if (status != JCLIP_OK) {
        fprintf(stderr, "%s: ", image_path);
        return report("jclip_embed_images", status);
    }

    /* The embeddings are L2-normalised, so the dot product is the cosine similarity. */
    if (text_dim == image_dim) {
        for (size_t i = 0; i < text_count; i++) {
            float cosine = 0.0f;
            for (size_t j = 0; j < text_dim; j++) {
                cosine += text_embeddings[i * text_dim + j] * image_embedding[j];
            }
            printf("%+.4f  %s\n", cosine, text_args[i]);
        }
    }

    /* A failed call returns its status, names the input at fault and writes nothing. */
    jclip_text invalid[] = {{.data = "fine", .length = 4}, {.data = "caf\xC3(", .length = 5}};
    status = jclip_embed_texts(model, invalid, 2, true, text_embeddings, 2 * text_dim);
    printf("expected error for invalid UTF-8: %s: %s\n", jclip_status_name(status), jclip_last_error());
    int failed = status != JCLIP_ERR_INVALID_UTF8;

    if (expect != NULL) {
        if (text_dim != image_dim) {
            fprintf(stderr, "--expect needs one width for texts and images\n");
            failed = 1;
        } else {
            /* The failed call above left text_embeddings unchanged. */
            failed |= compare(expect, text_embeddings, text_count, image_embedding, text_dim) != 0;
        }
    }

    status = jclip_close(model);
    if (status != JCLIP_OK) {
        return report("jclip_close", status);
    }
    free(image_file);
    free(image_embedding);
    free(text_embeddings);
    free(texts);
    return failed;
}
