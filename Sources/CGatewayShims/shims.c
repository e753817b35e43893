#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <pthread.h>
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include "CGatewayShims.h"

int gw_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) { return accept4(fd, addr, len, flags); }
int gw_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int gw_epoll_create_cloexec(void) { return epoll_create1(EPOLL_CLOEXEC); }

int gw_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int gw_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout_ms) {
    return epoll_wait(epfd, events, maxevents, timeout_ms);
}

ssize_t gw_sendfile(int out_fd, int in_fd, off_t *offset, size_t count) { return sendfile(out_fd, in_fd, offset, count); }

int gw_socket(int domain, int type, int nonblocking) {
    return socket(domain, type | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
}

const int gw_SOCK_CLOEXEC = SOCK_CLOEXEC;
const int gw_SOCK_NONBLOCK = SOCK_NONBLOCK;
const int gw_O_CLOEXEC = O_CLOEXEC;
const int gw_O_NONBLOCK = O_NONBLOCK;
const uint32_t gw_EPOLLIN = EPOLLIN;
const uint32_t gw_EPOLLOUT = EPOLLOUT;
const uint32_t gw_EPOLLERR = EPOLLERR;
const uint32_t gw_EPOLLHUP = EPOLLHUP;
const uint32_t gw_EPOLLRDHUP = EPOLLRDHUP;
const uint32_t gw_EPOLLET = EPOLLET;
const uint32_t gw_EPOLLEXCLUSIVE = EPOLLEXCLUSIVE;
const uint32_t gw_EPOLLONESHOT = EPOLLONESHOT;
const int gw_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
const int gw_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
const int gw_EPOLL_CTL_DEL = EPOLL_CTL_DEL;

uint32_t gw_epoll_event_events(const struct epoll_event *e) { return e->events; }
uint64_t gw_epoll_event_data(const struct epoll_event *e) { return e->data.u64; }

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <pthread.h>

static volatile int gw_signal_write_fd = -1;

static void gw_on_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(gw_signal_write_fd, &b, 1);
    (void)r;
    errno = saved;
}

int gw_install_signal_pipe(int write_fd, const int *signals, int count) {
    gw_signal_write_fd = write_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = gw_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigset_t unblock;
    sigemptyset(&unblock);
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &sa, NULL) != 0) return -1;
        sigaddset(&unblock, signals[i]);
    }
    /* Whoever started us may have blocked these (threads of a test runner do): unblock. */
    return pthread_sigmask(SIG_UNBLOCK, &unblock, NULL) == 0 ? 0 : -1;
}

int gw_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

// The child starts with an empty signal mask and default dispositions.
static void clean_signals(posix_spawnattr_t *attr) {
    posix_spawnattr_init(attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(attr, &none);
    posix_spawnattr_setsigdefault(attr, &all);
}

int gw_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
             const int *src, const int *dst, int count) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    // Two steps, because a source may sit on another pair's target (the master's fds
    // 3-6 are whatever it opened; after socket activation anything may land there):
    // first every source onto a number above all of them, then those onto the targets.
    int high = 0;
    for (int i = 0; i < count; i++) {
        if (src[i] > high) high = src[i];
        if (dst[i] > high) high = dst[i];
    }
    for (int i = 0; i < count; i++) posix_spawn_file_actions_adddup2(&actions, src[i], high + 1 + i);
    int top = 2;
    for (int i = 0; i < count; i++) {
        posix_spawn_file_actions_adddup2(&actions, high + 1 + i, dst[i]);
        posix_spawn_file_actions_addclose(&actions, high + 1 + i);
        if (dst[i] > top) top = dst[i];
    }
    // Nothing else: an fd someone left inheritable (a test harness's status pipe, a
    // library's) would otherwise outlive us in a worker or a new master (USR2), and
    // whoever waits for its end would wait for them too.
    posix_spawn_file_actions_addclosefrom_np(&actions, top + 1);
    clean_signals(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int r = posix_spawn(pid, path, &actions, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return r;
}

int gw_spawn_cgi(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const char *cwd, int in_fd, int out_fd, int err_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    // Listener sockets and anything a library opened without O_CLOEXEC stay ours.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&actions, cwd);
    clean_signals(&attr);
    // Its own process group, so a timeout or a client that leaves ends the script's
    // children too.
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    int r = posix_spawn(pid, path, &actions, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return r;
}

int gw_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int gw_touch(int fd) { return futimens(fd, NULL); }

unsigned long gw_shared_mutex_size(void) { return sizeof(pthread_mutex_t); }

int gw_shared_mutex_init(void *mutex) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int r = pthread_mutex_init((pthread_mutex_t *)mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    return r;
}

int gw_shared_mutex_lock(void *mutex) {
    int r = pthread_mutex_lock((pthread_mutex_t *)mutex);
    if (r == EOWNERDEAD) {
        /* A worker died holding the lock: the table is still consistent at every
           store (each field is written whole), so mark the mutex usable again. */
        pthread_mutex_consistent((pthread_mutex_t *)mutex);
        return 1;
    }
    return r == 0 ? 0 : -r;
}

int gw_shared_mutex_unlock(void *mutex) { return pthread_mutex_unlock((pthread_mutex_t *)mutex); }

int gw_futex_wait(uint32_t *word, uint32_t expected, int timeout_ms) {
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
    return r == 0 ? 0 : errno;
}

int gw_futex_wake_all(uint32_t *word) {
    long r = syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    return r < 0 ? errno : 0;
}

int gw_execve(const char *path, char *const argv[], char *const envp[]) {
    execve(path, argv, envp);
    return errno;
}

uint64_t gw_atomic_add_u64(uint64_t *p, uint64_t v) { return __atomic_add_fetch(p, v, __ATOMIC_RELAXED); }
uint64_t gw_atomic_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
int gw_atomic_cas_u64(uint64_t *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* A socket filter that drops every packet. On a listening TCP socket the kernel runs it
   on each SYN and handshake ACK, so no new connection is queued, while the connections
   already queued stay there for a draining worker to accept. Clients retry the SYN and
   find the port closed (refused) once the last copy of the socket is closed. */
int gw_refuse_new_connections(int fd) {
    struct sock_filter drop = { BPF_RET | BPF_K, 0, 0, 0 };
    struct sock_fprog program = { 1, &drop };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

/* Opens `path` read-only (non-blocking, close-on-exec, no controlling tty) and fails
   with ELOOP if any component of it is a symbolic link (openat2 RESOLVE_NO_SYMLINKS,
   Linux 5.6). A static file is then found with one system call instead of an lstat per
   path segment; a path with a link in it takes the slow walk that checks where the
   link leads. ENOSYS on older kernels: the caller stops trying. */
int gw_open_no_symlinks(const char *path) {
    struct open_how how = { 0 };
    how.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}
