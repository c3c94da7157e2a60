/* The shortest use of the jclip C API: embed two texts. usage: quickstart MODEL_DIR */
#include <jclip.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    jclip_options options = {.size = sizeof(jclip_options), .threads = 2};
    jclip_model *model = NULL;
    jclip_status status = jclip_open(argc > 1 ? argv[1] : "jina-clip-v1", &options, &model);
    size_t dim = 0;
    if (status == JCLIP_OK) status = jclip_text_dim(model, &dim);
    float *out = malloc(2 * dim * sizeof(float));
    jclip_text texts[2] = {{"a photo of a cat", 16}, {"a photo of a dog", 16}};
    if (status == JCLIP_OK) status = jclip_embed_texts(model, texts, 2, true, out, 2 * dim);
    if (status != JCLIP_OK) {
        fprintf(stderr, "%s: %s\n", jclip_status_name(status), jclip_last_error());
    } else {
        float cosine = 0;
        for (size_t i = 0; i < dim; i++) cosine += out[i] * out[dim + i];
        printf("%zu dimensions, cosine similarity %.4f\n", dim, cosine);
    }
    jclip_close(model);
    free(out);
    return status == JCLIP_OK ? 0 : 1;
}
