/* The C sample CGI program and the benchmark's CGI target: a small fixed answer that
 * names the request, so the benchmark measures the server's spawn path, not the program. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");
    const char *query = getenv("QUERY_STRING");
    printf("Content-Type: text/plain\r\n\r\n");
    printf("hello from C CGI: %s %s?%s\n", method ? method : "-", path ? path : "", query ? query : "");
    return 0;
}
