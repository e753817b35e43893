// libfcgi's request API (Debian: libfcgi-dev).
#include <fcgiapp.h>
