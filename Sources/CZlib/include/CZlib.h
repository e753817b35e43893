#ifndef GW_CZLIB_H
#define GW_CZLIB_H
#include <stddef.h>

// A gzip stream (RFC 1952) over zlib's deflate, behind an opaque handle: zlib's state
// points back at its z_stream, so the stream lives on the C heap where it cannot move.
typedef struct gw_gzip gw_gzip;

// `level` 1-9; `window_bits` 9-15 and `mem_level` 1-9 as zlib's (smaller for short bodies).
gw_gzip *gw_gzip_new(int level, int window_bits, int mem_level);
void gw_gzip_free(gw_gzip *g);

enum { GW_GZIP_NONE = 0, GW_GZIP_SYNC = 1, GW_GZIP_FINISH = 2 };

// Compresses from `in` into `out`: *consumed and *produced say how far each went.
// Returns 1 when the call must be repeated (with the rest of `in`, or a fresh `out`
// for more of the flush), 0 when done, -1 on a zlib error.
int gw_gzip_run(gw_gzip *g, const void *in, size_t in_len, int flush, void *out, size_t out_len,
                size_t *consumed, size_t *produced);

#endif
