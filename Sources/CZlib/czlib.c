#include "CZlib.h"
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct gw_gzip {
    z_stream z;
    int finished;
};

gw_gzip *gw_gzip_new(int level, int window_bits, int mem_level) {
    gw_gzip *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    // windowBits + 16: a gzip header and trailer rather than zlib's.
    if (deflateInit2(&g->z, level, Z_DEFLATED, window_bits + 16, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(g);
        return NULL;
    }
    return g;
}

void gw_gzip_free(gw_gzip *g) {
    if (!g) return;
    deflateEnd(&g->z);
    free(g);
}

int gw_gzip_run(gw_gzip *g, const void *in, size_t in_len, int flush, void *out, size_t out_len,
                size_t *consumed, size_t *produced) {
    *consumed = 0;
    *produced = 0;
    if (g->finished) return 0;
    g->z.next_in = (Bytef *)in;
    g->z.avail_in = (uInt)in_len;
    g->z.next_out = out;
    g->z.avail_out = (uInt)out_len;
    int mode = flush == GW_GZIP_FINISH ? Z_FINISH : flush == GW_GZIP_SYNC ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    int r = deflate(&g->z, mode);
    *consumed = in_len - g->z.avail_in;
    *produced = out_len - g->z.avail_out;
    if (r == Z_STREAM_END) {
        g->finished = 1;
        return 0;
    }
    if (r != Z_OK && r != Z_BUF_ERROR) return -1;
    // More to do while input is left, or while a flush filled the whole output.
    if (g->z.avail_in > 0 || (mode != Z_NO_FLUSH && g->z.avail_out == 0)) return 1;
    return mode == Z_FINISH ? 1 : 0;
}
