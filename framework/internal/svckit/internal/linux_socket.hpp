// svckit/internal/linux_socket.hpp — the kernel's socket constants that older C library headers lack, in one
// place for the library, the svckit tool and the tests (never installed: not part of svckit's API).
//
// glibc 2.36 (Debian 12) has none of SO_PASSPIDFD, SO_PEERPIDFD (Linux 6.5), SO_PASSRIGHTS (6.16) and
// SCM_PIDFD (6.5). Where the C library defines one, its value wins. Otherwise the values are the kernel's
// own: most architectures use asm-generic/socket.h (alpha and mips number these three the same way), while
// parisc and sparc number their socket options differently (arch/{parisc,sparc}/include/uapi/asm/socket.h).
// SCM_PIDFD is a control-message type from include/linux/socket.h, the same everywhere.
#pragma once

#include <sys/socket.h>

#if defined(__hppa__)
#define SVCKIT_SO_PASSPIDFD 0x404A
#define SVCKIT_SO_PEERPIDFD 0x404B
#define SVCKIT_SO_PASSRIGHTS 0x4051
#elif defined(__sparc__)
#define SVCKIT_SO_PASSPIDFD 0x0055
#define SVCKIT_SO_PEERPIDFD 0x0056
#define SVCKIT_SO_PASSRIGHTS 0x005c
#else
#define SVCKIT_SO_PASSPIDFD 76
#define SVCKIT_SO_PEERPIDFD 77
#define SVCKIT_SO_PASSRIGHTS 83
#endif

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD SVCKIT_SO_PASSPIDFD
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD SVCKIT_SO_PEERPIDFD
#endif
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS SVCKIT_SO_PASSRIGHTS
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

// A C library that has them must agree with the kernel's numbering above.
static_assert(SO_PASSPIDFD == SVCKIT_SO_PASSPIDFD && SO_PEERPIDFD == SVCKIT_SO_PEERPIDFD &&
                  SO_PASSRIGHTS == SVCKIT_SO_PASSRIGHTS && SCM_PIDFD == 0x04,
              "socket constants differ from the kernel's for this architecture");
