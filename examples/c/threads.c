/*
 * Uses one jclip model handle from several POSIX threads at once. Every
 * thread must get the embeddings of a single-threaded call bit for bit, and
 * the message of its own failed calls in jclip_last_error().
 *
 *   usage: threads MODEL_DIR
 *
 * Exits with status 0 when every check passes.
 */
#include <jclip.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define ROUNDS 5
#define TEXT_COUNT 3

static const char *const TEXT_VALUES[TEXT_COUNT] = {
    "a photo of a cat",
    "A dog running on the beach.",
    "two threads, one model",
};

struct shared {
    const jclip_model *model;
    size_t dim;
    const float *expected; /* TEXT_COUNT x dim, from the main thread */
};

struct worker {
    const struct shared *shared;
    int index;
    int failures;
};

static void make_texts(jclip_text *texts) {
    for (int i = 0; i < TEXT_COUNT; i++) {
        texts[i] = (jclip_text){.data = TEXT_VALUES[i], .length = strlen(TEXT_VALUES[i])};
    }
}

static void *run_worker(void *argument) {
    struct worker *worker = argument;
    const struct shared *shared = worker->shared;
    /* Room for the largest batch: TEXT_COUNT texts, or up to THREADS in the invalid batch. */
    size_t floats = (TEXT_COUNT > THREADS ? TEXT_COUNT : THREADS) * shared->dim;
    size_t text_floats = TEXT_COUNT * shared->dim;
    float *out = malloc(floats * sizeof(float));
    if (out == NULL) {
        worker->failures++;
        return NULL;
    }
    jclip_text texts[TEXT_COUNT];
    make_texts(texts);
    char expected_message[32];
    snprintf(expected_message, sizeof expected_message, "text %d: invalid UTF-8", worker->index);

    for (int round = 0; round < ROUNDS; round++) {
        jclip_status status = jclip_embed_texts(shared->model, texts, TEXT_COUNT, true, out, floats);
        if (status != JCLIP_OK || memcmp(out, shared->expected, text_floats * sizeof(float)) != 0) {
            fprintf(stderr, "thread %d round %d: %s: %s\n", worker->index, round, jclip_status_name(status),
                    jclip_last_error());
            worker->failures++;
        }

        /* A batch whose text at this thread's index is invalid UTF-8. */
        jclip_text invalid[THREADS];
        for (int i = 0; i < THREADS; i++) {
            invalid[i] = i == worker->index ? (jclip_text){.data = "\xFF", .length = 1} : texts[0];
        }
        status = jclip_embed_texts(shared->model, invalid, (size_t)worker->index + 1, true, out, floats);
        if (status != JCLIP_ERR_INVALID_UTF8 || strstr(jclip_last_error(), expected_message) == NULL) {
            fprintf(stderr, "thread %d round %d: %s: \"%s\", expected \"%s\"\n", worker->index, round,
                    jclip_status_name(status), jclip_last_error(), expected_message);
            worker->failures++;
        }
    }
    free(out);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    jclip_model *model = NULL;
    jclip_status status = jclip_open(argv[1], NULL, &model);
    if (status != JCLIP_OK) {
        fprintf(stderr, "jclip_open: %s: %s\n", jclip_status_name(status), jclip_last_error());
        return 1;
    }
    size_t dim = 0;
    jclip_text_dim(model, &dim);
    float *expected = malloc(TEXT_COUNT * dim * sizeof(float));
    if (expected == NULL) {
        return 1;
    }
    jclip_text texts[TEXT_COUNT];
    make_texts(texts);
    status = jclip_embed_texts(model, texts, TEXT_COUNT, true, expected, TEXT_COUNT * dim);
    if (status != JCLIP_OK) {
        fprintf(stderr, "jclip_embed_texts: %s: %s\n", jclip_status_name(status), jclip_last_error());
        return 1;
    }

    struct shared shared = {.model = model, .dim = dim, .expected = expected};
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){.shared = &shared, .index = i, .failures = 0};
        if (pthread_create(&threads[i], NULL, run_worker, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        failures += workers[i].failures;
    }
    jclip_close(model);
    free(expected);
    printf("%d threads x %d rounds on one handle: %d failures\n", THREADS, ROUNDS, failures);
    return failures == 0 ? 0 : 1;
}
