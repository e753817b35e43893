// Declarations for the few Linux calls Swift's Glibc module does not expose.
// The definitions live in shims.c, compiled with _GNU_SOURCE; this header uses only
// standard types so it imports cleanly next to Glibc.
#pragma once
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/epoll.h>

int gw_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int gw_pipe2(int fds[2], int flags);
int gw_epoll_create_cloexec(void);
int gw_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int gw_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout_ms);
ssize_t gw_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
int gw_socket(int domain, int type, int nonblocking);

// Flag values, exported as plain integers (glibc defines some as enum members).
extern const int gw_SOCK_CLOEXEC;
extern const int gw_SOCK_NONBLOCK;
extern const int gw_O_CLOEXEC;
extern const int gw_O_NONBLOCK;
extern const uint32_t gw_EPOLLIN;
extern const uint32_t gw_EPOLLOUT;
extern const uint32_t gw_EPOLLERR;
extern const uint32_t gw_EPOLLHUP;
extern const uint32_t gw_EPOLLRDHUP;
extern const uint32_t gw_EPOLLET;
extern const uint32_t gw_EPOLLEXCLUSIVE;
extern const uint32_t gw_EPOLLONESHOT;
extern const int gw_EPOLL_CTL_ADD;
extern const int gw_EPOLL_CTL_MOD;
extern const int gw_EPOLL_CTL_DEL;

// epoll_event is packed on x86_64; read its fields here rather than trusting Swift's layout.
uint32_t gw_epoll_event_events(const struct epoll_event *e);
uint64_t gw_epoll_event_data(const struct epoll_event *e);

// Signals: the handler only writes the signal number, one byte, to `write_fd`
// (the self-pipe); the master's loop reads and acts on it.
int gw_install_signal_pipe(int write_fd, const int *signals, int count);
// Ask the kernel to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG).
int gw_set_parent_death_signal(int sig);
// posix_spawn with fd remapping (src[i] -> dst[i], clearing close-on-exec on dst), an
// empty signal mask and default dispositions, so the child starts clean. Returns 0 or errno.
int gw_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
             const int *src, const int *dst, int count);
// posix_spawn of a CGI program: in_fd, out_fd and err_fd become its fds 0, 1 and 2,
// every other fd is closed, it runs in `cwd` and in a new process group (its pid), with
// an empty signal mask and default dispositions. Returns 0 or errno (ENOENT, EACCES...).
int gw_spawn_cgi(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const char *cwd, int in_fd, int out_fd, int err_fd);
// pidfd_open(2): an fd that becomes readable when the process ends (close-on-exec).
int gw_pidfd_open(pid_t pid);
// futimens(fd, NULL): the worker heartbeat (the master reads the file's mtime).
int gw_touch(int fd);
int gw_refuse_new_connections(int fd);
// open(path, O_RDONLY|O_NONBLOCK|O_CLOEXEC) that fails with ELOOP on any symbolic link in the path (openat2).
int gw_open_no_symlinks(const char *path);

// Shared memory between the master and its workers (the app slot table).
// A process-shared, robust mutex: if its holder dies, the next locker recovers it.
unsigned long gw_shared_mutex_size(void);
int gw_shared_mutex_init(void *mutex);
// 0 when locked; 1 when locked after recovering from a holder that died.
int gw_shared_mutex_lock(void *mutex);
int gw_shared_mutex_unlock(void *mutex);
// futex(2) on a word in shared memory (not FUTEX_PRIVATE: other processes wait on it).
// Waits while *word == expected, at most timeout_ms; returns 0, or errno (ETIMEDOUT, EAGAIN, EINTR).
int gw_futex_wait(uint32_t *word, uint32_t expected, int timeout_ms);
int gw_futex_wake_all(uint32_t *word);
// execve that keeps the caller's fds 0-2 and every fd not close-on-exec. Returns only on error (errno).
int gw_execve(const char *path, char *const argv[], char *const envp[]);

// Counters in shared memory (metrics): atomic on every CPU, no lock.
uint64_t gw_atomic_add_u64(uint64_t *p, uint64_t v);
uint64_t gw_atomic_load_u64(const uint64_t *p);
int gw_atomic_cas_u64(uint64_t *p, uint64_t expected, uint64_t desired);
