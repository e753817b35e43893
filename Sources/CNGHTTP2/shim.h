// nghttp2 (Debian libnghttp2-dev): the HTTP/2 framing library behind curl and Apache mod_http2.
#include <nghttp2/nghttp2.h>
