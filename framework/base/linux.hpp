// framework/base/linux.hpp — kernel constants svckit needs that older C libraries lack (glibc 2.36 has none
// of SO_PASSPIDFD, SO_PEERPIDFD, SO_PASSRIGHTS, SCM_PIDFD). Values are the asm-generic ones (x86_64).
#pragma once

#include "base/private.hpp"

#include <sys/socket.h>

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 4
#endif
