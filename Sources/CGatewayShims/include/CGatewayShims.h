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
extern const int gw_EPOLL_CTL_ADD;
extern const int gw_EPOLL_CTL_MOD;
extern const int gw_EPOLL_CTL_DEL;

// epoll_event is packed on x86_64; read its fields here rather than trusting Swift's layout.
uint32_t gw_epoll_event_events(const struct epoll_event *e);
uint64_t gw_epoll_event_data(const struct epoll_event *e);
