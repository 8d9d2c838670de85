// framework/service/supervisor.hpp — the main process of a service with workers: forks them, replaces those
// that die, forwards a stop; with no event loop of its own, so that every worker, the first ones and each
// replacement, starts from a process in which no loop, endpoint or service runtime exists.
#pragma once

#include "base/private.hpp"

#include <svckit/error.hpp>

#include <functional>

namespace svckit {

struct SupervisorOptions {
    unsigned workers = 2;
    // Replacements of failed workers before the supervisor gives up (stops the others, exits 1).
    unsigned maxReplacements = 20;
};

// Forks `workers` processes that each return worker() as their exit status, and supervises them until all
// have exited: READY=1 (and STATUS=) to systemd once they are forked; SIGTERM/SIGINT: STOPPING=1, SIGTERM to
// every worker; a worker that fails is replaced (one that exits 0 stops the service, as its own exit-on-idle
// would); WATCHDOG=1 at half the interval when systemd asks for pings. Blocks SIGTERM, SIGINT and SIGCHLD
// while it runs (a worker starts with the signal mask the caller had). Returns 0, or 1 after too many
// replacements. Call it before this process creates an event loop.
[[nodiscard]] Result<int> superviseWorkers(const SupervisorOptions& options,
                                           const std::function<int()>& worker);

} // namespace svckit
